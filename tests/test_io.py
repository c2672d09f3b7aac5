"""eid.data.io: every supported format and mode, round trips, and every class of bad input."""

from __future__ import annotations

import dataclasses
import struct
import zlib

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from eid.data.io import image_meta_for, read_image, write_image
from eid.data.listing import check_not_input, check_output_dir, iter_inputs, list_images
from eid.data.planes import dim_scale_hint
from eid.data.scale import parse_white
from eid.errors import EIDError, ImageReadError


@pytest.fixture
def rgb8() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".webp", ".tif"])
def test_lossless_rgb8_round_trip(tmp_path, rgb8, suffix):
    path = tmp_path / f"a{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, rgb8, photometric="rgb")
    else:
        Image.fromarray(rgb8).save(path, **({"lossless": True} if suffix == ".webp" else {}))
    x, meta = read_image(path)
    assert x.shape == (3, 9, 13) and x.dtype == torch.float32
    assert meta.dtype == "uint8" and meta.channels == 3 and not meta.has_alpha
    np.testing.assert_array_equal(np.rint(x.permute(1, 2, 0).numpy() * 255).astype(np.uint8), rgb8)
    out = write_image(tmp_path / f"out{suffix}", x, meta)
    y, meta_out = read_image(out)
    assert torch.equal(x, y) and meta_out.dtype == "uint8"


def test_jpeg_reads_close(tmp_path, rgb8):
    smooth = np.repeat(np.repeat(rgb8[:2, :2], 8, 0), 8, 1)
    Image.fromarray(smooth).save(tmp_path / "a.jpg", quality=98, subsampling=0)
    x, meta = read_image(tmp_path / "a.jpg")
    assert meta.format == "JPEG" and x.shape == (3, 16, 16)
    assert abs(x.permute(1, 2, 0).numpy() * 255 - smooth).mean() < 3


def test_grey8_stays_single_channel(tmp_path):
    grey = np.arange(60, dtype=np.uint8).reshape(6, 10) * 4
    Image.fromarray(grey).save(tmp_path / "g.png")
    x, meta = read_image(tmp_path / "g.png")
    assert x.shape == (1, 6, 10) and meta.channels == 1
    write_image(tmp_path / "o.png", x, meta)
    assert Image.open(tmp_path / "o.png").mode == "L"
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "o.png")), grey)


def test_grey16_png_and_tiff_keep_16_bits(tmp_path):
    grey = np.random.default_rng(1).integers(0, 65536, (7, 11), dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    tifffile.imwrite(tmp_path / "g16.tif", grey)
    for name in ("g16.png", "g16.tif"):
        x, meta = read_image(tmp_path / name)
        assert meta.dtype == "uint16" and meta.white == 65535 and x.shape == (1, 7, 11)
        out = write_image(tmp_path / f"out_{name}", x, meta)
        y, meta_out = read_image(out)
        assert meta_out.dtype == "uint16"
        np.testing.assert_array_equal(np.rint(y[0].numpy() * 65535).astype(np.uint16), grey)


def test_rgb16_tiff_and_png_round_trip(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", rgb, photometric="rgb")
    x, meta = read_image(tmp_path / "c.tif")
    assert meta.dtype == "uint16" and x.shape == (3, 5, 6)
    for name in ("o.tif", "o.png"):
        y, meta_y = read_image(write_image(tmp_path / name, x, meta))
        assert meta_y.dtype == "uint16"
        np.testing.assert_array_equal(
            np.rint(y.permute(1, 2, 0).numpy() * 65535).astype(np.uint16), rgb
        )


def _png_with_filters(path, array: np.ndarray, colour_type: int) -> None:
    """Encode a 16-bit PNG using every scanline filter type in turn (reference encoder for the test)."""
    height = array.shape[0]
    rows = array.astype(">u2").reshape(height, -1).view(np.uint8).astype(np.int32)
    bpp = array.shape[2] * 2
    raw = b""
    prev = np.zeros(rows.shape[1], np.int32)
    for y, row in enumerate(rows):
        kind = y % 5
        left = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
        corner = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        if kind == 0:
            filt = row
        elif kind == 1:
            filt = row - left
        elif kind == 2:
            filt = row - prev
        elif kind == 3:
            filt = row - (left + prev) // 2
        else:
            p = left + prev - corner
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - corner)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, corner))
            filt = row - pred
        raw += bytes([kind]) + (filt & 0xFF).astype(np.uint8).tobytes()
        prev = row

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", array.shape[1], height, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_rgba16_png_with_all_filters_is_decoded_exactly(tmp_path):
    rgba = np.random.default_rng(3).integers(0, 65536, (10, 7, 4), dtype=np.uint16)
    _png_with_filters(tmp_path / "f.png", rgba, colour_type=6)
    x, meta = read_image(tmp_path / "f.png")
    assert meta.dtype == "uint16" and meta.has_alpha and x.shape == (3, 10, 7)
    np.testing.assert_array_equal(
        np.rint(x.permute(1, 2, 0).numpy() * 65535).astype(np.uint16), rgba[..., :3]
    )
    np.testing.assert_array_equal(meta.alpha, rgba[..., 3])


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_libpng_16_bit_png_round_trip_is_exact(tmp_path, channels):
    imagecodecs = pytest.importorskip("imagecodecs")
    pixels = np.random.default_rng(4).integers(0, 65536, (11, 9, channels), dtype=np.uint16)
    (tmp_path / "in.png").write_bytes(imagecodecs.png_encode(pixels))
    x, meta = read_image(tmp_path / "in.png")
    assert (
        meta.dtype == "uint16"
        and meta.has_alpha == (channels != 3)
        and x.shape[0] == (1 if channels == 2 else 3)
    )
    out = write_image(tmp_path / "out.png", x, meta)
    np.testing.assert_array_equal(imagecodecs.png_decode(out.read_bytes()), pixels)


