"""Natural-scene statistics shared by NIQE, BRISQUE and FADE: 8-bit levels and luma, MATLAB ``filter2`` and
``imresize``, MSCN coefficients, and (from :mod:`eid.metrics.aggd`) the AGGD/GGD moment-matching grid fits of
the MATLAB releases.

Everything is in torch float64 (CPU or GPU) and matches the MATLAB/BasicSR references to rounding; the
vendored parameter files are read by :func:`load_params`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from eid.errors import EIDError
from eid.metrics.aggd import (  # re-exported: the grid fits were part of this module
    aggd_grid_fit,
    aggd_moments,
    aggd_sums,
    grid_argmin,
    grid_table,
    moments_of,
)

__all__ = [
    "aggd_grid_fit", "aggd_moments", "aggd_sums", "band_rows", "block_coverage", "filter2", "grid_argmin", "grid_table",
    "imresize", "load_params", "luma", "moments_of", "mscn", "row_bands", "to_levels",
]  # fmt: skip


def load_params(name: str) -> dict[str, np.ndarray]:
    """Arrays of the vendored parameter file ``eid/metrics/_params/<name>`` (never unpickled)."""
    params = resources.files("eid.metrics._params").joinpath(name)
    with params.open("rb") as fh, np.load(fh, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def to_levels(x: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """8-bit levels ``round(255 x)`` (as ``dtype``) of a ``(B,C,H,W)`` batch in ``[0,1]``.

    The canonical implementations all read 8-bit files; a 16-bit or float input is first brought to
    8 bits the way the reference table does (``round(v * 255 / 65535)``). The product is formed in float32,
    which rounds exactly like float64 for 8- and 16-bit inputs (their ``255 x`` never lies within 1e-3 of a
    half-integer unless it is an integer).
    """
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise EIDError(
            f"expected a (B,C,H,W) batch with C = 1 or 3, got shape {tuple(x.shape)}; pass grey or RGB images"
        )
    return x.detach().to(torch.float32).clamp(0, 1).mul_(255).round_().to(dtype)


def band_rows(x: torch.Tensor, pixels: int = 1 << 18) -> int:
    """Rows per band so that a band of ``x`` (..., H, W) holds about ``pixels`` values in all (at least one
    row): pixel-wise work on a large image then runs on cache-sized pieces."""
    return max(1, pixels * x.shape[-2] // max(1, x.numel()))


def row_bands(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``x`` split along the rows into bands of :func:`band_rows` rows."""
    return x.split(band_rows(x), -2)


def luma(levels: torch.Tensor, channel: str = "y") -> torch.Tensor:
    """One channel ``(B,1,H,W)`` in 0-255 (float32) from 8-bit ``levels``, rounded as BasicSR does before NIQE.

    ``y``: ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` with BasicSR's float32 round trips;
    ``grey``: ``255 (0.299 R + 0.587 G + 0.114 B)`` (OpenCV ``BGR2GRAY`` on float32 in [0,1]).
    """
    if levels.shape[1] == 1:
        return levels.to(torch.float32)
    unit = levels.to(torch.float32) / 255
    if channel == "y":
        y = unit[:, 2:3].to(torch.float64).mul_(24.966)
        y.add_(unit[:, 1:2].to(torch.float64).mul_(128.553)).add_(
            unit[:, 0:1].to(torch.float64).mul_(65.481)
        )
        y = y.add_(16.0).div_(255.0).to(torch.float32).mul_(255.0)
    elif channel == "grey":
        y = (unit * torch.tensor([0.299, 0.587, 0.114], device=unit.device).view(1, 3, 1, 1)).sum(
            1, keepdim=True
        ) * 255.0
    else:
        raise EIDError(f"unknown channel {channel!r}; use 'y' or 'grey'")
    return y.round_()


def _separable_factor(window: np.ndarray) -> np.ndarray | None:
    """The 1-D factor ``g`` with ``window = g g^T`` (``g`` = column sums), or None if the window is not rank one."""
    g = window.sum(0)
    return g if np.allclose(np.outer(g, g), window, rtol=0, atol=1e-15) else None


