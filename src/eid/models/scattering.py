"""Networks of the physically structured haze operator (:class:`eid.physics.ScatteringHaze`).

:class:`ScatteringNet` estimates the two maps of the scattering model from one image:

- a **transmission** ``t`` in ``[t_min, 1]``, per pixel, one map shared by the channels (atmospheric
  haze: the depth is the same for every colour) or one per channel (coloured smoke). It is
  ``t_min + (1 - t_min) sigmoid(u(x) + b0)`` with ``u`` a small deepinv ``UNet`` (no normalisation, so
  tiles and frames are treated alike) and ``b0`` a fixed offset that starts ``t`` near ``t_init``:
  training starts from a hazy operator, not from the identity, which is where an adversarially trained
  operator otherwise stays (``docs/benchmarks/demo.md``);
- an **airlight** ``a`` in ``[0, 1]``: one colour per image (``airlight: global``; coloured smoke in
  endoscopy), one grey level per image (``grey``; the daylight scattered by haze is nearly achromatic,
  and a colour left free drifts towards the clear set's dominant hue) or a smooth field (``airlight: veil``; microscopy's out-of-focus light), computed at 1/8 of
  the resolution and up-sampled bilinearly, so it cannot carry detail.

:class:`BoundedResidual` is the optional correction ``r(x) = bound * tanh(g(x))`` for what scattering
misses (smoke colour, blur).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from deepinv.models import UNet
from torch import nn

from eid.errors import EIDError

TRANSMISSIONS = ("shared", "per_channel")
AIRLIGHTS = ("global", "grey", "veil")
VEIL_FACTOR = 8
"""The veil field is computed on a grid this many times coarser than the image."""


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


class ScatteringNet(nn.Module):
    r"""``(t, a) = net(x)``: transmission and airlight of the scattering model, estimated from ``x``.

    :param int channels: image channels (1 or 3).
    :param int width: channels of the first UNet scale (doubled per scale) and of the airlight head.
    :param int scales: UNet scales (its receptive field grows with them).
    :param str transmission: ``shared`` (one map) or ``per_channel``.
    :param str airlight: ``global`` (one value per channel and image), ``grey`` (one value per image)
        or ``veil`` (smooth field).
    :param float t_min: lower bound of ``t``.
    :param float t_init: ``t`` at initialisation (about; the UNet's initial output is small).
    :param float a_init: ``a`` at initialisation (about).

    >>> net = ScatteringNet(3, width=4, scales=2)
    >>> t, a = net(torch.rand(2, 3, 10, 12))
    >>> tuple(t.shape), tuple(a.shape)
    ((2, 1, 10, 12), (2, 3, 1, 1))
    """

    def __init__(
        self, channels: int = 3, width: int = 16, scales: int = 3, transmission: str = "shared",
        airlight: str = "global", t_min: float = 0.05, t_init: float = 0.7, a_init: float = 0.6,
    ) -> None:  # fmt: skip
        super().__init__()
        if transmission not in TRANSMISSIONS or airlight not in AIRLIGHTS:
            raise EIDError(
                f"scattering operator: transmission {transmission!r} / airlight {airlight!r} not valid; use "
                f"{' or '.join(TRANSMISSIONS)} / {' or '.join(AIRLIGHTS)}"
            )
        if not 0 < t_min < t_init < 1:
            raise EIDError(
                f"scattering operator needs 0 < t_min < t_init < 1, got {t_min}, {t_init}; fix the config"
            )
        self.t_min, self.airlight_kind = t_min, airlight
        self.t_offset = _logit((t_init - t_min) / (1 - t_min))
        self.a_offset = _logit(a_init)
        t_channels = 1 if transmission == "shared" else channels
        self.depth = UNet(
            in_channels=channels, out_channels=t_channels, residual=False, batch_norm=False, scales=scales,
            channels_per_scale=[width * 2**k for k in range(scales)],
        )  # fmt: skip
        self.airlight_head = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1, padding_mode="replicate"), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, padding_mode="replicate"), nn.ReLU(inplace=True),
            nn.Conv2d(width, channels, 1),
        )  # fmt: skip
        nn.init.zeros_(self.airlight_head[-1].weight)
        nn.init.zeros_(self.airlight_head[-1].bias)

    def transmission(self, x: torch.Tensor) -> torch.Tensor:
        """``t(x)`` in ``[t_min, 1]``, ``(B, 1|C, H, W)``."""
        u = self.depth(x)  # deepinv's UNet pads any size to its multiple and crops back
        return self.t_min + (1 - self.t_min) * torch.sigmoid(u + self.t_offset)

    def airlight(self, x: torch.Tensor) -> torch.Tensor:
        """``a(x)`` in ``[0, 1]``: ``(B, C, 1, 1)`` (global) or ``(B, C, H, W)`` (smooth veil field)."""
        h, w = x.shape[-2:]
        coarse = F.adaptive_avg_pool2d(
            x, (max(1, math.ceil(h / VEIL_FACTOR)), max(1, math.ceil(w / VEIL_FACTOR)))
        )
        logits = self.airlight_head(coarse) + self.a_offset
        if self.airlight_kind == "global":
            return torch.sigmoid(logits.mean(dim=(-2, -1), keepdim=True))
        if self.airlight_kind == "grey":
            return torch.sigmoid(logits.mean(dim=(-3, -2, -1), keepdim=True)).expand(
                -1, x.shape[1], -1, -1
            )
        return torch.sigmoid(
            F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transmission(x), self.airlight(x)


class BoundedResidual(nn.Module):
    r"""``r(x) = bound * tanh(g(x))``, a small full-resolution CNN ``g`` whose output starts at 0.

    >>> r = BoundedResidual(3, width=4, bound=0.1)
    >>> float(r(torch.rand(1, 3, 8, 8)).abs().max())
    0.0
    """

    def __init__(self, channels: int = 3, width: int = 16, bound: float = 0.1) -> None:
        super().__init__()
        self.bound = bound
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1, padding_mode="replicate"), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, padding_mode="replicate"), nn.ReLU(inplace=True),
            nn.Conv2d(width, channels, 3, padding=1, padding_mode="replicate"),
        )  # fmt: skip
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bound * torch.tanh(self.body(x))
