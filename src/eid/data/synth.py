r"""Haze synthesis: clear images -> paired hazy images with known parameters.

Two models:

- **ASM** (natural scenes), the atmospheric scattering model applied by :class:`eid.physics.ASMHaze`:

  .. math:: I = J\,t + A\,(1 - t), \qquad t = \exp(-\beta\, d)

  with depth ``d`` from a depth or disparity file, a vertical ramp or a smooth random field, and
  ``beta``/``A`` fixed or drawn uniformly from ranges (``A`` grey or per channel).

- **Veil** (fluorescence microscopy): out-of-focus light adds a smooth background and costs contrast,

  .. math:: y = \mathrm{clip}_{[0,1]}\big(c\,x + v\,\frac{G_\sigma * x}{\max(G_\sigma * x)} + b\,F\big)

  with contrast ``c``, veil strength ``v``, background ``b``, a Gaussian blur of width
  ``sigma = veil_sigma * min(H, W)`` and a smooth random field ``F`` in ``[0,1]``. The image is read on
  its own intensity scale (``white="max"``: its maximum maps to 1), so 16-bit data stored in a small
  part of the range (e.g. 0..235) is hazed in proportion and written back on the same scale.

Randomness is seeded per image from the global seed and the image's name (:func:`image_seed`), so
results do not depend on processing order or on which other files are present.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch
import torch.nn.functional as F
from deepinv.physics.generator import PhysicsGenerator
from scipy import ndimage
from torch import Tensor

from eid.config import config_to_dict
from eid.data.io import (
    check_output_dir,
    iter_inputs,
    no_images_error,
    open_pillow,
    read_image,
    write_image,
)
from eid.data.naming import plan_outputs
from eid.data.stacks import Stack
from eid.errors import EIDError, TiffStackError
from eid.physics.asm import ASMHaze, transmission_from_depth
from eid.utils import atomic_write, remove_stale_temps

Range = float | tuple[float, float]
DEPTH_SUFFIXES = (".npy", ".npz", ".tif", ".tiff", ".png")


# --------------------------------------------------------------------------------------------- depth


@dataclass(frozen=True)
class DisparityCalibration:
    r"""Stereo calibration turning disparity (px) into depth (m), Middlebury 2014 convention.

    .. math:: Z\,[\mathrm{m}] = \frac{B\,[\mathrm{mm}]\; f\,[\mathrm{px}]}{(\mathrm{disp} + \mathrm{doffs})\,1000}

    ``doffs`` is the x-difference of the two principal points (``cx1 - cx0``).

    >>> round(float(MOTORCYCLE_CALIBRATION.depth(np.array([59.91]))[0]), 2)
    2.11
    """

    baseline_mm: float
    focal_px: float
    doffs_px: float

    def depth(self, disparity: np.ndarray) -> np.ndarray:
        """Depth in metres; non-finite disparity (no stereo match) gives NaN."""
        disparity = np.asarray(disparity, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = self.baseline_mm * self.focal_px / (disparity + self.doffs_px) / 1000.0
        return np.where(np.isfinite(disparity) & (disparity + self.doffs_px > 0), z, np.nan)


#: Calibration of scikit-image's 4x-downsampled Middlebury ``stereo_motorcycle`` (from its docstring).
MOTORCYCLE_CALIBRATION = DisparityCalibration(baseline_mm=193.001, focal_px=994.978, doffs_px=31.086)


def fill_invalid(depth: np.ndarray, name: str = "depth map") -> np.ndarray:
    """Replace non-finite or non-positive depths by the depth of the nearest valid pixel (Euclidean).

    Stereo holes (occlusions, no match) are small and next to valid surfaces, so copying the nearest
    valid value keeps the map piecewise smooth without inventing new depths.
    """
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise EIDError(f"{name} has no valid (finite, positive) depth; check the file or its --depth-scale/--disparity")
    if valid.all():
        return depth
    _, (rows, cols) = ndimage.distance_transform_edt(~valid, return_indices=True)
    return depth[rows, cols]


def read_depth(path: str | Path, calibration: DisparityCalibration | None = None, scale: float = 1.0) -> Tensor:
    """Read a depth (or, with ``calibration``, disparity) map as a ``(1,H,W)`` float32 tensor in metres.

    Files: ``.npy``; ``.npz`` (key ``depth``, ``disp``, ``arr_0`` or its only array); TIFF (float or
    integer); PNG (raw integer values, e.g. millimetres with ``scale=0.001``). Depth values are
    multiplied by ``scale``. Invalid pixels (NaN, inf, <= 0) are filled by :func:`fill_invalid`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                keys = [k for k in ("depth", "disp", "arr_0") if k in archive] or list(archive.keys())
                if len(keys) != 1 and keys[0] not in ("depth", "disp", "arr_0"):
                    raise EIDError(f"{path}: several arrays ({', '.join(keys)}); store the depth under key 'depth'")
                array = archive[keys[0]]
        elif suffix in (".tif", ".tiff"):
            array = tifffile.imread(path)
        elif suffix == ".png":
            with open_pillow(path) as image:  # large maps: --max-pixels governs, not Pillow's bomb limit
                array = np.asarray(image)
        else:
            raise EIDError(f"{path}: unsupported depth file; use one of {', '.join(DEPTH_SUFFIXES)}")
    except (OSError, ValueError) as exc:
        raise EIDError(f"{path}: cannot read depth map ({exc}); check the file") from exc
    array = np.squeeze(np.asarray(array, dtype=np.float64))
    if array.ndim != 2:
        raise EIDError(f"{path}: depth map must be 2-D, got shape {array.shape}; save a single-channel map")
    depth = calibration.depth(array) if calibration else array * scale
    return torch.from_numpy(fill_invalid(depth, str(path)).astype(np.float32)).unsqueeze(0)


