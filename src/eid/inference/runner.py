"""The runner ``eid.Dehazer``: device, precision, batching, padding, tiling, channels and any-kind input."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from eid.data.scale import DTYPE_WHITE, White, parse_white, white_scale
from eid.errors import EIDError
from eid.inference.arrays import (
    INTEGER_DTYPES,
    adapt_channels,
    from_bchw,
    replace_non_finite,
    to_bchw,
)
from eid.inference.methods import (
    Method,
    build_method,
    module_channels,
    module_multiple,
    module_tiling,
)
from eid.inference.precision import autocast_dtype
from eid.inference.tile_plan import TilePlan
from eid.inference.tiling import crop_to, pad_to_multiple
from eid.inference.tta import GroupAverage, exact_tta_group
from eid.utils import resolve_device

__all__ = ["Dehazer"]


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
    side above ``tile`` is processed in ``tile x tile`` tiles blended over ``overlap`` pixels, so memory
    does not grow with the image (``tile=None`` never tiles). How group and instance norms see the tiles
    is ``tile_norm``; by default the tiles reproduce the untiled output where the model allows it
    (:mod:`eid.inference.tile_plan`).

    :param method: a :class:`Method` or any callable/``nn.Module`` on ``(B,C,H,W)`` [0,1] tensors.
    :param device: ``auto`` (CUDA when available), ``cpu``, ``cuda``...
    :param tile: tile side for large images (rounded down to the method's multiple); ``"auto"``: ``DEFAULT_TILE``
        (512) times the method's :attr:`~Method.working_scale`, 2048 for the ``fast`` preset's dehazer.
    :param overlap: overlap of neighbouring tiles in pixels; ``None``: 64, or ``2R`` if larger for a
        method of receptive radius ``R``, at most ``tile`` less the size multiple.
    :param int batch_size: images (or tiles) per forward pass.
    :param str precision: ``auto`` (bf16 autocast where the CPU or GPU has native bf16, else fp32;
        :mod:`eid.inference.precision`), ``fp32``, ``bf16`` or ``fp16`` (CUDA only).
    :param tta: test-time group averaging: ``False``, ``True`` (the exact finite part of the group
        the model was trained with, else ``rot90*flip``) or a group name such as ``"hflip"``.
    :param bool channels_last: use the channels-last memory format for the forward pass.
    :param str tile_norm: statistics of group/instance norms when tiling: ``auto``, ``exact``, ``global`` or
        ``tile`` (:mod:`eid.inference.tile_plan`).
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
        tile: int | str | None = "auto",
        overlap: int | None = None,
        batch_size: int = 1,
        precision: str = "auto",
        tta: bool | str = False,
        channels_last: bool = False,
        tile_norm: str = "auto",
        white: White | None = None,
    ) -> None:
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        if not isinstance(method, Method):
            if isinstance(method, torch.nn.Module):
                method = method.to(self.device).eval()
            method = Method(
                method,
                name=type(method).__name__,
                multiple=module_multiple(method),
                channels=module_channels(method),
                device=self.device,
                modules=(method,) if isinstance(method, torch.nn.Module) else (),
                **module_tiling(method),
            )
        self.method = method
        self.white = parse_white(method.white if white is None else white)
        self.multiple = max(1, method.multiple)
        if batch_size < 1:
            raise EIDError(f"--batch-size must be >= 1 (got {batch_size})")
        self.batch_size = batch_size
        self.plan = TilePlan.choose(method, self.multiple, tile, overlap, tile_norm, bool(tta))
        self.amp_dtype = autocast_dtype(precision, self.device)
        self.channels_last = channels_last
        self.tta_group: str | None = None
        if tta:
            self.tta_group = exact_tta_group(method.group) if tta is True else str(tta)
        self._fn = self._averaged(self._forward)
        # what runs while whole-image norm statistics are recorded and applied: the hooked torch modules
        norm_fn = method.norm_fn
        self._norm_fn = (
            self._fn if norm_fn is None else self._averaged(lambda y: self._forward(y, norm_fn))
        )
        body = method.body
        self._body_fn = None if body is None else self._averaged(lambda z: self._forward(z, body))

    def _averaged(self, fn: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
        """``fn``, averaged over the test-time group when there is one."""
        return GroupAverage(fn, self.tta_group) if self.tta_group else fn

    @classmethod
    def load(
        cls, run_dir: str | Path, device: str | torch.device = "auto", **kwargs: Any
    ) -> Dehazer:
        """The runner of the stage-2 dehazer saved in ``run_dir`` (see :func:`build_method`)."""
        dev = device if isinstance(device, torch.device) else resolve_device(device)
        operator = kwargs.pop("operator", None)
        return cls(
            build_method("eid", model=run_dir, operator=operator, device=dev), device=dev, **kwargs
        )

    from_pretrained = (
        load  # a shipped model's name (eid models) or a run folder: the same code path
    )

    @classmethod
    def from_module(cls, fn: Method | Callable[[Tensor], Tensor], **kwargs: Any) -> Dehazer:
        """The runner of any function or ``nn.Module`` on ``(B,C,H,W)`` [0,1] tensors."""
        return cls(fn, **kwargs)

    # -- tensor core ---------------------------------------------------------------------------

    def _forward(self, y: Tensor, fn: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """One call of the method (or ``fn``) on the compute device, under autocast when enabled."""
        y = y.to(self.device, non_blocking=True)
        if self.channels_last:
            y = y.contiguous(memory_format=torch.channels_last)
        ctx = (
            torch.autocast(self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with ctx:
            out = (fn or self.method)(y)
        return out.float()

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
        y, restore = adapt_channels(
            replace_non_finite(y.float()), self.method.channels, self.method.name
        )
        padded, size = pad_to_multiple(y, self.multiple)
        h, w = padded.shape[-2:]
        if self.plan.tile is not None and max(h, w) > self.plan.tile:
            out = torch.cat([self._tiled(padded[i : i + 1]) for i in range(padded.shape[0])])
        else:
            out = torch.cat(
                [
                    self._fn(padded[i : i + self.batch_size]).to(y.device)
                    for i in range(0, padded.shape[0], self.batch_size)
                ]
            )
        if not torch.isfinite(out).all():  # written as is, NaN would become black pixels
            raise EIDError(
                f"{self.method.name} gave NaN or infinite values, so nothing was written; its weights may be "
                "corrupt: copy the run again or re-export it"
            )
        return restore(crop_to(out, size)).clamp_(0.0, 1.0)

    def _tiled(self, y: Tensor) -> Tensor:
        """One padded image ``(1,C,H,W)`` larger than a tile, tile by tile: the method itself, or its ``body`` on the
        input ``prepare`` computes (:attr:`Method.prepare`)."""
        prepare = self.method.prepare
        if prepare is None or self._body_fn is None or self.plan.one_forward(y):
            return self.plan.apply(self._fn, self._norm_fn, y, self.batch_size)
        tile, norm, batch = self.plan.tile, self.plan.norm, self.batch_size
        z = self._forward(y, lambda image: prepare(image, tile, norm, batch))  # in fn's precision
        return self.plan.apply(self._body_fn, self._body_fn, z.to(y.device), self.batch_size)

    # -- any-kind front end ----------------------------------------------------------------------

    def __call__(self, image: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """Dehaze ``image`` (see the class docstring for accepted kinds); same kind/shape/dtype back."""
        is_numpy = isinstance(image, np.ndarray)
        if not is_numpy and not isinstance(image, Tensor):
            raise EIDError(f"expected a numpy array or torch tensor, got {type(image).__name__}")
        tensor = torch.from_numpy(np.ascontiguousarray(image)) if is_numpy else image
        shape, dtype = tuple(tensor.shape), tensor.dtype
        batch = to_bchw(tensor, channels_last=is_numpy)
        integer = INTEGER_DTYPES.get(dtype)
        if integer is None and not dtype.is_floating_point:
            raise EIDError(f"unsupported image dtype {dtype}; use uint8, uint16 or float in [0,1]")
        x = batch.float()
        colour, alpha = (x[:, :-1], x[:, -1:]) if x.shape[1] in (2, 4) else (x, None)
        scale = white_scale(self.white, integer, lambda: float(colour.max())) if integer else 1.0
        out = self.run((colour / scale).clamp_(0.0, 1.0)) * scale
        if alpha is not None:
            out = torch.cat([out, alpha], dim=1)
        out = out.round_().clamp_(0, DTYPE_WHITE[integer]) if integer else out
        result = from_bchw(out, shape, channels_last=is_numpy).to(dtype)
        return result.numpy() if is_numpy else result
