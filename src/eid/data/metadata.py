"""TIFF metadata carried from an input to its processed copy: OME-XML (microscopy) and GeoTIFF tags (remote sensing).

A dehazed or hazed copy holds the same scene on the same grid, so what describes the scene stays true: the
channel names, pixel sizes (X, Y and Z) and time step of an OME-TIFF, and the georeferencing of a GeoTIFF. The
OME-XML is written anew by tifffile (``ome=True``) from the kept attributes, so that its pixel layout (planes, IFDs,
UUID) describes the new file; GeoTIFF tags are copied as they are. tifffile decides OME by the ``.ome.tif`` suffix
only when ``ome`` is not given, and an atomic write's temporary name lacks it: ``ome`` is always explicit here.

>>> import tempfile, pathlib, numpy as np
>>> path = pathlib.Path(tempfile.mkdtemp()) / "z.ome.tif"
>>> tifffile.imwrite(path, np.zeros((2, 4, 4), np.uint16), ome=True, photometric="minisblack",
...                  metadata={"axes": "ZYX", "PhysicalSizeZ": 1.5, "Channel": {"Name": "DAPI"}})
>>> meta = tiff_metadata(path)
>>> meta.ome["PhysicalSizeZ"], meta.ome["Channel"], tiff_write_options("ZYX", meta)["ome"]
(1.5, [{'Name': 'DAPI'}], True)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tifffile

#: GeoTIFF and GDAL tags: georeferencing (pixel scale, tie points, transformation, geokeys) and no-data value.
GEOTIFF_TAGS = (33550, 33922, 34264, 34735, 34736, 34737, 42112, 42113)
#: OME Image/Pixels attributes kept: they describe the scene, not the file (tifffile's OME writer takes them).
_OME_IMAGE_KEYS = (
    "Name", "Description", "PhysicalSizeX", "PhysicalSizeXUnit", "PhysicalSizeY", "PhysicalSizeYUnit",
    "PhysicalSizeZ", "PhysicalSizeZUnit", "TimeIncrement", "TimeIncrementUnit",
)  # fmt: skip
_OME_CHANNEL_KEYS = (
    "Name", "AcquisitionMode", "Color", "ContrastMethod", "EmissionWavelength", "EmissionWavelengthUnit",
    "ExcitationWavelength", "ExcitationWavelengthUnit", "Fluor", "IlluminationType", "NDFilter", "PinholeSize",
    "PinholeSizeUnit", "PockelCellSetting",
)  # fmt: skip


@dataclass(frozen=True)
class TiffMetadata:
    """What a processed copy of a TIFF keeps besides its samples and layout.

    :param ome: OME attributes of the first image (``Name``, ``PhysicalSizeX``..., ``Channel``: one dict per
        channel), or ``None`` when the file is not an OME-TIFF.
    :param geotags: GeoTIFF tags as tifffile ``extratags`` entries ``(code, type, count, value, writeonce)``.
    """

    ome: dict[str, Any] | None = None
    geotags: tuple[tuple[int, int, int, Any, bool], ...] = ()


def read_tiff_metadata(tif: tifffile.TiffFile) -> TiffMetadata:
    """The OME attributes and GeoTIFF tags of the open file ``tif``."""
    page = tif.pages.first
    geotags = tuple(
        (code, int(tag.dtype), tag.count, tag.value, True)
        for code in GEOTIFF_TAGS
        if (tag := page.tags.get(code))
    )
    return TiffMetadata(_ome_attributes(tif.ome_metadata) if tif.is_ome else None, geotags)


def tiff_metadata(path: str | Path) -> TiffMetadata:
    """:func:`read_tiff_metadata` of the file ``path`` (reads the first page's tags only)."""
    with tifffile.TiffFile(path) as tif:
        return read_tiff_metadata(tif)


def _ome_attributes(xml: str | None) -> dict[str, Any] | None:
    """The kept attributes of the first OME image in ``xml`` (``None`` if it holds no image)."""
    images = tifffile.xml2dict(xml or "").get("OME", {}).get("Image")
    if not images:
        return None
    image = images[0] if isinstance(images, list) else images
    pixels = image.get("Pixels", {})
    merged = {**image, **pixels}
    kept = {key: merged[key] for key in _OME_IMAGE_KEYS if merged.get(key) is not None}
    channels = pixels.get("Channel", [])
    channels = channels if isinstance(channels, list) else [channels]
    described = [{k: c[k] for k in _OME_CHANNEL_KEYS if c.get(k) is not None} for c in channels]
    if any(described):
        kept["Channel"] = described
    return kept


def tiff_write_options(
    axes: str, metadata: TiffMetadata | None, bands: bool = False
) -> dict[str, Any]:
    """Keyword arguments of ``tifffile.imwrite`` that write ``metadata`` with an array of ``axes``.

    :param bands: the samples axis ``S`` holds more than 4 bands (multispectral): written interleaved in one
        page, as GIS software expects, rather than as a page per row.
    """
    metadata = metadata or TiffMetadata()
    options: dict[str, Any] = {
        "metadata": {**(metadata.ome or {}), "axes": axes},
        "ome": metadata.ome is not None,
    }
    if metadata.geotags:
        options["extratags"] = list(metadata.geotags)
    if bands:
        options["planarconfig"] = "contig"
    return options
