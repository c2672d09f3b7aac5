r"""Nearest-neighbour 2x up-sampling followed by a 3x3 convolution, computed at the input's resolution.

Let :math:`u = \mathrm{up}_2(x)`, :math:`u_{2i+a,\,2j+b} = x_{ij}`, and :math:`y = g \star u` a 3x3
correlation with zero padding 1. Output row :math:`2i+a` reads rows :math:`2i+a-1, 2i+a, 2i+a+1` of
:math:`u`, which are rows :math:`i-1, i, i` of :math:`x` for :math:`a = 0` and :math:`i, i, i+1` for
:math:`a = 1` (columns alike). So each of the four output phases :math:`(a, b)` is a 2x2 correlation of
:math:`x` with the kernel whose rows are

.. math::

    R_0 = (g_0,\; g_1 + g_2), \qquad R_1 = (g_0 + g_1,\; g_2),

and whose columns combine the same way. The zero padding of :math:`u` is the zero padding of :math:`x`
(row :math:`-1` of :math:`u` is row :math:`-1` of :math:`x`), so this is exact, not an approximation.

Why: 4 multiplications per output and channel instead of 9 (2.25x fewer), and the 4x larger up-sampled
tensor is never built, nor kept for the backward pass. The ``paper`` generator's two up-sampling layers
are 17 % of its multiplications as written in the paper (resize + conv); ``bench_operator_step.py
--upsample-layers`` times both forms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NearestUpsampleConv2d", "phase_kernels", "upsample_conv3x3"]


def _merge_taps(g: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 2-tap kernels along ``dim`` (length 3): ``(g0, g1 + g2)`` for phase 0, ``(g0 + g1, g2)`` for 1."""
    g0, g1, g2 = g.unbind(dim)
    return torch.stack([g0, g1 + g2], dim), torch.stack([g0 + g1, g2], dim)


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """``(K, C, 3, 3) -> (4K, C, 2, 2)``: the 2x2 kernel of each output phase, phases ``(a, b)`` in row-major
    order ``00, 01, 10, 11`` as the outer index."""
    return torch.cat([col for row in _merge_taps(weight, 2) for col in _merge_taps(row, 3)])


def upsample_conv3x3(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), weight, bias, padding=1)`` by 2x2 phase
    kernels: ``(N, C, H, W) -> (N, K, 2H, 2W)``."""
    n, _, h, w = x.shape
    k = weight.shape[0]
    bias4 = None if bias is None else bias.repeat(4)
    # Output p of the 2x2 correlation of the padded input reads input rows p - 1 and p: phase 0 takes
    # p = i (rows i-1, i), phase 1 takes p = i + 1 (rows i, i+1); columns alike.
    y = F.conv2d(F.pad(x, (1, 1, 1, 1)), phase_kernels(weight), bias4).view(
        n, 2, 2, k, h + 1, w + 1
    )
    rows = [torch.stack([y[:, a, b, :, a : a + h, b : b + w] for b in (0, 1)], -1) for a in (0, 1)]
    return torch.stack(rows, 3).reshape(n, k, 2 * h, 2 * w)  # (N, K, H, 2, W, 2): (2i+a, 2j+b)


class NearestUpsampleConv2d(nn.Conv2d):
    """``nn.Upsample(scale_factor=2, mode="nearest")`` then ``nn.Conv2d(in_channels, out_channels, 3,
    padding=1)``, as one layer with that convolution's parameters and initialisation, run by
    :func:`upsample_conv3x3`."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 3, padding=1)

    def _conv_forward(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        return upsample_conv3x3(x, weight, bias)
