"""The CycleGAN pseudo-inverse ``G_BA(y)`` of a large image, tile by tile, so that a ``pinv``-input dehazer can be tiled.

The ``paper`` preset's dehazer is ``f(y) = g(G_BA(y))``: the authors' UNet on the stage-1 generator's estimate. Both
networks normalise with whole-image statistics (instance norms). ``G_BA`` pads by reflection and with zeros, which act
at the image's own borders only, so once its statistics are fixed each output pixel depends on inputs within its
:attr:`~eid.models.generators.ResnetGenerator.local_radius` ``R`` (93 px at the paper's size). :func:`tiled_pinv`
measures the statistics tile by tile, one pass per norm call, and then runs the tiles
(:func:`eid.inference.norm_tiling.norm_tiled_apply`): the result equals ``G_BA`` on the whole image up to float
rounding, with the working memory of one tile.

The dehazer is then tiled as a ``dcp``-input one is (:attr:`eid.inference.methods.Method.prepare`): ``z = G_BA(y)``
here, into one buffer the size of the image, then the UNet exactly on ``z``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from eid.inference.norm_tiling import norm_tiled_apply
from eid.inference.tiling import crop_to, pad_to_multiple
from eid.models.global_norm import GlobalNormStatistics

__all__ = ["pinv_radius", "tiled_pinv"]


def pinv_radius(physics: Any) -> int | None:
    """``R`` of ``physics.A_dagger`` with its norm statistics fixed, for a CycleGAN operator (``G_BA`` declares its
    :attr:`local_radius`); ``None`` for any other (a scattering operator's estimator pools over the image)."""
    radius = getattr(getattr(physics, "g_ba", None), "local_radius", None)
    return radius if isinstance(radius, int) else None


def tiled_pinv(
    physics: Any, y: Tensor, tile: int | None, norm: str = "exact", batch_size: int = 1
) -> Tensor:
    """``physics.A_dagger(y)`` for a batch ``(B,C,H,W)``; an image with a side above ``tile`` is computed in tiles of at
    least ``4R`` (so they advance by half their side or more). ``tile=None``: never tile.

    :param str norm: the norm statistics of the tiles, as the runner's ``tile_norm``
        (:mod:`eid.inference.tile_plan`): ``exact`` (whole-image, measured pass by pass), ``global`` (recorded on the
        image down-scaled to two tiles: one cheap forward, close but not equal) or ``tile`` (each tile's own).

    >>> from eid.models import ResnetGenerator
    >>> from eid.physics import LearnedHaze
    >>> torch.manual_seed(0) and None
    >>> physics = LearnedHaze(ResnetGenerator(width=4, blocks=1), ResnetGenerator(width=4, blocks=1))
    >>> y = torch.rand(1, 3, 150, 170)
    >>> bool((tiled_pinv(physics, y, 64) - physics.A_dagger(y)).abs().max() < 1e-5)
    True
    """
    generator, radius = physics.g_ba, pinv_radius(physics)
    if radius is None:
        raise ValueError(
            f"{type(physics).__name__} has no CycleGAN G_BA with a local radius to tile"
        )
    multiple = generator.multiple
    side = -(-max(tile or 0, 4 * radius) // multiple) * multiple
    stats = GlobalNormStatistics([generator])
    images = []
    for image in y.split(1):
        if tile is None or max(image.shape[-2:]) <= side:
            images.append(physics.A_dagger(image))
            continue
        padded, size = pad_to_multiple(image, multiple)  # as A_dagger pads the whole image
        estimate = norm_tiled_apply(
            physics.A_dagger, stats, padded, side, 2 * radius, multiple, radius,
            norm=norm, batch_size=batch_size,
        )  # fmt: skip
        images.append(crop_to(estimate, size))
    return torch.cat(images)
