"""Apply an image-to-image function to images of any size, kind and number: the ``eid dehaze`` engine.

The layers, from the inside out:

* a **method** (:class:`Method`, built by :func:`build_method`): a function on ``(B,C,H,W)`` tensors
  in ``[0,1]`` (the EID dehazer, the CycleGAN pseudo-inverse ``G_BA`` or the dark channel prior),
  plus what the runner must know about it (the size multiple it needs, its channel count, whether
  it may be tiled, the group it was trained with);
* optional **test-time group averaging** (:class:`GroupAverage`):
  :math:`\\bar f(y) = |G|^{-1}\\sum_g T_g^{-1} f(T_g y)` over a finite group;
* **padding** (:func:`pad_to_multiple`) and, for large images, **tiling** with overlap blending
  (:func:`tiled_apply`), so that memory is bounded by the tile size, not the image size;
* the **runner** :class:`Dehazer` (``eid.Dehazer``): device, precision, batching, channel
  adaptation, and numpy/tensor input of any common shape and dtype;
* the **drivers** :func:`dehaze_paths` (files, folders, globs; keeps format and bit depth; skips bad
  files) and :func:`dehaze_video_file`.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from torch import Tensor

from eid.data.io import DTYPE_WHITE, White, parse_white, white_scale
from eid.data.stacks import Stack
from eid.data.video import VIDEO_SUFFIXES, VideoReport
from eid.errors import EIDError, ImageReadError, TiffStackError, describe_os_error
from eid.models.global_norm import GlobalNormStatistics, reference_image
from eid.progress import LoggedProgress, stderr_console
from eid.utils import remove_stale_temps, resolve_device

__all__ = [
    "METHODS",
    "VIDEO_SUFFIXES",
    "DehazeSummary",
    "Dehazer",
    "GroupAverage",
    "Method",
    "build_method",
    "crop_to",
    "dehaze_paths",
    "dehaze_video_file",
    "exact_tta_group",
    "is_video",
    "pad_to_multiple",
    "pad_to_shape",
    "tile_windows",
    "tiled_apply",
]

METHODS = ("eid", "cyclegan", "dcp")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
TILE_NORMS = ("global", "tile")
REFERENCE_TILES = 2
"""Side of the reference image for whole-image norm statistics, in tiles (its forward costs ~4 tiles)."""
#: groups whose elements are exact pixel permutations, usable for test-time averaging
_EXACT_FACTORS = ("rot90", "hflip", "flip")
_DEFAULT_TTA_GROUP = "rot90*flip"
#: the CycleGAN ResNet generator down-samples twice by 2
_GENERATOR_MULTIPLE = 4


# ----------------------------------------------------------------------------------------------
# padding and tiling


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
    return pad_to_shape(x, math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple), (h, w)


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


def _ramp(length: int, overlap: int, rising: bool) -> Tensor:
    """Cross-fade over an overlap: ``overlap//4`` zeros, a raised cosine over the middle, then ones.

    The outer quarter is discarded because a network's output is least reliable next to a tile edge
    (padding instead of real context); the complementary ramp of the neighbouring tile sums with
    this one to exactly 1 pixel by pixel when the two overlap by exactly ``overlap``.
    """
    margin = overlap // 4
    width = overlap - 2 * margin
    ramp = torch.ones(length, dtype=torch.float64)
    ramp[:margin] = 0.0
    k = torch.arange(width, dtype=torch.float64)
    ramp[margin : margin + width] = 0.5 * (1 - torch.cos(math.pi * (k + 0.5) / width))
    return ramp if rising else ramp.flip(0)


def tile_windows(length: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[int, Tensor]]:
    """Origins and normalised 1-D blending weights of the tiles covering ``[0, length)``.

    Each tile's weight ramps up on sides shared with a neighbour (see :func:`_ramp`) and is 1 on the
    image border; the weights are divided by their sum over tiles, so they form a partition of unity
    :math:`\\sum_i w_i(p) = 1` for every pixel ``p``. A 2-D tile uses the outer product of its row
    and column weights, which is again a partition of unity; hence a pointwise map is reproduced
    exactly (up to float rounding) and no weight buffer is needed.

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
            w *= _ramp(size, overlap, rising=True)
        if i < len(starts) - 1:
            w *= _ramp(size, overlap, rising=False)
        weights.append(w)
    total = torch.zeros(length, dtype=torch.float64)
    for start, w in zip(starts, weights):
        total[start : start + size] += w
    return [(start, w / total[start : start + size]) for start, w in zip(starts, weights)]