def motorcycle_depth() -> tuple[Tensor, Tensor]:
    """scikit-image's Middlebury ``stereo_motorcycle`` left view and its metric depth.

    Returns ``(image (3,500,741) in [0,1], depth (1,500,741) in metres)``. The disparity's 7.35 % of
    ``+inf`` pixels (no ground truth) are filled with the nearest valid depth; depths span about 2.1-5.0 m.
    """
    from skimage.data import stereo_motorcycle  # bundled with scikit-image (no download)

    left, _, disparity = stereo_motorcycle()
    image = torch.from_numpy(left).permute(2, 0, 1).float() / 255.0
    depth = MOTORCYCLE_CALIBRATION.depth(disparity.astype(np.float64))
    return image, torch.from_numpy(fill_invalid(depth, "motorcycle_disp").astype(np.float32)).unsqueeze(0)


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


# ------------------------------------------------------------------------------------ param samplers


def _bounds(value: Range) -> tuple[float, float]:
    lo, hi = (value, value) if isinstance(value, (int, float)) else (float(value[0]), float(value[1]))
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
            raise EIDError(f"unknown synthetic depth {depth!r}; use ramp or random (or give a depth map)")
        for value in (beta, airlight, depth_range):
            _bounds(value)
        self.beta, self.airlight, self.per_channel, self.channels = beta, airlight, per_channel, channels
        self.depth, self.img_size, self.depth_range = depth, img_size, depth_range

    def step(self, batch_size: int = 1, seed: int | None = None, depth: Tensor | None = None, **kwargs: Any) -> dict[str, Tensor]:
        """Draw ``batch_size`` parameter sets; ``depth`` ``(B|1,1,H,W)`` overrides the synthetic depth."""
        self.rng_manual_seed(seed)
        beta = _uniform(self.beta, (batch_size,), self.rng)
        airlight = _uniform(self.airlight, (batch_size, self.channels if self.per_channel else 1, 1, 1), self.rng)
        if depth is None:
            depth = torch.stack([self._synthetic_depth() for _ in range(batch_size)])
        depth = depth.to(self.rng.device).expand(batch_size, -1, -1, -1)
        return {"transmission": transmission_from_depth(depth, beta), "airlight": airlight, "beta": beta, "depth": depth}

    def _synthetic_depth(self) -> Tensor:
        if self.img_size is None:
            raise EIDError("HazeParamGenerator needs img_size=(H, W) for synthetic depth, or a depth map in step()")
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

    def step(self, batch_size: int = 1, seed: int | None = None, **kwargs: Any) -> dict[str, Tensor]:
        """Draw ``batch_size`` parameter sets."""
        self.rng_manual_seed(seed)
        if self.img_size is None:
            raise EIDError("VeilParamGenerator needs img_size=(H, W)")
        params = {name: _uniform(getattr(self, name), (batch_size,), self.rng) for name in ("contrast", "veil", "background")}
        params["field"] = torch.stack([smooth_field(*self.img_size, self.rng, self.field_cells) for _ in range(batch_size)])
        return params


