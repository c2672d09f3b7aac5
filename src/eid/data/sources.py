"""Training images: every image file of folders and globs, and every plane of a TIFF stack (z-slices, time
points, channels: :mod:`eid.data.stacks`), as one :class:`ImageSource` each, read alone when needed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from eid.data.io import read_image
from eid.data.listing import list_images
from eid.data.scale import White
from eid.data.stacks import read_plane, stack_planes
from eid.errors import EIDError

__all__ = ["ImageSource", "data_channels", "image_sources", "read_source", "require_sources"]


@dataclass(frozen=True)
class ImageSource:
    """One training image: an image file, or plane ``plane`` of a TIFF stack (:mod:`eid.data.stacks`)."""

    path: Path
    plane: int | None = None

    @property
    def name(self) -> str:
        return self.path.stem if self.plane is None else f"{self.path.stem}_{self.plane:04d}"


def image_sources(inputs: str | Path | Sequence[str | Path]) -> list[ImageSource]:
    """The images of files, folders and globs, every plane of a TIFF stack being one image."""
    sources = []
    for path in list_images(inputs if isinstance(inputs, (list, tuple)) else [inputs]):
        planes = stack_planes(path) if path.suffix.lower() in (".tif", ".tiff") else 0
        sources += (
            [ImageSource(path, plane) for plane in range(planes)] if planes else [ImageSource(path)]
        )
    return sources


def read_source(
    source: ImageSource, max_pixels: int | None = None, white: White = "dtype"
) -> torch.Tensor:
    """The image ``source`` as ``(C, H, W)`` in [0, 1] (:func:`eid.data.io.read_image`, :func:`read_plane`)."""
    if source.plane is None:
        return read_image(source.path, max_pixels=max_pixels, white=white)[0]
    return read_plane(source.path, source.plane, white=white)


def data_channels(sets: Mapping[str, Sequence[str | Path]]) -> int:
    """Channels of a model for these image sets: 1 when the first image of every set is grey, else 3.

    ``sets`` maps each command-line option to its folders/globs (for the error message).
    """
    channels = 1
    for option, inputs in sets.items():
        sources = image_sources([str(p) for p in inputs])
        if not sources:
            raise EIDError(f"no images found in {', '.join(map(str, inputs))}; check {option}")
        channels = max(channels, read_source(sources[0]).shape[0])
    return channels


def require_sources(folder: str | Path | Sequence[str | Path], what: str) -> list[ImageSource]:
    """:func:`image_sources` of ``folder``; none is an error naming the folder and the ``what`` images expected."""
    sources = image_sources(folder)
    if not sources:
        raise EIDError(f"{folder}: no {what} images found; point to a folder of png/jpg/tif images")
    return sources
