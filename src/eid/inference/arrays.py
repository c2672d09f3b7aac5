"""Float batches from the runner's front end and back: layouts, integer scales, non-finite samples."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from eid.errors import EIDError

__all__ = ["INTEGER_DTYPES", "from_bchw", "replace_non_finite", "to_bchw"]

INTEGER_DTYPES = {torch.uint8: "uint8", torch.uint16: "uint16"}


def replace_non_finite(y: Tensor) -> Tensor:
    """``y`` with NaN/Inf samples replaced by 0 (with a warning): one such pixel would otherwise spread through
    every convolution and norm and make the whole output NaN."""
    bad = ~torch.isfinite(y)
    if not bad.any():
        return y
    warnings.warn(f"{int(bad.sum())} NaN or infinite input values replaced by 0", stacklevel=4)
    return y.masked_fill(bad, 0.0)


def to_bchw(t: Tensor, channels_last: bool) -> Tensor:
    """``HW``/``HWC``/``BHWC`` (channels last) or ``HW``/``CHW``/``BCHW`` to ``BCHW``."""
    shape = tuple(t.shape)
    if t.ndim == 2:
        return t[None, None]
    if t.ndim not in (3, 4):
        raise EIDError(f"expected an image of 2, 3 or 4 dimensions, got shape {shape}")
    t = t[None] if t.ndim == 3 else t
    if channels_last:
        t = t.permute(0, 3, 1, 2)
    if t.shape[1] not in (1, 2, 3, 4):
        layout, stack = ("HWC/BHWC", "array[..., None]") if channels_last else ("CHW/BCHW", "tensor[:, None]")
        raise EIDError(
            f"image of shape {shape} read as {layout} has {t.shape[1]} channels, not 1-4; for a stack of grey "
            f"planes pass {stack}"
        )
    return t


def from_bchw(t: Tensor, shape: tuple[int, ...], channels_last: bool) -> Tensor:
    """Inverse of :func:`to_bchw` for the original ``shape``."""
    if len(shape) == 2:
        return t[0, 0]
    if channels_last:
        t = t.permute(0, 2, 3, 1)
    return t[0] if len(shape) == 3 else t
