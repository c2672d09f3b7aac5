"""Inference backends: the torch module itself (default) or its ONNX export run by ONNX Runtime.

``eid dehaze --backend onnx`` turns an exported dehazer (``eid export --onnx``) into a :class:`Method` with
:func:`onnx_method`, so the runner pads, tiles, scales values, batches and walks stacks and folders exactly as for
torch. What the runner must know about the model comes from the ``eid.*`` metadata the export stored.

Differences from torch: the session computes in float32 (``--precision`` other than fp32 does not apply), and a
model with group or instance norms, when tiled, normalises each tile with its own statistics (the whole-image
statistics of ``--tile-norm global`` are recorded by hooks on torch modules); ``--tile 0`` avoids tiling.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from eid.data.scale import parse_white
from eid.errors import EIDError
from eid.inference.methods import Method

__all__ = ["BACKENDS", "ONNX_EXTRA_HINT", "onnx_method", "onnx_session", "optional_import"]

BACKENDS = ("torch", "onnx")
ONNX_EXTRA_HINT = "pip install 'eid-dehaze[export]'"


def optional_import(name: str) -> ModuleType:
    """Import the optional package ``name`` of the ``export`` extra, or fail with one line saying how to get it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise EIDError(
            f"{name} is not installed, which ONNX export and --backend onnx need; install the export extra: {ONNX_EXTRA_HINT}"
        ) from None


def onnx_session(path: str | Path, threads: int = 0, device: torch.device | None = None) -> Any:
    """An ONNX Runtime session of ``path``: the CUDA provider first when ``device`` is CUDA and ONNX Runtime
    has it, then the CPU; ``threads`` > 0 sets the CPU threads (0: ONNX Runtime's default)."""
    ort = optional_import("onnxruntime")
    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if (
        device is not None
        and device.type == "cuda"
        and "CUDAExecutionProvider" in ort.get_available_providers()
    ):
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors for unreadable models
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise EIDError(
            f"{path}: not a readable ONNX model ({reason}); export it again with eid export --onnx"
        ) from exc


def onnx_method(path: str | Path, device: torch.device | None = None) -> Method:
    """The :class:`Method` of an ONNX file written by ``eid export --onnx`` (its ``eid.*`` metadata is required)."""
    path = Path(path)
    if not path.is_file():
        raise EIDError(
            f"{path}: no such ONNX file; write one with eid export --onnx RUN {path.name}"
        )
    session = onnx_session(path, threads=torch.get_num_threads(), device=device)
    meta = session.get_modelmeta().custom_metadata_map
    if "eid.multiple" not in meta:
        raise EIDError(
            f"{path}: this ONNX model has no eid metadata; export it with eid export --onnx RUN {path.name}"
        )
    (name,), (output,) = (
        [i.name for i in session.get_inputs()],
        [o.name for o in session.get_outputs()],
    )

    def run(y: Tensor) -> Tensor:
        array = y.detach().float().cpu().numpy()
        return torch.from_numpy(session.run([output], {name: np.ascontiguousarray(array)})[0]).to(
            y.device
        )

    radius = meta.get("eid.receptive_radius", "")
    return Method(
        run, name=f"eid (onnx: {path.name})", multiple=int(meta["eid.multiple"]), channels=int(meta["eid.channels"]),
        tileable=meta.get("eid.tileable", "1") == "1", group=meta.get("eid.group") or None,
        white=parse_white(meta.get("eid.white", "dtype")), device=torch.device("cpu"),
        receptive_radius=int(radius) if radius else None,
    )  # fmt: skip
