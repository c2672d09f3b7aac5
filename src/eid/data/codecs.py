"""Decoders behind :func:`eid.data.io.read_image`: PNG 16-bit colour (libpng through ``imagecodecs``), Pillow
(8-bit PNG, JPEG, BMP, WebP; palette, CMYK, YCbCr; EXIF orientation applied) and TIFF (tifffile, with the
series, sample and stack-layout rules of :mod:`eid.data.tiff_layout`, which :mod:`eid.data.stacks` shares). Each returns the stored samples, the alpha
plane if any, the sample type and the format; :mod:`eid.data.io` turns them into tensors.
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
from PIL import Image, ImageOps, UnidentifiedImageError

from eid.data.tiff_layout import tiff_samples, tiff_series, tiff_stack_layout
from eid.errors import ImageReadError, TiffStackError, read_error
from eid.utils import silenced_logger

DEFAULT_MAX_PIXELS = 150_000_000
"""Largest image (H*W) read without an explicit ``max_pixels``: about 12k x 12k."""


def _check_size(path: Path, height: int, width: int, max_pixels: int | None, min_size: int) -> None:
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if height * width > limit:
        raise read_error(
            path,
            f"image too large ({width}x{height} = {height * width:,} pixels, limit {limit:,})",
            "raise the limit with --max-pixels (max_pixels=...) if you have the memory",
        )
    if min(height, width) < min_size:
        raise read_error(
            path,
            f"image too small ({width}x{height}; at least {min_size}x{min_size} needed)",
            "use a larger image",
        )


def _split_alpha(array: np.ndarray, alpha_last: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Separate ``(H,W,C)`` samples into colour and alpha (the last channel when ``alpha_last``)."""
    if array.ndim == 2:
        return array, None
    if alpha_last:
        return array[..., :-1], array[..., -1].copy()
    return array, None


def _png16_header(path: Path) -> tuple[int, int, int] | None:
    """``(width, height, colour_type)`` of a 16-bit colour PNG (which Pillow reads as 8-bit)."""
    with open(path, "rb") as handle:
        head = handle.read(33)
    if len(head) < 33 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour_type = struct.unpack(">IIBB", head[16:26])
    return (width, height, colour_type) if depth == 16 and colour_type in (2, 4, 6) else None


def _read_png16(
    path: Path, header: tuple[int, int, int], max_pixels: int | None, min_size: int
) -> tuple[np.ndarray, np.ndarray | None, str, str]:
    """Decode a 16-bit colour (or grey+alpha) PNG without loss, with libpng (``imagecodecs``)."""
    width, height, colour_type = header
    _check_size(path, height, width, max_pixels, min_size)
    try:
        array = imagecodecs.png_decode(path.read_bytes())
    except (
        imagecodecs.PngError,
        ValueError,
    ) as exc:  # libpng's message may not even decode as text
        raise read_error(
            path,
            f"corrupt or truncated PNG data ({type(exc).__name__})",
            "re-export or re-download the file",
        ) from exc
    colour, alpha = _split_alpha(array, alpha_last=colour_type in (4, 6))
    if colour.ndim == 3 and colour.shape[-1] == 1:
        colour = colour[..., 0]
    return colour, alpha, "PNG", {2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}[colour_type]


_PILLOW_LIMIT = threading.Lock()


