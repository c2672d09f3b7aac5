"""Image files <-> tensors: the one place where dtype, value range, channels and alpha are handled.

Reading gives a float32 tensor ``(C, H, W)`` in ``[0, 1]`` with ``C = 1`` (grey) or ``C = 3`` (colour),
plus an :class:`ImageMeta` that holds what is needed to write a result back in the same form: the
sample type (8-bit, 16-bit or float), the scale ``white`` that was mapped to 1.0, and the alpha plane,
which is carried through untouched. So a 16-bit TIFF in gives a 16-bit TIFF out, a grey image stays
single-channel and an RGBA PNG keeps its alpha.

Formats: PNG (16-bit colour through libpng, ``imagecodecs``; the rest through Pillow), JPEG, TIFF (8/16-bit
integer, float32/64; read with tifffile, OME-XML and GeoTIFF tags kept: :mod:`eid.data.metadata`), BMP, WebP;
modes grey, grey+alpha, RGB, RGBA, palette (with or without transparency), CMYK and YCbCr; the EXIF orientation
is applied. Failures raise :class:`eid.errors.ImageReadError` with the file name and the problem.
"""

from __future__ import annotations

import math
import struct
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from eid.data.bands import bands_first, has_bands, to_bands_first
from eid.data.listing import IMAGE_SUFFIXES, list_images
from eid.data.metadata import TiffMetadata, tiff_metadata, tiff_write_options
from eid.data.scale import (
    DTYPE_WHITE,
    White,
    resolve_white,
    samples_to_unit,
    unit_to_samples,
)
from eid.errors import EIDError, ImageReadError, TiffStackError
from eid.utils import atomic_write, moved_names, silenced_logger

DEFAULT_MAX_PIXELS = 150_000_000
"""Largest image (H*W) read without an explicit ``max_pixels``: about 12k x 12k."""

_FORMAT_BY_SUFFIX = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
    ".bmp": "BMP", ".webp": "WEBP",
}  # fmt: skip


@dataclass(frozen=True)
class ImageMeta:
    """How an image was stored, so that a processed version can be written back the same way.

    :param path: the file read (``None`` for in-memory images).
    :param format: ``PNG``, ``JPEG``, ``TIFF``, ``BMP`` or ``WEBP``.
    :param dtype: sample type on disk: ``uint8``, ``uint16`` or ``float32``.
    :param channels: colour channels, 1 or 3 (alpha not counted).
    :param white: the stored value that maps to 1.0 (255 for 8-bit, 65535 for 16-bit by default).
    :param mode: the original colour mode, for messages (``RGBA``, ``P``, ``CMYK``, ``I;16``...).
    :param alpha: the alpha plane ``(H, W)`` exactly as stored, or ``None``.
    :param tiff: a TIFF's OME-XML and GeoTIFF tags, written back with a TIFF result (:mod:`eid.data.metadata`).
    """

    path: Path | None
    format: str
    dtype: str
    channels: int
    white: float
    mode: str
    alpha: np.ndarray | None = field(default=None, repr=False, compare=False)
    tiff: TiffMetadata | None = field(default=None, repr=False, compare=False)

    @property
    def has_alpha(self) -> bool:
        return self.alpha is not None


def _fail(path: Path, problem: str, remedy: str) -> ImageReadError:
    return ImageReadError(f"{path}: {problem}; {remedy}")


