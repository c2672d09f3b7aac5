"""Haze consistency: the re-hazed estimate must reproduce the measurement."""

from __future__ import annotations

from deepinv.loss import MCLoss

from eid.losses.metrics import pixel_metric


class HazeConsistencyLoss(MCLoss):
    r"""Haze consistency :math:`\mathcal{L}_{HC} = \| H(f_\theta(y)) - y \|` (mean over pixels).

    deepinv's :class:`~deepinv.loss.MCLoss` (``metric(physics.A(x_net), y)``) under its own name so
    that logs tell it apart from the equivariance term.

    :param str norm: ``l2`` (mean squared error, as in the authors' code) or ``l1``.

    >>> import torch
    >>> from eid.physics import ASMHaze
    >>> physics = ASMHaze(transmission=0.5, airlight=1.0)
    >>> x = torch.rand(2, 3, 8, 8)
    >>> float(HazeConsistencyLoss()(y=physics.A(x), x_net=x, physics=physics))
    0.0
    """

    def __init__(self, norm: str = "l2") -> None:
        super().__init__(metric=pixel_metric(norm))
        self._name = "haze_consistency"
