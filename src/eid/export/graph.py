"""The dehazer as one exportable module: ``y -> f(y)`` with its input preparation inside ``forward``.

:class:`ExportedDehazer` wraps a loaded stage-2 dehazer and its operator so that one call maps a hazy
batch ``(N,C,H,W)`` in ``[0,1]`` to the dehazed batch, whatever the dehazer's ``input`` mode:

* ``hazy``: ``f(y) = g(y)``;
* ``dcp``: ``f(y) = g(DCP(y))``, with :class:`TraceableDarkChannelPrior`, the same estimate written so that a
  tracer records the airlight's top-``k`` count as a function of the image size rather than as a constant;
* ``pinv``: ``f(y) = g(H^\\dagger(y))`` with the run's frozen operator.

The graph needs ``H`` and ``W`` in multiples of :attr:`ExportedDehazer.multiple` (deepinv's UNet pads other
sizes by a branch on the size, which a trace fixes); ``eid dehaze`` pads to it, as for torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eid.baselines.dcp import DarkChannelPrior
from eid.models.dehazer import DehazerNet
from eid.models.dehazer_files import load_dehazer
from eid.models.scattering import VEIL_FACTOR
from eid.physics import ScatteringHaze

__all__ = ["ExportedDehazer", "TraceableDarkChannelPrior", "load_exportable", "smooth_image"]

#: the CycleGAN ResNet generator and the scattering operator's UNet need sides in multiples of 4
_OPERATOR_MULTIPLE = 4


class TraceableDarkChannelPrior(DarkChannelPrior):
    """:class:`DarkChannelPrior` whose airlight count ``k = max(1, round(top * H * W))`` is a tensor op.

    The parent computes ``k`` with Python's ``round`` on ``numel()``, which a trace turns into a constant of the
    example's size. Here ``H * W`` is a float64 sum of ones (exact to 2^53 pixels) and ``torch.round`` rounds
    half to even like Python, so ``k`` and hence the estimate are the parent's at every size.

    >>> y = smooth_image(2, 3, 40, 52)
    >>> torch.equal(TraceableDarkChannelPrior()(y), DarkChannelPrior()(y))
    True
    """

    def brightest_haze(self, y: Tensor, dark: Tensor) -> Tensor:
        b, c = y.shape[:2]
        pixels_in_image = torch.ones_like(dark[0, 0], dtype=torch.float64).sum()
        k = torch.round(pixels_in_image * self.top).clamp(min=1).long()
        candidates = dark.flatten(1).topk(k, dim=1).indices  # (B,k)
        pixels = y.flatten(2)
        intensity = pixels.mean(1).gather(1, candidates)
        best = candidates.gather(1, intensity.argmax(1, keepdim=True))
        return pixels.gather(2, best[:, None, :].expand(b, c, 1)).view(b, c, 1, 1)

    @classmethod
    def like(cls, dcp: DarkChannelPrior) -> TraceableDarkChannelPrior:
        """A copy of ``dcp``'s parameters (patch, omega, top, guided filter, t0, grey airlight, the set's airlight)."""
        copy = cls(dcp.patch, dcp.omega, dcp.top, dcp.gf_radius, dcp.gf_eps, dcp.t0, dcp.grey_airlight,
                   dcp.set_weight)  # fmt: skip
        if dcp.set_weight:
            copy.set_airlight, copy.set_fitted = dcp.set_airlight.clone(), dcp.set_fitted
        return copy


class ExportedDehazer(nn.Module):
    """``f(y)`` of a stage-2 dehazer with its operator, as one module of one tensor input (see the module doc).

    :param DehazerNet net: the dehazer in eval mode (not modified: a DCP input gets a traceable copy).
    :param physics: the operator for ``input: pinv`` (``None`` otherwise).
    """

    def __init__(self, net: DehazerNet, physics: Any = None) -> None:
        super().__init__()
        self.net, self.physics = net, physics
        self.dcp = TraceableDarkChannelPrior.like(net.dcp) if net.config.input == "dcp" else None

    @property
    def input_mode(self) -> str:
        """The dehazer's ``input`` (``hazy``, ``dcp`` or ``pinv``)."""
        return self.net.config.input

    @property
    def channels(self) -> int:
        return self.net.config.channels

    @property
    def multiple(self) -> int:
        """Side multiple the graph needs: the UNet's, and the operator's where ``H^dagger`` runs. The scattering
        operator averages over a grid ``VEIL_FACTOR`` times coarser, whose bins the exporter fixes to whole cells,
        so its graph is exact for sides in multiples of ``VEIL_FACTOR`` (torch needs only 4)."""
        if self.physics is None:
            return self.net.multiple
        grid = VEIL_FACTOR if isinstance(self.physics, ScatteringHaze) else 1
        return math.lcm(self.net.multiple, _OPERATOR_MULTIPLE, grid)

    def forward(self, y: Tensor) -> Tensor:
        z = self.dcp(y) if self.dcp is not None else self.net.network_input(y, self.physics)
        return self.net.from_network_input(z)


def smooth_image(batch: int, channels: int, height: int, width: int, seed: int = 0) -> Tensor:
    """A seeded smooth random batch in ``[0,1]`` (9x9 means of uniform noise, stretched), for export checks.

    Smooth, because on pixel noise the dark channel has plateaus of equal values across DCP's top-``k`` cut, and
    torch and ONNX Runtime may then pick different (equally valid) airlight pixels (``docs/export.md``).
    """
    g = torch.Generator().manual_seed(seed)
    x = F.avg_pool2d(torch.rand(batch, channels, height + 8, width + 8, generator=g), 9, stride=1)
    low, high = x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)
    return (x - low) / (high - low)


def load_exportable(run: str | Path) -> tuple[ExportedDehazer, dict[str, Any]]:
    """The exportable dehazer of ``run`` (a run folder or a shipped model's name) on the CPU, and its config."""
    from eid.errors import EIDError
    from eid.zoo import resolve_model

    folder = resolve_model(run)
    net, physics, config = load_dehazer(folder, "cpu")
    if net.needs_physics and physics is None:
        raise EIDError(
            f"{folder}: input: pinv needs the run's operator.safetensors, which is missing; copy the run again"
        )
    return ExportedDehazer(net, physics).eval(), config