def apply_veil(x: Tensor, contrast: Tensor, veil: Tensor, background: Tensor, field: Tensor, sigma: float) -> Tensor:
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
    digest = int.from_bytes(hashlib.blake2b(str(key).encode("utf-8", "surrogateescape"), digest_size=8).digest(), "little")
    return int(np.random.SeedSequence([seed, digest]).generate_state(1, np.uint32)[0])


# ------------------------------------------------------------------------------------------ per image


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
        if self.model == "asm" and self.depth not in ("ramp", "random") and not Path(self.depth).exists():
            raise EIDError(f"depth {self.depth!r} is neither ramp, random nor an existing file or folder; check --depth")
        for name, value, low, high in (
            ("beta", self.beta, 0.0, math.inf), ("airlight", self.airlight, 0.0, 1.0),
            ("depth-range", self.depth_range, 0.0, math.inf), ("contrast-range", self.contrast, 0.0, 1.0),
            ("veil-range", self.veil, 0.0, 1.0), ("background-range", self.background, 0.0, 1.0),
        ):  # fmt: skip
            _check_within(name, value, low, high)
        if not 0 < self.veil_sigma < math.inf:
            raise EIDError(f"--veil-sigma {self.veil_sigma}: the veil blur width must be a positive fraction of min(H, W), e.g. 0.05")

    @property
    def read_white(self) -> str | float:
        if self.white != "auto":
            return self.white
        return "dtype" if self.model == "asm" else "max"


def _check_within(name: str, value: Range, low: float, high: float) -> None:
    """Refuse a parameter ``value`` (a number or a ``(lo, hi)`` range) outside ``[low, high]`` or inverted."""
    single = isinstance(value, (int, float))
    lo, hi = (value, value) if single else value
    option, shown = (name, f"{lo:g}") if single else (name if name.endswith("-range") else f"{name}-range", f"{lo:g},{hi:g}")
    if not low <= lo <= hi <= high:
        within = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        order = "" if lo <= hi else "; write the range as LOW,HIGH with LOW <= HIGH"
        raise EIDError(f"--{option} {shown}: values must be finite and {within}{order}")


def _number(value: Tensor) -> float | list[float]:
    flat = [round(float(v), 6) for v in value.flatten()]
    return flat[0] if len(flat) == 1 else flat


def synthesize(x: Tensor, config: SynthConfig, seed: int, depth: Tensor | None = None) -> tuple[Tensor, dict[str, Any], Tensor | None]:
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
        raise EIDError(f"depth {config.depth!r} is a file or folder: pass its map (eid.data.synth.read_depth) to synthesize()")
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


# -------------------------------------------------------------------------------------------- folders


