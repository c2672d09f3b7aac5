"""Padding to a size multiple, and tiling with overlap blending, so memory is bounded by the tile size.

Exactness: a network whose output pixel depends only on inputs within a radius ``R`` of it (its
receptive field; no per-image statistics such as group or instance norm) gives, inside a tile, the
untiled output at every pixel at least ``R`` from an *internal* tile edge (image borders are padded
the same way tiled or not). The blending weights below are zero within ``margin`` of internal edges,
so with ``margin >= R`` (``overlap >= 2R``) the tiled output equals the untiled one up to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["crop_to", "pad_to_multiple", "pad_to_shape", "tile_grid", "tile_windows", "tiled_apply"]


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Pad ``x`` ``(B,C,H,W)`` at the bottom and right so that H and W are multiples of ``multiple``.

    Reflect padding (no artificial edge); when the pad is not smaller than the image side, which
    reflect cannot do, the edge is replicated instead. Returns the padded tensor and the original
    ``(H, W)`` for :func:`crop_to`.

    >>> y, size = pad_to_multiple(torch.rand(1, 3, 37, 50), 16)
    >>> tuple(y.shape), size
    ((1, 3, 48, 64), (37, 50))
    >>> tuple(pad_to_multiple(torch.rand(1, 1, 3, 5), 16)[0].shape)  # replicate fallback
    (1, 1, 16, 16)
    """
    h, w = x.shape[-2:]
    return pad_to_shape(
        x, math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple
    ), (h, w)


