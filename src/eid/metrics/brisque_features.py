"""BRISQUE features of one scale, for both models of :mod:`eid.metrics.brisque`: the LIVE MATLAB release
(``_live_scale``: ``filter2`` MSCN, GGD/AGGD grid fits, wrapped pair products) and the ``brisque`` 0.2.0
package (``_pkg_scale``: OpenCV-style scale 2, AGGD shape by root finding), computed in double on the CPU.
Both start from the MSCN map of :mod:`eid.metrics.brisque_mscn`."""

from __future__ import annotations

import math

import numpy as np
import torch
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
from eid.metrics.brisque_mscn import BAND, brisque_mscn

_R_GGD = gamma_fn(1 / _GAM) * gamma_fn(3 / _GAM) / gamma_fn(2 / _GAM) ** 2  # decreasing
_CONST = np.sqrt(gamma_fn(1 / _GAM)) / np.sqrt(gamma_fn(3 / _GAM))
MATLAB_GREY = (0.298936021293775, 0.587043074451121, 0.114020904255103)
REC709_GREY = (0.2125, 0.7154, 0.0721)
LIVE_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))


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
    rows = max(1, BAND // wd)
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
    """Fill the wrap-around row/column of ``(B, H+2, W+1)`` arrays laid out as
    :func:`~eid.metrics.brisque_mscn.brisque_mscn` returns them."""
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
    ext = brisque_mscn(img, window, 1.0)
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
    coef = torch.from_numpy(brisque_mscn(img, window, 1 / 255)[:, None, 1:-1, 1:])
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