def tiled_apply(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    tile: int,
    overlap: int,
    multiple: int = 1,
    batch_size: int = 1,
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
    """
    if x.shape[0] != 1:
        raise ValueError("tiled_apply processes one image at a time")
    _, _, h, w = x.shape
    rows = tile_windows(h, tile, overlap, multiple)
    cols = tile_windows(w, tile, overlap, multiple)
    th, tw = min(tile, h), min(tile, w)
    coords = [(r, c) for r in rows for c in cols]
    out: Tensor | None = None
    for first in range(0, len(coords), batch_size):
        chunk = coords[first : first + batch_size]
        tiles = torch.cat([x[..., r0 : r0 + th, c0 : c0 + tw] for (r0, _), (c0, _) in chunk])
        result = fn(tiles).to(device=x.device, dtype=torch.float32)
        if out is None:
            out = torch.zeros(1, result.shape[1], h, w, device=x.device)
        for k, ((r0, wr), (c0, wc)) in enumerate(chunk):
            weight = (wr[:, None] * wc[None, :]).to(device=x.device, dtype=torch.float32)
            out[0, :, r0 : r0 + th, c0 : c0 + tw] += result[k] * weight
    assert out is not None
    return out


# ----------------------------------------------------------------------------------------------
# test-time group averaging


def exact_tta_group(name: str | None) -> str:
    """The largest exactly invertible finite group inside ``name``, for test-time averaging.

    Test-time averaging needs every group element and exact inverses: ``rotate`` (any angle) is
    reduced to its subgroup ``rot90``; ``shift`` and ``scale`` (infinite, or not exactly
    invertible on a finite image) are dropped. ``None`` or nothing left gives ``rot90*flip``.

    >>> exact_tta_group("endoscopy"), exact_tta_group("hflip*shift"), exact_tta_group(None)
    ('rot90', 'hflip', 'rot90*flip')
    """
    from eid.transforms import parse_group

    if name is None:
        return _DEFAULT_TTA_GROUP
    factors = ["rot90" if f == "rotate" else f for f in parse_group(name)]
    kept = [f for f in dict.fromkeys(factors) if f in _EXACT_FACTORS]
    return "*".join(kept) if kept else _DEFAULT_TTA_GROUP


class GroupAverage:
    """Reynolds average of ``f`` over a finite group: :math:`|G|^{-1}\\sum_g T_g^{-1} f(T_g y)`.

    Built on deepinv ``Transform.symmetrize`` over :func:`eid.transforms.full_group`, which
    enumerates each element once (``rot90*flip`` = the 8 elements of the dihedral group). deepinv
    crops 90-degree rotations of non-square images to the input shape, which would not be
    invertible; so when the group contains rotations a non-square input is first padded to a square
    (:func:`pad_to_shape`) and the result cropped back. ``f`` equivariant to the group gives
    :math:`\\bar f = f`; the cost is ``|G|`` evaluations of ``f``.

    :param fn: function on ``(B,C,H,W)`` tensors.
    :param str group: a finite group name (see :func:`exact_tta_group`).
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], group: str = _DEFAULT_TTA_GROUP) -> None:
        from deepinv.transform import Rotate

        from eid.transforms import full_group

        self.group = group
        self._rng = torch.Generator().manual_seed(0)
        self._rng_state = self._rng.get_state()
        self.transform = full_group(group, self._rng)
        self.rotates = any(isinstance(m, Rotate) for m in self.transform.modules())
        self.fn = fn
        # one f call per element: memory stays that of a single evaluation
        self._symmetrized = self.transform.symmetrize(fn, average=True, collate_batch=False)

    @property
    def size(self) -> int:
        """Number of group elements ``|G|`` (evaluations of ``f`` per call)."""
        return self.transform.n_trans

    def __call__(self, y: Tensor) -> Tensor:
        # the same element order in every call: reproducible sums, and norm statistics recorded per
        # element (eid.models.global_norm) stay matched to their element
        self._rng.set_state(self._rng_state)
        h, w = y.shape[-2:]
        if self.rotates and h != w:
            side = max(h, w)
            return crop_to(self._symmetrized(pad_to_shape(y, side, side)), (h, w))
        return self._symmetrized(y)