@dataclass
class SynthReport:
    """What :func:`synthesize_folder` did: records written and files skipped with the reason."""

    out_dir: Path
    images: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _depth_for(config: SynthConfig, source: Path, relative: Path) -> tuple[Tensor | None, str]:
    """Depth tensor (or None for synthetic) and its description for params.json."""
    if config.model != "asm" or config.depth in ("ramp", "random"):
        return None, config.depth if config.model == "asm" else "none"
    calibration = DisparityCalibration(*config.disparity) if config.disparity else None
    if source.is_file():
        return read_depth(source, calibration, config.depth_scale), str(source)
    stem = source / relative.with_suffix("")
    named = [source / f"{relative.as_posix()}{s}" for s in DEPTH_SUFFIXES]  # x.jpg.tiff: written for a shared stem
    matches = [p for p in (*named, *(stem.with_suffix(s) for s in DEPTH_SUFFIXES)) if p.is_file()]
    if not matches:
        raise EIDError(f"no depth map {stem}.* ({'/'.join(DEPTH_SUFFIXES)}) for this image; add one or use --depth random")
    return read_depth(matches[0], calibration, config.depth_scale), str(matches[0])


def _write_depth(path: Path, depth: Tensor) -> None:
    """Depth ``(1,H,W)`` as a float32 TIFF (metres or the synthetic unit), written atomically."""
    with atomic_write(path) as tmp:
        tifffile.imwrite(tmp, depth[0].cpu().numpy().astype(np.float32), compression="zlib")


def _synthesize_stack(path: Path, relative: Path, out: Path, config: SynthConfig) -> list[dict[str, Any]]:
    """Haze every plane of the TIFF stack ``path`` (its own seed each); write the hazy and clear stacks.

    Planes are read on one scale for the whole stack. Depth maps are per 2-D image, so a stack takes the ASM
    only with a generated depth (``ramp`` or ``random``) and without ``save_depth``. Returns the planes'
    records, named ``relative[plane]``.
    """
    if config.model == "asm" and (config.depth not in ("ramp", "random") or config.save_depth):
        raise EIDError("a TIFF stack takes the ASM only with --depth ramp or random and without --save-depth")
    clear = Stack.read(path, white=config.read_white)
    hazy = Stack(clear.samples.copy(), clear.meta)
    records = []
    for plane in range(len(clear)):
        name = f"{relative.as_posix()}[{plane}]"
        image, record, _ = synthesize(clear.plane(plane), config, image_seed(config.seed, name), None)
        hazy.set_plane(plane, image)
        depth_note = {"depth_source": config.depth} if config.model == "asm" else {}
        records.append({"name": name, **record, **depth_note})
    hazy.write(out / "hazy" / relative)
    clear.write(out / "clear" / relative)
    return records


