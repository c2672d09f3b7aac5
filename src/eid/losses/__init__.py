"""eid.losses: the EID training objective ``L = L_HC + alpha * L_EQ``.

The optional adversarial prior uses deepinv's ``SupAdversarialGeneratorLoss`` /
``SupAdversarialDiscriminatorLoss`` directly (LSGAN; unpaired clear images are the "real" side).
"""

from eid.losses.equivariance import EquivarianceLoss
from eid.losses.haze_consistency import HazeConsistencyLoss
from eid.losses.metrics import pixel_metric

__all__ = [
    "EquivarianceLoss",
    "HazeConsistencyLoss",
    "pixel_metric",
]
