"""Every command's view of an input file: its 2-D planes, one for an image, one per plane for a TIFF stack.

:func:`read_planes` reads a file either way (a 2-D image through :func:`eid.data.io.read_image`, a stack
through :class:`eid.data.stacks.Stack`, on one read scale for all its planes) and :class:`PlaneWriter` writes
processed planes back in the form they were read, atomically. ``eid dehaze``, ``evaluate`` and ``synth`` read
their inputs here, so no command tells stacks from images by catching :class:`~eid.errors.TiffStackError`.

>>> import tempfile, pathlib, tifffile, numpy as np
>>> path = pathlib.Path(tempfile.mkdtemp()) / "z.tif"
>>> tifffile.imwrite(path, np.full((3, 4, 5), 200, np.uint8), photometric="minisblack", metadata={"axes": "ZYX"})
>>> [(index, tuple(plane.shape)) for index, plane in iter_planes(path)]
[(0, (1, 4, 5)), (1, (1, 4, 5)), (2, (1, 4, 5))]
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from eid.data.io import ImageMeta, read_image, write_image
from eid.data.listing import list_images
from eid.data.scale import DTYPE_WHITE, White
from eid.data.stacks import Stack
from eid.errors import ImageReadError, TiffStackError

__all__ = ["ImageFile", "PlaneWriter", "dim_scale_hint", "iter_planes", "read_planes"]


@dataclass
class ImageFile:
    """An input file as 2-D planes: a 2-D ``image`` with its ``meta``, or a TIFF ``stack``.

    Planes are ``(C, H, W)`` float32 tensors in ``[0, 1]``; an image is one plane, index 0.
    """

    path: Path
    image: Tensor | None = None
    meta: ImageMeta | None = None
    stack: Stack | None = None

    @property
    def is_stack(self) -> bool:
        """Whether the file is a TIFF stack (its planes are named ``name[index]``)."""
        return self.stack is not None

    def __len__(self) -> int:
        return len(self.stack) if self.stack is not None else 1

    def plane(self, index: int) -> Tensor:
        """Plane ``index`` as ``(C, H, W)`` in ``[0, 1]``."""
        if self.stack is not None:
            return self.stack.plane(index)
        if index != 0:
            raise IndexError(f"{self.path}: a 2-D image has plane 0 only, not {index}")
        return self.image

    def __iter__(self) -> Iterator[tuple[int, Tensor]]:
        """``(index, plane)`` for every plane, in order."""
        return ((index, self.plane(index)) for index in range(len(self)))

    def name(self, base: str, index: int) -> str:
        """What a plane is called in records and tables: ``base`` for an image, ``base[index]`` for a stack's."""
        return f"{base}[{index}]" if self.is_stack else base

    @property
    def dtype(self) -> str:
        """The stored sample type (``uint8``, ``uint16``, ``float32``...)."""
        return self.stack.meta.dtype if self.stack is not None else self.meta.dtype

    def peak(self) -> float:
        """The largest stored sample value of the first plane (on the file's own scale, not ``[0, 1]``)."""
        if self.stack is not None:
            return float(self.stack.samples[0].max())
        return float(self.image.max()) * self.meta.white

    def writer(self, in_place: bool = False) -> PlaneWriter:
        """A :class:`PlaneWriter` for processed planes of this file.

        ``in_place`` stores them in this file's own samples (no copy; its planes then read as the processed
        ones), for callers that read each plane before they replace it.
        """
        return PlaneWriter(self, in_place)

    def write(self, path: str | Path) -> Path:
        """Write the planes as read, in the same form (a copy of the input), atomically."""
        return self.writer(in_place=True).write(path)


class PlaneWriter:
    """Processed planes of an :class:`ImageFile`, written in its form: an image as :func:`eid.data.io.write_image`
    writes it (format, bit depth, alpha), a stack with its layout, sample type and calibration; atomically.

    ``writer[index] = plane`` stores a ``(C, H, W)`` plane in ``[0, 1]``; planes not set keep the input's.
    """

    def __init__(self, source: ImageFile, in_place: bool = False) -> None:
        self.source = source
        self._image = source.image
        self._stack = source.stack
        if self._stack is not None and not in_place:
            self._stack = Stack(self._stack.samples.copy(), self._stack.meta)

    def __setitem__(self, index: int, plane: Tensor) -> None:
        if self._stack is not None:
            self._stack.set_plane(index, plane)
        elif index != 0:
            raise IndexError(f"{self.source.path}: a 2-D image has plane 0 only, not {index}")
        else:
            self._image = plane

    def write(self, path: str | Path) -> Path:
        """Write the planes to ``path`` atomically; returns ``path``."""
        if self._stack is not None:
            return self._stack.write(path)
        return write_image(path, self._image, self.source.meta)


def read_planes(
    path: str | Path,
    *,
    white: White = "dtype",
    max_pixels: int | None = None,
    first_only: bool = False,
) -> ImageFile:
    """Read the image file ``path`` as planes (:class:`ImageFile`); ``white`` and ``max_pixels`` as in
    :func:`eid.data.io.read_image` (``max_pixels`` bounds a stack's plane size, ``white="max"`` is a stack's
    maximum over all planes). ``first_only`` reads a stack's first plane only (``max``: that plane's).

    Raises :class:`~eid.errors.ImageReadError` (with the file name) for a file that cannot be read.
    """
    path = Path(path)
    try:
        image, meta = read_image(path, max_pixels=max_pixels, white=white)
    except TiffStackError:  # the one place that tells stacks from images
        return ImageFile(path, stack=Stack.read(path, white=white, plane=0 if first_only else None))
    return ImageFile(path, image=image, meta=meta)


def iter_planes(
    path: str | Path, *, white: White = "dtype", max_pixels: int | None = None
) -> Iterator[tuple[int, Tensor]]:
    """``(index, plane)`` of every plane of the file ``path`` (:func:`read_planes`): one for an image."""
    return iter(read_planes(path, white=white, max_pixels=max_pixels))


def dim_scale_hint(inputs: Sequence[str | Path], white: White) -> str | None:
    """A hint when the first image of ``inputs`` (a stack: its first plane), read with ``white="dtype"``, uses
    under 1/16 of its range.

    12-bit microscopy in 16-bit files reads as values below 0.0625: the networks would see a nearly black image.
    """
    paths = list_images([str(p) for p in inputs])
    if white != "dtype" or not paths:
        return None
    try:
        first = read_planes(paths[0], first_only=True)
    except ImageReadError:  # the command reports unreadable files itself
        return None
    peak, dtype = first.peak(), first.dtype
    if dtype not in ("uint8", "uint16") or peak * 16 >= DTYPE_WHITE[dtype] or peak == 0:
        return None  # an all-black image says nothing about the scale
    suggested = 2 ** max(1, math.ceil(math.log2(peak + 1))) - 1
    return (
        f"{paths[0]}: its {dtype} samples reach only {peak:.0f} of {DTYPE_WHITE[dtype]:.0f}; pass --white {suggested} "
        "(or max) to read the images at their full contrast"
    )
