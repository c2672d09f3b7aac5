"""BRISQUE features of one scale, for both models of :mod:`eid.metrics.brisque`: the LIVE MATLAB release
(``_live_scale``: ``filter2`` MSCN, GGD/AGGD grid fits, wrapped pair products) and the ``brisque`` 0.2.0
package (``_pkg_scale``: OpenCV-style scale 2, AGGD shape by root finding), computed in double on the CPU."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage, signal
from scipy.special import gamma as gamma_fn

from eid.metrics.aggd import (
    _GAM,
    _MEAN,
    aggd_grid_fit,
    aggd_moments,
    grid_argmin,
    grid_table,
    moments_of,
)

_R_GGD = gamma_fn(1 / _GAM) * gamma_fn(3 / _GAM) / gamma_fn(2 / _GAM) ** 2  # decreasing
_CONST = np.sqrt(gamma_fn(1 / _GAM)) / np.sqrt(gamma_fn(3 / _GAM))
MATLAB_GREY = (0.298936021293775, 0.587043074451121, 0.114020904255103)
REC709_GREY = (0.2125, 0.7154, 0.0721)
LIVE_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
_BAND = 1 << 16  # values per row band of the pixel-wise work (cache-sized)
_NEAR = (
    1e-11  # |I - mu| below this times max|I| is recomputed by the 2-D sum (separable error: ~1e-14)
)


def _gaussian_window() -> torch.Tensor:
    """``fspecial('gaussian', 7, 7/6)`` normalised to sum 1."""
    y, x = np.indices((7, 7)) - 3
    k = np.exp(-(x**2 + y**2) / (2 * (7 / 6) ** 2))
    return torch.from_numpy(k / k.sum())


def _cv2_half_matrix(n_in: int) -> np.ndarray:
    """``(n_out, n_in)`` weights of OpenCV ``resize(fx=0.5, INTER_CUBIC)`` along one axis (a = -0.75, clamped
    borders, ``n_out = rint(n_in / 2)``): output ``i`` samples ``2i + 0.5`` with weights (-3, 19, 19, -3) / 32."""
    n_out = int(np.rint(n_in * 0.5))
    mat = np.zeros((n_out, n_in))
    taps = np.array([-0.09375, 0.59375, 0.59375, -0.09375])
    for k, w in enumerate(taps):
        src = np.clip(2 * np.arange(n_out) - 1 + k, 0, n_in - 1)
        np.add.at(mat, (np.arange(n_out), src), w)
    return mat


def _cv2_half(img: torch.Tensor) -> torch.Tensor:
    rows = torch.from_numpy(_cv2_half_matrix(img.shape[-2])).to(img)
    cols = torch.from_numpy(_cv2_half_matrix(img.shape[-1])).to(img)
    return rows @ img @ cols.T


def _phi_inverse(target: torch.Tensor, iters: int = 100) -> torch.Tensor:
    """Solve ``Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)) = target`` for ``a`` by bisection on ``log a``
    (the package calls ``scipy.optimize.root`` from 0.2; the root is unique since the ratio increases in ``a``)."""
    lo = torch.full_like(target, math.log(0.01))
    hi = torch.full_like(target, math.log(100.0))
    for _ in range(iters):
        mid = (lo + hi) / 2
        a = torch.exp(mid)
        phi = torch.exp(2 * torch.lgamma(2 / a) - torch.lgamma(1 / a) - torch.lgamma(3 / a))
        below = phi < target
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return torch.exp((lo + hi) / 2)


def _flat(x: torch.Tensor, m: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    return x.flatten(1), None if m is None else m.flatten(1).to(x)


def _filter2_sep(seg: np.ndarray, g: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(g g^T, ., 'same')`` of the rows of a band that has 3 rows and columns of context (zeros
    outside the image) on each side: two 1-D passes in double, the 2-D sum's value up to rounding."""
    cols = ndimage.correlate1d(seg, g, axis=0, mode="constant")[3:-3]
    return ndimage.correlate1d(cols, g, axis=-1, mode="constant")[:, 3:-3]


