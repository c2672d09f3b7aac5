"""Tiling with norm statistics recorded on a down-scaled reference: one cheap forward, close to the untiled output.

A network with group or instance norms, run tile by tile, normalises each tile with its own statistics. Recording the
statistics in one forward of the whole image, down-scaled to ``REFERENCE_TILES`` tiles a side, and normalising every
tile with them (:class:`eid.models.global_norm.GlobalNormStatistics`) brings the tiles close to the untiled output, not
equal to it (``--tile-norm global``); :mod:`eid.inference.exact_tiling` measures the exact statistics instead, at the
cost of one pass per norm call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from eid.inference.tiling import tiled_apply
from eid.models.global_norm import GlobalNormStatistics

__all__ = ["REFERENCE_TILES", "reference_image", "reference_tiled_apply"]

REFERENCE_TILES = 2
"""Side of the reference image for whole-image norm statistics, in tiles (its forward costs ~4 tiles)."""


def reference_image(x: Tensor, side: int, multiple: int) -> Tensor:
    """``x`` ``(1,C,H,W)`` itself if its longer side is at most ``side``, else down-scaled (antialiased)
    to fit, both sides rounded down to multiples of ``multiple`` (at least one), aspect ratio kept."""
    h, w = x.shape[-2:]
    if max(h, w) <= side:
        return x
    scale = side / max(h, w)
    size = [max(multiple, int(d * scale / multiple) * multiple) for d in (h, w)]
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


def reference_tiled_apply(
    fn: Callable[[Tensor], Tensor],
    stats: GlobalNormStatistics,
    x: Tensor,
    tile: int,
    overlap: int,
    multiple: int,
    batch_size: int = 1,
    margin: int | None = None,
) -> Tensor:
    """``fn(x)`` for one image ``(1,C,H,W)``, tile by tile (:func:`~eid.inference.tiling.tiled_apply`), every norm
    layer of ``stats`` normalising with the statistics of ``fn`` on ``x`` down-scaled to ``REFERENCE_TILES`` tiles."""
    with stats.recording():
        fn(reference_image(x, REFERENCE_TILES * tile, multiple))
    with stats.applying():
        return tiled_apply(fn, x, tile, overlap, multiple, batch_size, margin)
