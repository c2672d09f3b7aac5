"""``MODEL.md``, the model card of a run folder: written with the last export of both stages.

It states what the model was trained on (the input folders, their image counts and sizes, the read scale), the
preset and the config that matter, the steps and wall time, the validation figures when the run logged any, the
intended use and known limits, and the licences of the weights and of the training data. For a user's run the
licences are unknown and the card says so; ``scripts/build_models.py`` fills them in for the shipped models.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from eid.errors import EIDError
from eid.run_layout import DEHAZER, INPUTS, OPERATOR
from eid.training.eid_config import ANALYTIC_OPERATOR, NO_OPERATOR
from eid.training.run_folder import RunFolder
from eid.utils import atomic_write

UNKNOWN_DATA_LICENCE = (
    "Unknown: your own data; eid cannot know its licence. Check it before you share the weights."
)
UNKNOWN_WEIGHTS_LICENCE = (
    "Unknown: weights derived from the training data above may carry its terms."
)
INTENDED_USE = (
    "Dehazing images like the training data: same modality, channels and read scale (white)."
)
LIMITS = ("Trained without clear references (self-supervised); quality on other data is not measured here, "
          "only on the validation figures above, if any.")  # fmt: skip
KEYS = {
    OPERATOR: ("model.kind", "model.channels", "model.width", "model.blocks", "model.scales", "model.airlight",
               "data.crop", "data.batch_size", "data.white", "optim.lr", "loss.lambda_dcp_pair", "seed"),
    DEHAZER: ("model.channels", "model.input", "model.dcp_airlight", "model.dcp_set_weight", "model.scales",
              "model.width", "model.unshuffle", "model.head", "model.norm", "group", "alpha", "adversarial_weight",
              "background_weight", "crop", "batch_size", "lr", "white", "seed"),
}  # fmt: skip
"""The config entries a card shows, per stage (the full config is ``operator.yaml`` / ``dehazer.yaml``); the
``model.dcp_`` ones only for a dehazer that starts from DCP."""
MAX_READ = 16
"""Images read per folder for their sizes (the count covers all of them)."""


def write_model_card(
    run_dir: str | Path,
    *,
    source: str | Path | None = None,
    training: Mapping[str, str] | None = None,
    held_out: Mapping[str, float] | None = None,
    commit: str | None = None,
    summary: str | None = None,
    data_licence: str = UNKNOWN_DATA_LICENCE,
    weights_licence: str = UNKNOWN_WEIGHTS_LICENCE,
    intended_use: str = INTENDED_USE,
    limits: str = LIMITS,
    data: str | None = None,
) -> Path:
    """Write ``run_dir/MODEL.md`` from the run folder ``source`` (default ``run_dir``); return its path.

    ``training`` maps a stage to its steps and time (default: what the cards of ``source`` and of its stage-1 run
    recorded); ``held_out`` holds scores measured outside the run; the prose arguments (``summary``, licences,
    ``intended_use``, ``limits``, ``data``) default to a user's run.
    """
    source = Path(source or run_dir)
    stage = DEHAZER if (source / f"{DEHAZER}.yaml").is_file() else OPERATOR
    config = _read(source / f"{stage}.yaml")
    inputs = _read(source / INPUTS)
    operator_inputs = (
        _read(Path(str(config.get("operator", ""))) / INPUTS) if stage == DEHAZER else {}
    )
    kind = "EID dehazer (stage 2)" if stage == DEHAZER else "haze operator (stage 1)"
    recorded = (
        {"stage 1 training": _operator_training(Path(str(config.get("operator", ""))))}
        if stage == DEHAZER
        else {}
    )
    training = {
        k: v
        for k, v in {**recorded, "training": _recorded_training(source), **(training or {})}.items()
        if v
    }
    white = config.get("white") if stage == DEHAZER else config.get("data", {}).get("white")
    lines = [f"# {Path(run_dir).resolve().name}: eid {kind}", ""]
    lines += [
        summary
        or f"{kind}, preset {inputs.get('--preset', '?')}, trained on {_count(inputs)} images of your own.",
        "",
    ]
    lines += ["## Training data", ""] + ([data, ""] if data else [])
    for option, folders in [
        *((f"stage 1 {k}", v) for k, v in operator_inputs.items()),
        *inputs.items(),
    ]:
        if option.endswith(("--preset", "--operator", "--init-from")):
            continue
        lines += [f"- `{option}`: {_describe(folders)}"]
    lines += [f"- read scale (`white`): {white if white is not None else 'dtype'}", ""]
    lines += ["## Recipe", "", f"- preset: `{inputs.get('--preset', 'unknown')}`"]
    lines += (
        [f"- started from (`--init-from`): {inputs['--init-from']}"]
        if "--init-from" in inputs
        else []
    )
    for stem in (OPERATOR, DEHAZER) if stage == DEHAZER else (OPERATOR,):
        picked = _pick(_read(source / f"{stem}.yaml"), KEYS[stem])
        described = ", ".join(f"{k}={v}" for k, v in picked) or _no_operator(source)
        lines += [f"- {stem}: {described}"]
    lines += _set_airlight(source) if stage == DEHAZER else []
    lines += [f"- {name}: {value}" for name, value in training.items()]
    lines += ["", "## Validation", ""] + _validation(source, held_out)
    lines += ["", "## Intended use", "", intended_use, "", "## Known limits", "", limits, ""]
    lines += [
        "## Licence",
        "",
        f"- weights: {weights_licence}",
        f"- training data: {data_licence}",
        "",
    ]
    lines += [
        "## Provenance",
        "",
        f"- written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by eid {_version()}",
    ]
    lines += [f"- built from commit `{commit}`"] if commit else []
    card = RunFolder(run_dir).model_card
    with atomic_write(card) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return card


def training_line(steps: int, seconds: float) -> dict[str, str]:
    """The ``training`` entry of one run: its batches (resumes included) and the wall time of its last session."""
    return {"training": f"{steps} training batches; wall time of the last session {seconds:.0f} s"}


def _recorded_training(run_dir: Path, line: str = "training") -> str | None:
    """The ``- {line}:`` entry of the card already in ``run_dir`` (``None`` without one)."""
    card = RunFolder(run_dir).model_card
    lines = card.read_text(encoding="utf-8").splitlines() if card.is_file() else []
    prefix = f"- {line}: "
    return next((entry.removeprefix(prefix) for entry in lines if entry.startswith(prefix)), None)


def _operator_training(operator: Path) -> str | None:
    """The stage-1 training recorded for an operator folder: its own ``training`` entry, or, when it is a whole
    model's folder (a shipped model used as ``--operator NAME``), that card's ``stage 1 training`` entry."""
    if (operator / f"{DEHAZER}.yaml").is_file():
        return _recorded_training(operator, "stage 1 training")
    return _recorded_training(operator)


def _no_operator(source: Path) -> str:
    """What a stage-2 run without a stage-1 operator trained through: the analytic oracle, or each image's own maps."""
    operator = _read(source / f"{DEHAZER}.yaml").get("operator")
    described = {
        ANALYTIC_OPERATOR: f"{ANALYTIC_OPERATOR} (the analytic oracle)",
        NO_OPERATOR: f"{NO_OPERATOR} (each image's own DCP maps)",
    }
    return described.get(operator, f"{operator} (not found)")


