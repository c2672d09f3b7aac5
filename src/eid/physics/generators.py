r"""Random haze parameters as deepinv :class:`~deepinv.physics.generator.PhysicsGenerator` s, and the
fields they are built from.

* :class:`HazeParamGenerator`: ``beta``, airlight and depth for :class:`eid.physics.ASMHaze`,
  :math:`t = \exp(-\beta\, d)`.
* :class:`VeilParamGenerator` and :func:`apply_veil`: the microscopy veil
  :math:`y = \mathrm{clip}_{[0,1]}(c\,x + v\,G_\sigma * x / \max(G_\sigma * x) + b\,F)`.
* :func:`image_seed`: a per-image seed from the global seed and the image's name.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from deepinv.physics.generator import PhysicsGenerator
from torch import Tensor

from eid.errors import EIDError
from eid.physics.asm import transmission_from_depth

Range = float | tuple[float, float]


def ramp_depth(height: int, width: int, near: float, far: float) -> Tensor:
    """Vertical ramp ``(1,H,W)``: ``far`` at the top row to ``near`` at the bottom (ground recedes upwards)."""
    column = torch.linspace(far, near, height)
    return column.view(1, height, 1).expand(1, height, width).clone()


def smooth_field(height: int, width: int, generator: torch.Generator, cells: int = 4) -> Tensor:
    """Low-frequency random field ``(1,H,W)`` in ``[0,1]``: uniform noise on a coarse grid, bicubic upsampled.

    The grid has ``cells + 1`` nodes along the shorter side (and proportionally more along the
    longer one), so the field varies on a scale of about ``min(H, W) / cells``.
    """
    short = min(height, width)
    grid = (cells * height // short + 1, cells * width // short + 1)
    coarse = torch.rand((1, 1, *grid), generator=generator, device=generator.device)
    fine = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0]
    return (fine - fine.min()) / (fine.max() - fine.min()).clamp_min(1e-6)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of ``x`` ``(B,C,H,W)`` with edge replication.

    Wide blurs (``sigma > 8`` px) run on an area-downsampled copy and are upsampled bilinearly, so
    the cost stays bounded on large images; for the smooth veils this is used for, the difference
    from an exact Gaussian is negligible.
    """
    h, w = x.shape[-2:]
    factor = max(1, min(int(sigma // 8), h // 4, w // 4))
    small = F.avg_pool2d(x, factor, ceil_mode=True) if factor > 1 else x
    s = sigma / factor
    radius = max(1, math.ceil(3 * s))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (taps / s) ** 2)
    kernel = kernel / kernel.sum()
    c = small.shape[1]
    y = F.pad(small, (0, 0, radius, radius), mode="replicate")
    y = F.conv2d(y, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    y = F.pad(y, (radius, radius, 0, 0), mode="replicate")
    y = F.conv2d(y, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False) if factor > 1 else y


def _bounds(value: Range) -> tuple[float, float]:
    lo, hi = (
        (value, value) if isinstance(value, (int, float)) else (float(value[0]), float(value[1]))
    )
    if lo > hi:
        raise EIDError(f"invalid range {lo},{hi}: the lower bound must not exceed the upper one")
    return float(lo), float(hi)


def _uniform(value: Range, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    lo, hi = _bounds(value)
    return lo + (hi - lo) * torch.rand(shape, generator=generator, device=generator.device)


class HazeParamGenerator(PhysicsGenerator):
    r"""Random ASM parameters for :class:`eid.physics.ASMHaze`: ``beta``, airlight and depth.

    ``step`` returns ``{"transmission": (B,1,H,W), "airlight": (B,C|1,1,1), "beta": (B,), "depth": (B,1,H,W)}``
    with :math:`\beta \sim U[\beta_{lo}, \beta_{hi}]`, :math:`A \sim U[A_{lo}, A_{hi}]` (one value, or
    one per channel) and :math:`t = e^{-\beta d}`. The depth is the ``depth`` given to ``step``
    (e.g. from a file) or, when absent, a ``"ramp"`` or ``"random"`` field spanning ``depth_range``
    at ``img_size``. A float instead of a range fixes the parameter.

    :param beta: scattering coefficient per unit depth, fixed or ``(lo, hi)``.
    :param airlight: airlight in ``[0,1]``, fixed or ``(lo, hi)``.
    :param bool per_channel: draw one airlight per colour channel.
    :param int channels: number of colour channels (for per-channel airlight).
    :param str depth: synthetic depth when none is given: ``"ramp"`` or ``"random"``.
    :param tuple img_size: ``(H, W)`` of synthetic depth maps.
    :param tuple depth_range: ``(near, far)`` of synthetic depth, in the unit ``beta`` is per.

    >>> gen = HazeParamGenerator(beta=(0.6, 1.8), img_size=(8, 8))
    >>> params = gen.step(batch_size=2, seed=0)
    >>> sorted(params), tuple(params["transmission"].shape)
    (['airlight', 'beta', 'depth', 'transmission'], (2, 1, 8, 8))
    """

    def __init__(
        self,
        beta: Range = 1.0,
        airlight: Range = 0.9,
        per_channel: bool = False,
        channels: int = 3,
        depth: str = "random",
        img_size: tuple[int, int] | None = None,
        depth_range: tuple[float, float] = (0.3, 2.0),
        rng: torch.Generator | None = None,
        device: str | torch.device = "cpu",
        **kwargs: Any,
    ) -> None:
        super().__init__(rng=rng, device=device, **kwargs)
        if depth not in ("ramp", "random"):
            raise EIDError(
                f"unknown synthetic depth {depth!r}; use ramp or random (or give a depth map)"
            )
        for value in (beta, airlight, depth_range):
            _bounds(value)
        self.beta, self.airlight, self.per_channel, self.channels = (
            beta,
            airlight,
            per_channel,
            channels,
        )
        self.depth, self.img_size, self.depth_range = depth, img_size, depth_range

    def step(
        self,
        batch_size: int = 1,
        seed: int | None = None,
        depth: Tensor | None = None,
        **kwargs: Any,
    ) -> dict[str, Tensor]:
        """Draw ``batch_size`` parameter sets; ``depth`` ``(B|1,1,H,W)`` overrides the synthetic depth."""
        self.rng_manual_seed(seed)
        beta = _uniform(self.beta, (batch_size,), self.rng)
        airlight = _uniform(
            self.airlight, (batch_size, self.channels if self.per_channel else 1, 1, 1), self.rng
        )
        if depth is None:
            depth = torch.stack([self._synthetic_depth() for _ in range(batch_size)])
        depth = depth.to(self.rng.device).expand(batch_size, -1, -1, -1)
        return {
            "transmission": transmission_from_depth(depth, beta),
            "airlight": airlight,
            "beta": beta,
            "depth": depth,
        }

    def _synthetic_depth(self) -> Tensor:
        if self.img_size is None:
            raise EIDError(
                "HazeParamGenerator needs img_size=(H, W) for synthetic depth, or a depth map in step()"
            )
        near, far = _bounds(self.depth_range)
        if self.depth == "ramp":
            return ramp_depth(*self.img_size, near, far).to(self.rng.device)
        return near + (far - near) * smooth_field(*self.img_size, self.rng)


class VeilParamGenerator(PhysicsGenerator):
    r"""Random parameters of the microscopy veil model (see :func:`apply_veil`).

    ``step`` returns ``{"contrast": (B,), "veil": (B,), "background": (B,), "field": (B,1,H,W)}``,
    each scalar uniform in its range and ``field`` a :func:`smooth_field` at ``img_size``.
    Defaults keep :math:`c + v + b \le 1`, so the output never clips.

    >>> params = VeilParamGenerator(img_size=(8, 8)).step(seed=0)
    >>> tuple(params["field"].shape)
    (1, 1, 8, 8)
    """

    def __init__(
        self,
        contrast: Range = (0.45, 0.65),
        veil: Range = (0.15, 0.3),
        background: Range = (0.02, 0.05),
        img_size: tuple[int, int] | None = None,
        field_cells: int = 3,
        rng: torch.Generator | None = None,
        device: str | torch.device = "cpu",
        **kwargs: Any,
    ) -> None:
        super().__init__(rng=rng, device=device, **kwargs)
        for value in (contrast, veil, background):
            _bounds(value)
        self.contrast, self.veil, self.background = contrast, veil, background
        self.img_size, self.field_cells = img_size, field_cells

    def step(
        self, batch_size: int = 1, seed: int | None = None, **kwargs: Any
    ) -> dict[str, Tensor]:
        """Draw ``batch_size`` parameter sets."""
        self.rng_manual_seed(seed)
        if self.img_size is None:
            raise EIDError("VeilParamGenerator needs img_size=(H, W)")
        params = {
            name: _uniform(getattr(self, name), (batch_size,), self.rng)
            for name in ("contrast", "veil", "background")
        }
        params["field"] = torch.stack(
            [smooth_field(*self.img_size, self.rng, self.field_cells) for _ in range(batch_size)]
        )
        return params


def apply_veil(
    x: Tensor, contrast: Tensor, veil: Tensor, background: Tensor, field: Tensor, sigma: float
) -> Tensor:
    r"""Out-of-focus veil :math:`y = \mathrm{clip}(c\,x + v\,G_\sigma x / \max G_\sigma x + b\,F)`.

    ``x`` ``(B,C,H,W)`` in ``[0,1]``; ``contrast``, ``veil``, ``background`` ``(B,)``; ``field`` ``(B,1,H,W)``;
    ``sigma`` in pixels. The blurred copy is normalised by its per-image maximum, so ``v`` is the
    veil's peak height whatever the image's brightness.
    """
    b = x.shape[0]
    blurred = gaussian_blur(x, sigma)
    blurred = blurred / blurred.flatten(1).amax(1).clamp_min(1e-12).view(b, 1, 1, 1)
    c, v, bg = (p.view(b, 1, 1, 1) for p in (contrast, veil, background))
    return (c * x + v * blurred + bg * field).clamp(0, 1)


def image_seed(seed: int, key: int | str) -> int:
    """A per-image seed from the global ``seed`` and the image's index or name (stable, order-independent).

    A name that is not valid UTF-8 (a file name in another encoding) is hashed as its raw bytes.

    >>> image_seed(0, "a.png") == image_seed(0, "a.png") != image_seed(1, "a.png")
    True
    """
    digest = int.from_bytes(
        hashlib.blake2b(str(key).encode("utf-8", "surrogateescape"), digest_size=8).digest(),
        "little",
    )
    return int(np.random.SeedSequence([seed, digest]).generate_state(1, np.uint32)[0])
