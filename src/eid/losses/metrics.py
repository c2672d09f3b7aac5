"""Pixel metrics shared by the EID losses."""

from __future__ import annotations

from torch import nn

from eid.errors import EIDError

LOSS_NORMS = ("l2", "l1")


def pixel_metric(norm: str) -> nn.Module:
    """``l2`` -> mean squared error (the authors' choice), ``l1`` -> mean absolute error."""
    if norm == "l2":
        return nn.MSELoss()
    if norm == "l1":
        return nn.L1Loss()
    raise EIDError(f"unknown loss norm {norm!r}; use one of {', '.join(LOSS_NORMS)}")
