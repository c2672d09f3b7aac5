"""Load any exported haze operator by the kind recorded in its ``operator.yaml`` (``model.kind``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from deepinv.physics import Physics

from eid.errors import EIDError
from eid.physics.learned import LearnedHaze, operator_stem
from eid.physics.scattering import ScatteringHaze
from eid.weights import load_weights

OPERATOR_KINDS = ("scattering", "cyclegan")
"""Learned operators: the physically structured scattering model (default) and the authors' CycleGAN."""


def operator_kind(config: dict[str, Any]) -> str:
    """``model.kind`` of an operator config; operators exported before it existed are CycleGANs."""
    return str(config.get("model", {}).get("kind", "cyclegan"))


def load_operator(
    path: str | Path, device: str | torch.device = "cpu", winograd: bool = False
) -> Physics:
    """The frozen operator of a stage-1 run folder (or ``operator.safetensors``), never from a pickle.

    ``winograd`` builds a CycleGAN's generators with Winograd layers (:class:`eid.models.ResnetGenerator`).
    """
    stem = operator_stem(Path(path))
    state, config = load_weights(stem, device=device)
    where = str(stem.with_suffix(".safetensors"))
    kind = operator_kind(config)
    if kind == "scattering":
        return ScatteringHaze.from_state(state, config, where).to(device)
    if kind == "cyclegan":
        return LearnedHaze.from_state(state, config, where, winograd).to(device)
    raise EIDError(
        f"{where}: unknown operator kind {kind!r} (eid knows {', '.join(OPERATOR_KINDS)}); update eid"
    )
