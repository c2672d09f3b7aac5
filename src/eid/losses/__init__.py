"""eid.losses: the EID training objective ``L = L_HC + alpha * L_EQ``.

The optional adversarial prior uses deepinv's ``SupAdversarialGeneratorLoss`` /
``SupAdversarialDiscriminatorLoss`` directly (LSGAN; unpaired clear images are the "real" side); the optional
background prior (:class:`BackgroundPrior`) takes the clear images' background level.
"""

from eid.losses.background import BackgroundPrior
from eid.losses.equivariance import EquivarianceLoss
from eid.losses.haze_consistency import HazeConsistencyLoss
from eid.losses.metrics import pixel_metric

__all__ = [
    "BackgroundPrior",
    "EquivarianceLoss",
    "HazeConsistencyLoss",
    "pixel_metric",
]
