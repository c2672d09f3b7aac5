"""Multi-band images (multispectral, hyperspectral: more than 4 samples per pixel) as a stack of grey planes.

A network sees grey or RGB images. A TIFF whose pixels hold more than 4 interleaved samples (axes ending in
``YXS``, as GIS software writes them) is processed band by band, like the planes of a z-stack and with the same
rules (one read scale for the whole image, the sample type kept, :mod:`eid.data.stacks`). These two functions
convert between the stored array and the ``(planes, H, W[, 3])`` array of planes, for every stack layout.

>>> import numpy as np
>>> image = np.arange(2 * 3 * 6).reshape(2, 3, 6)
>>> planes = to_planes(image, "YXS", rgb=False)
>>> planes.shape, bool((planes[4] == image[..., 4]).all())
((6, 2, 3), True)
>>> bool((from_planes(planes, image.shape, "YXS") == image).all())
True
"""

from __future__ import annotations

import math

import numpy as np

#: More samples per pixel than this are bands (4: RGBA).
MAX_PIXEL_SAMPLES = 4


def has_bands(shape: tuple[int, ...], axes: str) -> bool:
    """Whether a series of ``shape`` and ``axes`` interleaves more than 4 samples (bands) per pixel."""
    return axes.endswith("YXS") and shape[-1] > MAX_PIXEL_SAMPLES


def band_planes(shape: tuple[int, ...]) -> int:
    """Planes of an interleaved multi-band series of ``shape``: every band of every leading index."""
    return math.prod(shape[:-3]) * shape[-1]


def to_planes(samples: np.ndarray, axes: str, rgb: bool) -> np.ndarray:
    """The stored ``samples`` of a stack with ``axes`` as ``(planes, H, W)`` (``(planes, H, W, 3)`` when ``rgb``).

    Bands become planes, band-major within each leading index (the bands of one z-slice are consecutive).
    """
    if has_bands(samples.shape, axes):
        samples = np.moveaxis(samples, -1, -3)
    return samples.reshape(-1, *samples.shape[-3:] if rgb else samples.shape[-2:])


def from_planes(planes: np.ndarray, shape: tuple[int, ...], axes: str) -> np.ndarray:
    """The inverse of :func:`to_planes`: ``planes`` back in the stored ``shape`` with ``axes``."""
    if not has_bands(shape, axes):
        return planes.reshape(shape)
    return np.moveaxis(planes.reshape(*shape[:-3], shape[-1], *shape[-3:-1]), -3, -1)
