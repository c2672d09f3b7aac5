"""eid.physics: haze operators as deepinv ``Physics``."""

from eid.physics.asm import ASMHaze, transmission_from_depth
from eid.physics.learned import LearnedHaze, from_gan_range, to_gan_range

__all__ = ["ASMHaze", "LearnedHaze", "from_gan_range", "to_gan_range", "transmission_from_depth"]
