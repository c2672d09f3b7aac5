"""Rebuild the paper's datasets from their public sources: Cholec80-Haze, Cell97-Haze and RESIDE.

The cleaned sets used by the EID authors were never released; these functions build comparable
ones, deterministically (seeded) and resumably where the job is long. Output layouts match the
training datasets of :mod:`eid.data.datasets`: ``<out>/{train,test}/{clear,hazy}/`` plus a
``manifest.csv`` saying where every file came from. See ``docs/datasets.md`` for the commands.

One module per dataset (:mod:`~eid.prepare.cholec80`, :mod:`~eid.prepare.cell97`,
:mod:`~eid.prepare.reside` with :mod:`~eid.prepare.reside_names`), the shared manifest and resume state in
:mod:`~eid.prepare.common`. The builders use haze synthesis (:mod:`eid.synth`) and haze scores
(:mod:`eid.metrics.haze_score`), so they sit above both, next to :mod:`eid.report`.
"""

from eid.prepare.cell97 import find_cell97_images, prepare_cell97
from eid.prepare.cholec80 import (
    FieldOfView,
    cholec80_split,
    detect_fov,
    disc_mask,
    prepare_cholec80,
)
from eid.prepare.common import PrepareSummary
from eid.prepare.reside import prepare_reside
from eid.prepare.reside_names import (
    RESIDE_SUBSETS,
    RESIDEPairs,
    crop_to,
    parse_reside_name,
    scan_reside,
)

__all__ = [
    "RESIDE_SUBSETS",
    "FieldOfView",
    "PrepareSummary",
    "RESIDEPairs",
    "cholec80_split",
    "crop_to",
    "detect_fov",
    "disc_mask",
    "find_cell97_images",
    "parse_reside_name",
    "prepare_cell97",
    "prepare_cholec80",
    "prepare_reside",
    "scan_reside",
]
