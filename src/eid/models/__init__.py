"""eid.models."""

# ``Dehazer``: the network's old name (``eid.Dehazer`` is the runner), re-exported for code written before it
from eid.models.dehazer import Dehazer as Dehazer
from eid.models.dehazer import DehazerConfig, DehazerNet, load_dehazer
from eid.models.discriminators import PatchGANDiscriminator
from eid.models.generators import ResnetGenerator

__all__ = [
    "DehazerConfig",
    "DehazerNet",
    "PatchGANDiscriminator",
    "ResnetGenerator",
    "load_dehazer",
]