# ----------------------------------------------------------------------------------------------
# methods


@dataclass
class Method:
    """An image-to-image function on ``(B,C,H,W)`` tensors in ``[0,1]`` and what a runner must know.

    :param fn: the function (its parameters already on ``device``).
    :param str name: for messages.
    :param int multiple: H and W the function needs to be divisible by (16 for a 5-scale UNet).
    :param channels: the channel count it expects (1 or 3), or ``None`` for any.
    :param bool tileable: ``False`` for methods with a global estimate (the DCP airlight and its
        60-pixel guided filter), which must see the whole image.
    :param group: the transformation group the model was trained with (default group for TTA).
    :param white: the stored value its training images were read as 1.0 (:func:`eid.data.io.read_image`);
        files and integer arrays are read on the same scale.
    :param device: where ``fn`` computes.
    :param modules: the networks ``fn`` runs (searched for group/instance norms when tiling).
    """

    fn: Callable[[Tensor], Tensor]
    name: str = "custom"
    multiple: int = 1
    channels: int | None = None
    tileable: bool = True
    group: str | None = None
    white: White = "dtype"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    modules: tuple[torch.nn.Module, ...] = ()

    def __call__(self, y: Tensor) -> Tensor:
        return self.fn(y)


def _module_channels(module: Any) -> int | None:
    """Input channels of ``module``: its ``in_channels``/``channels`` attribute or its first conv's."""
    for attr in ("in_channels", "channels"):
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    if isinstance(module, torch.nn.Module):
        convs = (m for m in module.modules() if isinstance(m, torch.nn.Conv2d))
        first = next(convs, None)
        return first.in_channels if first is not None else None
    return None


def _module_multiple(module: Any) -> int:
    """Size multiple ``module`` needs: its ``multiple`` attribute, or ``2**(scales-1)`` for a UNet config."""
    if isinstance(getattr(module, "multiple", None), int):
        return module.multiple
    scales = getattr(getattr(module, "config", None), "scales", None)
    return 2 ** (scales - 1) if isinstance(scales, int) else 1


def _load_operator(run_dir: str | Path, device: torch.device) -> Any:
    from eid.physics import load_operator

    return load_operator(run_dir, device)