def open_pillow(path: Path) -> Image.Image:
    """``Image.open(path)`` (the header only) without Pillow's decompression-bomb limit.

    Pillow warns above 89.5 MP and refuses above twice that, by a process-wide setting; eid checks the size
    from the header against its own ``max_pixels`` (``--max-pixels``) before decoding, so that limit governs
    and a bomb gets one line. The setting is lifted only for the call, under a lock.
    """
    with _PILLOW_LIMIT:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def read_pillow(
    path: Path, max_pixels: int | None, min_size: int
) -> tuple[np.ndarray, np.ndarray | None, str, str]:
    """Decode with Pillow; return colour samples, alpha, on-disk format and original mode."""
    header = _png16_header(path)
    if header is not None:
        return _read_png16(path, header, max_pixels, min_size)
    try:
        image = open_pillow(path)
    except UnidentifiedImageError as exc:
        raise read_error(
            path, "not an image or an unsupported format", "use PNG, JPEG, TIFF, BMP or WebP"
        ) from exc
    except OSError as exc:
        raise read_error(
            path, f"cannot open ({exc})", "check that the file is a complete image"
        ) from exc
    with image:
        width, height = image.size
        _check_size(path, height, width, max_pixels, min_size)
        fmt, mode = image.format or "PNG", image.mode
        try:
            image.load()
            image = ImageOps.exif_transpose(image)
        except (OSError, SyntaxError, ValueError) as exc:
            raise read_error(
                path,
                f"corrupt or truncated image data ({exc})",
                "re-export or re-download the file",
            ) from exc
        if mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif mode == "PA":
            image = image.convert("RGBA")
        elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            image = image.convert("RGB")
        elif mode == "1":
            image = image.convert("L")
        elif mode == "La":
            image = image.convert("LA")
        elif mode == "RGBa":
            image = image.convert("RGBA")
        array = np.asarray(image)
    if array.dtype == np.int32:  # Pillow's "I" mode: 16-bit PNGs and some TIFF-like inputs
        if array.min() < 0 or array.max() > 65535:
            raise read_error(
                path, "32-bit integer samples outside 0..65535", "convert the image to 16-bit"
            )
        array = array.astype(np.uint16)
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    colour, alpha = _split_alpha(array, alpha_last=image.mode in ("LA", "RGBA"))
    return colour, alpha, fmt, mode


def read_tiff(
    path: Path, max_pixels: int | None, min_size: int
) -> tuple[np.ndarray, np.ndarray | None, str, str]:
    """Decode a TIFF with tifffile (8/16-bit, float, planar or interleaved, extra alpha sample)."""
    try:
        with silenced_logger("tifffile"), tifffile.TiffFile(path) as tif:
            shape, axes, read = tiff_series(tif, path)
            page = tif.pages[0]
            photometric = page.photometric
            extrasamples = tuple(getattr(page, "extrasamples", ()) or ())
            spatial = [n for n, a in zip(shape, axes) if a in "YX"]
            if len(spatial) == 2:
                _check_size(path, spatial[0], spatial[1], max_pixels, min_size)
            if (layout := tiff_stack_layout(shape, axes)) is not None:
                raise TiffStackError(
                    f"{path}: a stack of {layout[0]} planes ({axes} {tuple(shape)}); eid dehaze, evaluate, synth and "
                    "the training commands take stacks plane by plane, this one needs one 2-D image per file"
                )
            array = read(None)
    except ImageReadError:
        raise
    except (tifffile.TiffFileError, ValueError, OSError, IndexError, struct.error) as exc:
        raise read_error(path, f"corrupt or truncated TIFF ({exc})", "re-export the file") from exc
    array = np.squeeze(array) if array.ndim > 3 else array
    if array.ndim == 3 and axes.replace("Q", "").startswith("S") and array.shape[0] in (1, 2, 3, 4):
        array = np.moveaxis(array, 0, -1)  # planar configuration
    if array.ndim not in (2, 3):
        raise read_error(
            path, f"unsupported TIFF layout {array.shape}", "save a 2-D grey or RGB(A) image"
        )
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    array = tiff_samples(path, array)
    has_alpha = array.ndim == 3 and (
        array.shape[-1] in (2, 4) or (array.shape[-1] > 3 and bool(extrasamples))
    )
    if (
        photometric is not None
        and int(photometric) == 5
        and array.ndim == 3
        and array.shape[-1] >= 4
    ):  # CMYK
        array = _cmyk_to_rgb(array)
        has_alpha = False
    colour, alpha = _split_alpha(array, alpha_last=has_alpha)
    mode = f"{'RGB' if colour.ndim == 3 else 'L'}{'A' if alpha is not None else ''};{array.dtype}"
    return colour, alpha, "TIFF", mode


def _cmyk_to_rgb(array: np.ndarray) -> np.ndarray:
    white = float(np.iinfo(array.dtype).max) if array.dtype.kind in "ui" else 1.0
    cmyk = array[..., :4].astype(np.float32) / white
    rgb = (1 - cmyk[..., :3]) * (1 - cmyk[..., 3:4])
    return (
        (rgb * white).round().astype(array.dtype)
        if array.dtype.kind in "ui"
        else rgb.astype(np.float32)
    )


def dtype_name(array: np.ndarray) -> str:
    return {np.dtype(np.uint8): "uint8", np.dtype(np.uint16): "uint16"}.get(array.dtype, "float32")


def is_tiff(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(4)
    return head[:2] in (b"II", b"MM") and head[2:4] in (b"*\x00", b"\x00*", b"+\x00", b"\x00+")
