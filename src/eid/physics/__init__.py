"""eid.physics: haze operators as deepinv ``Physics``."""

from eid.physics.asm import ASMHaze, transmission_from_depth
from eid.physics.density import PerImageDensity
from eid.physics.learned import LearnedHaze, from_gan_range, to_gan_range
from eid.physics.loading import OPERATOR_KINDS, load_operator, operator_kind
from eid.physics.observed import ObservedHaze
from eid.physics.scattering import ScatteringHaze

__all__ = [
    "OPERATOR_KINDS",
    "ASMHaze",
    "LearnedHaze",
    "ObservedHaze",
    "PerImageDensity",
    "ScatteringHaze",
    "from_gan_range",
    "load_operator",
    "operator_kind",
    "to_gan_range",
    "transmission_from_depth",
]  # fmt: skip