def filter2(img: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Filter ``(N,1,H,W)`` with a symmetric 2-D window, 'same' size, replicated borders (BasicSR's
    ``ndimage.convolve``).

    On CPU this runs scipy (double accumulation, result in the input's dtype) as the reference does, with two
    1-D passes when the window is separable (the Gaussian windows are, to 3e-17): 14 instead of 49
    multiply-adds per pixel, the same values up to double rounding. On other devices it is a ``conv2d``.
    (BRISQUE's zero-padded MATLAB ``filter2`` lives in :mod:`eid.metrics.brisque`.)
    """
    if img.device.type == "cpu":
        w = window.to(torch.float64).numpy()
        a = img.detach().numpy()
        g = _separable_factor(w)
        if g is None:
            out = ndimage.convolve(
                a, w.reshape((1,) * (a.ndim - 2) + w.shape), output=np.float64, mode="nearest"
            )
        else:
            out = ndimage.convolve1d(a, g, axis=-1, output=np.float64, mode="nearest")
            out = ndimage.convolve1d(out, g, axis=-2, output=np.float64, mode="nearest")
        return torch.from_numpy(out.astype(a.dtype, copy=False))
    return _conv_filter2(img, window)


def _conv_filter2(img: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """:func:`filter2` by ``conv2d`` (double accumulation, result in the input's dtype)."""
    kh, kw = window.shape
    pad = (kw // 2, kw - 1 - kw // 2, kh // 2, kh - 1 - kh // 2)
    x = F.pad(img.to(torch.float64), pad, mode="replicate")
    return F.conv2d(x, window.to(x)[None, None]).to(img.dtype)


def mscn(
    img: torch.Tensor, window: torch.Tensor, c: float = 1.0, single: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-subtracted contrast-normalised coefficients ``(I - mu) / (sigma + c)`` and the local ``sigma``.

    Computed in float64, or in float32 with ``single``, which reproduces BasicSR's arithmetic (scipy sums in
    double and stores float32): on flat regions this makes the coefficients exactly 0 instead of rounding
    noise, which changes the AGGD fits.
    """
    img = img.to(torch.float32 if single else torch.float64)
    mu = filter2(img, window)
    sigma = filter2(img * img, window).addcmul_(mu, mu, value=-1).abs_().sqrt_()
    return torch.sub(img, mu, out=mu).div_(sigma + c), sigma


@lru_cache(maxsize=64)
def _resize_matrix(n_in: int, scale: float) -> np.ndarray:
    """``(n_out, n_in)`` weights of MATLAB ``imresize`` (bicubic, antialiased when shrinking, symmetric border)."""
    n_out = math.ceil(n_in * scale)
    width = 4.0 / scale if scale < 1 else 4.0
    u = np.arange(1, n_out + 1) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps)[None]
    dist = np.abs(u[:, None] - idx) * (scale if scale < 1 else 1.0)
    cubic = np.where(
        dist <= 1,
        1.5 * dist**3 - 2.5 * dist**2 + 1,
        np.where(dist <= 2, -0.5 * dist**3 + 2.5 * dist**2 - 4 * dist + 2, 0.0),
    )
    w = cubic / cubic.sum(1, keepdims=True)
    src = idx.astype(np.int64) - 1
    src = np.where(src < 0, -src - 1, src)
    src = np.where(src >= n_in, 2 * n_in - 1 - src, src)
    mat = np.zeros((n_out, n_in))
    np.add.at(mat, (np.repeat(np.arange(n_out), taps), src.ravel()), w.ravel())
    return mat


@lru_cache(maxsize=64)
def _resize_bands(
    n_in: int, scale: float, chunk: int = 32
) -> tuple[tuple[int, int, np.ndarray], ...]:
    """:func:`_resize_matrix` cut into bands of ``chunk`` output rows: ``(in_lo, in_hi, weights)`` with
    the band's non-zero input columns ``in_lo:in_hi`` (a few more than ``chunk / scale``)."""
    mat = _resize_matrix(n_in, scale)
    bands = []
    for start in range(0, mat.shape[0], chunk):
        rows = mat[start : start + chunk]
        cols = np.flatnonzero(rows.any(0))
        bands.append((int(cols[0]), int(cols[-1]) + 1, rows[:, cols[0] : cols[-1] + 1]))
    return tuple(bands)


def imresize(img: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """MATLAB ``imresize(img, scale)`` (bicubic, antialiasing) of a ``(..., H, W)`` tensor: rows then columns,
    each a product with the weight matrix, taken band by band so that only its non-zero part is multiplied."""
    for dim in (-2, -1):
        parts = []
        for lo, hi, w in _resize_bands(img.shape[dim], scale):
            w = torch.from_numpy(w).to(img)
            parts.append(w @ img[..., lo:hi, :] if dim == -2 else img[..., lo:hi] @ w.T)
        img = torch.cat(parts, dim)
    return img


def block_coverage(mask: torch.Tensor, block: int) -> torch.Tensor:
    """Fraction ``(B, N)`` of each ``block``-sized tile (row-major, as the features) inside ``mask`` (B,1,H,W)."""
    return F.avg_pool2d(mask.to(torch.float64), block).flatten(1)
