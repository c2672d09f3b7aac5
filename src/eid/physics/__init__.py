"""eid.physics: haze operators as deepinv ``Physics``."""

from eid.physics.asm import ASMHaze, transmission_from_depth

__all__ = ["ASMHaze", "transmission_from_depth"]