def _check_size(path: Path, height: int, width: int, max_pixels: int | None, min_size: int) -> None:
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if height * width > limit:
        raise _fail(
            path,
            f"image too large ({width}x{height} = {height * width:,} pixels, limit {limit:,})",
            "raise the limit with --max-pixels (max_pixels=...) if you have the memory",
        )
    if min(height, width) < min_size:
        raise _fail(
            path, f"image too small ({width}x{height}; at least {min_size}x{min_size} needed)", "use a larger image"
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


def _read_png16(path: Path, header: tuple[int, int, int], max_pixels: int | None, min_size: int) -> tuple[np.ndarray, np.ndarray | None, str, str]:
    """Decode a 16-bit colour (or grey+alpha) PNG without loss, with libpng (``imagecodecs``)."""
    width, height, colour_type = header
    _check_size(path, height, width, max_pixels, min_size)
    try:
        array = imagecodecs.png_decode(path.read_bytes())
    except (imagecodecs.PngError, ValueError) as exc:  # libpng's message may not even decode as text
        raise _fail(path, f"corrupt or truncated PNG data ({type(exc).__name__})", "re-export or re-download the file") from exc
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


def _read_pillow(path: Path, max_pixels: int | None, min_size: int) -> tuple[np.ndarray, np.ndarray | None, str, str]:
    """Decode with Pillow; return colour samples, alpha, on-disk format and original mode."""
    header = _png16_header(path)
    if header is not None:
        return _read_png16(path, header, max_pixels, min_size)
    try:
        image = open_pillow(path)
    except UnidentifiedImageError as exc:
        raise _fail(path, "not an image or an unsupported format", "use PNG, JPEG, TIFF, BMP or WebP") from exc
    except OSError as exc:
        raise _fail(path, f"cannot open ({exc})", "check that the file is a complete image") from exc
    with image:
        width, height = image.size
        _check_size(path, height, width, max_pixels, min_size)
        fmt, mode = image.format or "PNG", image.mode
        try:
            image.load()
            image = ImageOps.exif_transpose(image)
        except (OSError, SyntaxError, ValueError) as exc:
            raise _fail(path, f"corrupt or truncated image data ({exc})", "re-export or re-download the file") from exc
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
            raise _fail(path, "32-bit integer samples outside 0..65535", "convert the image to 16-bit")
        array = array.astype(np.uint16)
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    colour, alpha = _split_alpha(array, alpha_last=image.mode in ("LA", "RGBA"))
    return colour, alpha, fmt, mode


def _read_tiff(path: Path, max_pixels: int | None, min_size: int) -> tuple[np.ndarray, np.ndarray | None, str, str]:
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
        raise _fail(path, f"corrupt or truncated TIFF ({exc})", "re-export the file") from exc
    array = np.squeeze(array) if array.ndim > 3 else array
    if array.ndim == 3 and axes.replace("Q", "").startswith("S") and array.shape[0] in (1, 2, 3, 4):
        array = np.moveaxis(array, 0, -1)  # planar configuration
    if array.ndim not in (2, 3):
        raise _fail(path, f"unsupported TIFF layout {array.shape}", "save a 2-D grey or RGB(A) image")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    array = tiff_samples(path, array)
    has_alpha = array.ndim == 3 and (array.shape[-1] in (2, 4) or (array.shape[-1] > 3 and bool(extrasamples)))
    if photometric is not None and int(photometric) == 5 and array.ndim == 3 and array.shape[-1] >= 4:  # CMYK
        array = _cmyk_to_rgb(array)
        has_alpha = False
    colour, alpha = _split_alpha(array, alpha_last=has_alpha)
    mode = f"{'RGB' if colour.ndim == 3 else 'L'}{'A' if alpha is not None else ''};{array.dtype}"
    return colour, alpha, "TIFF", mode


def tiff_series(tif: tifffile.TiffFile, path: Path) -> tuple[tuple[int, ...], str, Callable[[int | None], np.ndarray]]:
    """Shape, axes and reader (``read(plane)``, or ``read(None)`` for all) of the images in ``tif``.

    A TIFF usually holds one series. Pages written one call at a time (``tifffile.imwrite(..., append=True)``)
    form several series of one shape: they are one stack along a new leading axis ``I``, so no page is lost.
    Series of different shapes are refused rather than reading the first alone. More than 4 interleaved samples
    per pixel are bands, read bands first (``...SYX``): a stack whose planes are the bands (:mod:`eid.data.bands`).
    """
    shape, axes, read = _stored_series(tif, path)
    if not has_bands(shape, axes):
        return shape, axes, read
    count = shape[-1]

    def read_band(key: int | None) -> np.ndarray:
        if key is None:
            return to_bands_first(read(None))
        image, band = divmod(key, count)
        return read(image)[..., band]

    return (*bands_first(shape, axes), read_band)


def _stored_series(tif: tifffile.TiffFile, path: Path) -> tuple[tuple[int, ...], str, Callable[[int | None], np.ndarray]]:
    """:func:`tiff_series` in the stored layout: ``read(k)`` reads the ``k``-th 2-D image (``YX`` or ``YXS``)."""
    series = tif.series
    if not series:
        raise _fail(path, "no image in the file (no TIFF pages)", "re-export the file")
    if len(series) == 1:
        only = series[0]
        return tuple(only.shape), only.axes, lambda key: only.asarray() if key is None else only.asarray(key=key)
    kinds = {(tuple(s.shape), s.axes, s.dtype) for s in series}
    if len(kinds) > 1:
        shapes = ", ".join(sorted({"x".join(map(str, shape)) for shape, _, _ in kinds}))
        raise _fail(path, f"holds {len(series)} images of different shapes ({shapes})", "save one image per file")
    shape, axes, _ = kinds.pop()

    def read(key: int | None) -> np.ndarray:
        return np.stack([s.asarray() for s in series]) if key is None else series[key].asarray()

    return (len(series), *shape), "I" + axes, read


def tiff_samples(path: Path, array: np.ndarray) -> np.ndarray:
    """TIFF samples as ``uint8``, ``uint16`` or finite ``float32``: floats are checked, booleans become 0/255,
    other integers within 0..65535 become ``uint16``."""
    if array.dtype.kind == "f":
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise _fail(path, "float TIFF contains NaN or Inf values", "replace them (e.g. with 0) first")
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype not in (np.uint8, np.uint16):
        if array.min() < 0 or array.max() > 65535:
            raise _fail(path, f"{array.dtype} samples outside 0..65535", "convert to 16-bit or float32")
        array = array.astype(np.uint16)
    return array


def tiff_stack_layout(shape: Sequence[int], axes: str) -> tuple[int, bool] | None:
    """``(planes, rgb)`` of a TIFF series holding more than one 2-D plane, else ``None``.

    Planes are grey (axes ending in ``YX``) or RGB (``YXS`` with 3 samples); every index of the leading axes
    (``Z``, ``T``, ``C``...) is one plane. A leading ``S`` axis of 1-4 samples is a planar colour image, not a stack;
    more than 4 samples are bands: one grey plane each (:func:`tiff_series` reads interleaved bands bands first).

    >>> tiff_stack_layout((2, 3, 64, 64), "TZYX"), tiff_stack_layout((3, 64, 64), "SYX")
    ((6, False), None)
    >>> tiff_stack_layout((6, 64, 64), "SYX")
    (6, False)
    """
    rgb = axes.endswith("YXS") and shape[-1] == 3
    if not (rgb or axes.endswith("YX")) or (axes[:-2] == "S" and shape[0] <= 4):
        return None
    planes = math.prod(shape[:-3] if rgb else shape[:-2])
    return (planes, rgb) if planes > 1 else None


def _cmyk_to_rgb(array: np.ndarray) -> np.ndarray:
    white = float(np.iinfo(array.dtype).max) if array.dtype.kind in "ui" else 1.0
    cmyk = array[..., :4].astype(np.float32) / white
    rgb = (1 - cmyk[..., :3]) * (1 - cmyk[..., 3:4])
    return (rgb * white).round().astype(array.dtype) if array.dtype.kind in "ui" else rgb.astype(np.float32)


def _dtype_name(array: np.ndarray) -> str:
    return {np.dtype(np.uint8): "uint8", np.dtype(np.uint16): "uint16"}.get(array.dtype, "float32")


def read_image(
    path: str | Path, *, max_pixels: int | None = None, white: White = "dtype", min_size: int = 1
) -> tuple[torch.Tensor, ImageMeta]:
    """Read an image file as a float32 tensor ``(C, H, W)`` in ``[0, 1]`` and its :class:`ImageMeta`.

    :param path: image file.
    :param max_pixels: refuse images with more than this many pixels (default
        :data:`DEFAULT_MAX_PIXELS`), checked before decoding.
    :param white: the stored value mapped to 1.0: ``"dtype"`` (255, 65535, or 1.0 for float data
        within ``[0, 1]``; float data above 1 use their maximum), ``"max"`` (the image's own maximum,
        useful for microscopy stored in a fraction of the 16-bit range) or a number.
    :param min_size: refuse images whose smaller side is below this (e.g. 96 for NIQE).
    :raises ImageReadError: missing, empty, corrupt, truncated, not an image, too large or too small,
        NaN/Inf samples.

    >>> import numpy as np, tempfile, pathlib
    >>> from PIL import Image
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "grey.png"
    >>> Image.fromarray(np.full((4, 5), 255, np.uint8)).save(p)
    >>> x, meta = read_image(p)
    >>> tuple(x.shape), float(x.max()), meta.dtype, meta.channels
    ((1, 4, 5), 1.0, 'uint8', 1)
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "file not found" if not path.exists() else "not a file", "check the path")
    try:
        empty = path.stat().st_size == 0
        reader = _read_tiff if not empty and _is_tiff(path) else _read_pillow
    except OSError as exc:  # no read permission, a lost network mount...
        raise _fail(path, f"cannot read ({exc.strerror or exc})", "check its permissions and the storage") from exc
    if empty:
        raise _fail(path, "empty file (0 bytes)", "re-export or re-download it")
    colour, alpha, fmt, mode = reader(path, max_pixels, min_size)
    dtype = _dtype_name(colour)
    scale = resolve_white(path, colour, dtype, white)
    tensor = torch.from_numpy(samples_to_unit(colour, scale))
    tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()
    if tensor.shape[0] not in (1, 3):
        raise _fail(path, f"unsupported number of channels ({tensor.shape[0]})", "save as grey or RGB(A), or the channels as planes of a TIFF stack")
    tiff = tiff_metadata(path) if fmt == "TIFF" else None
    meta = ImageMeta(path, fmt, dtype, tensor.shape[0], float(scale), mode, alpha, tiff)
    return tensor.clamp_(0.0, 1.0), meta


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(4)
    return head[:2] in (b"II", b"MM") and head[2:4] in (b"*\x00", b"\x00*", b"+\x00", b"\x00+")


def dim_scale_hint(inputs: Sequence[str | Path], white: White) -> str | None:
    """A hint when the first image of ``inputs``, read with ``white="dtype"``, uses under 1/16 of its range.

    12-bit microscopy in 16-bit files reads as values below 0.0625: the networks would see a nearly black image.
    """
    paths = list_images([str(p) for p in inputs])
    if white != "dtype" or not paths:
        return None
    try:
        image, meta = read_image(paths[0])
        peak, dtype = float(image.max()) * meta.white, meta.dtype
    except TiffStackError:  # its first plane tells
        plane = tifffile.imread(paths[0], key=0)
        peak, dtype = float(plane.max()), plane.dtype.name
    except ImageReadError:  # the command reports unreadable files itself
        return None
    if dtype not in ("uint8", "uint16") or peak * 16 >= DTYPE_WHITE[dtype] or peak == 0:
        return None  # an all-black image says nothing about the scale
    suggested = 2 ** max(1, math.ceil(math.log2(peak + 1))) - 1
    return (
        f"{paths[0]}: its {dtype} samples reach only {peak:.0f} of {DTYPE_WHITE[dtype]:.0f}; pass --white {suggested} "
        "(or max) to read the images at their full contrast"
    )


def image_meta_for(tensor: torch.Tensor, dtype: str = "uint8", format: str = "PNG") -> ImageMeta:
    """Metadata for writing an in-memory tensor ``(C,H,W)`` as ``dtype`` samples."""
    return ImageMeta(None, format, dtype, int(tensor.shape[-3]), DTYPE_WHITE[dtype], "memory")


def write_image(path: str | Path, image: torch.Tensor, meta: ImageMeta | None = None) -> Path:
    """Write a ``(C, H, W)`` tensor in ``[0, 1]`` to ``path`` atomically, in the form ``meta`` describes.

    The format follows the suffix; the sample type, scale and alpha follow ``meta`` (8-bit when
    ``meta`` is ``None``). Formats that cannot hold the sample type fall back sensibly: JPEG, BMP and
    WebP are 8-bit; a float image goes to 16-bit PNG; alpha is dropped for JPEG and BMP (with a
    warning). Values are clipped to ``[0, 1]`` and rounded.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _FORMAT_BY_SUFFIX:
        raise EIDError(f"{path}: cannot write '{suffix}' files; use one of {', '.join(IMAGE_SUFFIXES)}")
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise EIDError(f"{path}: expected a (C,H,W) tensor with C = 1 or 3, got {tuple(image.shape)}")
    meta = meta or image_meta_for(image)
    fmt = _FORMAT_BY_SUFFIX[suffix]
    dtype = meta.dtype
    if fmt in ("JPEG", "BMP", "WEBP"):
        dtype = "uint8"
    elif fmt == "PNG" and dtype == "float32":
        dtype = "uint16"
    white = meta.white if dtype == meta.dtype else DTYPE_WHITE[dtype]
    array = unit_to_samples(image.detach().to("cpu", torch.float32).permute(1, 2, 0).numpy(), white, dtype)
    array = array[..., 0] if array.shape[-1] == 1 else array
    alpha = _matching_alpha(meta, array, dtype, fmt, path)
    if alpha is not None:
        array = np.dstack([array, alpha])
    with atomic_write(path) as tmp:
        if fmt == "TIFF":
            photometric = "rgb" if array.ndim == 3 and array.shape[-1] >= 3 else "minisblack"
            extras = ["unassalpha"] if alpha is not None else None
            options = tiff_write_options("YXS" if array.ndim == 3 else "YX", meta.tiff)
            tifffile.imwrite(tmp, array, photometric=photometric, extrasamples=extras, compression="zlib", **options)
        elif fmt == "PNG" and dtype == "uint16" and array.ndim == 3:
            _write_png16(tmp, array)
        else:
            _pillow_image(array, dtype).save(tmp, format=fmt, **_save_options(fmt))
    return path


def _matching_alpha(meta: ImageMeta, array: np.ndarray, dtype: str, fmt: str, path: Path) -> np.ndarray | None:
    alpha = meta.alpha
    if alpha is None:
        return None
    if alpha.shape != array.shape[:2]:
        warnings.warn(f"{path}: alpha plane of size {alpha.shape} does not match the image; alpha dropped", stacklevel=3)
        return None
    if fmt in ("JPEG", "BMP"):
        warnings.warn(f"{path}: {fmt} cannot store alpha; alpha dropped", stacklevel=3)
        return None
    if alpha.dtype != np.dtype(dtype):  # rescale, e.g. a 16-bit alpha written to an 8-bit format
        src = DTYPE_WHITE.get(_dtype_name(alpha), 1.0)
        scaled = alpha.astype(np.float32) / src * DTYPE_WHITE[dtype]
        return scaled.astype(np.float32) if dtype == "float32" else np.rint(scaled).astype(dtype)
    return alpha


def _pillow_image(array: np.ndarray, dtype: str) -> Image.Image:
    """Pillow image for 8-bit data or 16-bit grey (16-bit colour PNGs go through :func:`_write_png16`)."""
    return Image.fromarray(array.astype(np.uint16) if dtype == "uint16" else array)


def _save_options(fmt: str) -> dict:
    return {"JPEG": {"quality": 95, "subsampling": 0}, "WEBP": {"lossless": True}}.get(fmt, {})


def _write_png16(path: Path, array: np.ndarray) -> None:
    """Write a 16-bit RGB or RGBA PNG (which Pillow cannot write) with libpng's default filters and level."""
    path.write_bytes(imagecodecs.png_encode(np.ascontiguousarray(array, np.uint16)))


#: Names that moved to :mod:`eid.data.listing` and :mod:`eid.data.scale`, at their old path for the inference
#: package and the benchmarks.
__getattr__ = moved_names(__name__, {
    "eid.data.listing": ("check_not_input", "check_output_dir", "iter_inputs", "no_images_error"),
    "eid.data.scale": ("parse_white", "white_scale"),
})  # fmt: skip