def _conv2_centres(patches: np.ndarray, window: np.ndarray) -> np.ndarray:
    """``scipy.signal.convolve2d(img, window, 'same')`` at pixels whose 7x7 neighbourhoods in ``img`` (zeros
    outside) are ``patches`` (K,7,7), bit for bit.

    convolve2d sums each output's 49 products in a fixed order, so its value depends on the neighbourhood only:
    the patches laid side by side and filtered ``'valid'`` give the same numbers (7 outputs per patch).
    """
    out = np.empty(len(patches))
    for s in range(0, len(patches), 1 << 14):
        strip = patches[s : s + (1 << 14)].transpose(1, 0, 2).reshape(7, -1)
        out[s : s + strip.shape[1] // 7] = signal.convolve2d(strip, window, "valid")[0, ::7]
    return out


def _filter2_near_zero(seg: np.ndarray, near: np.ndarray, window: np.ndarray) -> np.ndarray:
    """The 2-D sums (:func:`_conv2_centres`) at the pixels ``near`` of the middle of band ``seg`` (see
    :func:`_filter2_sep`). Pixels with a flat 7x7 window are the common case (whole flat regions): their
    sum depends on the value only and is computed once per distinct value."""
    taps = np.arange(7)
    flat = ndimage.minimum_filter(seg, 7)[3:-3, 3:-3] == ndimage.maximum_filter(seg, 7)[3:-3, 3:-3]
    out = np.empty(np.count_nonzero(near))
    flat_near = flat[near]
    values, inverse = np.unique(seg[3:-3, 3:-3][near][flat_near], return_inverse=True)
    out[flat_near] = _conv2_centres(
        np.broadcast_to(values[:, None, None], (len(values), 7, 7)), window
    )[inverse]
    i, j = np.nonzero(near & ~flat)
    out[~flat_near] = _conv2_centres(
        seg[i[:, None, None] + taps[:, None], j[:, None, None] + taps], window
    )
    return out


def _mscn(img: torch.Tensor, window: torch.Tensor, c: float) -> np.ndarray:
    """MSCN coefficients ``(I - mu) / (sigma + c)`` of ``img`` (B,1,H,W), ``mu`` and ``sigma^2`` the local mean and
    variance by MATLAB ``filter2`` with zero padding, in double; returned in a ``(B, H+2, W+1)`` array at
    ``[:, 1:H+1, 1:]``, the free row/column being room for the ``circshift`` wrap-around (see :func:`_live_sums`).

    The filter is separable (two 1-D passes) except where ``|I - mu|`` comes out within rounding of 0: there
    ``mu`` is the canonical 2-D ``convolve2d`` sum (:func:`_filter2_near_zero`). On a flat region ``I - mu`` is pure
    rounding residue (about 1e-14), yet its sign decides whether the coefficient counts as left or right in
    the AGGD fits, and thousands of such pixels (e.g. the dark border of an endoscope frame) move the score by
    more than 1; the residues of the 2-D sum are the ones the reference implementations produce.
    """
    w = window.detach().to(torch.float64).cpu().numpy()
    g = w.sum(0)
    x = img.detach().to(torch.float64).cpu().numpy()[:, 0]
    b, h, wd = x.shape
    out = np.empty((b, h + 2, wd + 1))
    rows = max(1, _BAND // wd)
    for k in range(b):
        padded = np.pad(x[k], 3)
        tol = _NEAR * np.abs(x[k]).max()
        for r0 in range(0, h, rows):
            seg = padded[r0 : r0 + rows + 6]
            mu, sq = _filter2_sep(seg, g), _filter2_sep(seg * seg, g)
            core = seg[3:-3, 3:-3]
            dev = core - mu
            near = np.abs(dev) <= tol
            if near.any():
                near &= mu != 0  # mu = 0: an all-zero window, whose 2-D sum is 0 too
                if near.any():
                    mu[near] = _filter2_near_zero(seg, near, w)
                    dev[near] = core[near] - mu[near]
            sq -= mu * mu
            np.sqrt(np.abs(sq, out=sq), out=sq)  # sigma
            sq += c
            np.divide(dev, sq, out=out[k, 1 + r0 : 1 + r0 + len(dev), 1:])
    return out


def _live_sums(ext: np.ndarray) -> np.ndarray:
    """:func:`~eid.metrics.nss.aggd_sums` statistics ``(5, 5)`` (without the count column) of an MSCN map
    and of its four ``circshift`` pair products, in the order of ``LIVE_SHIFTS``.

    ``ext`` (H+2, W+1) holds the map at ``[1:H+1, 1:]``, its last row in row 0, its first row in row H+1 and
    its last column in column 0, so that every partner ``map(i - di, j - dj)`` (with wrap-around) is a plain
    slice; the work runs over cache-sized row bands. ``sum x+^2`` is ``sum x^2 - sum x-^2``; the dot products
    are torch's (numpy's BLAS would start its own threads).
    """
    h, wd = ext.shape[0] - 2, ext.shape[1] - 1
    acc = np.zeros((5, 5))
    rows = max(1, _BAND // wd)
    for r0 in range(1, h + 1, rows):
        r1 = min(r0 + rows, h + 1)
        a = ext[r0:r1, 1:]
        pieces = [np.ascontiguousarray(a)]
        pieces += [a * ext[r0 - di : r1 - di, 1 - dj : 1 - dj + wd] for di, dj in LIVE_SHIFTS]
        for k, p in enumerate(pieces):
            p = p.reshape(-1)
            neg = np.minimum(p, 0)
            tp, tn = torch.from_numpy(p), torch.from_numpy(neg)
            sq_neg = float(torch.dot(tn, tn))
            n_neg, n_pos = np.count_nonzero(p < 0), np.count_nonzero(p > 0)
            acc[k] += (
                sq_neg,
                float(torch.dot(tp, tp)) - sq_neg,
                n_neg,
                n_pos,
                p.sum() - 2 * neg.sum(),
            )
    return acc


def _wrapped(core: np.ndarray) -> np.ndarray:
    """Fill the wrap-around row/column of ``(B, H+2, W+1)`` arrays laid out as :func:`_mscn` returns them."""
    core[:, 0, 1:] = core[:, -2, 1:]
    core[:, -1, 1:] = core[:, 1, 1:]
    core[:, :, 0] = core[:, :, -1]
    return core


def _live_scale(
    img: torch.Tensor, mask: torch.Tensor | None, window: torch.Tensor
) -> list[torch.Tensor]:
    """18 ``brisque_feature.m`` features of one scale for ``img`` (B,1,H,W) on 0-255.

    With a mask the coefficients outside are set to 0: they add nothing to the sums and a product with them
    is 0, which no count includes; the numbers of entries are the positive counts of the same sums over the
    0/1 mask (its pixels and pixel pairs inside).
    """
    ext = _mscn(img, window, 1.0)
    if mask is None:
        n = np.full((len(ext), 5, 1), float(img.shape[-2] * img.shape[-1]))
    else:
        inside = np.zeros_like(ext)
        inside[:, 1:-1, 1:] = mask[:, 0].cpu().numpy()
        ext[:, 1:-1, 1:] *= inside[:, 1:-1, 1:]
        n = np.stack([_live_sums(m)[:, 3:4] for m in _wrapped(inside)])
    sums = np.stack([_live_sums(e) for e in _wrapped(ext)])
    total = torch.from_numpy(np.concatenate([sums, n], -1))
    ggd = moments_of(total[:, 0])
    feats = [torch.from_numpy(_GAM)[grid_argmin(_R_GGD, ggd["sq"] / ggd["abs"] ** 2)], ggd["sq"]]
    for k in range(1, 5):
        m = moments_of(total[:, k])
        idx, alpha = aggd_grid_fit(m)
        mean = (m["right"] - m["left"]) * grid_table(_MEAN, idx) * grid_table(_CONST, idx)
        feats += [alpha, mean, m["left"] ** 2, m["right"] ** 2]
    return feats


def _pkg_fit(x: torch.Tensor, w: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """``brisque`` 0.2.0 AGGD fit: alpha (root of phi = R_hat), mean, sigma_l^2, sigma_r^2 (right: x >= 0)."""
    m = aggd_moments(x, w, right_ge=True)
    g = m["left"] / m["right"]
    r_hat = m["abs"] ** 2 / m["sq"] * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    alpha = _phi_inverse(r_hat)
    const = torch.exp(0.5 * (torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)))
    mean = (
        (m["right"] - m["left"])
        * const
        * torch.exp(torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha))
    )
    return alpha, mean, m["left"] ** 2, m["right"] ** 2


def _pkg_scale(
    img: torch.Tensor, mask: torch.Tensor | None, window: torch.Tensor
) -> list[torch.Tensor]:
    """18 ``brisque`` 0.2.0 features of one scale for ``img`` (B,1,H,W) in [0,1]."""
    coef = torch.from_numpy(_mscn(img, window, 1 / 255)[:, None, 1:-1, 1:])
    alpha, _, sl, sr = _pkg_fit(*_flat(coef, mask))
    feats = [alpha, (sl + sr) / 2]
    a, m = coef, mask
    pairs = (
        (a[..., :, :-1], a[..., :, 1:], None if m is None else m[..., :, :-1] & m[..., :, 1:]),
        (a[..., :-1, :], a[..., 1:, :], None if m is None else m[..., :-1, :] & m[..., 1:, :]),
        (
            a[..., :-1, :-1],
            a[..., 1:, 1:],
            None if m is None else m[..., :-1, :-1] & m[..., 1:, 1:],
        ),
        (
            a[..., 1:, :-1],
            a[..., :-1, 1:],
            None if m is None else m[..., 1:, :-1] & m[..., :-1, 1:],
        ),
    )
    for p, q, pm in pairs:
        feats += list(_pkg_fit(*_flat(p * q, pm)))
    return feats