def synthesize_folder(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    config: SynthConfig | None = None,
    *,
    max_pixels: int | None = None,
    progress: Callable[[Path], None] | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    **overrides: Any,
) -> SynthReport:
    """Haze every image of ``inputs`` into ``out_dir/hazy``, copy it to ``out_dir/clear``, write ``params.json``.

    ``config`` fields can also be given as keyword ``overrides`` (``model="veil"``, ``seed=3``...).
    With ``save_depth`` (ASM only) the depth used goes to ``out_dir/depth/<stem>.tiff`` (float32; recorded as
    ``depth_file``). Output names mirror the inputs' names (and sub-folders); inputs that would share an output
    name (the same name in two input folders, or one stem for the depth maps of ``x.png`` and ``x.jpg``) get
    distinct names from :func:`eid.data.naming.plan_outputs`, and ``on_notice(line)`` says so (default: a
    warning). Images keep their format, bit depth, channels and alpha; a TIFF stack is hazed plane by plane,
    each plane with its own seed (records ``name[plane]``). Unreadable images or missing/mismatched depth maps
    are skipped: ``on_skip(path, message)`` is called (default: a warning; the message names the file) and the
    file is listed in the report and in ``params.json``.
    ``params.json`` = ``{"config": {...}, "images": [{"name", "model", "seed", "depth_source", ...}],
    "skipped": [{"name", "reason"}]}``; a re-run into the same folder keeps the records of the images it did
    not redo, and one that hazed nothing leaves ``params.json`` as it was. An output folder that is an input
    folder is refused; temporary files left there by a killed run are removed first.
    """
    config = dataclasses.replace(config or SynthConfig(), **overrides)
    out = Path(out_dir)
    items = iter_inputs(inputs)
    if not items:
        raise no_images_error(inputs)
    for folder in (out, out / "hazy", out / "clear", out / "depth"):
        check_output_dir(folder, inputs)
    remove_stale_temps(out)
    sources = [p for p, _ in items]
    names = plan_outputs(sources, [r for _, r in items])
    depth_names = plan_outputs(sources, names.names, suffix=".tiff")
    notice = on_notice or (lambda line: warnings.warn(line, stacklevel=3))
    for line in names.notices():
        notice(line)
    depth_source = Path(config.depth) if config.depth not in ("ramp", "random") else None
    report = SynthReport(out)
    input_files = set(sources)

    def skip(path: Path, reason: str) -> None:
        message = reason if str(path) in reason else f"{path}: {reason}"
        report.skipped.append((path, message))
        (on_skip or (lambda p, m: warnings.warn(f"skipped {m}", stacklevel=3)))(path, message)

    for path, relative, name, depth_name in zip(sources, [r for _, r in items], names.names, depth_names.names):
        try:
            if any((out / sub / name).resolve() in input_files for sub in ("hazy", "clear")):
                raise EIDError("its output would overwrite an input file; choose a different --out")
            try:
                x, meta = read_image(path, max_pixels=max_pixels, white=config.read_white)
            except TiffStackError:
                report.images += _synthesize_stack(path, name, out, config)
                if progress:
                    progress(path)
                continue
            depth, described = _depth_for(config, depth_source, relative) if depth_source else (None, config.depth)
            if depth is not None and depth.shape[-2:] != x.shape[-2:]:
                raise EIDError(f"depth map is {depth.shape[-1]}x{depth.shape[-2]} but the image is {x.shape[-1]}x{x.shape[-2]}")
            seed = image_seed(config.seed, name.as_posix())
            hazy, record, used_depth = synthesize(x, config, seed, depth)
        except EIDError as exc:
            skip(path, str(exc))
        else:
            write_image(out / "hazy" / name, hazy, meta)
            write_image(out / "clear" / name, x, meta)
            notes: dict[str, Any] = {"depth_source": described} if config.model == "asm" else {}
            if config.save_depth and used_depth is not None:
                _write_depth(out / "depth" / depth_name, used_depth)
                notes["depth_file"] = f"depth/{depth_name.as_posix()}"
            if name != relative:
                notes["source"] = str(path)
            report.images.append({"name": name.as_posix(), **record, **notes})
        if progress:
            progress(path)
    _write_params(out, config, report)
    return report


def _write_params(out: Path, config: SynthConfig, report: SynthReport) -> None:
    """Write ``params.json``, keeping the records of images a previous run with the same config wrote and this
    one did not redo; a run that hazed nothing leaves an existing file untouched (its images are still there)."""
    path = out / "params.json"
    previous: dict[str, Any] = {}
    if path.is_file():
        if not report.images:
            return
        with contextlib.suppress(OSError, ValueError):
            previous = json.loads(path.read_text())
    settings = json.loads(json.dumps(config_to_dict(config)))  # tuples as JSON lists, to compare with the file
    done = {record["name"] for record in report.images}
    kept = [r for r in previous.get("images", []) if r.get("name") not in done] if previous.get("config") == settings else []
    document = {
        "config": settings,
        "images": sorted(kept + report.images, key=lambda r: r["name"]),
        "skipped": [{"name": str(p), "reason": r} for p, r in report.skipped],
    }
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")
