"""The array side of the napari widgets: layer data in, layer data out, no display needed.

A napari image layer holds a 2-D image, an RGB(A) image (``rgb``: the last axis holds the colours) or a stack of
either along leading axes (``Z``, ``T``, channels). The dehazer sees 2-D images, so a stack goes through it plane
by plane, as ``eid dehaze`` does with a TIFF stack; :class:`eid.Dehazer` keeps each plane's dtype and alpha.

>>> import numpy as np
>>> from eid.inference import Dehazer
>>> steps = dehaze_planes(np.zeros((2, 8, 8), np.uint8), Dehazer.from_module(lambda y: 1 - y, device="cpu"), rgb=False)
>>> next(steps), next(steps)  # planes done
(1, 2)
>>> try:
...     next(steps)
... except StopIteration as finished:
...     result = finished.value
>>> result.shape, int(result.min())
((2, 8, 8), 255)
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import numpy as np

from eid.errors import EIDError
from eid.inference import Dehazer
from eid.training.run_folder import RunFolder

#: ``Dehazer`` precisions offered by the widget (``auto``: bf16/fp16 autocast on CUDA, fp32 on CPU).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


#: the widget's tile value for ``eid dehaze``'s default tile (``Dehazer(tile="auto")``)
AUTO_TILE = -1


def build_runner(run: str | Path, tile: int, tta: bool, precision: str) -> Dehazer:
    """The dehazer of the ``eid train`` run folder ``run`` (``tile`` 0: never tile; :data:`AUTO_TILE`: the default
    tile), as ``eid dehaze`` builds it."""
    if not RunFolder(run).dehazer_weights.is_file():
        raise EIDError(f"{run}: no dehazer.safetensors; choose a run folder written by eid train")
    side = "auto" if tile == AUTO_TILE else tile or None
    return Dehazer.load(run, tile=side, tta=tta, precision=precision)


def plane_count(shape: tuple[int, ...], rgb: bool) -> int:
    """2-D (grey or RGB) planes in layer data of ``shape``."""
    return int(np.prod(shape[:-3] if rgb else shape[:-2]))


def dehaze_planes(data: np.ndarray, runner: Dehazer, rgb: bool) -> Generator[int, None, np.ndarray]:
    """Dehaze every plane of the layer data ``data``; yield the planes done so far, return the result.

    ``data`` may be lazy (dask, zarr): one plane is read at a time. The result has ``data``'s shape and dtype.
    """
    planes = data.shape[:-3] if rgb else data.shape[:-2]
    out = np.empty(data.shape, np.dtype(data.dtype))
    for done, index in enumerate(np.ndindex(*planes), start=1):
        out[index] = runner(np.asarray(data[index]))
        yield done
    return out


def swipe(before: np.ndarray, after: np.ndarray, cut: float, rgb: bool) -> np.ndarray:
    """``after`` left of the fraction ``cut`` of the width, ``before`` right of it (the X axis of napari data)."""
    if before.shape != after.shape:
        raise EIDError(
            f"cannot compare layers of shapes {before.shape} and {after.shape}; pick an input and its result"
        )
    axis = -2 if rgb else -1
    column = round(min(max(cut, 0.0), 1.0) * before.shape[axis])
    shown = np.array(before, copy=True)
    left = [slice(None)] * before.ndim
    left[axis] = slice(0, column)
    shown[tuple(left)] = np.asarray(after)[tuple(left)]
    return shown
