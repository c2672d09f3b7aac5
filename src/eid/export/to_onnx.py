"""``eid export --onnx``: a stage-2 run as one ONNX graph, hazy ``(N,C,H,W)`` in ``[0,1]`` -> dehazed.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)`` for ``input: hazy`` and ``dcp`` (about 1 s).
``input: pinv`` runs the operator, whose layers that exporter cannot write for sizes unknown at export (the
scattering operator's adaptive pooling to ``ceil(H/k)``, instance norm after the generators' phase reshape), so
it goes through the ``torch.export``-based exporter (``dynamo=True``, needs ``onnxscript``; 10-20 s).

Height, width and batch are dynamic axes. What a runner must know (size multiple, channels, read scale, whether
tiling is allowed, the training group, the receptive radius) is stored in the model's metadata under
``eid.*`` keys (:data:`METADATA_KEYS`), which :func:`eid.inference.backends.onnx_method` reads back.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eid.errors import EIDError
from eid.export.graph import ExportedDehazer, load_exportable, smooth_image
from eid.inference.backends import onnx_session, optional_import
from eid.utils import atomic_write

__all__ = [
    "METADATA_KEYS",
    "OPSET",
    "OnnxExport",
    "export_onnx",
    "onnx_metadata",
    "package_version",
]

OPSET = 17
"""ONNX opset of the TorchScript exporter: read by ONNX Runtime >= 1.12 and deepImageJ's runtimes."""
DYNAMO_OPSET = 18
"""The ``torch.export``-based exporter's lowest opset."""
METADATA_KEYS = (
    "multiple",
    "channels",
    "white",
    "tileable",
    "group",
    "input",
    "receptive_radius",
    "working_scale",
    "version",
)
CHECK_SIDE = 64
"""Side of the random image on which the export is checked against torch."""
CHECK_TOLERANCE = 1e-4
"""Largest absolute difference from torch an export may show on that image (float32 rounding: ~1e-6)."""


@dataclass
class OnnxExport:
    """What :func:`export_onnx` wrote: the file, its opset and exporter, and the check against torch."""

    path: Path
    opset: int
    exporter: str
    max_abs_diff: float


def package_version() -> str:
    """The installed eid's version (``0.0.0`` when run from a source tree that is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("eid-dehaze")
    except PackageNotFoundError:
        return "0.0.0"


def onnx_metadata(model: ExportedDehazer, config: dict[str, Any]) -> dict[str, str]:
    """The ``eid.*`` metadata of an exported dehazer (strings, as ONNX stores them)."""
    radius = model.net.receptive_radius
    values = {
        "multiple": model.multiple, "channels": model.channels, "white": config.get("white") or "dtype",
        "tileable": int(model.input_mode != "dcp"),  # DCP's airlight is a whole-image estimate
        "group": config.get("group") or "", "input": model.input_mode,
        "receptive_radius": "" if radius is None else radius, "working_scale": model.net.working_scale,
        "version": package_version(),
    }  # fmt: skip
    return {f"eid.{key}": str(values[key]) for key in METADATA_KEYS}


def _graph(model: ExportedDehazer, example: torch.Tensor) -> tuple[Any, int, str]:
    """The ONNX ``ModelProto`` of ``model``, its opset and the exporter's name (see the module doc)."""
    names = {"input_names": ["input"], "output_names": ["output"]}
    if model.input_mode != "pinv":
        buffer = io.BytesIO()
        axes = {0: "batch", 2: "height", 3: "width"}
        torch.onnx.export(
            model, (example,), buffer, dynamo=False, opset_version=OPSET, dynamic_axes={"input": axes, "output": axes},
            **names,
        )  # fmt: skip
        return optional_import("onnx").load_from_string(buffer.getvalue()), OPSET, "torchscript"
    optional_import("onnxscript")  # the dynamo exporter's dependency: one line if it is absent
    dim, m = torch.export.Dim, model.multiple
    shapes = {
        "y": {
            0: dim("batch", max=1024),
            2: m * dim("height", max=16384),
            3: m * dim("width", max=16384),
        }
    }
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        opset_version=DYNAMO_OPSET,
        dynamic_shapes=shapes,
        verbose=False,
        **names,
    )
    return program.model_proto, DYNAMO_OPSET, "dynamo"


def export_onnx(run: str | Path, out: str | Path, *, check: bool = True) -> OnnxExport:
    """Export the dehazer of ``run`` (a run folder or a shipped model's name) to the ONNX file ``out``, atomically.

    With ``check`` the written graph is run by ONNX Runtime on a smooth random ``64x64`` batch of 2
    (:func:`smooth_image`) and compared with the dehazer as torch runs it (:attr:`OnnxExport.max_abs_diff`); a
    difference above :data:`CHECK_TOLERANCE` is an error and nothing is written.
    """
    model, config = load_exportable(run)
    example = smooth_image(2, model.channels, CHECK_SIDE, CHECK_SIDE)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # tracer notes on shape branches: the graph is checked below instead
            proto, opset, exporter = _graph(model, example)
    except EIDError:
        raise
    except Exception as exc:  # any exporter failure becomes one line naming the mode
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise EIDError(
            f"{run}: a dehazer with input: {model.input_mode} could not be exported to ONNX ({first}); "
            "dehaze it with --backend torch"
        ) from exc
    for key, value in onnx_metadata(model, config).items():
        proto.metadata_props.add(key=key, value=value)
    out = Path(out)
    with atomic_write(out) as tmp:  # a graph that fails its check is not kept
        tmp.write_bytes(proto.SerializeToString())
        diff = _check(model, tmp, example) if check else float("nan")
        if diff > CHECK_TOLERANCE:
            raise EIDError(
                f"{run}: ONNX Runtime differs from torch by {diff:.2g} (> {CHECK_TOLERANCE}); dehaze with --backend torch"
            )
    return OnnxExport(out, opset, exporter, diff)


def _check(model: ExportedDehazer, path: Path, example: torch.Tensor) -> float:
    """Max absolute difference between ONNX Runtime and the dehazer as eid runs it (its own DCP) on ``example``."""
    with torch.no_grad():
        expected = model.net(example, model.physics).numpy()
    got = onnx_session(path, threads=torch.get_num_threads()).run(None, {"input": example.numpy()})[
        0
    ]
    return float(np.abs(got - expected).max())
