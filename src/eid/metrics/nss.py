"""Natural-scene statistics shared by NIQE, BRISQUE and FADE: 8-bit levels and luma, MATLAB ``filter2`` and
``imresize``, MSCN coefficients, and the AGGD/GGD moment-matching grid fits of the MATLAB releases.

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
from scipy.special import gamma as gamma_fn

from eid.errors import EIDError

# AGGD/GGD shape grid of the MATLAB code (0.2:0.001:10) and the gamma-function ratios on it.
_GAM = np.arange(0.2, 10.001, 0.001)
_R_AGGD = gamma_fn(2 / _GAM) ** 2 / (gamma_fn(1 / _GAM) * gamma_fn(3 / _GAM))  # increasing
_BETA = np.sqrt(gamma_fn(1 / _GAM) / gamma_fn(3 / _GAM))
_MEAN = gamma_fn(2 / _GAM) / gamma_fn(1 / _GAM)


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
        raise EIDError(f"expected a (B,C,H,W) batch with C = 1 or 3, got shape {tuple(x.shape)}; pass grey or RGB images")
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
        y.add_(unit[:, 1:2].to(torch.float64).mul_(128.553)).add_(unit[:, 0:1].to(torch.float64).mul_(65.481))
        y = y.add_(16.0).div_(255.0).to(torch.float32).mul_(255.0)
    elif channel == "grey":
        y = (unit * torch.tensor([0.299, 0.587, 0.114], device=unit.device).view(1, 3, 1, 1)).sum(1, keepdim=True) * 255.0
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
            out = ndimage.convolve(a, w.reshape((1,) * (a.ndim - 2) + w.shape), output=np.float64, mode="nearest")
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


def mscn(img: torch.Tensor, window: torch.Tensor, c: float = 1.0, single: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
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
def _resize_bands(n_in: int, scale: float, chunk: int = 32) -> tuple[tuple[int, int, np.ndarray], ...]:
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


def grid_argmin(grid: np.ndarray, target: torch.Tensor) -> torch.Tensor:
    """Index of the first minimum of ``|grid - target|`` for a strictly monotone ``grid`` (MATLAB ``min``/numpy
    ``argmin`` semantics, NaN target -> 0), by binary search instead of a full scan."""
    g = torch.from_numpy(grid).to(target)
    asc = bool(grid[-1] > grid[0])
    key = g if asc else g.flip(0)
    pos = torch.searchsorted(key, target.contiguous().clamp(min=-1e300))
    hi = pos.clamp(max=len(grid) - 1)
    lo = (pos - 1).clamp(min=0)
    if not asc:
        hi, lo = len(grid) - 1 - lo, len(grid) - 1 - hi
    pick_hi = (g[hi] - target).abs() < (g[lo] - target).abs()
    out = torch.where(pick_hi, hi, lo)
    return torch.where(torch.isnan(target), torch.zeros_like(out), out)


def aggd_sums(
    x: torch.Tensor, dims: tuple[int, ...] = (-1,), w: torch.Tensor | None = None, right_ge: bool = False
) -> torch.Tensor:
    """Additive statistics ``(..., 6)`` (float64) of ``x`` over ``dims`` (trailing), counting the entries with
    weight 1 in ``w`` (all when None): ``[sum x^2 over x < 0, sum x^2 over x > 0 (x >= 0 when right_ge),
    #(x < 0), #(x > 0) (or x >= 0), sum |x|, #entries]``; squares are formed in the dtype of ``x`` (float32
    in NIQE, as in BasicSR) and summed in double. Sums of parts (tiles, bands) add up to those of the whole.

    With ``x- = min(x, 0)`` and ``x+ = max(x, 0)``: ``sum |x| = sum x+ - sum x-`` and the counts are those of
    the non-zero entries, which saves the masks and selections of a direct port.
    """
    if w is not None:
        x = x * w  # entries outside are 0: they add nothing to the sums, the counts below exclude them
    x = x.flatten(-len(dims))
    neg, pos = x.clamp(max=0), x.clamp(min=0)
    if w is None:
        n = torch.full(x.shape[:-1], float(x.shape[-1]), dtype=torch.float64, device=x.device)
    else:
        n = w.flatten(-len(dims)).sum(-1, dtype=torch.float64)
    n_neg = torch.count_nonzero(neg, -1).to(torch.float64)
    stats = [
        (neg * neg).sum(-1, dtype=torch.float64),
        (pos * pos).sum(-1, dtype=torch.float64),
        n_neg,
        n - n_neg if right_ge else torch.count_nonzero(pos, -1),
        pos.sum(-1, dtype=torch.float64) - neg.sum(-1, dtype=torch.float64),
    ]
    return torch.stack([v.to(torch.float64) for v in (*stats, n)], -1)


def moments_of(sums: torch.Tensor) -> dict[str, torch.Tensor]:
    """Left/right standard deviations, ``mean|x|`` and ``mean x^2`` from :func:`aggd_sums`; an empty side gives
    NaN, as ``mean([])`` does in MATLAB/numpy."""
    sq_neg, sq_pos, n_neg, n_pos, total_abs, n = sums.unbind(-1)
    return {
        "left": torch.sqrt(sq_neg / n_neg),
        "right": torch.sqrt(sq_pos / n_pos),
        "abs": total_abs / n,
        "sq": (sq_neg + sq_pos) / n,
    }


def aggd_moments(x: torch.Tensor, w: torch.Tensor | None = None, right_ge: bool = False) -> dict[str, torch.Tensor]:
    """:func:`moments_of` the rows of ``x`` (N,P) over the entries with weight 1 in ``w`` (all when None)."""
    return moments_of(aggd_sums(x, (-1,), w, right_ge))


def aggd_grid_fit(m: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """AGGD shape by moment matching on the 0.2:0.001:10 grid (``estimateaggdparam.m``): returns the grid index
    and ``alpha``; ``rhat = E|x|^2 / E x^2``, normalised by ``(g^3+1)(g+1)/(g^2+1)^2`` with ``g = std_l/std_r``."""
    ghat = m["left"] / m["right"]
    rhat = m["abs"] ** 2 / m["sq"]
    rnorm = rhat * (ghat**3 + 1) * (ghat + 1) / (ghat**2 + 1) ** 2
    idx = grid_argmin(_R_AGGD, rnorm)
    return idx, torch.from_numpy(_GAM).to(rnorm)[idx]


def grid_table(table: np.ndarray, idx: torch.Tensor) -> torch.Tensor:
    """``table[idx]`` for a per-grid-point constant (e.g. ``sqrt(Gamma(1/a)/Gamma(3/a))``)."""
    return torch.from_numpy(table).to(device=idx.device)[idx]


def block_coverage(mask: torch.Tensor, block: int) -> torch.Tensor:
    """Fraction ``(B, N)`` of each ``block``-sized tile (row-major, as the features) inside ``mask`` (B,1,H,W)."""
    return F.avg_pool2d(mask.to(torch.float64), block).flatten(1)
