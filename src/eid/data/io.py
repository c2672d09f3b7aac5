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

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
import torch
from PIL import Image

from eid.data.codecs import (
    dtype_name,
    is_tiff,
    read_error,
    read_pillow,
    read_tiff,
)
from eid.data.listing import IMAGE_SUFFIXES
from eid.data.metadata import TiffMetadata, tiff_metadata, tiff_write_options
from eid.data.scale import (
    DTYPE_WHITE,
    White,
    resolve_white,
    samples_to_unit,
    unit_to_samples,
)
from eid.errors import EIDError
from eid.utils import atomic_write

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
        raise read_error(
            path, "file not found" if not path.exists() else "not a file", "check the path"
        )
    try:
        empty = path.stat().st_size == 0
        reader = read_tiff if not empty and is_tiff(path) else read_pillow
    except OSError as exc:  # no read permission, a lost network mount...
        raise read_error(
            path, f"cannot read ({exc.strerror or exc})", "check its permissions and the storage"
        ) from exc
    if empty:
        raise read_error(path, "empty file (0 bytes)", "re-export or re-download it")
    colour, alpha, fmt, mode = reader(path, max_pixels, min_size)
    dtype = dtype_name(colour)
    scale = resolve_white(path, colour, dtype, white)
    tensor = torch.from_numpy(samples_to_unit(colour, scale))
    tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()
    if tensor.shape[0] not in (1, 3):
        raise read_error(
            path,
            f"unsupported number of channels ({tensor.shape[0]})",
            "save as grey or RGB(A), or the channels as planes of a TIFF stack",
        )
    tiff = tiff_metadata(path) if fmt == "TIFF" else None
    meta = ImageMeta(path, fmt, dtype, tensor.shape[0], float(scale), mode, alpha, tiff)
    return tensor.clamp_(0.0, 1.0), meta


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
        raise EIDError(
            f"{path}: cannot write '{suffix}' files; use one of {', '.join(IMAGE_SUFFIXES)}"
        )
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise EIDError(
            f"{path}: expected a (C,H,W) tensor with C = 1 or 3, got {tuple(image.shape)}"
        )
    meta = meta or image_meta_for(image)
    fmt = _FORMAT_BY_SUFFIX[suffix]
    dtype = meta.dtype
    if fmt in ("JPEG", "BMP", "WEBP"):
        dtype = "uint8"
    elif fmt == "PNG" and dtype == "float32":
        dtype = "uint16"
    white = meta.white if dtype == meta.dtype else DTYPE_WHITE[dtype]
    array = unit_to_samples(
        image.detach().to("cpu", torch.float32).permute(1, 2, 0).numpy(), white, dtype
    )
    array = array[..., 0] if array.shape[-1] == 1 else array
    alpha = _matching_alpha(meta, array, dtype, fmt, path)
    if alpha is not None:
        array = np.dstack([array, alpha])
    with atomic_write(path) as tmp:
        if fmt == "TIFF":
            photometric = "rgb" if array.ndim == 3 and array.shape[-1] >= 3 else "minisblack"
            extras = ["unassalpha"] if alpha is not None else None
            options = tiff_write_options("YXS" if array.ndim == 3 else "YX", meta.tiff)
            tifffile.imwrite(
                tmp,
                array,
                photometric=photometric,
                extrasamples=extras,
                compression="zlib",
                **options,
            )
        elif fmt == "PNG" and dtype == "uint16" and array.ndim == 3:
            _write_png16(tmp, array)
        else:
            _pillow_image(array, dtype).save(tmp, format=fmt, **_save_options(fmt))
    return path


def _matching_alpha(
    meta: ImageMeta, array: np.ndarray, dtype: str, fmt: str, path: Path
) -> np.ndarray | None:
    alpha = meta.alpha
    if alpha is None:
        return None
    if alpha.shape != array.shape[:2]:
        warnings.warn(
            f"{path}: alpha plane of size {alpha.shape} does not match the image; alpha dropped",
            stacklevel=3,
        )
        return None
    if fmt in ("JPEG", "BMP"):
        warnings.warn(f"{path}: {fmt} cannot store alpha; alpha dropped", stacklevel=3)
        return None
    if alpha.dtype != np.dtype(dtype):  # rescale, e.g. a 16-bit alpha written to an 8-bit format
        src = DTYPE_WHITE.get(dtype_name(alpha), 1.0)
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
