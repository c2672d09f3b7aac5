"""eid.models."""

from eid.models.dehazer import DehazerConfig, DehazerNet
from eid.models.dehazer_files import load_dehazer
from eid.models.discriminators import PatchGANDiscriminator
from eid.models.generators import ResnetGenerator

__all__ = [
    "DehazerConfig",
    "DehazerNet",
    "PatchGANDiscriminator",
    "ResnetGenerator",
    "load_dehazer",
]
