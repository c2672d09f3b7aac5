"""Haze scores of one image inside a mask, used to sort video frames into clear and hazy
(:func:`eid.prepare.prepare_cholec80`)."""

from __future__ import annotations

from torch import Tensor

from eid.baselines.dcp import min_filter
from eid.errors import EIDError


def dark_channel_score(image: Tensor, mask: Tensor, patch: int | None = None) -> float:
    r"""Haze/smoke score: median over the field of view of the dark channel :math:`\min_\Omega \min_c x^c`.

    Clear laparoscopic tissue is saturated red, so its dark channel is near 0; smoke adds a grey
    veil that lifts every channel. The median ignores specular highlights. The patch is about 1/32
    of the image side (15 px at 480 px, He et al.'s size), and ``mask`` should be eroded by half a
    patch so that the black border does not pull the score down. On the 11 shared Cholec80 frames
    (256 px): clear 0.03, smoky 0.35-0.66.
    """
    patch = patch or (max(3, round(image.shape[-1] / 32)) | 1)
    dark = min_filter(image[None].amin(1, keepdim=True), patch)[0]
    values = dark[mask]
    return float(values.median()) if values.numel() else float("nan")


def fade_score(image: Tensor, mask: Tensor) -> float:
    """FADE (:mod:`eid.metrics.fade`) inside ``mask``; refused when FADE is not installed."""
    # the registry fills itself when the metrics modules are imported
    from eid.metrics import METRICS

    if "fade" not in METRICS:
        raise EIDError(
            "the FADE metric is not available in this installation; use --score dark-channel"
        )
    return float(METRICS["fade"].fn(image[None], mask=mask[None]))


SCORERS = {"dark-channel": dark_channel_score, "fade": fade_score}
