"""Tiling that reproduces the untiled output of a network with group/instance norms and circular padding.

Two things make the tiles of such a network differ from one forward of the whole image:

* **Norm statistics.** Each norm layer normalises with the mean and variance of its whole input. They are
  measured here tile by tile, one norm call at a time, in forward order: pass ``k`` normalises calls
  ``0..k-1`` with the statistics already measured, and accumulates the input of call ``k`` weighted by the
  tiles' blending weights (:meth:`eid.models.global_norm.GlobalNormStatistics.measuring`). The weights sum
  to 1 at every pixel and are zero within ``margin >= R`` of an internal tile edge, where ``R`` is the
  network's receptive radius once its statistics are fixed; everywhere else a tile's features equal the
  whole image's. So each pass gives call ``k``'s whole-image statistics exactly, and stops right after
  that call. The passes cost about ``calls / 2`` forwards of the image (each runs to its call only), with
  memory bounded by the tile.
* **Circular padding.** Every convolution of the whole image wraps around its borders. The image is
  extended by its own periodic continuation, ``P >= R`` pixels on each side: the network on the extended
  image reproduces the circular one inside it, and the extension is cropped (and left out of the
  statistics).

The final tiled pass then normalises with the measured statistics: tiled and untiled outputs agree up to
float rounding (``tests/test_exact_tiling.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eid.inference.tiling import tile_grid, tiled_apply
from eid.models.global_norm import GlobalNormStatistics, StopForward

__all__ = ["exact_tiled_apply", "has_circular_padding"]


def has_circular_padding(modules: tuple[nn.Module, ...]) -> bool:
    """Whether any convolution of ``modules`` pads circularly."""
    return any(
        getattr(layer, "padding_mode", None) == "circular"
        for module in modules
        for layer in module.modules()
    )


def exact_tiled_apply(
    fn: Callable[[Tensor], Tensor],
    stats: GlobalNormStatistics,
    x: Tensor,
    tile: int,
    overlap: int,
    multiple: int,
    margin: int,
    *,
    batch_size: int = 1,
    wrap: bool = False,
) -> Tensor:
    """``fn(x)`` for one image ``(1,C,H,W)``, computed tile by tile with whole-image norm statistics.

    :param stats: the norm layers ``fn`` runs; their statistics are measured here (replacing any recorded).
    :param int margin: pixels discarded next to internal tile edges, at least the receptive radius ``R``
        of ``fn`` with its statistics fixed (``overlap >= 2 * margin``).
    :param bool wrap: ``fn`` pads circularly: extend ``x`` periodically by ``margin`` (rounded up to
        ``multiple``) first.
    """
    pad = -(-margin // multiple) * multiple if wrap else 0
    image = F.pad(x, (pad, pad, pad, pad), mode="circular") if pad else x
    h, w = image.shape[-2:]
    th, tw = min(tile, h), min(tile, w)
    grid = tile_grid(h, w, tile, overlap, multiple, margin)
    inside = torch.zeros(
        h, w, dtype=torch.float64
    )  # the extension is not part of the image's statistics
    inside[pad : h - pad, pad : w - pad] = 1.0
    batches = [grid[i : i + batch_size] for i in range(0, len(grid), batch_size)]
    calls = stats.count_calls(lambda: fn(image[..., :th, :tw]))
    stats.clear()
    for call in range(calls):
        with stats.applying(), stats.measuring(call) as moments:
            for chunk in batches:
                weight = [wt * inside[r0 : r0 + th, c0 : c0 + tw] for r0, c0, wt in chunk]
                moments.start(torch.stack(weight)[:, None])
                try:
                    fn(torch.cat([image[..., r0 : r0 + th, c0 : c0 + tw] for r0, c0, _ in chunk]))
                except StopForward:
                    pass
    with stats.applying():
        out = tiled_apply(fn, image, tile, overlap, multiple, batch_size, margin)
    return out[..., pad : h - pad, pad : w - pad]
