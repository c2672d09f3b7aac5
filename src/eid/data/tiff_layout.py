"""How a TIFF's images map to 2-D planes, the rules the image reader (:mod:`eid.data.codecs`) and the stacks
(:mod:`eid.data.stacks`) share: the series and its reader (pages appended one call at a time are one stack;
interleaved bands are read bands first), the sample types ``eid`` accepts, and which layouts are stacks."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tifffile

from eid.data.bands import bands_first, has_bands, to_bands_first
from eid.errors import read_error

__all__ = ["tiff_samples", "tiff_series", "tiff_stack_layout"]


def tiff_series(
    tif: tifffile.TiffFile, path: Path
) -> tuple[tuple[int, ...], str, Callable[[int | None], np.ndarray]]:
    """Shape, axes and reader (``read(plane)``, or ``read(None)`` for all) of the images in ``tif``.

    A TIFF usually holds one series. Pages written one call at a time (``tifffile.imwrite(..., append=True)``)
    form several series of one shape: they are one stack along a new leading axis ``I``, so no page is lost.
    Series of different shapes are refused rather than reading the first alone. More than 4 interleaved samples
    per pixel are bands, read bands first (``...SYX``): a stack whose planes are the bands (:mod:`eid.data.bands`).
    """
    shape, axes, read = _stored_series(tif, path)
    if not has_bands(shape, axes):
        return shape, axes, read
    count = shape[-1]

    def read_band(key: int | None) -> np.ndarray:
        if key is None:
            return to_bands_first(read(None))
        image, band = divmod(key, count)
        return read(image)[..., band]

    return (*bands_first(shape, axes), read_band)


def _stored_series(
    tif: tifffile.TiffFile, path: Path
) -> tuple[tuple[int, ...], str, Callable[[int | None], np.ndarray]]:
    """:func:`tiff_series` in the stored layout: ``read(k)`` reads the ``k``-th 2-D image (``YX`` or ``YXS``)."""
    series = tif.series
    if not series:
        raise read_error(path, "no image in the file (no TIFF pages)", "re-export the file")
    if len(series) == 1:
        only = series[0]
        return (
            tuple(only.shape),
            only.axes,
            lambda key: only.asarray() if key is None else only.asarray(key=key),
        )
    kinds = {(tuple(s.shape), s.axes, s.dtype) for s in series}
    if len(kinds) > 1:
        shapes = ", ".join(sorted({"x".join(map(str, shape)) for shape, _, _ in kinds}))
        raise read_error(
            path,
            f"holds {len(series)} images of different shapes ({shapes})",
            "save one image per file",
        )
    shape, axes, _ = kinds.pop()

    def read(key: int | None) -> np.ndarray:
        return np.stack([s.asarray() for s in series]) if key is None else series[key].asarray()

    return (len(series), *shape), "I" + axes, read


def tiff_samples(path: Path, array: np.ndarray) -> np.ndarray:
    """TIFF samples as ``uint8``, ``uint16`` or finite ``float32``: floats are checked, booleans become 0/255,
    other integers within 0..65535 become ``uint16``."""
    if array.dtype.kind == "f":
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise read_error(
                path, "float TIFF contains NaN or Inf values", "replace them (e.g. with 0) first"
            )
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype not in (np.uint8, np.uint16):
        if array.min() < 0 or array.max() > 65535:
            raise read_error(
                path, f"{array.dtype} samples outside 0..65535", "convert to 16-bit or float32"
            )
        array = array.astype(np.uint16)
    return array


def tiff_stack_layout(shape: Sequence[int], axes: str) -> tuple[int, bool] | None:
    """``(planes, rgb)`` of a TIFF series holding more than one 2-D plane, else ``None``.

    Planes are grey (axes ending in ``YX``) or RGB (``YXS`` with 3 samples); every index of the leading axes
    (``Z``, ``T``, ``C``...) is one plane. A leading ``S`` axis of 1-4 samples is a planar colour image, not a stack;
    more than 4 samples are bands: one grey plane each (:func:`tiff_series` reads interleaved bands bands first).

    >>> tiff_stack_layout((2, 3, 64, 64), "TZYX"), tiff_stack_layout((3, 64, 64), "SYX")
    ((6, False), None)
    >>> tiff_stack_layout((6, 64, 64), "SYX")
    (6, False)
    """
    rgb = axes.endswith("YXS") and shape[-1] == 3
    if not (rgb or axes.endswith("YX")) or (axes[:-2] == "S" and shape[0] <= 4):
        return None
    planes = math.prod(shape[:-3] if rgb else shape[:-2])
    return (planes, rgb) if planes > 1 else None
