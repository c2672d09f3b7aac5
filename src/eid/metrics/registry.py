"""Named metrics for ``eid evaluate``.

Each entry maps a name to a :class:`MetricSpec`. A metric function takes a batch ``pred`` of shape
``(B,C,H,W)`` in ``[0,1]`` (``C`` = 1 or 3), an optional reference of the same shape, and an optional
boolean ``mask`` ``(B,1,H,W)`` restricting no-reference metrics to a field of view; it returns ``(B,)``.
Modules add their metrics with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from eid.errors import EIDError

MetricFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class MetricSpec:
    """A metric usable by ``eid evaluate``: ``fn(pred, ref=None, mask=None) -> (B,)``."""

    name: str
    fn: MetricFn
    needs_reference: bool
    lower_better: bool
    supports_mask: bool = False
    description: str = ""


METRICS: dict[str, MetricSpec] = {}


def register(spec: MetricSpec) -> MetricSpec:
    """Add ``spec`` to :data:`METRICS` under its name."""
    METRICS[spec.name] = spec
    return spec


def get_metrics(names: str | list[str]) -> list[MetricSpec]:
    """Look up comma-separated or listed metric names; unknown names raise a clear error."""
    if isinstance(names, str):
        names = [n.strip().lower() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise EIDError(
            f"unknown metric(s) {', '.join(unknown)}; choose from: {', '.join(sorted(METRICS))}"
        )
    return [METRICS[n] for n in names]
