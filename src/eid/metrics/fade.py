"""FADE, the Fog Aware Density Evaluator (Choi, You & Bovik, "Referenceless Prediction of Perceptual Fog Density
and Perceptual Image Defogging", IEEE TIP 24(11), 2015), as in the LIVE release ``FADE.m`` / ``CE.m``.

The 8-bit RGB image (a grey image is repeated into three channels) is cropped to whole 8x8 patches. Each patch
gives 12 fog-aware features, stored as ``log(1 + f)``: MSCN variance; variance of the positive and of the
negative vertical MSCN pair products (``circshift`` by one row); mean local sigma; mean ``sigma / mu``; mean
contrast energy of the grey, yellow-blue and red-green channels; entropy of the 8-bit grey patch; mean dark
channel ``min(R,G,B)/255``; mean HSV saturation; colourfulness. Against a fog-free and a foggy multivariate
Gaussian model ``(mu, S)`` (500 images each, vendored in ``_params/fade_params_ps8.npz``), each patch has

    d = sqrt((mu - f) C^-1 (mu - f)^T),   C = (S + v 11^T) / 2,

with ``v`` the variance of the patch's own 12 feature values (a quirk of the release, kept). ``C^-1`` is
applied by the Sherman-Morrison formula, so one 12x12 inverse serves all patches. With ``Df`` and ``Dff`` the
NaN-ignoring means of ``d`` over patches, the fog density is ``D = Df / (Dff + 1)`` (lower = less fog).
With a mask, only patches with at least ``min_coverage`` of their pixels inside are averaged.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from eid.errors import EIDError
from eid.metrics.brisque_features import MATLAB_GREY, _gaussian_window
from eid.metrics.nss import block_coverage, filter2, load_params, mscn, to_levels
from eid.metrics.registry import MetricSpec, register

PATCH = 8
# CE.m: Groen et al.'s empirical noise thresholds for the grey, yb and rg channels (on 0-255).
CE_THRESHOLDS = (
    9.225496406318721e-004 * 255,
    8.969246659629488e-004 * 255,
    2.069284034165411e-004 * 255,
)


def _log_kernel(sigma: float = 3.25) -> torch.Tensor:
    """The 20-tap second-derivative-of-Gaussian kernel of ``CE.m`` (taps at -9.75, ..., 9.25, as MATLAB's
    ``-3*sigma:1:3*sigma`` gives), zero-mean and normalised so that ``sum(x^2 g / 2) = 1``."""
    x = np.arange(-3 * sigma, 3 * sigma + 1e-9, 1.0)
    gauss = np.exp(-(x**2) / (2 * sigma**2))
    gauss /= gauss.sum()
    g = (x**2 / sigma**4 - 1 / sigma**2) * gauss
    g -= g.sum() / len(x)
    return torch.from_numpy(g / np.sum(0.5 * x * x * g))


def _contrast_energy(chan: torch.Tensor, kernel: torch.Tensor, threshold: float) -> torch.Tensor:
    """``CE.m`` for one channel ``(B,1,H,W)``: gradient magnitude of the LoG responses (borders extended by
    copying the 10 outermost rows/columns, ``border_in``), divisive normalisation ``C max(C) / (C + 0.1 max(C))``
    with the image maximum, minus the noise threshold, clipped at 0."""
    ext = torch.cat([chan[..., :10, :], chan, chan[..., -10:, :]], -2)
    ext = torch.cat([ext[..., :10], ext, ext[..., -10:]], -1)
    cx = _valid_conv1d(ext[..., 10:-10, :], kernel, -1)
    cy = _valid_conv1d(ext[..., :, 10:-10], kernel, -2)
    c = torch.sqrt(cx**2 + cy**2)
    cmax = c.flatten(1).amax(-1).view(-1, 1, 1, 1)
    r = c * cmax / (c + cmax * 0.1) - threshold
    return torch.where(r > 1e-7, r, torch.zeros_like(r))


def _valid_conv1d(ext: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """MATLAB ``conv2(ext, g, 'same')`` along ``dim`` for the 20-tap ``g``, keeping the outputs that ``border_out``
    keeps: ``out[q] = sum_k ext[q + 1 + k] g[19 - k]`` (the even kernel reaches 9 before and 10 after)."""
    n = ext.shape[dim] - 20
    if ext.device.type == "cpu":
        axis = ext.ndim + dim
        full = ndimage.correlate1d(ext.numpy(), kernel.flip(0).numpy(), axis=axis, mode="constant")
        return torch.from_numpy(full).narrow(dim, 11, n)
    shape = (1, 1, 1, len(kernel)) if dim == -1 else (1, 1, len(kernel), 1)
    return F.conv2d(ext, kernel.flip(0).to(ext).view(shape)).narrow(dim, 1, n)


def _patches(x: torch.Tensor) -> torch.Tensor:
    """``(B, N, 64)`` non-overlapping 8x8 patches (row-major patch order) of ``(B,1,H,W)``."""
    b, _, h, w = x.shape
    t = x.reshape(b, h // PATCH, PATCH, w // PATCH, PATCH).permute(0, 1, 3, 2, 4)
    return t.reshape(b, (h // PATCH) * (w // PATCH), PATCH * PATCH)


def _nanvar(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Unbiased variance over the last axis of the entries in ``keep`` (MATLAB ``nanvar``; one entry -> 0)."""
    n = keep.sum(-1)
    xs = torch.where(keep, x, 0)
    mean = xs.sum(-1) / n
    var = (torch.where(keep, x - mean[..., None], 0) ** 2).sum(-1) / (n - 1)
    return torch.where(n == 1, torch.zeros_like(var), var)


