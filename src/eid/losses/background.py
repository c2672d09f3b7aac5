r"""The background level of clear images as a prior on the dehazer's outputs (``background_weight``).

.. math:: \mathcal{L}_{BG}(\theta) = \frac{w}{B} \sum_{b=1}^{B} \big(Q_q(f_\theta(y_b)) - \beta\big)^2

:math:`Q_q` is the ``q``-quantile of an image's pixels: its darkest, in a fluorescence image the background (camera
offset, autofluorescence). :math:`\beta` is the median of :math:`Q_q` over unpaired clear images
(:meth:`BackgroundPrior.fit`). Images from one microscope share that level, while out-of-focus light raises it by a
different amount in each image. A learned operator ``H(x)`` guesses the veil from the clear image, so it gives every
image about one veil level, and a dehazer trained through it removes the same veil from every crop (on the microscopy
benchmark its per-crop mean error follows the true veil with correlation 0.97, ``docs/benchmarks.md``). This term
tells it how dark each output's background should be.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from eid.errors import EIDError


class BackgroundPrior(nn.Module):
    r"""``w * mean_b (Q_q(x_b) - beta)^2`` for a batch ``x`` ``(B,C,H,W)``; ``beta`` set by :meth:`fit`.

    :param float weight: ``w``.
    :param float quantile: ``q`` in ``(0, 1)``: the fraction of an image's pixels taken as its background's floor.

    >>> prior = BackgroundPrior(weight=1.0, quantile=0.1).fit([torch.full((1, 8, 8), 0.05)])
    >>> round(float(prior(torch.full((2, 1, 8, 8), 0.15))), 6)
    0.01
    """

    def __init__(self, weight: float, quantile: float) -> None:
        super().__init__()
        self.weight, self.quantile = weight, quantile
        self.level: float | None = None  # not saved: each fit reads it again from the clear images

    @torch.no_grad()
    def fit(self, clear: Iterable[Tensor]) -> BackgroundPrior:
        """Set ``beta`` to the median ``q``-quantile of clear images ``(C,H,W)``; returns self."""
        levels = [image.flatten().quantile(self.quantile) for image in clear]
        if not levels:
            raise EIDError("the background prior needs unpaired clear images; pass --clear DIR")
        self.level = float(torch.stack(levels).median())
        return self

    def forward(self, x_net: Tensor) -> Tensor:
        if self.level is None:
            raise EIDError("the background prior has no level yet; call fit(clear_images) first")
        # torch.quantile takes float32 or float64 only (a bf16-mixed step gives bf16)
        floor = x_net.flatten(1).float().quantile(self.quantile, dim=1)
        return self.weight * (floor - self.level).square().mean()
