"""TIFF stacks: z-stacks, time-lapses and hyperstacks of 2-D planes, read and written plane by plane.

A stack is a TIFF series whose axes end in ``YX`` (grey planes) or ``YXS`` (RGB planes) with more than one
plane; every index of the leading axes (``T``, ``Z``, ``C``, ...) is one plane (:func:`eid.data.tiff_layout.tiff_stack_layout`).
The read scale ``white`` applies to the whole stack (``max`` is the stack's maximum), so planes keep their relative
intensities. A processed copy keeps the shape, axes, sample type, pixel size and, for ImageJ hyperstacks, the
ImageJ layout and calibration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch

from eid.data.bands import interleaved
from eid.data.metadata import read_tiff_metadata, tiff_write_options
from eid.data.scale import White, resolve_white, samples_to_unit, unit_to_samples
from eid.data.tiff_layout import tiff_samples, tiff_series, tiff_stack_layout
from eid.errors import ImageReadError
from eid.utils import atomic_write, silenced_logger

#: ImageJ metadata carried over to a processed copy (the calibration; the layout follows the array).
_IMAGEJ_KEYS = ("spacing", "unit", "finterval", "xorigin", "yorigin", "zorigin")


@dataclass(frozen=True)
class StackMeta:
    """How a stack was stored, so that a processed copy can be written the same way.

    :param shape: the series' shape; ``axes`` its axes (tifffile letters, e.g. ``TZCYX``).
    :param dtype: ``uint8``, ``uint16`` or ``float32``; ``white`` the stored value read as 1.0.
    :param rgb: planes are RGB (``YXS``) rather than grey.
    :param imagej: an ImageJ hyperstack; ``extra`` the tags and ImageJ calibration to write back.
    """

    path: Path
    shape: tuple[int, ...]
    axes: str
    dtype: str
    white: float
    rgb: bool
    imagej: bool
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


class Stack:
    """The samples of a TIFF stack as ``(planes, H, W[, 3])`` in their stored type, with float views per plane.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "z.tif"
    >>> tifffile.imwrite(path, np.full((3, 4, 5), 4095, np.uint16), photometric="minisblack", metadata={"axes": "ZYX"})
    >>> stack = Stack.read(path, white=4095)
    >>> len(stack), tuple(stack.plane(0).shape), float(stack.plane(2).max())
    (3, (1, 4, 5), 1.0)
    """

    def __init__(self, samples: np.ndarray, meta: StackMeta) -> None:
        self.samples, self.meta = samples, meta

    def __len__(self) -> int:
        return len(self.samples)

    @classmethod
    def read(cls, path: str | Path, *, white: White = "dtype", plane: int | None = None) -> Stack:
        """Read the TIFF ``path`` as a stack (pages appended as separate series count as planes, axis ``I``); ``white`` as in :func:`eid.data.io.read_image`.

        ``plane``: read only that plane, as a one-plane stack (``white="max"`` is then its own maximum).
        """
        return _decode(Path(path), white, key=plane)

    def plane(self, index: int) -> torch.Tensor:
        """Plane ``index`` as ``(C, H, W)`` float32 in ``[0, 1]`` (C = 3 for RGB planes, else 1)."""
        unit = torch.from_numpy(samples_to_unit(self.samples[index], self.meta.white)).clamp_(
            0.0, 1.0
        )
        return unit.permute(2, 0, 1) if self.meta.rgb else unit[None]

    def set_plane(self, index: int, image: torch.Tensor) -> None:
        """Store a processed ``(C, H, W)`` plane in ``[0, 1]`` at ``index``, on the stack's scale and type."""
        array = image.detach().to("cpu", torch.float32).numpy()
        array = np.moveaxis(array, 0, -1) if self.meta.rgb else array[0]
        self.samples[index] = unit_to_samples(array, self.meta.white, self.meta.dtype)

    def write(self, path: str | Path) -> Path:
        """Write the stack atomically as a TIFF with the original shape, axes, type and calibration."""
        meta, path = self.meta, Path(path)
        samples, axes = interleaved(
            self.samples.reshape(meta.shape), meta.axes
        )  # bands: back to one page
        resolution = {k: meta.extra[k] for k in ("resolution", "resolutionunit") if k in meta.extra}
        with atomic_write(path) as tmp:
            if meta.imagej:
                calibration = {k: meta.extra[k] for k in _IMAGEJ_KEYS if k in meta.extra}
                tifffile.imwrite(
                    tmp,
                    samples,
                    imagej=True,
                    metadata={"axes": meta.axes, **calibration},
                    **resolution,
                )
            else:
                photometric = "rgb" if meta.rgb else "minisblack"
                options = tiff_write_options(axes, meta.extra.get("tiff"), bands=axes != meta.axes)
                tifffile.imwrite(
                    tmp,
                    samples,
                    photometric=photometric,
                    compression="zlib",
                    **options,
                    **resolution,
                )
        return path


