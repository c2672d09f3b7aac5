"""A stage-2 run folder's dehazer files: :func:`load_dehazer` reads ``dehazer.{safetensors,yaml}`` back (with the
operator copied next to them), and :func:`copy_operator` makes that copy when a run starts, so that a run folder is
all a dehazer needs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from eid.config import config_from_dict
from eid.errors import EIDError
from eid.models.dehazer import DehazerNet
from eid.models.dehazer_config import DehazerConfig
from eid.utils import atomic_write
from eid.weights import load_weights

__all__ = ["copy_operator", "load_dehazer"]


def load_dehazer(
    run_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[DehazerNet, Any, dict[str, Any]]:
    """Load ``run_dir/dehazer.{safetensors,yaml}``; return ``(dehazer in eval mode, physics or None, config)``.

    ``physics`` is the frozen learned operator copied into the run (``operator.{safetensors,yaml}``)
    when the dehazer takes the pseudo-inverse as input, else ``None``. An ASM-oracle dehazer with
    ``input: pinv`` needs per-image transmission/airlight, which the caller must supply.
    """
    run_dir = Path(run_dir)
    state, config = load_weights(run_dir / "dehazer", device=device)
    model_cfg = config_from_dict(
        DehazerConfig, config.get("model", {}), where=f"{run_dir / 'dehazer.yaml'}: model"
    )
    dehazer = DehazerNet(model_cfg)
    try:
        dehazer.load_state_dict(state)
    except RuntimeError as exc:
        raise EIDError(
            f"{run_dir}: dehazer weights do not match dehazer.yaml ({str(exc).splitlines()[0]}); re-export the run"
        ) from exc
    dehazer.to(device).eval().requires_grad_(False)
    physics = None
    if dehazer.needs_physics and (run_dir / "operator.safetensors").is_file():
        from eid.physics import load_operator

        physics = load_operator(run_dir, device)
    return dehazer, physics, config


def copy_operator(operator_run: str | Path, run_dir: str | Path) -> None:
    """Copy ``operator.{safetensors,yaml}`` from a stage-1 run so that ``run_dir`` is self-contained."""
    operator_run, run_dir = Path(operator_run), Path(run_dir)
    if operator_run.resolve() == run_dir.resolve():
        return
    for suffix in (".safetensors", ".yaml"):
        source = operator_run / f"operator{suffix}"
        if not source.is_file():
            raise EIDError(
                f"{source}: not found; --operator must be a stage-1 run folder (eid train-operator --out)"
            )
        with atomic_write(run_dir / source.name) as tmp:
            shutil.copyfile(source, tmp)