def test_float32_tiff(tmp_path):
    data = np.random.default_rng(4).random((8, 8)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", data)
    x, meta = read_image(tmp_path / "f.tif")
    assert meta.dtype == "float32" and meta.white == 1.0
    np.testing.assert_allclose(x[0].numpy(), data)
    y, meta_y = read_image(write_image(tmp_path / "o.tif", x, meta))
    assert meta_y.dtype == "float32" and torch.equal(x, y)


def test_float_tiff_above_one_uses_its_maximum(tmp_path):
    tifffile.imwrite(tmp_path / "f.tif", np.array([[0, 500.0], [1000.0, 250]], np.float32))
    x, meta = read_image(tmp_path / "f.tif")
    assert meta.white == 1000.0 and float(x.max()) == 1.0
    y, _ = read_image(write_image(tmp_path / "o.tif", x, meta))
    assert torch.allclose(x, y)


def test_microscopy_white_max(tmp_path):
    img = np.zeros((8, 8), np.uint16)
    img[2:4, 2:4] = 235
    tifffile.imwrite(tmp_path / "n.tif", img)
    x, meta = read_image(tmp_path / "n.tif", white="max")
    assert float(x.max()) == 1.0 and meta.white == 235
    write_image(tmp_path / "o.tif", x, meta)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o.tif"), img)


def test_white_values_and_a_scale_above_the_file_range_saturates(tmp_path):
    assert (parse_white("dtype"), parse_white("max"), parse_white("4095"), parse_white(4095)) == (
        "dtype",
        "max",
        4095.0,
        4095.0,
    )
    for bad in ("x", 0, "-1", float("inf")):
        with pytest.raises(EIDError, match="is not valid; use dtype, max or a positive number"):
            parse_white(bad)
    twelve_bit = np.array([[0, 1000], [4095, 2048]], np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", twelve_bit)
    x, meta = read_image(tmp_path / "c.tif", white=4095)
    assert float(x.max()) == 1.0 and meta.white == 4095.0
    write_image(tmp_path / "o.tif", x, meta)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o.tif"), twelve_bit)
    eight_bit = dataclasses.replace(image_meta_for(x), white=1000.0)  # 1000 does not fit 8 bits
    write_image(tmp_path / "s.png", x, eight_bit)
    assert np.asarray(Image.open(tmp_path / "s.png")).tolist() == [
        [0, 244],
        [255, 255],
    ]  # 1000 x [0, 0.244; 1, 0.5]


def test_a_dim_16_bit_set_gets_a_scale_hint(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.array([[0, 3000]], np.uint16))
    assert dim_scale_hint([tmp_path], "dtype") == (
        f"{tmp_path / 'a.tif'}: its uint16 samples reach only 3000 of 65535; pass --white 4095 (or max) to read the "
        "images at their full contrast"
    )
    assert dim_scale_hint([tmp_path], 4095) is None
    tifffile.imwrite(
        tmp_path / "a.tif", np.array([[0, 4096]], np.uint16)
    )  # 1/16 of the range: not dim
    assert dim_scale_hint([tmp_path], "dtype") is None


def test_rgba_alpha_is_carried_untouched(tmp_path, rgb8):
    alpha = np.random.default_rng(5).integers(0, 256, rgb8.shape[:2], dtype=np.uint8)
    Image.fromarray(np.dstack([rgb8, alpha]), "RGBA").save(tmp_path / "a.png")
    x, meta = read_image(tmp_path / "a.png")
    assert x.shape[0] == 3 and meta.has_alpha
    write_image(tmp_path / "o.png", 1 - x, meta)
    out = np.asarray(Image.open(tmp_path / "o.png"))
    assert out.shape[-1] == 4
    np.testing.assert_array_equal(out[..., 3], alpha)


def test_grey_alpha_and_palette_and_cmyk(tmp_path, rgb8):
    la = Image.fromarray(np.dstack([rgb8[..., 0], rgb8[..., 1]]), "LA")
    la.save(tmp_path / "la.png")
    x, meta = read_image(tmp_path / "la.png")
    assert x.shape[0] == 1 and meta.has_alpha
    Image.fromarray(rgb8).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    x, meta = read_image(tmp_path / "p.png")
    assert x.shape[0] == 3 and meta.mode == "P"
    Image.fromarray(rgb8).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    x, meta = read_image(tmp_path / "c.jpg")
    assert x.shape[0] == 3 and meta.mode == "CMYK"
    expected = np.asarray(Image.fromarray(rgb8).convert("CMYK").convert("RGB")).astype(np.float32)
    assert abs(x.permute(1, 2, 0).numpy() * 255 - expected).mean() < 8


def test_exif_orientation_is_applied(tmp_path):
    img = np.zeros((4, 6, 3), np.uint8)
    img[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(img).save(tmp_path / "o.jpg", exif=exif, quality=100)
    x, _ = read_image(tmp_path / "o.jpg")
    assert x.shape == (3, 6, 4)
    assert x[:, 0, -1].mean() > 0.8  # the top-left pixel moved to the top-right


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"this is not an image at all", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "PNG"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    text = str(err.value)
    assert str(path) in text and "\n" not in text
    if message != "PNG":
        assert message in text


def test_truncated_png_and_tiff(tmp_path, rgb8):
    Image.fromarray(rgb8).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="t.png"):
        read_image(tmp_path / "t.png")
    tifffile.imwrite(tmp_path / "a.tif", rgb8, photometric="rgb")
    data = (tmp_path / "a.tif").read_bytes()
    (tmp_path / "t.tif").write_bytes(data[:20])
    with pytest.raises(ImageReadError, match="t.tif"):
        read_image(tmp_path / "t.tif")


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "nope.png")


def test_nan_in_float_tiff(tmp_path):
    data = np.ones((4, 4), np.float32)
    data[1, 1] = np.nan
    tifffile.imwrite(tmp_path / "n.tif", data)
    with pytest.raises(ImageReadError, match="NaN or Inf"):
        read_image(tmp_path / "n.tif")
    data[1, 1] = np.inf
    tifffile.imwrite(tmp_path / "i.tif", data)
    with pytest.raises(ImageReadError, match="NaN or Inf"):
        read_image(tmp_path / "i.tif")


def test_pixel_limit_and_minimum_size(tmp_path, rgb8):
    Image.fromarray(rgb8).save(tmp_path / "a.png")
    with pytest.raises(ImageReadError, match="too large.*--max-pixels"):
        read_image(tmp_path / "a.png", max_pixels=100)
    assert read_image(tmp_path / "a.png", max_pixels=117)[0].shape == (3, 9, 13)
    with pytest.raises(ImageReadError, match="too small"):
        read_image(tmp_path / "a.png", min_size=96)


def test_multipage_tiff_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((5, 8, 8), np.uint16))
    with pytest.raises(ImageReadError, match="stack"):
        read_image(tmp_path / "s.tif")


