"""Intensity scales: which stored sample value reads as 1.0 (``white``), and the conversions both ways.

``white`` is ``"dtype"`` (the type's maximum; float data: 1, or their maximum when above 1), ``"max"`` (the
image's own maximum) or a positive number (e.g. 4095 for 12-bit data in 16-bit files). The readers and
writers of :mod:`eid.data.io` are the only callers that convert samples.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from eid.errors import EIDError

White = Literal["dtype", "max"] | float

#: The stored value of full intensity per sample type (the default read scale).
DTYPE_WHITE = {"uint8": 255.0, "uint16": 65535.0, "float32": 1.0}


def parse_white(value: str | float) -> White:
    """A valid read scale from a config or command-line value: ``"dtype"``, ``"max"`` or a positive number.

    >>> parse_white("4095"), parse_white("max")
    (4095.0, 'max')
    """
    if value in ("dtype", "max"):
        return value  # type: ignore[return-value]
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not 0 < number < math.inf:
        raise EIDError(
            f"white={value!r} is not valid; use dtype, max or a positive number such as 4095 (12-bit data)"
        )
    return number


def samples_to_unit(samples: np.ndarray, scale: float) -> np.ndarray:
    """Stored samples to float32 intensities (``scale`` reads as 1.0); clipping to [0, 1] is left to the caller."""
    return np.ascontiguousarray(samples).astype(np.float32) / np.float32(scale)


def unit_to_samples(intensities: np.ndarray, white: float, dtype: str) -> np.ndarray:
    """Float intensities to stored samples of ``dtype``: clipped to [0, 1], times ``white``, rounded for integers.

    A ``white`` above the type's range (e.g. 1000 for an 8-bit file) saturates.
    """
    array = np.clip(intensities, 0.0, 1.0, dtype=np.float32) * np.float32(white)
    if dtype == "float32":
        return array
    return np.rint(np.minimum(array, DTYPE_WHITE[dtype])).astype(dtype)


def resolve_white(path: Path, colour: np.ndarray, dtype: str, white: White) -> float:
    """The stored value of ``colour`` (samples of ``dtype`` read from ``path``) that ``white`` maps to 1.0."""
    try:
        scale = white_scale(white, dtype, lambda: float(colour.max(initial=0.0)))
    except EIDError as exc:
        raise EIDError(f"{path}: {exc}") from exc
    if dtype == "float32":
        _warn_float_range(path, colour, scale if white == "dtype" else 1.0)
    return scale


_FLOAT_WARNED: set[str] = set()


def _warn_float_range(path: Path, colour: np.ndarray, scale: float) -> None:
    """Say, once per process and kind, that float samples below 0 are clipped or that values above 1 were
    rescaled (``scale`` > 1, the default scale's maximum): both change the data silently otherwise."""
    notes = {
        "negative": (
            bool(colour.size) and float(colour.min()) < 0,
            "float samples below 0 are clipped to 0",
        ),
        "above": (
            scale > 1,
            f"float samples above 1 are read with {scale:g} as white (white=dtype uses their maximum)",
        ),
    }
    for kind, (found, text) in notes.items():
        if found and kind not in _FLOAT_WARNED:
            _FLOAT_WARNED.add(kind)
            warnings.warn(
                f"{path}: {text}; pass --white to choose the scale (said once)", stacklevel=4
            )


def white_scale(white: White, dtype: str, peak: Callable[[], float]) -> float:
    """The stored value read as 1.0 for samples of ``dtype`` whose maximum is ``peak()`` (called only if needed).

    ``dtype``: the type's maximum (float data: 1, or their maximum when above 1); ``max``: the samples'
    maximum; a number: itself.

    >>> white_scale("dtype", "uint16", lambda: 4000.0), white_scale("max", "uint16", lambda: 4000.0)
    (65535.0, 4000.0)
    """
    if white == "dtype":
        return max(1.0, peak()) if dtype == "float32" else DTYPE_WHITE[dtype]
    if white == "max":
        return max(peak(), 1e-12 if dtype == "float32" else 1.0)
    if isinstance(white, (int, float)) and white > 0:
        return float(white)
    raise EIDError(f"invalid white={white!r}; use 'dtype', 'max' or a positive number")
