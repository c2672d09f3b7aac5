"""AGGD/GGD moment matching as in the MATLAB releases of NIQE, BRISQUE and FADE: additive statistics of MSCN
coefficients (tiles and bands add up), their moments, and the shape fit on the 0.2:0.001:10 grid, in float64."""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import gamma as gamma_fn

__all__ = ["aggd_grid_fit", "aggd_moments", "aggd_sums", "grid_argmin", "grid_table", "moments_of"]

# AGGD/GGD shape grid of the MATLAB code (0.2:0.001:10) and the gamma-function ratios on it.
_GAM = np.arange(0.2, 10.001, 0.001)
_R_AGGD = gamma_fn(2 / _GAM) ** 2 / (gamma_fn(1 / _GAM) * gamma_fn(3 / _GAM))  # increasing
_BETA = np.sqrt(gamma_fn(1 / _GAM) / gamma_fn(3 / _GAM))
_MEAN = gamma_fn(2 / _GAM) / gamma_fn(1 / _GAM)


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
    x: torch.Tensor,
    dims: tuple[int, ...] = (-1,),
    w: torch.Tensor | None = None,
    right_ge: bool = False,
) -> torch.Tensor:
    """Additive statistics ``(..., 6)`` (float64) of ``x`` over ``dims`` (trailing), counting the entries with
    weight 1 in ``w`` (all when None): ``[sum x^2 over x < 0, sum x^2 over x > 0 (x >= 0 when right_ge),
    #(x < 0), #(x > 0) (or x >= 0), sum |x|, #entries]``; squares are formed in the dtype of ``x`` (float32
    in NIQE, as in BasicSR) and summed in double. Sums of parts (tiles, bands) add up to those of the whole.

    With ``x- = min(x, 0)`` and ``x+ = max(x, 0)``: ``sum |x| = sum x+ - sum x-`` and the counts are those of
    the non-zero entries, which saves the masks and selections of a direct port.
    """
    if w is not None:
        x = (
            x * w
        )  # entries outside are 0: they add nothing to the sums, the counts below exclude them
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


def aggd_moments(
    x: torch.Tensor, w: torch.Tensor | None = None, right_ge: bool = False
) -> dict[str, torch.Tensor]:
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