def test_jpeg_output_is_8bit_and_drops_alpha(tmp_path):
    x = torch.rand(3, 8, 8)
    meta = image_meta_for(x, "uint16")
    y, m = read_image(write_image(tmp_path / "o.jpg", x, meta))
    assert m.dtype == "uint8" and y.shape == x.shape


def test_write_is_atomic_on_failure(tmp_path):
    target = tmp_path / "keep.png"
    write_image(target, torch.zeros(1, 4, 4))
    before = target.read_bytes()
    with pytest.raises(EIDError):
        write_image(target, torch.zeros(2, 4, 4))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]


def test_listing_folders_files_globs(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/b.png", "d/a.jpg", "d/sub/c.tif", "d/notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images([tmp_path / "d"])] == ["a.jpg", "b.png"]
    rel = [str(r) for _, r in iter_inputs([tmp_path / "d"], recursive=True)]
    assert rel == ["a.jpg", "b.png", "sub/c.tif"]
    assert [p.name for p in list_images([str(tmp_path / "d" / "*.png")])] == ["b.png"]
    assert [p.name for p in list_images([tmp_path / "d" / "notes.txt"])] == ["notes.txt"]
    with pytest.raises(EIDError, match="no such file"):
        list_images([tmp_path / "missing*"])


def test_symlink_loops_are_skipped_with_a_note(tmp_path):
    folder = tmp_path / "d"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.png").write_bytes(b"x")
    (folder / "linked").symlink_to(tmp_path / "elsewhere")  # dangling: ignored as before
    (folder / "self.png").symlink_to("self.png")
    (folder / "sub" / "up").symlink_to("..")
    (folder / "sub" / "again").symlink_to("..")  # two loops: exponential for glob
    (folder / "sub" / "out").symlink_to(
        tmp_path
    )  # above the input: would list the folders around it
    with pytest.warns(UserWarning, match="symbolic link loop") as notes:
        rel = [str(r) for _, r in iter_inputs([folder], recursive=True)]
    assert rel == ["a.png"]
    loops = {
        str(folder / "self.png"),
        *(str(folder / "sub" / name) for name in ("up", "again", "out")),
    }
    assert {str(n.message).split(":")[0] for n in notes} == loops
    assert all("\n" not in str(n.message) for n in notes)


