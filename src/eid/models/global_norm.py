"""Whole-image statistics for group/instance norms during tiled inference.

``GroupNorm`` and ``InstanceNorm`` normalise with statistics of the image they see. Run tile by tile,
each tile is normalised with its own mean and variance, so the tiled output is not the whole-image
output: a dark tile is brightened, a hazy tile gets its contrast stretched. :class:`GlobalNormStatistics`
removes that difference at the cost of one extra forward:

1. *record*: run the network once on a reference image, the whole input (down-scaled when it is larger
   than the reference budget, :func:`reference_image`), and keep, for every norm layer and every call of
   it, the per-sample mean and variance :math:`\\mu_{g}, \\sigma^2_{g}` of its input over each group ``g``
   (instance norm: one channel per group);
2. *apply*: run the tiles; every norm layer normalises with the recorded statistics
   :math:`(x - \\mu_g)/\\sqrt{\\sigma^2_g + \\epsilon}` (then its affine weights), i.e. as if it saw the whole
   image.

With the reference at full resolution the tiled result equals the whole-image one up to the tile
borders (a trained CycleGAN ``G_BA``, 960x960 frames in 256-pixel tiles: 65 dB PSNR to the untiled output,
against 14 dB with per-tile statistics); down-scaling the reference 2x gives 31 dB, 3.75x 26 dB
(``docs/benchmarks/inference.md``). Calls are matched in order, so a network that calls a norm layer
several times per forward (test-time averaging over a group) gets the statistics of the same call of
the reference pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GlobalNormStatistics", "image_normalising_layers"]

_NORMS = (nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


def image_normalising_layers(modules: Sequence[nn.Module]) -> list[nn.Module]:
    """Layers of ``modules`` whose output depends on whole-input statistics at inference.

    Group norms, and instance norms without running statistics (``track_running_stats=False``, the
    default, or in training mode). Batch norms in eval mode are pointwise and are not listed.
    """
    found: list[nn.Module] = []
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, nn.GroupNorm):
                found.append(layer)
            elif isinstance(layer, _NORMS) and not (layer.track_running_stats and not layer.training):
                found.append(layer)
    return list(dict.fromkeys(found))


def _groups(layer: nn.Module, channels: int) -> int:
    return layer.num_groups if isinstance(layer, nn.GroupNorm) else channels


def _group_moments(x: Tensor, groups: int) -> tuple[Tensor, Tensor]:
    """Per-sample, per-group mean and biased variance of ``x`` ``(N, C, ...)``, shapes ``(N, groups)``."""
    flat = x.float().reshape(x.shape[0], groups, -1)
    var, mean = torch.var_mean(flat, dim=-1, unbiased=False)
    return mean, var


def _normalise(layer: nn.Module, x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """``layer``'s output for input ``x`` with the given per-group statistics (broadcast over samples)."""
    n, c = x.shape[:2]
    groups = _groups(layer, c)
    shape = (n, groups, -1)
    flat = x.float().reshape(shape)
    out = (flat - mean[..., None]) * torch.rsqrt(var[..., None] + layer.eps)
    out = out.reshape(x.shape)
    weight = getattr(layer, "weight", None)
    if weight is not None:
        view = (1, c) + (1,) * (x.ndim - 2)
        out = out * weight.reshape(view) + layer.bias.reshape(view)
    return out.to(x.dtype)


class GlobalNormStatistics:
    """Record norm statistics on a reference input, then normalise later inputs with them.

    :param modules: the networks of the method (their norm layers are found by
        :func:`image_normalising_layers`).

    >>> net = nn.Sequential(nn.Conv2d(1, 4, 1), nn.GroupNorm(2, 4))
    >>> stats = GlobalNormStatistics([net])
    >>> x = torch.rand(1, 1, 32, 32)
    >>> with stats.recording():
    ...     whole = net(x)
    >>> with stats.applying():
    ...     left = net(x[..., :16])
    >>> bool(torch.allclose(left, whole[..., :16], atol=1e-5))
    True
    """

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        self.layers = image_normalising_layers(modules)
        self._records: dict[nn.Module, list[tuple[Tensor, Tensor]]] = {}
        self._calls: dict[nn.Module, int] = {}

    def __bool__(self) -> bool:
        return bool(self.layers)

    @contextlib.contextmanager
    def _hooked(self, hook: Any, layers: Sequence[nn.Module]) -> Iterator[None]:
        handles = [layer.register_forward_hook(hook) for layer in layers]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def recording(self) -> contextlib.AbstractContextManager[None]:
        """Context in which forwards record (and replace any earlier) statistics; outputs are unchanged."""
        self._records = {layer: [] for layer in self.layers}

        def record(layer: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            x = inputs[0]
            if x.shape[0] != 1:
                raise ValueError("record norm statistics on one reference image at a time")
            self._records[layer].append(_group_moments(x, _groups(layer, x.shape[1])))

        return self._hooked(record, self.layers)

    def applying(self) -> contextlib.AbstractContextManager[None]:
        """Context in which every norm layer normalises with the recorded statistics.

        Each forward must call the layers as the reference forward did: the ``k``-th call of a layer
        uses the statistics of its ``(k mod calls per forward)``-th recorded call. Layers the reference
        forward did not call keep their own statistics.
        """
        recorded = [layer for layer in self.layers if self._records.get(layer)]
        self._calls = {layer: 0 for layer in recorded}

        def apply(layer: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor:
            records = self._records[layer]
            mean, var = records[self._calls[layer] % len(records)]
            self._calls[layer] += 1
            return _normalise(layer, inputs[0], mean, var)

        return self._hooked(apply, recorded)


def reference_image(x: Tensor, side: int, multiple: int) -> Tensor:
    """``x`` ``(1,C,H,W)`` itself if its longer side is at most ``side``, else down-scaled (antialiased)
    to fit, both sides rounded down to multiples of ``multiple`` (at least one), aspect ratio kept."""
    h, w = x.shape[-2:]
    if max(h, w) <= side:
        return x
    scale = side / max(h, w)
    size = [max(multiple, int(d * scale / multiple) * multiple) for d in (h, w)]
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
