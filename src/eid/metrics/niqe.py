"""NIQE (Mittal, Soundararajan & Bovik, "Making a 'Completely Blind' Image Quality Analyzer", IEEE SPL 2013).

The MATLAB/LIVE algorithm as ported in BasicSR 1.4.2 (``basicsr/metrics/niqe.py``), vectorised over patches
and images in torch (float64, CPU or GPU):

1. the image is quantised to 8-bit levels and reduced to one channel: BT.601 luma ``Y`` (16-235, BasicSR's
   float32 ``bgr2ycbcr`` then ``round()``) by default, or ``grey`` = ``round(255 (0.299 R + 0.587 G + 0.114 B))``
   (BasicSR ``convert_to='gray'``); a one-channel image is used as is;
2. it is cropped to whole 96x96 blocks; for two scales (full resolution, then MATLAB ``imresize(0.5)``, bicubic
   with antialiasing) the MSCN coefficients ``(I - mu) / (sigma + 1)`` are taken with the 7x7 Gaussian window
   (replicate borders), and each block (48x48 at scale 2) gives 18 features: an AGGD fit of the coefficients
   ``[alpha, (beta_l + beta_r) / 2]`` and, for the products with the block rolled by (0,1), (1,0), (1,1), (1,-1),
   ``[alpha, mean, beta_l, beta_r]``;
3. with ``mu_d`` the NaN-ignoring mean and ``S_d`` the covariance of the NaN-free block features,
   ``NIQE = sqrt((mu_p - mu_d) pinv((S_p + S_d) / 2) (mu_p - mu_d)^T)`` against the pristine model
   ``(mu_p, S_p)`` of the LIVE release (vendored in ``_params/niqe_pris_params.npz``, see its NOTICE).

As in BasicSR and the release's ``computequality.m``, every block is scored (the sharpness selection of the
release only applies when fitting the pristine model). This module also holds the helpers shared with BRISQUE.
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage, signal
from scipy.special import gamma as gamma_fn

from eid.errors import EIDError
from eid.metrics.registry import MetricSpec, register

BLOCK = 96
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))

# AGGD/GGD shape grid of the MATLAB code (0.2:0.001:10) and the gamma-function ratios on it.
_GAM = np.arange(0.2, 10.001, 0.001)
_R_AGGD = gamma_fn(2 / _GAM) ** 2 / (gamma_fn(1 / _GAM) * gamma_fn(3 / _GAM))  # increasing
_BETA = np.sqrt(gamma_fn(1 / _GAM) / gamma_fn(3 / _GAM))
_MEAN = gamma_fn(2 / _GAM) / gamma_fn(1 / _GAM)


def load_params(name: str) -> dict[str, np.ndarray]:
    """Arrays of the vendored parameter file ``eid/metrics/_params/<name>`` (never unpickled)."""
    with resources.files("eid.metrics._params").joinpath(name).open("rb") as fh:
        with np.load(fh, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """8-bit levels ``round(255 x)`` in float64 of a ``(B,C,H,W)`` batch in ``[0,1]``.

    The canonical implementations all read 8-bit files; a 16-bit or float input is first brought to
    8 bits the way the reference table does (``round(v * 255 / 65535)``).
    """
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise EIDError(f"expected a (B,C,H,W) batch with C = 1 or 3, got shape {tuple(x.shape)}; pass grey or RGB images")
    return torch.round(x.detach().to(torch.float64).clamp(0, 1) * 255)


def luma(levels: torch.Tensor, channel: str = "y") -> torch.Tensor:
    """One channel ``(B,1,H,W)`` in 0-255 from 8-bit ``levels``, rounded as BasicSR does before NIQE.

    ``y``: ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` with BasicSR's float32 round trips;
    ``grey``: ``255 (0.299 R + 0.587 G + 0.114 B)`` (OpenCV ``BGR2GRAY`` on float32 in [0,1]).
    """
    if levels.shape[1] == 1:
        return levels
    unit = (levels.to(torch.float32) / 255).to(torch.float64)
    r, g, b = unit[:, 0:1], unit[:, 1:2], unit[:, 2:3]
    if channel == "y":
        y = ((b * 24.966 + g * 128.553 + r * 65.481 + 16.0) / 255.0).to(torch.float32) * 255.0
    elif channel == "grey":
        y = (unit.to(torch.float32) * torch.tensor([0.299, 0.587, 0.114], device=unit.device).view(1, 3, 1, 1)).sum(
            1, keepdim=True
        ) * 255.0
    else:
        raise EIDError(f"unknown channel {channel!r}; use 'y' or 'grey'")
    return torch.round(y).to(torch.float64)


def filter2(img: torch.Tensor, window: torch.Tensor, padding: str) -> torch.Tensor:
    """Filter ``(N,1,H,W)`` with a symmetric 2-D window, 'same' size; ``padding`` = 'replicate' or 'zeros'.

    On CPU this calls the routines the reference implementations use (``scipy.ndimage.convolve`` for
    replicate borders, ``scipy.signal.convolve2d`` for zero borders), which are also far faster than torch's
    float64 ``conv2d``; float32 input gives float32 output with double accumulation, as in scipy. On other
    devices it is a ``conv2d``.
    """
    if img.device.type == "cpu":
        w = window.to(torch.float64).numpy()
        planes = img.detach().reshape(-1, *img.shape[-2:]).numpy()
        if padding == "replicate":
            out = [ndimage.convolve(a, w, mode="nearest") for a in planes]
        else:
            out = [signal.convolve2d(a, w, "same").astype(a.dtype) for a in planes]
        return torch.from_numpy(np.stack(out)).view(img.shape)
    return _conv_filter2(img, window, padding)


def _conv_filter2(img: torch.Tensor, window: torch.Tensor, padding: str) -> torch.Tensor:
    """:func:`filter2` by ``conv2d`` (double accumulation, result in the input's dtype)."""
    kh, kw = window.shape
    pad = (kw // 2, kw - 1 - kw // 2, kh // 2, kh - 1 - kh // 2)
    x = img.to(torch.float64)
    x = F.pad(x, pad, mode="replicate") if padding == "replicate" else F.pad(x, pad)
    return F.conv2d(x, window.to(x)[None, None]).to(img.dtype)


def mscn(
    img: torch.Tensor, window: torch.Tensor, padding: str, c: float = 1.0, single: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-subtracted contrast-normalised coefficients ``(I - mu) / (sigma + c)`` and the local ``sigma``.

    ``single`` reproduces BasicSR's float32 arithmetic (scipy sums in double and stores float32): on flat
    regions this makes the coefficients exactly 0 instead of rounding noise, which changes the AGGD fits.
    """
    img = img.to(torch.float32 if single else torch.float64)
    mu = filter2(img, window, padding)
    sigma = torch.sqrt(torch.abs(filter2(img * img, window, padding) - mu * mu))
    return ((img - mu) / (sigma + c)).to(torch.float64), sigma.to(torch.float64)


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


def imresize(img: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """MATLAB ``imresize(img, scale)`` (bicubic, antialiasing) of a ``(..., H, W)`` tensor, as separable matrices."""
    rows = torch.from_numpy(_resize_matrix(img.shape[-2], scale)).to(img)
    cols = torch.from_numpy(_resize_matrix(img.shape[-1], scale)).to(img)
    return rows @ img @ cols.T


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


def aggd_moments(x: torch.Tensor, w: torch.Tensor | None = None, right_ge: bool = False) -> dict[str, torch.Tensor]:
    """Moments of the rows of ``x`` (N,P) over the entries with weight 1 in ``w`` (all when None).

    Returns the left/right standard deviations (over ``x < 0`` and ``x > 0``, or ``x >= 0`` when ``right_ge``),
    ``mean|x|`` and ``mean x^2``; an empty side gives NaN, as ``mean([])`` does in MATLAB/numpy.
    """
    if w is not None:
        x = x * w  # entries outside are 0: they add nothing to the sums, the counts below exclude them
    neg = x.clamp(max=0)
    pos = x.clamp(min=0)
    sq_neg = (neg * neg).sum(-1)
    sq_pos = (pos * pos).sum(-1)
    n_neg = (x < 0).sum(-1)
    if right_ge:
        n_pos = (x >= 0).sum(-1) if w is None else ((x >= 0) & (w > 0)).sum(-1)
    else:
        n_pos = (x > 0).sum(-1)
    n = x.shape[-1] if w is None else w.sum(-1)
    return {
        "left": torch.sqrt(sq_neg / n_neg),
        "right": torch.sqrt(sq_pos / n_pos),
        "abs": (pos - neg).sum(-1) / n,
        "sq": (sq_neg + sq_pos) / n,
    }


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


def _block_features(img: torch.Tensor, block: int, window: torch.Tensor) -> torch.Tensor:
    """``(B, N, 18)`` NIQE features of the ``block``-sized tiles of ``img`` ``(B,1,H,W)`` (tiles row-major)."""
    b = img.shape[0]
    coef, _ = mscn(img, window, "replicate", single=True)
    nh, nw = coef.shape[-2] // block, coef.shape[-1] // block
    tiles = coef[..., : nh * block, : nw * block].reshape(b, nh, block, nw, block).permute(0, 1, 3, 2, 4)
    tiles = tiles.reshape(b * nh * nw, block, block)
    feats = []
    m = aggd_moments(tiles.flatten(1))
    idx, alpha = aggd_grid_fit(m)
    beta = grid_table(_BETA, idx)
    feats += [alpha, (m["left"] + m["right"]) * beta / 2]
    for shift in SHIFTS:
        prod = (tiles * torch.roll(tiles, shift, dims=(-2, -1))).flatten(1)
        m = aggd_moments(prod)
        idx, alpha = aggd_grid_fit(m)
        beta = grid_table(_BETA, idx)
        bl, br = m["left"] * beta, m["right"] * beta
        feats += [alpha, (br - bl) * grid_table(_MEAN, idx), bl, br]
    return torch.stack(feats, -1).reshape(b, nh * nw, 18)


def _half(img: torch.Tensor) -> torch.Tensor:
    """Scale 2 of NIQE: ``imresize(img / 255, 0.5) * 255`` rounded through float32 as in BasicSR."""
    unit = (img.to(torch.float32) / 255).to(torch.float64)
    return imresize(unit).to(torch.float32) * 255


def block_coverage(mask: torch.Tensor, block: int) -> torch.Tensor:
    """Fraction ``(B, N)`` of each ``block``-sized tile (row-major, as the features) inside ``mask`` (B,1,H,W)."""
    return F.avg_pool2d(mask.to(torch.float64), block).flatten(1)


class NIQE(torch.nn.Module):
    """Natural Image Quality Evaluator (lower = more natural), MATLAB/BasicSR-compatible.

    :param channel: ``"y"`` (BT.601 luma, BasicSR default) or ``"grey"`` for colour inputs.
    :param min_coverage: with a mask, a 96x96 block is scored only if at least this fraction of it lies inside
        the mask (default 0.5: "mostly inside").

    ``forward(x, mask=None)`` takes ``(B,C,H,W)`` in ``[0,1]`` (C = 1 or 3) and returns ``(B,)`` float64.
    Flat content (no texture in any block) gives NaN, as in the reference.
    """

    def __init__(self, channel: str = "y", min_coverage: float = 0.5) -> None:
        super().__init__()
        p = load_params("niqe_pris_params.npz")
        self.channel = channel
        self.min_coverage = min_coverage
        self.register_buffer("mu_pris", torch.from_numpy(p["mu_pris_param"][0]))
        self.register_buffer("cov_pris", torch.from_numpy(p["cov_pris_param"]))
        self.register_buffer("window", torch.from_numpy(p["gaussian_window"]))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        img = luma(to_levels(x), self.channel)
        h, w = img.shape[-2:]
        if h < BLOCK or w < BLOCK:
            raise EIDError(f"NIQE needs images of at least {BLOCK}x{BLOCK} pixels, got {h}x{w}; use larger images")
        nh, nw = h // BLOCK, w // BLOCK
        img = img[..., : nh * BLOCK, : nw * BLOCK]
        window = self.window.to(img.device)
        feats = torch.cat(
            [_block_features(img, BLOCK, window), _block_features(_half(img), BLOCK // 2, window)],
            -1,
        )
        keep = torch.ones(feats.shape[:2], dtype=torch.bool, device=img.device)
        if mask is not None:
            keep = block_coverage(mask[..., : nh * BLOCK, : nw * BLOCK].to(img.device), BLOCK) >= self.min_coverage
        if int(keep.sum(1).min()) < 2:
            raise EIDError(
                f"NIQE needs at least 2 blocks of {BLOCK}x{BLOCK} pixels (inside the mask, if any), "
                f"got {int(keep.sum(1).min())}; use larger images or a larger field of view"
            )
        return self._distance(feats, keep)

    def _distance(self, feats: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """MVG distance to the pristine model per image, from block features ``(B,N,36)`` and kept blocks."""
        valid = keep[..., None] & ~torch.isnan(feats)
        mu_d = torch.where(valid, feats, 0).sum(1) / valid.sum(1)
        rows = (keep & ~torch.isnan(feats).any(-1)).to(feats)
        n = rows.sum(1)
        clean = torch.where(rows[..., None] > 0, feats, 0)
        centred = (clean - (clean.sum(1) / n[:, None])[:, None]) * rows[..., None]
        cov_d = centred.transpose(1, 2) @ centred / (n - 1)[:, None, None]
        diff = (self.mu_pris.to(feats) - mu_d)[:, None]
        inv = torch.linalg.pinv((self.cov_pris.to(feats) + cov_d) / 2, rtol=1e-15, hermitian=True)
        return torch.sqrt((diff @ inv @ diff.transpose(1, 2))[:, 0, 0])


@lru_cache(maxsize=4)
def _niqe(channel: str) -> NIQE:
    return NIQE(channel)


def niqe(x: torch.Tensor, mask: torch.Tensor | None = None, channel: str = "y") -> torch.Tensor:
    """NIQE of a ``(B,C,H,W)`` batch or a ``(C,H,W)`` image in ``[0,1]`` -> ``(B,)`` (or a scalar tensor)."""
    single = x.ndim == 3
    xb = x[None] if single else x
    mb = mask[None] if mask is not None and single else mask
    out = _niqe(channel)(xb, mb)
    return out[0] if single else out


register(
    MetricSpec(
        name="niqe",
        fn=lambda pred, ref=None, mask=None: niqe(pred, mask),
        needs_reference=False,
        lower_better=True,
        supports_mask=True,
        description="NIQE, MATLAB/BasicSR algorithm on BT.601 Y, LIVE pristine model",
    )
)
