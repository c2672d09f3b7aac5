"""Exported weights: ``<stem>.safetensors`` (tensors) + ``<stem>.yaml`` (the full config).

Nothing here unpickles: safetensors holds only tensors, the YAML is read with ``safe_load``.
A file that is not a safetensors archive (for example a pickled ``.pth``) is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from eid.config import read_yaml, save_config
from eid.errors import EIDError
from eid.utils import atomic_write


def save_weights(
    stem: str | Path, weights: torch.nn.Module | dict[str, torch.Tensor], config: dict[str, Any]
) -> tuple[Path, Path]:
    """Write ``stem.safetensors`` and ``stem.yaml`` atomically; return both paths."""
    stem = Path(stem)
    state = weights.state_dict() if isinstance(weights, torch.nn.Module) else weights
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    weights_path = stem.with_suffix(".safetensors")
    with atomic_write(weights_path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "eid": "1"})
    config_path = save_config(config, stem.with_suffix(".yaml"))
    return weights_path, config_path


def load_weights(stem: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read ``stem.safetensors`` and ``stem.yaml``; raise :class:`EIDError` if either is unusable."""
    stem = Path(stem)
    weights_path, config_path = stem.with_suffix(".safetensors"), stem.with_suffix(".yaml")
    for path in (weights_path, config_path):
        if not path.is_file():
            raise EIDError(f"{path}: file not found; point to a run folder made by eid")
    try:
        state = load_file(str(weights_path), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise EIDError(
            f"{weights_path}: not a safetensors file ({exc}); eid never loads pickled weights, re-export the run"
        ) from exc
    return state, read_yaml(config_path)
