"""Exported weights: ``<stem>.safetensors`` (tensors) + ``<stem>.yaml`` (the full config).

Nothing here unpickles: safetensors holds only tensors, the YAML is read with ``safe_load``.
A file that is not a safetensors archive (for example a pickled ``.pth``) is refused.
The SHA-256 of the tensors (:func:`tensor_checksum`) is stored in the file's metadata at export and checked at
load, so corrupted tensor bytes behind a valid header (a bad copy, a failing disk) are refused with one line
instead of giving NaN or black outputs. Files exported before the checksum existed load unchecked.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from eid.config import read_yaml, save_config
from eid.errors import EIDError
from eid.utils import atomic_write

CHECKSUM_KEY = "eid_sha256"


def tensor_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order (CPU tensors).

    >>> tensor_checksum({"w": torch.zeros(2)}) == tensor_checksum({"w": torch.zeros(2)}) != tensor_checksum({"w": torch.ones(2)})
    True
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


def _sorted_header(blob: bytes) -> bytes:
    """The same safetensors file with its JSON header's keys sorted.

    safetensors writes the metadata in hash order, which changes from process to process, so two exports of
    equal tensors would differ in bytes; sorted, a deterministic rebuild gives an identical file. The header
    stays padded with spaces to a multiple of 8 bytes, as the format asks.
    """
    size = int.from_bytes(blob[:8], "little")
    header = json.dumps(
        json.loads(blob[8 : 8 + size]), sort_keys=True, separators=(",", ":")
    ).encode()
    header += b" " * (-len(header) % 8)
    return len(header).to_bytes(8, "little") + header + blob[8 + size :]


def save_weights(
    stem: str | Path, weights: torch.nn.Module | dict[str, torch.Tensor], config: dict[str, Any]
) -> tuple[Path, Path]:
    """Write ``stem.safetensors`` (with the tensors' checksum) and ``stem.yaml`` atomically; return both paths."""
    stem = Path(stem)
    state = weights.state_dict() if isinstance(weights, torch.nn.Module) else weights
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    weights_path = stem.with_suffix(".safetensors")
    metadata = {"format": "pt", "eid": "1", CHECKSUM_KEY: tensor_checksum(tensors)}
    with atomic_write(weights_path) as tmp:
        tmp.write_bytes(_sorted_header(save(tensors, metadata=metadata)))
    config_path = save_config(config, stem.with_suffix(".yaml"))
    return weights_path, config_path


def load_weights(
    stem: str | Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read ``stem.safetensors`` (checking its checksum when it has one) and ``stem.yaml``; raise
    :class:`EIDError` if either is unusable."""
    stem = Path(stem)
    weights_path, config_path = stem.with_suffix(".safetensors"), stem.with_suffix(".yaml")
    for path in (weights_path, config_path):
        if not path.is_file():
            raise EIDError(f"{path}: file not found; point to a run folder made by eid")
    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            expected = (handle.metadata() or {}).get(CHECKSUM_KEY)
        state = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise EIDError(
            f"{weights_path}: not a safetensors file ({exc}); eid never loads pickled weights, re-export the run"
        ) from exc
    if expected is not None and tensor_checksum(state) != expected:
        raise EIDError(
            f"{weights_path}: checksum mismatch, the weights are corrupted; copy the run again or re-export it"
        )
    return {k: v.to(device) for k, v in state.items()}, read_yaml(config_path)
