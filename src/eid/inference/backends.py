"""Inference backends: the torch module itself or its ONNX export run by ONNX Runtime, and ``auto``'s choice.

``eid dehaze --backend onnx`` turns an exported dehazer (``eid export --onnx``) into a :class:`Method` with
:func:`onnx_method`, so the runner pads, tiles, scales values, batches and walks stacks and folders exactly as for
torch. What the runner must know about the model comes from the ``eid.*`` metadata the export stored.

Differences from torch: the session computes in float32 (``--precision`` other than fp32 does not apply), and a
model with group or instance norms, when tiled, normalises each tile with its own statistics (the whole-image
statistics of ``--tile-norm global`` are recorded by hooks on torch modules); ``--tile 0`` avoids tiling.

``--backend auto`` (the default) takes ONNX Runtime only where it gives torch's result (:func:`choose_backend`),
and hands tiled images of a model with norms to torch (:func:`with_torch_tiles`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from eid.data.scale import parse_white
from eid.errors import EIDError
from eid.inference.methods import Method
from eid.inference.precision import autocast_dtype

__all__ = [
    "BACKENDS",
    "ONNX_EXTRA_HINT",
    "BackendChoice",
    "choose_backend",
    "onnx_available",
    "onnx_method",
    "onnx_session",
    "optional_import",
    "with_torch_tiles",
]

BACKENDS = ("auto", "torch", "onnx")
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
        receptive_radius=int(radius) if radius else None, working_scale=int(meta.get("eid.working_scale", "1")),
    )  # fmt: skip


def with_torch_tiles(onnx: Method, torch_method: Method) -> Method:
    """``onnx`` with ``torch_method`` for the images the runner tiles: its :attr:`Method.norm_fn` and modules (whole-image
    norm statistics are measured by hooks on torch layers) and, for a model with a whole-image estimate at its input
    (``dcp``, a CycleGAN ``pinv``), which the export holds whole, its :attr:`Method.prepare` and ``body``, so that it
    can be tiled at all. Every other image runs on ONNX Runtime, so each image gets torch's result."""
    stages = torch_method.prepare is not None
    return replace(
        onnx,
        modules=torch_method.modules,
        norm_fn=torch_method.fn,
        local_radius=torch_method.local_radius,
        working_scale=torch_method.working_scale,
        prepare=torch_method.prepare,
        body=torch_method.body,
        tileable=onnx.tileable or stages,
        receptive_radius=torch_method.receptive_radius if stages else onnx.receptive_radius,
    )


def onnx_available() -> bool:
    """Whether onnx and onnxruntime (the ``export`` extra) are installed, found without importing them (onnx
    takes ~0.5 s, and a cached export needs only onnxruntime); a module set to ``None`` in ``sys.modules`` counts
    as absent, as ``import`` has it."""
    for name in ("onnx", "onnxruntime"):
        if name in sys.modules:
            if sys.modules[name] is None:
                return False
        elif importlib.util.find_spec(name) is None:
            return False
    return True


class BackendChoice(NamedTuple):
    """The backend to run and why, in a few words."""

    name: str
    reason: str

    def runner_precision(self, precision: str) -> str:
        """The runner's precision for the requested one: ONNX Runtime computes in fp32, whatever ``auto`` would pick.

        >>> BackendChoice("onnx", "CPU, fp32").runner_precision("auto")
        'fp32'
        """
        return "fp32" if self.name == "onnx" else precision


def choose_backend(
    backend: str,
    *,
    method: str,
    model: str | Path | None,
    device: torch.device,
    operator: str | Path | None = None,
    precision: str = "auto",
) -> BackendChoice:
    """The backend that ``eid dehaze --backend backend`` runs: ``torch`` and ``onnx`` as asked, while ``auto`` takes
    ONNX Runtime (about 2x faster on a CPU, ``docs/export.md``) only where it gives torch's result, i.e. when all of
    these hold, checked in this order:

    * ``--method eid`` with a ``--model`` (an ``.onnx`` file runs on ONNX Runtime whatever else holds);
    * no ``--operator`` (the export holds the run's own operator);
    * the device is the CPU;
    * fp32: ``precision`` gives no autocast (:func:`autocast_dtype`), as ``auto`` does on a CPU without native
      bf16; where it has it, torch's bf16 is faster;
    * onnx and onnxruntime are installed (:func:`onnx_available`; else torch, the reason naming the extra).

    Neither test-time averaging nor norms are conditions: the runner averages whatever the method computes, and
    images it tiles with whole-image norm statistics run on torch (:func:`with_torch_tiles`).

    >>> choose_backend("auto", method="dcp", model=None, device=torch.device("cpu"))
    BackendChoice(name='torch', reason='--method dcp')
    """
    if backend not in BACKENDS:
        raise EIDError(f"unknown --backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return BackendChoice(backend, "requested")
    if method == "eid" and model is not None and Path(model).suffix.lower() == ".onnx":
        return BackendChoice("onnx", "--model is an ONNX file")
    if method != "eid" or model is None:
        return BackendChoice("torch", f"--method {method}" if method != "eid" else "no --model")
    if operator is not None:
        return BackendChoice("torch", "--operator replaces the operator the export holds")
    if device.type != "cpu":
        return BackendChoice("torch", f"device {device.type}")
    dtype = autocast_dtype(precision, device)
    if dtype is not None:
        return BackendChoice(
            "torch", f"{str(dtype).removeprefix('torch.')} autocast; ONNX Runtime is fp32"
        )
    if not onnx_available():
        return BackendChoice(
            "torch", f"onnxruntime is not installed; {ONNX_EXTRA_HINT} runs this model faster"
        )
    return BackendChoice("onnx", "CPU, fp32")
