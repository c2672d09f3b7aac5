"""Full-reference metrics: PSNR and SSIM on images in ``[0, 1]``.

Convention (one place, stated once): RGB (or grey) in ``[0, 1]``, all channels, **no border crop**.

* PSNR ``= 10 log10(1 / MSE)`` per image over all channels and pixels (deepinv ``PSNR``); deepinv
  regularises the MSE, so identical images score a finite 80 dB (JSON has no infinity).
* SSIM: Gaussian window 11x11, sigma 1.5, ``K1 = 0.01``, ``K2 = 0.03``, data range 1, averaged over
  channels and over the valid region of the window (torchmetrics via deepinv ``SSIM``).
  ``downsample="dehazeformer"`` first average-pools by ``f = max(1, round(min(H, W) / 256))``, as the
  DehazeFormer / gUNet test scripts do (Zhou Wang's recommendation), for comparison with that line of work.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from deepinv.loss.metric import PSNR, SSIM

from eid.errors import EIDError
from eid.metrics.registry import MetricSpec, register

SSIMDownsample = Literal["none", "dehazeformer"]


def _check_pair(pred: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
    if ref is None:
        raise EIDError("PSNR/SSIM need a reference image; pass --ref DIR")
    if pred.shape != ref.shape:
        raise EIDError(
            f"prediction {tuple(pred.shape)} and reference {tuple(ref.shape)} differ in shape"
        )
    return ref


def psnr(
    pred: torch.Tensor, ref: torch.Tensor | None = None, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """PSNR in dB of ``(B,C,H,W)`` images in ``[0,1]``; returns ``(B,)``.

    >>> x = torch.zeros(1, 3, 8, 8); y = x + 0.1
    >>> round(float(psnr(y, x)), 4)
    20.0
    """
    ref = _check_pair(pred, ref)
    return _PSNR(pred.float(), ref.float())


def ssim(
    pred: torch.Tensor,
    ref: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    downsample: SSIMDownsample = "none",
) -> torch.Tensor:
    """SSIM of ``(B,C,H,W)`` images in ``[0,1]`` (Gaussian 11x11, sigma 1.5); returns ``(B,)``."""
    ref = _check_pair(pred, ref)
    pred, ref = pred.float(), ref.float()
    if downsample == "dehazeformer":
        factor = max(1, round(min(pred.shape[-2:]) / 256))
        if factor > 1:
            size = (pred.shape[-2] // factor, pred.shape[-1] // factor)
            pred, ref = F.adaptive_avg_pool2d(pred, size), F.adaptive_avg_pool2d(ref, size)
    if min(pred.shape[-2:]) < 11:
        raise EIDError(
            f"SSIM needs images of at least 11x11 pixels, got {pred.shape[-1]}x{pred.shape[-2]}"
        )
    return _SSIM(pred, ref)


_SSIM = SSIM(max_pixel=1.0, min_pixel=0.0)
_PSNR = PSNR(max_pixel=1.0)

register(
    MetricSpec(
        "psnr",
        psnr,
        needs_reference=True,
        lower_better=False,
        description="PSNR (dB), RGB in [0,1], no crop",
    )
)
register(
    MetricSpec(
        "ssim",
        ssim,
        needs_reference=True,
        lower_better=False,
        description="SSIM, Gaussian 11x11 sigma 1.5",
    )
)
register(
    MetricSpec(
        "ssim-dehazeformer",
        lambda pred, ref=None, mask=None: ssim(pred, ref, downsample="dehazeformer"),
        needs_reference=True,
        lower_better=False,
        description="SSIM after DehazeFormer's down-sampling",
    )
)