def _set_airlight(source: Path) -> list[str]:
    """The airlight a dehazer pools each image's with (``dcp_set_weight``), as estimated from its hazy images."""
    from eid.weights import load_weights

    if not (source / f"{DEHAZER}.safetensors").is_file():
        return []
    airlight = load_weights(source / DEHAZER)[0].get("dcp.set_airlight")
    if airlight is None:
        return []
    values = airlight.flatten().tolist()
    shown = " / ".join(
        f"{v:.3f}" for v in (values[:1] if len(set(values)) == 1 else values)
    )  # grey: one
    return [f"- set airlight (mean of DCP's over the hazy training images): {shown}"]


def _read(path: Path) -> dict[str, Any]:
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def _pick(config: dict[str, Any], keys: Sequence[str]) -> list[tuple[str, Any]]:
    """The ``keys`` (dotted) present in ``config``, ``model.dcp_*`` only with ``model.input: dcp``."""
    out = []
    dcp = config.get("model", {}).get("input") == "dcp"
    for key in (k for k in keys if dcp or not k.startswith("model.dcp_")):
        value: Any = config
        for part in key.split("."):
            value = value.get(part, KeyError) if isinstance(value, dict) else KeyError
        if value is not KeyError:
            out.append((key, value))
    return out


def _count(inputs: Mapping[str, Any]) -> int:
    from eid.data.listing import list_images

    folders = inputs.get("--hazy") or []
    return len(list_images(folders)) if folders else 0


def _describe(folders: str | list[str]) -> str:
    """``folder (N images, sizes ...)`` for each folder; an unreadable folder says so."""
    from eid.data.io import read_image
    from eid.data.listing import list_images

    parts = []
    for folder in [folders] if isinstance(folders, str) else folders:
        try:
            files = list_images(folder)
            sizes = sorted({"x".join(map(str, read_image(f)[0].shape)) for f in files[:MAX_READ]})
        except EIDError as exc:
            parts.append(f"{folder} (not readable now: {exc})")
            continue
        shown = ", ".join(sizes[:4]) + (", ..." if len(sizes) > 4 else "")
        parts.append(f"{folder} ({len(files)} images; C x H x W: {shown})")
    return "; ".join(parts)


def _validation(run_dir: Path, held_out: Mapping[str, float] | None) -> list[str]:
    """The last ``val/*`` figures of the run's CSV log, and ``held_out`` scores; a line saying none otherwise."""
    lines = [f"- held-out {name}: {value:.2f}" for name, value in (held_out or {}).items()]
    log = run_dir / "logs" / "metrics.csv"
    if log.is_file():
        with log.open(newline="") as f:
            rows = [
                row
                for row in csv.DictReader(f)
                if any(row.get(k) for k in row if k.startswith("val/"))
            ]
        if rows:
            lines += [f"- {k} (last validation, step {rows[-1].get('step')}): {float(v):.3f}"
                      for k, v in rows[-1].items() if k.startswith("val/") and v]  # fmt: skip
    return lines or [
        "No validation figures: the run had no paired validation set (`--val-hazy`, `--val-clear`)."
    ]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("eid-dehaze")
    except PackageNotFoundError:
        return "(not installed)"
