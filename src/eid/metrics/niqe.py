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
release only applies when fitting the pristine model). The helpers shared with BRISQUE and FADE are in :mod:`eid.metrics.nss`.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from eid.errors import EIDError
from eid.metrics.aggd import _BETA, _MEAN, aggd_grid_fit, aggd_sums, grid_table, moments_of
from eid.metrics.nss import block_coverage, imresize, load_params, luma, mscn, row_bands, to_levels
from eid.metrics.registry import MetricSpec, register

BLOCK = 96
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _block_features(
    img: torch.Tensor, block: int, window: torch.Tensor, chunk: int = 64
) -> torch.Tensor:
    """``(B, N, 18)`` NIQE features of the ``block``-sized tiles of ``img`` ``(B,1,H,W)`` (tiles row-major).

    As in BasicSR the coefficients and their pair products are float32; the per-tile sums accumulate in
    double. Tiles are processed ``chunk`` at a time so that the products stay in cache.
    """
    b = img.shape[0]
    coef, _ = mscn(img, window, single=True)
    nh, nw = coef.shape[-2] // block, coef.shape[-1] // block
    tiles = (
        coef[..., : nh * block, : nw * block]
        .reshape(b, nh, block, nw, block)
        .permute(0, 1, 3, 2, 4)
    )
    tiles = tiles.reshape(b * nh * nw, block, block)
    sums = []
    for t in tiles.split(chunk):
        pairs = [t * torch.roll(t, shift, dims=(-2, -1)) for shift in SHIFTS]
        sums.append(torch.stack([aggd_sums(p, (-2, -1)) for p in (t, *pairs)], 1))
    feats = []
    for k, s in enumerate(torch.cat(sums).unbind(1)):
        m = moments_of(s)
        idx, alpha = aggd_grid_fit(m)
        beta = grid_table(_BETA, idx)
        if k == 0:
            feats += [alpha, (m["left"] + m["right"]) * beta / 2]
        else:
            bl, br = m["left"] * beta, m["right"] * beta
            feats += [alpha, (br - bl) * grid_table(_MEAN, idx), bl, br]
    return torch.stack(feats, -1).reshape(b, nh * nw, 18)


def _half(img: torch.Tensor) -> torch.Tensor:
    """Scale 2 of NIQE: ``imresize(img / 255, 0.5) * 255`` rounded through float32 as in BasicSR."""
    unit = (img.to(torch.float32) / 255).to(torch.float64)
    return imresize(unit).to(torch.float32).mul_(255)


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
        img = torch.cat(
            [luma(to_levels(band, torch.float32), self.channel) for band in row_bands(x)], -2
        )
        h, w = img.shape[-2:]
        if h < BLOCK or w < BLOCK:
            raise EIDError(
                f"NIQE needs images of at least {BLOCK}x{BLOCK} pixels, got {h}x{w}; use larger images"
            )
        nh, nw = h // BLOCK, w // BLOCK
        img = img[..., : nh * BLOCK, : nw * BLOCK]
        window = self.window.to(img.device)
        feats = torch.cat(
            [_block_features(img, BLOCK, window), _block_features(_half(img), BLOCK // 2, window)],
            -1,
        )
        keep = torch.ones(feats.shape[:2], dtype=torch.bool, device=img.device)
        if mask is not None:
            keep = (
                block_coverage(mask[..., : nh * BLOCK, : nw * BLOCK].to(img.device), BLOCK)
                >= self.min_coverage
            )
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
