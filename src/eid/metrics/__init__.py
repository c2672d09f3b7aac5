"""Image quality metrics: paired (PSNR, SSIM) and no-reference (NIQE, BRISQUE, FADE).

Importing this package registers every metric in :data:`eid.metrics.registry.METRICS`.
"""

from eid.metrics import paired  # noqa: F401  (registers psnr, ssim)
from eid.metrics.registry import METRICS, MetricSpec, get_metrics, register

__all__ = ["METRICS", "MetricSpec", "get_metrics", "register"]
from eid.metrics import brisque, fade, niqe  # noqa: F401  (register NIQE, BRISQUE, FADE)
