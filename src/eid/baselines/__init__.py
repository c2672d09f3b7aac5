"""eid.baselines: reference dehazing methods."""

from eid.baselines.dcp import DarkChannelPrior

__all__ = ["DarkChannelPrior"]
