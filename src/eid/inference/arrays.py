"""Float batches from the runner's front end and back: layouts, integer scales, non-finite samples."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from eid.errors import EIDError

__all__ = ["INTEGER_DTYPES", "adapt_channels", "from_bchw", "replace_non_finite", "to_bchw"]

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
        layout, stack = (
            ("HWC/BHWC", "array[..., None]") if channels_last else ("CHW/BCHW", "tensor[:, None]")
        )
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


def adapt_channels(
    y: Tensor, want: int | None, name: str
) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """``y`` with the ``want`` channels of method ``name``, and the map that restores the output's channels.

    Grey into an RGB model: replicated, the output averaged back to grey. Colour into a grey model: each
    channel an image of its own (the batch grows by the channel count).
    """
    have = y.shape[1]
    if want is None or want == have:
        return y, lambda out: out
    if want == 3 and have == 1:
        return y.expand(-1, 3, -1, -1), lambda out: out.mean(1, keepdim=True)
    if want == 1:
        b = y.shape[0]
        return y.reshape(b * have, 1, *y.shape[2:]), lambda out: out.reshape(
            b, have, *out.shape[2:]
        )
    raise EIDError(f"{name} expects {want}-channel images, got {have}; convert the images first")
