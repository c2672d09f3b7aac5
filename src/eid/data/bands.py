"""Multi-band images (multispectral, hyperspectral: more than 4 samples per pixel) as a stack of grey planes.

A network sees grey or RGB images. A TIFF whose pixels interleave more than 4 samples (axes ending in ``YXS``, as
GIS software writes them) is read bands first, ``(..., S, Y, X)`` (:func:`eid.data.codecs.tiff_series`), so that it is
a stack whose planes are the bands, processed like the planes of a z-stack and with the same rules (one read scale
for the whole image, the sample type kept, :mod:`eid.data.stacks`). :func:`interleaved` turns such a stack back into
the stored layout for writing.

>>> import numpy as np
>>> image = np.arange(2 * 3 * 6).reshape(2, 3, 6)
>>> bands_first(image.shape, "YXS"), bool((to_bands_first(image)[4] == image[..., 4]).all())
(((6, 2, 3), 'SYX'), True)
>>> stored, axes = interleaved(to_bands_first(image), "SYX")
>>> bool((stored == image).all()), axes
(True, 'YXS')
"""

from __future__ import annotations

import numpy as np

#: More samples per pixel than this are bands (4: RGBA).
MAX_PIXEL_SAMPLES = 4


def has_bands(shape: tuple[int, ...], axes: str) -> bool:
    """Whether a series of ``shape`` and ``axes`` interleaves more than 4 samples (bands) per pixel."""
    return axes.endswith("YXS") and shape[-1] > MAX_PIXEL_SAMPLES


def bands_first(shape: tuple[int, ...], axes: str) -> tuple[tuple[int, ...], str]:
    """Shape and axes of an interleaved series read bands first: ``(..., Y, X, S)`` -> ``(..., S, Y, X)``."""
    return (*shape[:-3], shape[-1], *shape[-3:-1]), axes[:-3] + "SYX"


def to_bands_first(samples: np.ndarray) -> np.ndarray:
    """Interleaved samples ``(..., Y, X, S)`` as ``(..., S, Y, X)`` (a view)."""
    return np.moveaxis(samples, -1, -3)


def interleaved(samples: np.ndarray, axes: str) -> tuple[np.ndarray, str]:
    """Samples and axes to write: bands first ``(..., S, Y, X)`` with more than 4 bands back to ``(..., Y, X, S)``;
    any other layout unchanged."""
    if axes.endswith("SYX") and samples.shape[-3] > MAX_PIXEL_SAMPLES:
        return np.moveaxis(samples, -3, -1), axes[:-3] + "YXS"
    return samples, axes