def stack_planes(path: str | Path) -> int:
    """Planes of the TIFF ``path`` if it is a stack, else 0 (reads the header only)."""
    try:
        with silenced_logger("tifffile"), tifffile.TiffFile(path) as tif:
            layout = tiff_stack_layout(*tiff_series(tif, Path(path))[:2])
    except (tifffile.TiffFileError, ValueError, OSError, IndexError, ImageReadError):
        return 0  # not a readable TIFF: the image reader will say why
    return layout[0] if layout else 0


def read_plane(path: str | Path, index: int, *, white: White = "dtype") -> torch.Tensor:
    """Plane ``index`` of a TIFF stack as ``(C, H, W)`` in ``[0, 1]``, decoding that plane only.

    ``white="max"`` is then the plane's own maximum (:class:`Stack` uses the whole stack's).
    """
    return _decode(Path(path), white, key=index).plane(0)


def _decode(path: Path, white: White, key: int | None) -> Stack:
    """The stack in ``path``, or only its plane ``key`` (as a one-plane stack)."""
    try:
        with silenced_logger("tifffile"), tifffile.TiffFile(path) as tif:
            shape, axes, read = tiff_series(tif, path)
            layout = tiff_stack_layout(shape, axes)
            if layout is None:
                raise ImageReadError(
                    f"{path}: not a stack of 2-D planes ({axes} {shape}); read it as an image"
                )
            if key is not None and not 0 <= key < layout[0]:
                raise ImageReadError(
                    f"{path}: no plane {key} in a stack of {layout[0]}; re-list the folder"
                )
            samples = read(key)
            extra = _extra_tags(tif)
            imagej = tif.is_imagej
    except (tifffile.TiffFileError, ValueError, OSError, IndexError) as exc:
        raise ImageReadError(
            f"{path}: corrupt or truncated TIFF ({exc}); re-export the file"
        ) from exc
    samples = tiff_samples(path, samples)
    dtype, rgb = samples.dtype.name, layout[1]
    samples = samples.reshape(-1, *samples.shape[-3:] if rgb else samples.shape[-2:])
    scale = resolve_white(path, samples, dtype, white)
    return Stack(samples, StackMeta(path, shape, axes, dtype, scale, rgb, imagej, extra))


def _extra_tags(tif: tifffile.TiffFile) -> dict[str, Any]:
    """Pixel size (X/Y resolution and unit), ImageJ calibration, OME-XML and GeoTIFF tags of ``tif``, to write back."""
    page = tif.pages[0]
    extra: dict[str, Any] = {"tiff": read_tiff_metadata(tif)}
    if "XResolution" in page.tags and "YResolution" in page.tags:
        extra["resolution"] = page.get_resolution()
        extra["resolutionunit"] = page.resolutionunit
    for key, value in (tif.imagej_metadata or {}).items():
        if key in _IMAGEJ_KEYS:
            extra[key] = value
    return extra
