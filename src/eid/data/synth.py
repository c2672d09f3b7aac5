"""Old home of haze synthesis, kept for the benchmarks until they import the new modules.

Synthesis now lives in :mod:`eid.synth` (one image, folders), its random parameters in
:mod:`eid.physics.generators` and depth files in :mod:`eid.data.depth`. A name imported from here is looked
up there when first used, so this module imports nothing above the data layer when loaded.
"""

from __future__ import annotations

from eid.utils import moved_names

__getattr__ = moved_names(__name__, {
    "eid.data.depth": ("DEPTH_SUFFIXES", "MOTORCYCLE_CALIBRATION", "DisparityCalibration", "fill_invalid",
                       "motorcycle_depth", "read_depth"),
    "eid.physics.generators": ("HazeParamGenerator", "Range", "VeilParamGenerator", "apply_veil", "gaussian_blur",
                               "image_seed", "ramp_depth", "smooth_field"),
    "eid.synth": ("SynthConfig", "SynthReport", "synthesize", "synthesize_folder"),
})  # fmt: skip
