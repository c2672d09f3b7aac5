"""Fine-tuning (``--init-from NAME|RUN``): a new run starts from the weights of a shipped model or of a run folder.

Only the exported weights are taken (stage 1: the operator's networks; stage 2: the dehazer ``f``); the optimiser,
the discriminators and the data order start fresh. The architecture must match: the ``model`` section of the
source's ``operator.yaml`` / ``dehazer.yaml`` is compared with the new run's, and any difference (channels, kind,
widths...) is one error line naming both. A field the source's file predates counts as its default value. Stage 2
takes the dehazer's architecture from the source (:func:`source_model`), so a shipped model fine-tunes under any
preset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from eid.config import config_to_dict, read_yaml
from eid.errors import EIDError
from eid.models.dehazer_config import DehazerConfig
from eid.run_layout import DEHAZER
from eid.weights import load_weights

OPTION = "--init-from"
RUN_FIELDS = ("dcp_set_weight",)
"""Dehazer fields that read the run's own data rather than shape the network: a fine-tuned run takes them from its
own config (preset), and the source's value is not compared."""
IGNORED = ("disc_", *RUN_FIELDS)
"""Model fields not compared: those of parts that are not exported (the discriminator's), and :data:`RUN_FIELDS`."""
REESTIMATED = ("dcp.set_airlight",)
"""Weights entries a new run estimates from its own hazy images (the set's airlight): a source may lack them."""


Model = dict[str, Any]
"""A ``model`` section: field -> value."""

DEFAULTS: dict[str, Model] = {DEHAZER: config_to_dict(DehazerConfig())}
"""Per file stem, the values of ``model`` fields a file written before they existed lacks. Not for the operator: an
``operator.yaml`` without ``kind`` is a CycleGAN, whatever the default kind is now."""


def load_initial_weights(
    target: nn.Module, source: Path, stem: str, model: Model, what: str
) -> None:
    """Load ``source/stem.safetensors`` into ``target`` once ``source/stem.yaml``'s ``model`` section matches ``model``.

    ``what`` names the part in errors (``operator``, ``dehazer``).
    """
    check_model(source, stem, model, what)
    state, _ = load_weights(source / stem)
    try:
        result = target.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        lines = str(exc).splitlines()  # torch: a title line, then one line per mismatch
        raise EIDError(
            f"{OPTION} {source}: its {what} weights do not fit this run's {what} ({lines[min(1, len(lines) - 1)].strip()})"
        ) from exc
    unmatched = [k for k in (*result.missing_keys, *result.unexpected_keys) if k not in REESTIMATED]
    if unmatched:
        raise EIDError(
            f"{OPTION} {source}: its {what} weights do not fit this run's {what} (unmatched: {', '.join(unmatched)})"
        )


def source_model(source: Path, stem: str) -> Model:
    """The ``model`` section of ``source/stem.yaml``, with :data:`DEFAULTS` for the fields it lacks."""
    return {**DEFAULTS.get(stem, {}), **read_yaml(source / f"{stem}.yaml").get("model", {})}


def check_model(source: Path, stem: str, model: Model, what: str) -> None:
    """Refuse, in one line naming both, a source whose ``stem.yaml`` ``model`` section differs from ``model``
    (the training commands call it before they start, so that nothing is created); fields either lacks count as
    their :data:`DEFAULTS`."""
    if not (source / f"{stem}.safetensors").is_file():
        raise EIDError(
            f"{OPTION} {source}: holds no {stem}.safetensors; give a run folder with a {what} or a shipped model (eid models)"
        )
    theirs = source_model(source, stem)
    model = {**DEFAULTS.get(stem, {}), **model}
    keys = [k for k in sorted(set(theirs) | set(model)) if not k.startswith(IGNORED)]
    differ = [k for k in keys if _norm(theirs.get(k)) != _norm(model.get(k))]
    if differ:
        raise EIDError(
            f"{OPTION} {source}: its {what} ({_show(theirs, differ)}) does not fit this run's ({_show(model, differ)}); "
            "use a model trained on the same kind of data, or the preset and options it was made with"
        )


def operator_networks(module: nn.Module) -> nn.Module:
    """The part of a stage-1 module that ``operator.safetensors`` holds (a scattering operator, or ``g_ab``/``g_ba``)."""
    operator = getattr(module, "operator", None)
    if isinstance(operator, nn.Module):
        return operator
    return nn.ModuleDict({"g_ab": module.g_ab, "g_ba": module.g_ba})


def _norm(value: Any) -> Any:
    """Lists and tuples compare equal (YAML has no tuples)."""
    return list(value) if isinstance(value, (list, tuple)) else value


def _show(model: dict[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{k}={model.get(k)}" for k in keys)
