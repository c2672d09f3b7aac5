"""eid.losses: the EID training objective ``L = L_HC + alpha * L_EQ`` (+ optional adversarial prior)."""

from eid.losses.adversarial import AdversarialPriorDiscriminatorLoss, AdversarialPriorLoss
from eid.losses.equivariance import EquivarianceLoss
from eid.losses.haze_consistency import HazeConsistencyLoss
from eid.losses.metrics import pixel_metric

__all__ = [
    "AdversarialPriorDiscriminatorLoss",
    "AdversarialPriorLoss",
    "EquivarianceLoss",
    "HazeConsistencyLoss",
    "pixel_metric",
]
