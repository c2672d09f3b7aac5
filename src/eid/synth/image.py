"""Haze one image: :class:`SynthConfig` and :func:`synthesize` (the models are described in :mod:`eid.synth`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from eid.errors import EIDError
from eid.physics.asm import ASMHaze
from eid.physics.generators import (
    HazeParamGenerator,
    Range,
    VeilParamGenerator,
    apply_veil,
)


@dataclass
class SynthConfig:
    """Settings of :func:`synthesize` / :func:`synthesize_folder` (defaults documented in docs/synthesis.md).

    ``depth`` is ``"ramp"``, ``"random"``, a depth/disparity file (used for every image) or a folder
    holding one per image with the image's stem. ``disparity`` = ``(baseline_mm, focal_px, doffs_px)``
    marks depth files as disparity maps. ``veil_sigma`` is the veil blur width as a fraction of
    ``min(H, W)``. ``white`` is the read scale: ``"auto"`` = ``"dtype"`` for asm, ``"max"`` for veil.
    """

    model: str = "asm"
    depth: str = "random"
    depth_range: tuple[float, float] = (0.3, 2.0)
    depth_scale: float = 1.0
    disparity: tuple[float, float, float] | None = None
    beta: Range = 1.0
    airlight: Range = 0.9
    per_channel_airlight: bool = False
    contrast: Range = (0.45, 0.65)
    veil: Range = (0.15, 0.3)
    background: Range = (0.02, 0.05)
    veil_sigma: float = 0.05
    white: str | float = "auto"
    seed: int = 0
    save_depth: bool = False

    def __post_init__(self) -> None:
        if self.model not in ("asm", "veil"):
            raise EIDError(f"unknown haze model {self.model!r}; use asm or veil")
        if (
            self.model == "asm"
            and self.depth not in ("ramp", "random")
            and not Path(self.depth).exists()
        ):
            raise EIDError(
                f"depth {self.depth!r} is neither ramp, random nor an existing file or folder; check --depth"
            )
        for name, value, low, high in (
            ("beta", self.beta, 0.0, math.inf), ("airlight", self.airlight, 0.0, 1.0),
            ("depth-range", self.depth_range, 0.0, math.inf), ("contrast-range", self.contrast, 0.0, 1.0),
            ("veil-range", self.veil, 0.0, 1.0), ("background-range", self.background, 0.0, 1.0),
        ):  # fmt: skip
            _check_within(name, value, low, high)
        if not 0 < self.veil_sigma < math.inf:
            raise EIDError(
                f"--veil-sigma {self.veil_sigma}: the veil blur width must be a positive fraction of min(H, W), e.g. 0.05"
            )

    @property
    def read_white(self) -> str | float:
        if self.white != "auto":
            return self.white
        return "dtype" if self.model == "asm" else "max"


def _check_within(name: str, value: Range, low: float, high: float) -> None:
    """Refuse a parameter ``value`` (a number or a ``(lo, hi)`` range) outside ``[low, high]`` or inverted."""
    single = isinstance(value, (int, float))
    lo, hi = (value, value) if single else value
    option, shown = (
        (name, f"{lo:g}")
        if single
        else (name if name.endswith("-range") else f"{name}-range", f"{lo:g},{hi:g}")
    )
    if not low <= lo <= hi <= high:
        within = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        order = "" if lo <= hi else "; write the range as LOW,HIGH with LOW <= HIGH"
        raise EIDError(f"--{option} {shown}: values must be finite and {within}{order}")


def _number(value: Tensor) -> float | list[float]:
    flat = [round(float(v), 6) for v in value.flatten()]
    return flat[0] if len(flat) == 1 else flat


def synthesize(
    x: Tensor, config: SynthConfig, seed: int, depth: Tensor | None = None
) -> tuple[Tensor, dict[str, Any], Tensor | None]:
    """Haze one image ``x`` ``(C,H,W)`` in ``[0,1]``.

    Returns ``(hazy (C,H,W), params, depth (1,H,W) or None)``; ``params`` is the JSON-ready record
    (model, seed, drawn parameters). ``depth`` ``(1,H,W)`` overrides ``config.depth`` for the ASM and
    is required when ``config.depth`` names a file or folder.
    """
    c, h, w = x.shape
    if config.model == "veil":
        gen = VeilParamGenerator(config.contrast, config.veil, config.background, img_size=(h, w))
        p = gen.step(seed=seed)
        sigma = config.veil_sigma * min(h, w)
        hazy = apply_veil(x[None], p["contrast"], p["veil"], p["background"], p["field"], sigma)[0]
        record = {"model": "veil", "seed": seed, "sigma_px": round(sigma, 3)}
        record.update({k: _number(p[k]) for k in ("contrast", "veil", "background")})
        return hazy, record, None
    synthetic = config.depth in ("ramp", "random")
    if depth is None and not synthetic:
        raise EIDError(
            f"depth {config.depth!r} is a file or folder: pass its map (eid.data.depth.read_depth) to synthesize()"
        )
    gen = HazeParamGenerator(
        config.beta, config.airlight, config.per_channel_airlight, c, config.depth if synthetic else "random",
        (h, w), config.depth_range,
    )  # fmt: skip
    p = gen.step(seed=seed, depth=None if depth is None else depth[None])
    hazy = ASMHaze(p["transmission"], p["airlight"]).A(x[None])[0]
    t = p["transmission"]
    record = {
        "model": "asm", "seed": seed, "beta": _number(p["beta"]), "A": _number(p["airlight"]),
        "depth_min": round(float(p["depth"].min()), 6), "depth_max": round(float(p["depth"].max()), 6),
        "t_min": round(float(t.min()), 6), "t_max": round(float(t.max()), 6),
    }  # fmt: skip
    return hazy, record, p["depth"][0]