def build_method(
    name: str,
    *,
    operator: str | Path | None = None,
    model: str | Path | None = None,
    device: str | torch.device = "auto",
) -> Method:
    """The dehazing method ``name`` as a :class:`Method` on ``device``.

    * ``dcp``: :class:`eid.baselines.dcp.DarkChannelPrior` with its default parameters; not tiled
      (the airlight is a whole-image estimate).
    * ``cyclegan``: the operator-only baseline, ``H^dagger`` of the stage-1 run ``operator``: ``G_BA``
      of a CycleGAN (``LearnedHaze.A_dagger``; sizes padded to a multiple of 4) or the physical
      inversion of a scattering operator (``ScatteringHaze.A_dagger``).
    * ``eid``: the stage-2 dehazer of run ``model``, :math:`f_\\theta(y)` (with the pseudo-inverse
      operator recorded in the run, or ``operator`` if given).

    >>> build_method("dcp", device="cpu")(torch.rand(1, 3, 16, 16)).shape
    torch.Size([1, 3, 16, 16])
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if name == "dcp":
        from eid.baselines.dcp import DarkChannelPrior

        return Method(DarkChannelPrior().to(dev).eval(), name="dcp", tileable=False, device=dev)
    if name == "cyclegan":
        if operator is None:
            raise EIDError("--method cyclegan needs --operator RUN (a folder written by eid train-operator)")
        from eid.physics.learned import operator_white

        physics = _load_operator(operator, dev)
        return Method(
            physics.A_dagger, name="cyclegan", multiple=_GENERATOR_MULTIPLE, channels=_module_channels(physics),
            white=operator_white(physics.config), device=dev, modules=(physics,),
        )
    if name == "eid":
        if model is None:
            raise EIDError("--method eid needs --model RUN (a folder written by eid train); or use --method dcp")
        from eid.models.dehazer import load_dehazer

        net, physics, config = load_dehazer(model, dev)
        if operator is not None:
            physics = _load_operator(operator, dev)
        multiple = _module_multiple(net)  # the UNet pools scales-1 times
        if physics is not None:
            multiple = math.lcm(multiple, _GENERATOR_MULTIPLE)
        group = config.get("group")  # the run's EIDConfig.group, the default TTA group
        return Method(
            lambda y: net(y, physics), name="eid", multiple=multiple, channels=net.config.channels,
            tileable=net.config.input != "dcp",  # DCP's airlight is a whole-image estimate
            group=str(group) if group is not None else None, white=parse_white(config.get("white") or "dtype"), device=dev,
            modules=(net,) if physics is None else (net, physics),
        )
    raise EIDError(f"unknown method {name!r}; use one of {', '.join(METHODS)}")


# ----------------------------------------------------------------------------------------------
# the runner


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``, or ``None`` for plain fp32."""
    if precision not in PRECISIONS:
        raise EIDError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        if precision in ("fp16", "bf16"):
            raise EIDError(f"--precision {precision} needs a CUDA device; use --precision fp32 (or auto) on {device.type}")
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


