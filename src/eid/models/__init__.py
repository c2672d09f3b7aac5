"""eid.models."""

from eid.models.dehazer import Dehazer, DehazerConfig, load_dehazer
from eid.models.discriminators import PatchGANDiscriminator
from eid.models.generators import ResnetGenerator

__all__ = ["Dehazer", "DehazerConfig", "PatchGANDiscriminator", "ResnetGenerator", "load_dehazer"]