def pad_to_shape(x: Tensor, height: int, width: int) -> Tensor:
    """Pad ``x`` at the bottom/right to ``(height, width)``: reflect, or replicate if reflect cannot."""
    h, w = x.shape[-2:]
    pad_h, pad_w = height - h, width - w
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def crop_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Undo :func:`pad_to_multiple`: keep the top-left ``size = (H, W)``."""
    return x[..., : size[0], : size[1]]


def _starts(length: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """Tile origins along one axis: stride = ``tile - overlap`` rounded down to ``multiple``; last flush."""
    if length <= tile:
        return [0]
    stride = (tile - overlap) // multiple * multiple
    count = math.ceil((length - tile) / stride) + 1
    return [min(i * stride, length - tile) for i in range(count)]


def _ramp(length: int, overlap: int, rising: bool, margin: int | None = None) -> Tensor:
    """Cross-fade over an overlap: ``margin`` zeros, a raised cosine over the middle, then ones.

    The outer ``margin`` (by default a quarter of the overlap) is discarded because a network's
    output is least reliable next to a tile edge (padding instead of real context); the complementary
    ramp of the neighbouring tile sums with this one to exactly 1 pixel by pixel when the two overlap
    by exactly ``overlap``. ``margin = overlap // 2`` leaves no cosine: a hard cut in the middle.
    """
    margin = overlap // 4 if margin is None else min(margin, overlap // 2)
    width = overlap - 2 * margin
    ramp = torch.ones(length, dtype=torch.float64)
    ramp[:margin] = 0.0
    k = torch.arange(width, dtype=torch.float64)
    ramp[margin : margin + width] = 0.5 * (1 - torch.cos(math.pi * (k + 0.5) / max(width, 1)))
    return ramp if rising else ramp.flip(0)


def tile_windows(
    length: int, tile: int, overlap: int, multiple: int = 1, margin: int | None = None
) -> list[tuple[int, Tensor]]:
    """Origins and normalised 1-D blending weights of the tiles covering ``[0, length)``.

    Each tile's weight ramps up on sides shared with a neighbour (see :func:`_ramp`) and is 1 on the
    image border; the weights are divided by their sum over tiles, so they form a partition of unity
    :math:`\\sum_i w_i(p) = 1` for every pixel ``p``. A 2-D tile uses the outer product of its row
    and column weights, which is again a partition of unity; hence a pointwise map is reproduced
    exactly (up to float rounding) and no weight buffer is needed. ``margin`` is the width discarded
    next to internal edges (see :func:`_ramp`; at most ``overlap // 2``).

    >>> windows = tile_windows(100, 48, 16, multiple=4)
    >>> [start for start, _ in windows]
    [0, 32, 52]
    >>> total = torch.zeros(100, dtype=torch.float64)
    >>> for start, w in windows:
    ...     total[start : start + 48] += w
    >>> bool(torch.allclose(total, torch.ones(100, dtype=torch.float64)))
    True
    """
    size = min(tile, length)
    starts = _starts(length, tile, overlap, multiple)
    weights = []
    for i, start in enumerate(starts):
        w = torch.ones(size, dtype=torch.float64)
        if i > 0:
            w *= _ramp(size, overlap, rising=True, margin=margin)
        if i < len(starts) - 1:
            w *= _ramp(size, overlap, rising=False, margin=margin)
        weights.append(w)
    total = torch.zeros(length, dtype=torch.float64)
    for start, w in zip(starts, weights):
        total[start : start + size] += w
    return [(start, w / total[start : start + size]) for start, w in zip(starts, weights)]


def tile_grid(
    h: int, w: int, tile: int, overlap: int, multiple: int = 1, margin: int | None = None
) -> list[tuple[int, int, Tensor]]:
    """Tiles of an ``h x w`` image: ``(row, column, weight)`` with the 2-D partition-of-unity weight
    ``w_i^{row} \\otimes w_i^{col}`` (float64, ``min(tile, h) x min(tile, w)``) of :func:`tile_windows`."""
    rows = tile_windows(h, tile, overlap, multiple, margin)
    cols = tile_windows(w, tile, overlap, multiple, margin)
    return [(r0, c0, wr[:, None] * wc[None, :]) for r0, wr in rows for c0, wc in cols]


def tiled_apply(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    tile: int,
    overlap: int,
    multiple: int = 1,
    batch_size: int = 1,
    margin: int | None = None,
) -> Tensor:
    """Apply ``fn`` to ``x`` ``(1,C,H,W)`` tile by tile and blend the tiles into one output.

    .. math:: \\hat x = \\sum_i (w_i^{row} \\otimes w_i^{col}) \\cdot f(\\text{tile}_i(x))

    with the partition-of-unity windows of :func:`tile_windows`. At most ``batch_size`` tiles exist
    at a time (memory is bounded by the tile size, whatever the image size); the output buffer
    lives on ``x``'s device (``fn`` may compute elsewhere). ``H`` and
    ``W`` must be multiples of ``multiple``; tile origins are multiples of it too (pooling grids of
    the network stay aligned with the untiled run).

    :param fn: function on ``(N,C,h,w)`` tiles returning the same shape with ``C_out`` channels.
    :param int tile: tile side (a multiple of ``multiple``).
    :param int overlap: overlap between neighbouring tiles, ``0 <= overlap <= tile - multiple``.
    :param margin: pixels discarded next to internal tile edges (see the module docstring: exact for
        a network of receptive radius ``R <= margin <= overlap // 2``); ``None``: ``overlap // 4``.
    """
    if x.shape[0] != 1:
        raise ValueError("tiled_apply processes one image at a time")
    _, _, h, w = x.shape
    th, tw = min(tile, h), min(tile, w)
    grid = tile_grid(h, w, tile, overlap, multiple, margin)
    out: Tensor | None = None
    for first in range(0, len(grid), batch_size):
        chunk = grid[first : first + batch_size]
        tiles = torch.cat([x[..., r0 : r0 + th, c0 : c0 + tw] for r0, c0, _ in chunk])
        result = fn(tiles).to(device=x.device, dtype=torch.float32)
        if out is None:
            out = torch.zeros(1, result.shape[1], h, w, device=x.device)
        for k, (r0, c0, weight) in enumerate(chunk):
            out[0, :, r0 : r0 + th, c0 : c0 + tw] += result[k] * weight.to(x.device, torch.float32)
    assert out is not None
    return out
