"""Value ranges of the training configs, checked before a run allocates anything or creates its folder.

A config field out of range (``width: 100000`` would ask for hundreds of gigabytes, ``lr: .nan`` gives NaN at
the first step, ``crop: 100000`` up-samples every image to 100000 px) is one line naming the field, its value and
the range, instead of a traceback or an exhausted machine minutes later. The CLI options check the same ranges.
"""

from __future__ import annotations

import math
from typing import Any

from eid.config import config_to_dict
from eid.errors import EIDError

MAX_SIDE = 8192
"""Largest crop or resize side in pixels (a 8192^2 RGB crop is 800 MB per image in float32)."""

MAX_WIDTH = 256
"""Widest base channel count of a network (the paper's largest is 64; UNets double it at every scale)."""

MAX_BATCH = 4096
MAX_SEED = 2**32 - 1  # NumPy's seeds are 32-bit

# field (dotted path) -> (low, high, low excluded); None = unbounded
_COMMON: dict[str, tuple[float | None, float | None, bool]] = {
    "epochs": (1, None, False),
    "max_steps": (1, None, False),
    "seed": (0, MAX_SEED, False),
    "model.width": (1, MAX_WIDTH, False),
    "model.scales": (1, 6, False),
}
OPERATOR_LIMITS = {
    **_COMMON,
    "data.crop": (1, MAX_SIDE, False),
    "data.load_size": (1, MAX_SIDE, False),
    "data.batch_size": (1, MAX_BATCH, False),
    "model.blocks": (0, 64, False),
    "model.disc_width": (1, MAX_WIDTH, False),
    "optim.lr": (0, 1, True),
}
DEHAZER_LIMITS = {
    **_COMMON,
    "crop": (0, MAX_SIDE, False),  # 0 = whole images
    "batch_size": (1, MAX_BATCH, False),
    "lr": (0, 1, True),
    "disc_lr": (0, 1, True),
    "alpha": (0, None, False),
    "n_trans": (1, 64, False),
}


def describe_range(low: float | None, high: float | None, open_low: bool = False) -> str:
    """``1..8192``, ``> 0``, ``>= 1``: how a range reads in a message."""
    if high is None:
        return f"{'>' if open_low else '>='} {low:g}"
    if open_low:
        return f"> {low:g} and <= {high:g}"
    return f"{low:g}..{high:g}"


def out_of_range(
    value: float, low: float | None, high: float | None, open_low: bool = False
) -> bool:
    """Whether ``value`` is NaN, infinite or outside the range."""
    if not math.isfinite(value):
        return True
    if low is not None and (value <= low if open_low else value < low):
        return True
    return high is not None and value > high


def check_limits(
    cfg: Any, limits: dict[str, tuple[float | None, float | None, bool]], where: str
) -> None:
    """Raise :class:`EIDError` naming the first field of ``cfg`` outside its range in ``limits``."""
    data = config_to_dict(cfg)
    for path, (low, high, open_low) in limits.items():
        value: Any = data
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and out_of_range(value, low, high, open_low)
        ):
            raise EIDError(
                f"{where}: {path} {value} is out of range; use {describe_range(low, high, open_low)}"
            )
