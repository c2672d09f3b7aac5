"""Tiling a network with group or instance norms: whole-image statistics measured exactly, recorded on a down-scaled
reference, or each tile's own.

Run tile by tile, such a network normalises each tile with its own statistics (``tile``). :func:`norm_tiled_apply`
gives the tiles whole-image statistics instead: ``exact`` measures them pass by pass
(:func:`eid.inference.exact_tiling.exact_tiled_apply`: the untiled output up to rounding, one pass per norm call);
``global`` records them in one forward of the image down-scaled to ``REFERENCE_TILES`` tiles a side
(:class:`eid.models.global_norm.GlobalNormStatistics`: close to the untiled output, not equal to it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from eid.inference.exact_tiling import exact_tiled_apply
from eid.inference.tiling import tiled_apply
from eid.models.global_norm import GlobalNormStatistics

__all__ = ["REFERENCE_TILES", "norm_tiled_apply", "reference_image"]

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


def norm_tiled_apply(
    fn: Callable[[Tensor], Tensor],
    stats: GlobalNormStatistics,
    x: Tensor,
    tile: int,
    overlap: int,
    multiple: int,
    margin: int | None,
    *,
    norm: str,
    batch_size: int = 1,
    wrap: bool = False,
) -> Tensor:
    """``fn(x)`` for one image ``(1,C,H,W)``, tile by tile (:func:`~eid.inference.tiling.tiled_apply`), the norm layers
    of ``stats`` normalising as ``norm`` says (``exact``, ``global`` or ``tile``; see the module docstring). ``wrap``
    (``exact`` only): ``fn`` pads circularly, so the image is extended periodically first."""
    if norm == "exact":
        return exact_tiled_apply(
            fn, stats, x, tile, overlap, multiple, margin or 0, batch_size=batch_size, wrap=wrap
        )
    if norm == "tile" or not stats:
        return tiled_apply(fn, x, tile, overlap, multiple, batch_size, margin)
    with stats.recording():
        fn(reference_image(x, REFERENCE_TILES * tile, multiple))
    with stats.applying():
        return tiled_apply(fn, x, tile, overlap, multiple, batch_size, margin)