def test_linked_subfolders_are_listed(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "b.png").write_bytes(b"x")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "link").symlink_to(tmp_path / "data")
    assert [str(r) for _, r in iter_inputs([tmp_path / "d"], recursive=True)] == ["link/b.png"]


def test_output_guards(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"x")
    with pytest.raises(EIDError, match="input folder"):
        check_output_dir(tmp_path / "in", [tmp_path / "in"])
    with pytest.raises(EIDError, match="input folder"):
        check_output_dir(tmp_path / "in", [tmp_path / "in" / "a.png"])
    check_output_dir(tmp_path / "out", [tmp_path / "in"])
    with pytest.raises(EIDError, match="overwrite an input"):
        check_not_input(tmp_path / "in" / "a.png", [tmp_path / "in" / "a.png"])


def test_shared_real_images(shared_data):
    x, meta = read_image(shared_data / "cholec80-smoke" / "hazy" / "video07_003217.png")
    assert x.shape == (3, 480, 480) and meta.has_alpha and int(meta.alpha.min()) == 255
    x, meta = read_image(shared_data / "nuclei" / "img2d.tif")
    assert x.shape == (1, 512, 512) and meta.dtype == "uint16"
    x, meta = read_image(shared_data / "nuclei" / "img2d.tif", white="max")
    assert float(x.max()) == 1.0 and meta.white == 235
