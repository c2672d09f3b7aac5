"""The dark channel prior's estimate of a large image, tile by tile, so that a ``dcp``-input dehazer can be tiled.

DCP has one whole-image estimate, the airlight ``A`` (the brightest of the haziest pixels). With ``A`` fixed, the rest
is local: the dark channel's ``patch x patch`` minimum and the guided filter's two ``(2r+1)^2`` box means put each
output pixel within ``R = patch // 2 + 2r`` of the inputs it depends on (127 px for the defaults,
:attr:`~eid.baselines.dcp.DarkChannelPrior.radius`). So :func:`tiled_dcp` estimates ``A`` on the whole image (one
channel and a top-k) and recovers the image in tiles that discard ``R`` pixels next to internal tile edges
(:func:`eid.inference.tiling.tiled_apply`); at the image's own borders a tile pads as the whole image does. The
result equals the whole-image estimate up to float rounding, with the working memory of one tile.

A ``dcp``-input dehazer ``f(y) = g(DCP(y))`` is then tiled in two steps: ``z = DCP(y)`` here, into one buffer the
size of the image, and the network ``g`` on ``z`` with the exact tiling of a hazy-input model (its circular padding
wraps around ``z``, as it does untiled): :attr:`eid.inference.methods.Method.prepare`.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor

from eid.baselines.dcp import DarkChannelPrior
from eid.inference.tiling import tiled_apply

__all__ = ["tiled_dcp"]


def tiled_dcp(
    dcp: DarkChannelPrior, y: Tensor, tile: int | None, norm: str = "exact", batch_size: int = 1
) -> Tensor:
    """``dcp(y)`` for a batch ``(B,C,H,W)``; an image with a side above ``tile`` is recovered in tiles of at least
    ``4R`` (so they advance by half their side or more) with its whole-image airlight. ``tile=None``: never tile.
    ``norm`` (the runner's tile norm) does not apply: DCP has no norm statistics, and its tiles are always exact.

    >>> dcp, y = DarkChannelPrior(gf_radius=8), torch.rand(1, 3, 150, 170)
    >>> bool((tiled_dcp(dcp, y, 64) - dcp(y)).abs().max() < 1e-5)
    True
    """
    radius = dcp.radius
    side = max(tile or 0, 4 * radius)
    images = []
    for image in y.split(1):
        if tile is None or max(image.shape[-2:]) <= side:
            images.append(dcp(image))
            continue
        airlight = dcp.airlight(image, dcp.dark_channel(image))
        recover = partial(_recover, dcp, airlight)
        images.append(tiled_apply(recover, image, side, 2 * radius, 1, batch_size, radius))
    return torch.cat(images)


def _recover(dcp: DarkChannelPrior, airlight: Tensor, tiles: Tensor) -> Tensor:
    """DCP's recovery of a batch of tiles of one image, with that image's airlight ``(1,C,1,1)``."""
    return dcp.recover(tiles, airlight.expand(len(tiles), -1, -1, -1))[0]
