"""TIFF metadata and layouts kept through processing: OME-XML, GeoTIFF tags, multi-band images (issue 22)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from eid.data.bands import bands_first, interleaved, to_bands_first
from eid.data.io import read_image, write_image
from eid.data.metadata import tiff_metadata
from eid.data.stacks import Stack, read_plane
from eid.inference import Dehazer, dehaze_paths

OME = {
    "axes": "CZYX", "PhysicalSizeX": 0.25, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": 0.25,
    "PhysicalSizeYUnit": "µm", "PhysicalSizeZ": 1.5, "PhysicalSizeZUnit": "µm",
    "Channel": {"Name": ["DAPI", "GFP", "mCherry"]},
}  # fmt: skip
GEOTAGS = [
    (33550, 12, 3, (30.0, 30.0, 0.0), True),
    (33922, 12, 6, (0.0, 0.0, 0.0, 440720.0, 3751320.0, 0.0), True),
    (34735, 3, 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32611), True),
    (34737, 2, 0, "WGS 84 / UTM zone 11N|", True),
    (42113, 2, 0, "0", True),
]


#: Stacks keep TIFF metadata and read bands once eid.data.stacks calls eid.data.bands and eid.data.metadata.


def _invert() -> Dehazer:
    return Dehazer.from_module(lambda y: 1 - y, device="cpu", white="dtype")


def _ome_summary(path) -> tuple:
    with tifffile.TiffFile(path) as tif:
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
        names = [c["Name"] for c in pixels["Channel"]]
        sizes = {k: pixels.get(k) for k in OME if k.startswith("Physical")}
        return tif.is_ome, tif.series[0].axes, tif.series[0].shape, names, sizes


def test_ome_z_stack_keeps_its_metadata_through_dehaze(tmp_path):
    stack = np.random.default_rng(0).integers(0, 4096, (3, 4, 24, 32), dtype=np.uint16)
    (tmp_path / "in").mkdir()
    tifffile.imwrite(
        tmp_path / "in" / "cells.ome.tif", stack, ome=True, photometric="minisblack", metadata=OME
    )
    assert dehaze_paths([tmp_path / "in"], tmp_path / "out", _invert()) == 0
    out = tmp_path / "out" / "cells.ome.tif"
    assert _ome_summary(out) == _ome_summary(tmp_path / "in" / "cells.ome.tif")
    assert _ome_summary(out)[:3] == (True, "CZYX", (3, 4, 24, 32))
    np.testing.assert_array_equal(tifffile.imread(out), 65535 - stack)


def test_ome_2d_image_keeps_its_metadata(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 65536, (20, 24, 3), dtype=np.uint16)
    metadata = {"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "Name": "slide"}
    tifffile.imwrite(tmp_path / "a.ome.tif", rgb, ome=True, photometric="rgb", metadata=metadata)
    x, meta = read_image(tmp_path / "a.ome.tif")
    write_image(tmp_path / "b.ome.tif", x, meta)
    assert tiff_metadata(tmp_path / "b.ome.tif") == tiff_metadata(tmp_path / "a.ome.tif")
    assert tiff_metadata(tmp_path / "b.ome.tif").ome["Name"] == "slide"


def test_geotiff_keys_are_copied(tmp_path):
    grey = np.random.default_rng(2).integers(0, 65536, (16, 20), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", grey, extratags=GEOTAGS)
    x, meta = read_image(tmp_path / "in.tif")
    write_image(tmp_path / "out.tif", 1 - x, meta)
    with tifffile.TiffFile(tmp_path / "in.tif") as a, tifffile.TiffFile(tmp_path / "out.tif") as b:
        assert b.is_geotiff and b.pages.first.geotiff_tags == a.pages.first.geotiff_tags
        assert b.pages.first.tags[42113].value == "0"


def test_six_band_image_is_processed_band_by_band(tmp_path):
    bands = np.random.default_rng(3).integers(0, 4096, (20, 28, 6), dtype=np.uint16)
    bands[..., 5] = (
        0  # the read scale is the whole image's, as for a stack: band 5 stays black, not stretched
    )
    (tmp_path / "in").mkdir()
    tifffile.imwrite(
        tmp_path / "in" / "scene.tif",
        bands,
        photometric="minisblack",
        planarconfig="contig",
        extratags=GEOTAGS,
    )
    stack = Stack.read(tmp_path / "in" / "scene.tif", white=4095)
    assert len(stack) == 6 and torch.equal(
        stack.plane(2)[0], torch.from_numpy(bands[..., 2] / np.float32(4095))
    )
    assert read_plane(tmp_path / "in" / "scene.tif", 4, white=4095).shape == (1, 20, 28)
    halve = Dehazer.from_module(lambda y: y * 0.5, device="cpu", white=4095)
    assert dehaze_paths([tmp_path / "in"], tmp_path / "out", halve) == 0
    out = Stack.read(tmp_path / "out" / "scene.tif")
    for band in range(6):
        np.testing.assert_array_equal(
            out.samples[band], np.rint(bands[..., band] * 0.5).astype(np.uint16)
        )


def test_six_band_result_is_interleaved_with_its_geotags(tmp_path):
    bands = np.random.default_rng(4).integers(0, 4096, (2, 20, 28, 6), dtype=np.uint16)
    tifffile.imwrite(
        tmp_path / "scene.tif",
        bands,
        photometric="minisblack",
        planarconfig="contig",
        extratags=GEOTAGS,
        metadata={"axes": "ZYXS"},
    )
    Stack.read(tmp_path / "scene.tif").write(tmp_path / "copy.tif")
    with tifffile.TiffFile(tmp_path / "copy.tif") as tif:
        assert len(tif.pages) == 2 and tif.series[0].axes == "ZYXS" and tif.is_geotiff
        np.testing.assert_array_equal(tif.asarray(), bands)


@pytest.mark.parametrize(("shape", "axes"), [((5, 6, 7), "YXS"), ((2, 5, 6, 7), "ZYXS")])
def test_bands_first_round_trip(shape, axes):
    samples = np.arange(np.prod(shape)).reshape(shape)
    first_shape, first_axes = bands_first(shape, axes)
    first = to_bands_first(samples)
    assert first.shape == first_shape
    stored, stored_axes = interleaved(first, first_axes)
    assert stored_axes == axes and np.array_equal(stored, samples)