class Dehazer:
    """Dehaze images of any size, channel count, dtype and container with one image function.

    ``Dehazer.load(run)(image)`` applies the stage-2 dehazer of ``run``. The image may be

    =====================  ================================  =================================
    kind                   shapes                            layout rule
    =====================  ================================  =================================
    ``numpy.ndarray``      ``HW``, ``HWC``, ``BHWC``         channels last (NumPy/PIL habit)
    ``torch.Tensor``       ``HW``, ``CHW``, ``BCHW``         channels first (torch habit)
    =====================  ================================  =================================

    with ``C`` in 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA); alpha is passed through
    untouched. Integer images are read on the scale ``white`` (by default the one the model was trained
    on; ``dtype``: ``uint8`` as ``/255``, ``uint16`` as ``/65535``), floats as ``[0,1]`` intensities. The
    result has the input's kind, shape, dtype and device, clipped to the dtype's range and rounded for
    integers.

    Channels: a grey image given to a 3-channel model is replicated to RGB and the output averaged
    back to grey; an RGB image given to a 1-channel model is processed channel by channel (colour
    planes of e.g. multi-stain microscopy are independent images to such a model).

    Size: images are reflect-padded to the method's multiple and cropped back; an image with a
    side above ``tile`` is processed in ``tile x tile`` tiles blended over ``overlap`` pixels
    (:func:`tiled_apply`), so memory does not grow with the image. ``tile=None`` never tiles. Group and
    instance norms of the method then normalise every tile with statistics recorded in one forward of the
    whole image down-scaled to ``REFERENCE_TILES * tile`` (``tile_norm="global"``,
    :mod:`eid.models.global_norm`) rather than with the tile's own (``tile_norm="tile"``), so tiles match
    the whole-image result; an image that fits that size needs no tiles: its one forward is the result.

    :param method: a :class:`Method` or any callable/``nn.Module`` on ``(B,C,H,W)`` [0,1] tensors.
    :param device: ``auto`` (CUDA when available), ``cpu``, ``cuda``...
    :param int tile: tile side for large images (rounded down to the method's multiple).
    :param int overlap: overlap of neighbouring tiles in pixels.
    :param int batch_size: images (or tiles) per forward pass.
    :param str precision: ``auto`` (bf16/fp16 autocast on CUDA, fp32 on CPU), ``fp32``, ``fp16``, ``bf16``.
    :param tta: test-time group averaging: ``False``, ``True`` (the exact finite part of the group
        the model was trained with, else ``rot90*flip``) or a group name such as ``"hflip"``.
    :param bool channels_last: use the channels-last memory format for the forward pass.
    :param str tile_norm: ``global`` or ``tile``: statistics of group/instance norms when tiling.
    :param white: the stored value of integer images and files read as 1.0: ``dtype``, ``max`` (each
        image's maximum), a number (e.g. 4095 for 12-bit data in 16-bit files), or ``None`` for the
        method's (the scale its model was trained on).

    >>> runner = Dehazer.from_module(lambda y: 1 - y, device="cpu")
    >>> out = runner(np.zeros((37, 50, 3), np.uint8))
    >>> out.shape, out.dtype, int(out.max())
    ((37, 50, 3), dtype('uint8'), 255)
    """

    def __init__(
        self,
        method: Method | Callable[[Tensor], Tensor],
        *,
        device: str | torch.device = "auto",
        tile: int | None = 512,
        overlap: int = 64,
        batch_size: int = 1,
        precision: str = "auto",
        tta: bool | str = False,
        channels_last: bool = False,
        tile_norm: str = "global",
        white: White | None = None,
    ) -> None:
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        if not isinstance(method, Method):
            if isinstance(method, torch.nn.Module):
                method = method.to(self.device).eval()
            method = Method(
                method, name=type(method).__name__, multiple=_module_multiple(method),
                channels=_module_channels(method), device=self.device,
                modules=(method,) if isinstance(method, torch.nn.Module) else (),
            )
        self.method = method
        self.white = parse_white(method.white if white is None else white)
        self.multiple = max(1, method.multiple)
        if batch_size < 1:
            raise EIDError(f"--batch-size must be >= 1 (got {batch_size})")
        self.batch_size = batch_size
        self.tile = self._check_tile(tile, overlap) if method.tileable else None
        self.overlap = overlap
        if tile_norm not in TILE_NORMS:
            raise EIDError(f"unknown tile norm {tile_norm!r}; use one of {', '.join(TILE_NORMS)}")
        self.norm_stats = GlobalNormStatistics(method.modules) if tile_norm == "global" else None
        self.amp_dtype = _autocast_dtype(precision, self.device)
        self.channels_last = channels_last
        fn: Callable[[Tensor], Tensor] = self._forward
        self.tta_group: str | None = None
        if tta:
            self.tta_group = exact_tta_group(method.group) if tta is True else str(tta)
            fn = GroupAverage(fn, self.tta_group)
        self._fn = fn

    def _check_tile(self, tile: int | None, overlap: int) -> int | None:
        if tile is None or tile <= 0:
            return None
        requested, tile = tile, tile // self.multiple * self.multiple
        if tile < self.multiple or not 0 <= overlap <= tile - self.multiple:
            raise EIDError(
                f"invalid tiling (--tile {requested}, --overlap {overlap}; this model needs sides in multiples of "
                f"{self.multiple}); use a tile of at "
                f"least {2 * self.multiple} and 0 <= overlap <= tile - {self.multiple}"
            )
        return tile

    @classmethod
    def load(cls, run_dir: str | Path, device: str | torch.device = "auto", **kwargs: Any) -> Dehazer:
        """The runner of the stage-2 dehazer saved in ``run_dir`` (see :func:`build_method`)."""
        dev = device if isinstance(device, torch.device) else resolve_device(device)
        operator = kwargs.pop("operator", None)
        return cls(build_method("eid", model=run_dir, operator=operator, device=dev), device=dev, **kwargs)

    @classmethod
    def from_module(cls, fn: Method | Callable[[Tensor], Tensor], **kwargs: Any) -> Dehazer:
        """The runner of any function or ``nn.Module`` on ``(B,C,H,W)`` [0,1] tensors."""
        return cls(fn, **kwargs)

    # -- tensor core ---------------------------------------------------------------------------

    def _forward(self, y: Tensor) -> Tensor:
        """One call of the method on the compute device, under autocast when enabled."""
        y = y.to(self.device, non_blocking=True)
        if self.channels_last:
            y = y.contiguous(memory_format=torch.channels_last)
        ctx = (
            torch.autocast(self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with ctx:
            out = self.method(y)
        return out.float()

    def _adapt_channels(self, y: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
        want, have = self.method.channels, y.shape[1]
        if want is None or want == have:
            return y, lambda out: out
        if want == 3 and have == 1:
            return y.expand(-1, 3, -1, -1), lambda out: out.mean(1, keepdim=True)
        if want == 1:
            b = y.shape[0]
            return y.reshape(b * have, 1, *y.shape[2:]), lambda out: out.reshape(b, have, *out.shape[2:])
        raise EIDError(f"{self.method.name} expects {want}-channel images, got {have}; convert the images first")

    def run(self, y: Tensor) -> Tensor:
        """Dehaze a float batch ``(B,C,H,W)`` in ``[0,1]``; the result is on ``y``'s device, in ``[0,1]``.

        Computed under ``torch.inference_mode``; the result is an ordinary tensor (usable in autograd
        or in-place afterwards).
        """
        return self._run(y).clone()

    @torch.inference_mode()
    def _run(self, y: Tensor) -> Tensor:
        if y.ndim != 4:
            raise EIDError(f"expected a (B,C,H,W) batch, got shape {tuple(y.shape)}")
        y, restore = self._adapt_channels(_finite(y.float()))
        padded, size = pad_to_multiple(y, self.multiple)
        h, w = padded.shape[-2:]
        if self.tile is not None and max(h, w) > self.tile:
            out = torch.cat([self._tiled(padded[i : i + 1]) for i in range(padded.shape[0])])
        else:
            out = torch.cat([
                self._fn(padded[i : i + self.batch_size]).to(y.device)
                for i in range(0, padded.shape[0], self.batch_size)
            ])
        if not torch.isfinite(out).all():  # written as is, NaN would become black pixels
            raise EIDError(
                f"{self.method.name} gave NaN or infinite values, so nothing was written; its weights may be "
                "corrupt: copy the run again or re-export it"
            )
        return restore(crop_to(out, size)).clamp_(0.0, 1.0)

    def _tiled(self, x: Tensor) -> Tensor:
        """One padded image ``(1,C,H,W)`` tile by tile, norms with whole-image statistics if enabled."""
        assert self.tile is not None
        if not self.norm_stats:
            return tiled_apply(self._fn, x, self.tile, self.overlap, self.multiple, self.batch_size)
        reference = reference_image(x, REFERENCE_TILES * self.tile, self.multiple)
        if reference is x:  # the whole image fits the reference budget: its one forward is the result
            return self._fn(x)
        with self.norm_stats.recording():
            self._fn(reference)
        with self.norm_stats.applying():
            return tiled_apply(self._fn, x, self.tile, self.overlap, self.multiple, self.batch_size)

    # -- any-kind front end ----------------------------------------------------------------------

    def __call__(self, image: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """Dehaze ``image`` (see the class docstring for accepted kinds); same kind/shape/dtype back."""
        is_numpy = isinstance(image, np.ndarray)
        if not is_numpy and not isinstance(image, Tensor):
            raise EIDError(f"expected a numpy array or torch tensor, got {type(image).__name__}")
        tensor = torch.from_numpy(np.ascontiguousarray(image)) if is_numpy else image
        shape, dtype = tuple(tensor.shape), tensor.dtype
        batch = _to_bchw(tensor, channels_last=is_numpy)
        integer = _INTEGER_DTYPES.get(dtype)
        if integer is None and not dtype.is_floating_point:
            raise EIDError(f"unsupported image dtype {dtype}; use uint8, uint16 or float in [0,1]")
        x = batch.float()
        colour, alpha = (x[:, :-1], x[:, -1:]) if x.shape[1] in (2, 4) else (x, None)
        scale = white_scale(self.white, integer, lambda: float(colour.max())) if integer else 1.0
        out = self.run((colour / scale).clamp_(0.0, 1.0)) * scale
        if alpha is not None:
            out = torch.cat([out, alpha], dim=1)
        out = out.round_().clamp_(0, DTYPE_WHITE[integer]) if integer else out
        result = _from_bchw(out, shape, channels_last=is_numpy).to(dtype)
        return result.numpy() if is_numpy else result


_INTEGER_DTYPES = {torch.uint8: "uint8", torch.uint16: "uint16"}


def _finite(y: Tensor) -> Tensor:
    """``y`` with NaN/Inf samples replaced by 0 (with a warning): one such pixel would otherwise spread through
    every convolution and norm and make the whole output NaN."""
    bad = ~torch.isfinite(y)
    if not bad.any():
        return y
    warnings.warn(f"{int(bad.sum())} NaN or infinite input values replaced by 0", stacklevel=4)
    return y.masked_fill(bad, 0.0)


def _to_bchw(t: Tensor, channels_last: bool) -> Tensor:
    """``HW``/``HWC``/``BHWC`` (channels last) or ``HW``/``CHW``/``BCHW`` to ``BCHW``."""
    shape = tuple(t.shape)
    if t.ndim == 2:
        return t[None, None]
    if t.ndim not in (3, 4):
        raise EIDError(f"expected an image of 2, 3 or 4 dimensions, got shape {shape}")
    t = t[None] if t.ndim == 3 else t
    if channels_last:
        t = t.permute(0, 3, 1, 2)
    if t.shape[1] not in (1, 2, 3, 4):
        layout, stack = ("HWC/BHWC", "array[..., None]") if channels_last else ("CHW/BCHW", "tensor[:, None]")
        raise EIDError(
            f"image of shape {shape} read as {layout} has {t.shape[1]} channels, not 1-4; for a stack of grey "
            f"planes pass {stack}"
        )
    return t


def _from_bchw(t: Tensor, shape: tuple[int, ...], channels_last: bool) -> Tensor:
    """Inverse of :func:`_to_bchw` for the original ``shape``."""
    if len(shape) == 2:
        return t[0, 0]
    if channels_last:
        t = t.permute(0, 2, 3, 1)
    return t[0] if len(shape) == 3 else t


# ----------------------------------------------------------------------------------------------
# drivers


@dataclass
class DehazeSummary:
    """What a folder run did: files written, skipped because done, and failures ``(path, reason)``."""

    written: int = 0
    existing: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)


def _progress(console: Console) -> LoggedProgress:
    return LoggedProgress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[name]}"), unit="images", console=console, transient=False,
    )


def dehaze_paths(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    method_fn: Dehazer | Method | Callable[[Tensor], Tensor],
    *,
    max_pixels: int | None = None,
    skip_existing: bool = False,
    recursive: bool = True,
    console: Console | None = None,
) -> int:
    """Dehaze image files, folders and globs into ``out_dir``; return the number of failed files.

    Each output keeps the input's name, format, bit depth, channels and alpha (``eid.data.io``);
    files found in a folder keep their path relative to it (nested folders are mirrored). Files that
    cannot be read or processed are reported, skipped and counted; the run continues and ends with a
    summary (a :class:`DehazeSummary`) on ``console``. Inputs that would share an output name (the same name
    in two input folders) get distinct names (:func:`eid.data.naming.plan_outputs`), with a note; temporary
    files that a killed run left in ``out_dir`` are removed first. Consecutive images of the same size are batched (``method_fn.batch_size``).
    A TIFF stack (z-stack, time-lapse, hyperstack: :mod:`eid.data.stacks`) is dehazed plane by plane, in batches,
    and written back as a stack with the same layout, sample type and calibration. An output
    folder equal to an input folder, or an output that would overwrite an input, is refused before
    anything is written.
    """
    from eid.data.io import (
        check_not_input,
        check_output_dir,
        iter_inputs,
        no_images_error,
        read_image,
        write_image,
    )
    from eid.data.naming import plan_outputs

    console = console or stderr_console()
    runner = method_fn if isinstance(method_fn, Dehazer) else Dehazer(method_fn)
    out = check_output_dir(out_dir, inputs)
    pairs = iter_inputs(list(inputs), recursive=recursive)
    if not pairs:
        raise no_images_error(inputs)
    sources = [path for path, _ in pairs]
    plan = plan_outputs(sources, [rel for _, rel in pairs])
    targets = [out / name for name in plan.names]
    for dst in targets:
        check_not_input(dst, sources)
    for line in plan.notices():
        console.print(f"[yellow]note:[/] {escape(line)}")
    if out.is_dir():
        remove_stale_temps(out)

    summary = DehazeSummary()
    pending: list[tuple[Tensor, Any, Path]] = []

    def flush() -> None:
        if not pending:
            return
        try:
            results = runner.run(torch.stack([img for img, _, _ in pending]))
            for result, (_, meta, dst) in zip(results, pending):
                write_image(dst, result, meta)
                summary.written += 1
        except (EIDError, torch.OutOfMemoryError, OSError) as exc:
            for _, meta, dst in pending:
                _fail(meta.path, _reason(exc))
        pending.clear()

    def dehaze_stack(src: Path, dst: Path) -> None:
        """A TIFF stack, plane by plane in batches, written back as a stack of the same layout."""
        try:
            stack = Stack.read(src, white=runner.white)
            for start in range(0, len(stack), runner.batch_size):
                indices = range(start, min(start + runner.batch_size, len(stack)))
                progress.update(task, name=f"{src.name} planes {start + 1}-{indices[-1] + 1} of {len(stack)}")
                for index, plane in zip(indices, runner.run(torch.stack([stack.plane(i) for i in indices]))):
                    stack.set_plane(index, plane)
            stack.write(dst)
            summary.written += 1
        except (EIDError, torch.OutOfMemoryError, OSError) as exc:
            _fail(src, _reason(exc))

    def _fail(path: Path, reason: str) -> None:
        summary.failed.append((path, reason if str(path) in reason else f"{path}: {reason}"))
        console.print(f"[yellow]warning:[/] skipped {escape(summary.failed[-1][1])}")

    with _progress(console) as progress:
        task = progress.add_task("dehazing", total=len(pairs), name="")
        for src, dst in zip(sources, targets):
            progress.update(task, name=src.name)
            if skip_existing and dst.exists():
                summary.existing += 1
            else:
                try:
                    image, meta = read_image(src, max_pixels=max_pixels, white=runner.white)
                except TiffStackError:
                    flush()
                    dehaze_stack(src, dst)
                except ImageReadError as exc:
                    _fail(src, str(exc))
                else:
                    if pending and (len(pending) >= runner.batch_size or pending[0][0].shape != image.shape):
                        flush()
                    pending.append((image, meta, dst))
            if len(pending) >= runner.batch_size:
                flush()
            progress.advance(task)
        flush()
    _print_summary(summary, out, console)
    return len(summary.failed)


def _reason(exc: BaseException) -> str:
    """Why a file failed, in one line: an :class:`EIDError` says it; other errors get the likely remedy."""
    if isinstance(exc, EIDError):
        return str(exc)
    if isinstance(exc, OSError):  # a full disk, no permission...: the real cause, not a memory hint
        return describe_os_error(exc)
    return f"out of memory ({str(exc).splitlines()[0]}); try a smaller --tile or --batch-size"


def _print_summary(summary: DehazeSummary, out: Path, console: Console) -> None:
    parts = [f"{summary.written} written to {escape(str(out))}"]
    if summary.existing:
        parts.append(f"{summary.existing} already done")
    if summary.failed:
        parts.append(f"[red]{len(summary.failed)} skipped[/]")
    console.print("dehaze: " + ", ".join(parts))
    for _, reason in summary.failed:
        console.print(f"  skipped {escape(reason)}")


def is_video(path: str | Path) -> bool:
    """Whether ``path`` has a video suffix (:data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def dehaze_video_file(
    src: str | Path,
    dst: str | Path,
    runner: Dehazer,
    *,
    side_by_side: bool = False,
    temporal_smoothing: float = 0.0,
) -> VideoReport:
    """Dehaze a video frame by frame with ``runner.run`` (batched, padded, tiled), keeping fps and size.

    See :func:`eid.data.video.dehaze_video` for the side-by-side output and temporal smoothing.
    """
    from eid.data.video import dehaze_video

    return dehaze_video(
        src, dst, runner.run, batch_size=runner.batch_size, side_by_side=side_by_side,
        temporal_smoothing=temporal_smoothing,
    )
