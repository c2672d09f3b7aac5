"""Old home of haze synthesis, kept for the benchmarks until they import the new modules.

Synthesis now lives in :mod:`eid.synth` (one image, folders), its random parameters in
:mod:`eid.physics.generators` and depth files in :mod:`eid.data.depth`. A name imported from here is looked
up there when first used, so this module imports nothing above the data layer when loaded.
"""

from __future__ import annotations

import importlib

_MOVED = {
    "eid.data.depth": ("DEPTH_SUFFIXES", "MOTORCYCLE_CALIBRATION", "DisparityCalibration", "fill_invalid",
                       "motorcycle_depth", "read_depth"),
    "eid.physics.generators": ("HazeParamGenerator", "Range", "VeilParamGenerator", "apply_veil", "gaussian_blur",
                               "image_seed", "ramp_depth", "smooth_field"),
    "eid.synth": ("SynthConfig", "SynthReport", "synthesize", "synthesize_folder"),
}  # fmt: skip


def __getattr__(name: str) -> object:
    for module, names in _MOVED.items():
        if name in names:
            return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