def fade_features(x: torch.Tensor) -> torch.Tensor:
    """The 12 FADE features ``log(1 + f)`` of every 8x8 patch: ``(B, N, 12)`` for ``(B,C,H,W)`` in [0,1]."""
    lv = to_levels(x)
    if lv.shape[1] == 1:
        lv = lv.expand(-1, 3, -1, -1)
    h, w = (lv.shape[-2] // PATCH) * PATCH, (lv.shape[-1] // PATCH) * PATCH
    if h == 0 or w == 0:
        raise EIDError(
            f"FADE needs images of at least {PATCH}x{PATCH} pixels, got {tuple(lv.shape[-2:])}; use larger images"
        )
    lv = lv[..., :h, :w]
    r, g, b = lv[:, 0:1], lv[:, 1:2], lv[:, 2:3]
    grey = torch.floor(r * MATLAB_GREY[0] + g * MATLAB_GREY[1] + b * MATLAB_GREY[2] + 0.5)
    window = _gaussian_window().to(lv.device)
    coef, sigma = mscn(grey, window)
    cv = sigma / filter2(grey, window)
    rg, by = r - g, 0.5 * (r + g) - b
    kernel = _log_kernel()
    ce = [
        _contrast_energy(c, kernel, t)
        for c, t in zip((0.299 * r + 0.587 * g + 0.114 * b, by, rg), CE_THRESHOLDS)
    ]
    vmax = lv.amax(1, keepdim=True)
    sat = torch.where(vmax > 0, (vmax - lv.amin(1, keepdim=True)) / vmax, torch.zeros_like(vmax))

    pm = _patches(coef)
    pair = _patches(coef * torch.roll(coef, 1, dims=-2))
    gp = _patches(grey).to(torch.int64)
    counts = torch.zeros(*gp.shape[:2], 256, dtype=lv.dtype, device=lv.device)
    prob = counts.scatter_add_(-1, gp, torch.ones_like(gp, dtype=lv.dtype)) / (PATCH * PATCH)
    entropy = -(torch.where(prob > 0, prob * torch.log2(prob), 0)).sum(-1)
    prg, pby = _patches(rg), _patches(by)
    colourful = torch.sqrt(prg.var(-1) + pby.var(-1)) + 0.3 * torch.sqrt(
        prg.mean(-1) ** 2 + pby.mean(-1) ** 2
    )
    feats = torch.stack(
        [
            pm.var(-1),
            _nanvar(pair, pair >= 0),
            _nanvar(pair, pair <= 0),
            _patches(sigma).mean(-1),
            _patches(cv).mean(-1),
            *[_patches(c).mean(-1) for c in ce],
            entropy,
            _patches(lv.amin(1, keepdim=True) / 255).mean(-1),
            _patches(sat).mean(-1),
            colourful,
        ],
        -1,
    )
    return torch.log1p(feats)


class FADE(torch.nn.Module):
    """Perceptual fog density (lower = less fog) of ``(B,C,H,W)`` images in ``[0,1]`` -> ``(B,)`` float64.

    :param min_coverage: with a mask, the fraction of an 8x8 patch that must lie inside it (default 1: fully).
    """

    def __init__(self, min_coverage: float = 1.0) -> None:
        super().__init__()
        p = load_params("fade_params_ps8.npz")
        self.min_coverage = min_coverage
        for name in ("fogfree", "foggy"):
            self.register_buffer(f"mu_{name}", torch.from_numpy(p[f"mu_{name}"][0]))
            self.register_buffer(
                f"icov_{name}", torch.linalg.inv(torch.from_numpy(p[f"cov_{name}"]) / 2)
            )

    def density_map(self, x: torch.Tensor) -> torch.Tensor:
        """Per-patch fog density ``Df / (Dff + 1)`` as ``(B, H // 8, W // 8)``."""
        df, dff = self._distances(fade_features(x))
        return (df / (dff + 1)).view(x.shape[0], x.shape[-2] // PATCH, x.shape[-1] // PATCH)

    def _distances(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-patch distances ``(B, N)`` to the fog-free and the foggy model."""
        fin = ~torch.isnan(f)
        v = _nanvar(f, fin) / 2
        out = []
        for mu, icov in ((self.mu_fogfree, self.icov_fogfree), (self.mu_foggy, self.icov_foggy)):
            d = mu.to(f) - f
            a = icov.to(f)
            ad = d @ a
            ones_a = a.sum(0)
            quad = (ad * d).sum(-1) - v * (ad.sum(-1)) ** 2 / (1 + v * ones_a.sum())
            out.append(torch.sqrt(quad))
        return out[0], out[1]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        df, dff = self._distances(fade_features(x))
        keep = torch.ones_like(df, dtype=torch.bool)
        if mask is not None:
            h, w = (x.shape[-2] // PATCH) * PATCH, (x.shape[-1] // PATCH) * PATCH
            keep = block_coverage(mask[..., :h, :w].to(df.device), PATCH) >= self.min_coverage
            if int(keep.sum(1).min()) == 0:
                raise EIDError(
                    "FADE found no 8x8 patch inside the mask; check the mask or use --mask none"
                )
        means = [torch.nanmean(torch.where(keep, d, float("nan")), 1) for d in (df, dff)]
        return means[0] / (means[1] + 1)


@lru_cache(maxsize=1)
def _fade() -> FADE:
    return FADE()


def fade(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """FADE of a ``(B,C,H,W)`` batch or a ``(C,H,W)`` image in ``[0,1]`` -> ``(B,)`` (or a scalar tensor)."""
    single = x.ndim == 3
    out = _fade()(x[None] if single else x, mask[None] if single and mask is not None else mask)
    return out[0] if single else out


register(
    MetricSpec(
        name="fade",
        fn=lambda pred, ref=None, mask=None: fade(pred, mask),
        needs_reference=False,
        lower_better=True,
        supports_mask=True,
        description="FADE fog density (Choi, You & Bovik 2015), LIVE release models",
    )
)
