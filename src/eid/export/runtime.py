"""The method ``eid dehaze --backend`` runs: the torch module, or ONNX Runtime on a cached export, or ``auto``'s pick.

Here rather than in :mod:`eid.inference.backends` because exporting a run is this package's work, and inference
(a lower layer) imports nothing from it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from eid.errors import EIDError
from eid.export.cache import cached_onnx_method
from eid.inference.backends import BackendChoice, choose_backend, onnx_method, with_torch_tiles
from eid.inference.methods import Method, build_method
from eid.models.global_norm import image_normalising_layers
from eid.utils import resolve_device

__all__ = ["backend_method"]


def backend_method(
    backend: str,
    method: str,
    *,
    model: Path | None,
    operator: Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    whole_image_norms: bool = True,
) -> tuple[Method, BackendChoice]:
    """The method to run for ``--backend backend`` (:func:`choose_backend`) and the choice made.

    ONNX Runtime runs an ``.onnx`` file, or the run's export from the cache (:func:`cached_onnx_method`). Under
    ``auto``, where ``whole_image_norms`` (the runner tiles and records whole-image norm statistics) and the
    model has group or instance norms, the torch module comes along for the images that are tiled
    (:func:`with_torch_tiles`); a model that cannot be exported runs on torch.
    """
    dev = resolve_device(device)
    choice = choose_backend(
        backend, method=method, model=model, device=dev, operator=operator, precision=precision
    )
    is_onnx_file = model is not None and model.suffix.lower() == ".onnx"
    if choice.name == "torch":
        if is_onnx_file:
            raise EIDError(
                f"--model {model} is an ONNX file; add --backend onnx to run it with ONNX Runtime"
            )
        return build_method(method, operator=operator, model=model, device=dev), choice
    if method != "eid" or model is None:
        raise EIDError(
            "--backend onnx runs an EID dehazer; give --method eid --model RUN, NAME or FILE.onnx"
        )
    if operator is not None:
        raise EIDError(
            "--operator does not combine with --backend onnx (the export holds the run's operator); use --backend torch"
        )
    if precision not in ("auto", "fp32"):
        raise EIDError(
            f"--precision {precision} needs --backend torch; ONNX Runtime runs the export in fp32"
        )
    if is_onnx_file:
        return onnx_method(model, dev), choice
    if backend != "auto":
        return cached_onnx_method(model, dev), choice
    try:
        onnx = cached_onnx_method(model, dev)
    except EIDError as exc:  # e.g. an input mode the exporter cannot write: torch runs it
        torch_method = build_method(method, model=model, device=dev)
        return torch_method, BackendChoice("torch", f"the ONNX export failed: {exc}")
    return _with_norms(onnx, model, dev, whole_image_norms, choice)


def _with_norms(
    onnx: Method, model: Path, device: torch.device, whole_image_norms: bool, choice: BackendChoice
) -> tuple[Method, BackendChoice]:
    """``onnx``, with the torch module for tiled images when they take whole-image norm statistics (a CycleGAN
    ``pinv``-input model's ``G_BA`` included) or, for a ``dcp``-input model (not tileable as exported), a DCP input
    computed in tiles (:func:`with_torch_tiles`)."""
    # tiled exactly (no norms), or per-tile norms under both backends: ONNX alone
    if onnx.tileable and not (whole_image_norms and onnx.receptive_radius is None):
        return onnx, choice
    torch_method = build_method("eid", model=model, device=device)
    if not onnx.tileable and torch_method.prepare is not None:
        reason = f"{choice.reason}; images tiled run on torch (DCP input in tiles)"
    elif onnx.tileable and image_normalising_layers(torch_method.modules):
        reason = f"{choice.reason}; images tiled with whole-image norm statistics run on torch"
    else:
        return onnx, choice
    return with_torch_tiles(onnx, torch_method), BackendChoice("onnx", reason)
