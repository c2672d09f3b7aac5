"""The plane iterator and writer every command reads its inputs with: an image is one plane, a stack many."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from eid.data.io import read_image
from eid.data.planes import iter_planes, read_planes
from eid.data.stacks import Stack
from eid.errors import ImageReadError


@pytest.fixture
def zstack(tmp_path):
    """A 12-bit z-stack of 4 grey planes of 6x7 in a 16-bit TIFF, with a pixel size."""
    samples = np.random.default_rng(0).integers(0, 4096, (4, 6, 7), dtype=np.uint16)
    path = tmp_path / "z.tif"
    tifffile.imwrite(
        path, samples, photometric="minisblack", metadata={"axes": "ZYX"}, resolution=(2.0, 2.0)
    )
    return path, samples


def test_an_image_is_one_plane_with_index_0(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (5, 9, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    planes = list(iter_planes(tmp_path / "a.png"))
    assert [index for index, _ in planes] == [0]
    torch.testing.assert_close(planes[0][1], read_image(tmp_path / "a.png")[0], rtol=0, atol=0)
    source = read_planes(tmp_path / "a.png")
    assert not source.is_stack and len(source) == 1 and source.name("a.png", 0) == "a.png"
    with pytest.raises(IndexError):
        source.plane(1)


def test_a_stack_gives_its_planes_in_order_on_one_scale(zstack):
    path, _ = zstack
    source = read_planes(path, white="max")
    reference = Stack.read(path, white="max")
    assert source.is_stack and len(source) == 4 and source.dtype == "uint16"
    for index, plane in source:
        torch.testing.assert_close(plane, reference.plane(index), rtol=0, atol=0)
    assert [source.name("z.tif", i) for i in range(2)] == ["z.tif[0]", "z.tif[1]"]
    assert (
        float(max(plane.max() for _, plane in source)) == 1.0
    )  # the stack's maximum, not each plane's


def test_the_writer_keeps_the_stack_layout_and_leaves_the_input_alone(zstack, tmp_path):
    path, samples = zstack
    source = read_planes(path, white=4095)
    out = source.writer()
    for index, plane in source:
        out[index] = 1 - plane
    out.write(tmp_path / "out.tif")
    source.write(tmp_path / "copy.tif")
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        np.testing.assert_array_equal(tif.asarray(), 4095 - samples)
        assert tif.pages[0].get_resolution() == (2.0, 2.0)
    np.testing.assert_array_equal(
        tifffile.imread(tmp_path / "copy.tif"), samples
    )  # the source is unchanged
    assert not list(tmp_path.glob("*.tmp*"))


def test_the_writer_writes_an_image_as_its_input_was_stored(tmp_path):
    grey = np.random.default_rng(2).integers(0, 65536, (8, 8), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "g.tif", grey)
    source = read_planes(tmp_path / "g.tif")
    out = source.writer()
    out[0] = torch.zeros_like(source.plane(0))
    out.write(tmp_path / "black.tif")
    written = tifffile.imread(tmp_path / "black.tif")
    assert written.dtype == np.uint16 and written.shape == grey.shape and not written.any()
    with pytest.raises(IndexError):
        out[1] = source.plane(0)


def test_first_only_reads_one_plane_and_peak_is_in_stored_units(zstack):
    path, samples = zstack
    first = read_planes(path, first_only=True)
    assert len(first) == 1 and first.peak() == float(samples[0].max())
    assert read_planes(path).peak() == float(samples[0].max())


def test_unreadable_files_and_oversized_planes_raise_read_errors(zstack, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match="bad.png"):
        read_planes(tmp_path / "bad.png")
    with pytest.raises(ImageReadError, match="z.tif"):
        read_planes(zstack[0], max_pixels=10)  # a plane of 6x7 is over the limit
