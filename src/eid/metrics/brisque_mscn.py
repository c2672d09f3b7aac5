"""The MSCN map both BRISQUE models start from (:mod:`eid.metrics.brisque_features`): MATLAB ``filter2`` local
statistics in double on the CPU, rounding on flat regions as the reference implementations do (:func:`brisque_mscn`).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage, signal

__all__ = ["BAND", "brisque_mscn"]

BAND = 1 << 16  # values per row band of the pixel-wise work (cache-sized)
_NEAR = (
    1e-11  # |I - mu| below this times max|I| is recomputed by the 2-D sum (separable error: ~1e-14)
)


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


def brisque_mscn(img: torch.Tensor, window: torch.Tensor, c: float) -> np.ndarray:
    """MSCN coefficients ``(I - mu) / (sigma + c)`` of ``img`` (B,1,H,W), ``mu`` and ``sigma^2`` the local mean and
    variance by MATLAB ``filter2`` with zero padding, in double; returned in a ``(B, H+2, W+1)`` array at
    ``[:, 1:H+1, 1:]``, the free row/column being room for the ``circshift`` wrap-around (see ``_live_sums`` in
    :mod:`eid.metrics.brisque_features`).

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
    rows = max(1, BAND // wd)
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
