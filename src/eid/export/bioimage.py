"""``eid export --bioimageio``: a bioimage.io model package (spec 0.5) for Fiji/deepImageJ, ilastik, bioimageio.core.

The zip holds ``rdf.yaml``, the weights as ONNX (the graph of :mod:`eid.export.to_onnx`) and TorchScript (a trace
of the same module; not for ``input: pinv``, whose operator pools to sizes a trace would fix), test input and output
tensors (``.npy``, computed by torch), the run's model card as documentation, a cover, the licence, authors and
the EID citation. Building it needs no network: the citation is a DOI (a URL would be checked online).

What the format expresses and how (``docs/export.md``):

* **value scaling**: the network takes ``[0,1]``. eid reads stored values on a scale ``white`` that may depend on
  the file (``dtype``: 255 or 65535 by sample type; ``max``: each image's maximum), which the spec's fixed
  pre/postprocessing cannot express. The package fixes one number (the run's numeric ``white``, else ``white``
  given here, default 255): preprocessing ``scale_linear(1/white)`` then ``clip(0, 1)``, postprocessing
  ``scale_linear(white)``, so the output is on the input's scale, as ``eid dehaze`` writes it;
* **sizes**: sides in multiples of the model's size multiple (``ParameterizedSize``); eid's own reflect
  padding to that multiple and its tiling with whole-image norm statistics are left to the consumer.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import tifffile
import torch

from eid.errors import EIDError
from eid.export.graph import ExportedDehazer, load_exportable
from eid.export.rdf import model_description
from eid.export.to_onnx import export_onnx
from eid.inference.backends import optional_import
from eid.run_layout import MODEL_CARD
from eid.utils import atomic_write
from eid.zoo import resolve_model

__all__ = ["export_bioimageio", "sample_image"]

TEST_SIDE = 128
"""Side of the test tensors (a multiple of every shipped model's size multiple)."""


def sample_image(channels: int, side: int = TEST_SIDE, seed: int = 0) -> torch.Tensor:
    """A hazy nuclei-like test image ``(1,C,side,side)`` in ``[0,1]``: Gaussian spots under a smooth veil."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(
        torch.arange(side, dtype=torch.float32),
        torch.arange(side, dtype=torch.float32),
        indexing="ij",
    )
    centres, radii = torch.rand(24, 2, generator=g) * side, 2 + 4 * torch.rand(24, generator=g)
    spots = sum(
        torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        for (cy, cx), r in zip(centres, radii)
    )
    veil = 0.35 * torch.exp(-((yy - side / 3) ** 2 + (xx - side / 2) ** 2) / (2 * (side / 2) ** 2))
    clear = 0.9 * spots.clamp(max=1)
    return (clear * 0.7 + veil).clamp(0, 1).expand(1, channels, side, side).contiguous()


def _package_white(config_white: object, white: float | None, run: object) -> float:
    """The one scale the package reads as 1.0 (see the module doc)."""
    if white is not None:
        if not white > 0:
            raise EIDError(
                f"--white {white:g} is out of range; use the stored value read as 1.0, e.g. 255 or 4095"
            )
        return float(white)
    if config_white == "max":
        raise EIDError(
            f"{run} reads each image by its maximum (white: max), which bioimage.io preprocessing cannot express; "
            "give --white N, the stored value to read as 1.0"
        )
    return 255.0 if config_white in (None, "dtype") else float(config_white)  # type: ignore[arg-type]


def export_bioimageio(
    run: str | Path, out: str | Path, *, white: float | None = None, name: str | None = None
) -> Path:
    """Write the bioimage.io package of ``run`` (a run folder or a shipped model's name) to ``out`` (a ``.zip``)."""
    spec = optional_import("bioimageio.spec")
    folder = resolve_model(run)
    if not (folder / MODEL_CARD).is_file():
        raise EIDError(
            f"{folder}: no {MODEL_CARD}, the package's documentation; export the run again with eid train"
        )
    model, config = load_exportable(folder)
    scale = _package_white(config.get("white"), white, run)
    with tempfile.TemporaryDirectory(prefix="eid-bioimageio-") as tmp_dir:
        tmp = Path(tmp_dir)
        onnx = export_onnx(folder, tmp / "weights.onnx")
        test_input = sample_image(model.channels)
        with torch.no_grad():
            test_output = model(test_input)
        for kind, tensor in (("input", test_input), ("output", test_output)):
            np.save(tmp / f"test_{kind}.npy", (tensor * scale).numpy())
            tifffile.imwrite(tmp / f"sample_{kind}.tif", (tensor * scale).numpy())
        _write_cover(tmp / "cover.png", test_input, test_output)
        torchscript = _torchscript(model, test_input, tmp / "weights.pt")
        card = (folder / MODEL_CARD).read_text(encoding="utf-8")
        (tmp / "README.md").write_text(
            card + _package_notes(scale, model.multiple), encoding="utf-8"
        )
        descr = model_description(
            tmp, name=name or f"eid dehazer {folder.name}", summary=_summary(card), channels=model.channels,
            multiple=model.multiple, white=scale, opset=onnx.opset, torchscript=torchscript,
        )  # fmt: skip
        out = Path(out)
        with atomic_write(out) as tmp_zip:
            spec.save_bioimageio_package(descr, output_path=tmp_zip)
    return out


def _torchscript(model: ExportedDehazer, example: torch.Tensor, path: Path) -> bool:
    """Trace ``model`` to ``path`` (see the module doc); whether weights were written."""
    if model.input_mode == "pinv":
        return False
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # tracer notes on shape branches; the graph is the ONNX one's, checked
        traced = torch.jit.trace(model, example, check_trace=False)
    torch.jit.save(traced, str(path))
    return True


def _write_cover(path: Path, hazy: torch.Tensor, dehazed: torch.Tensor) -> None:
    """Input | output side by side, 8-bit PNG (the package's cover image)."""
    from PIL import Image

    pair = torch.cat([hazy[0], dehazed[0]], dim=-1).mean(0)
    Image.fromarray((pair.clamp(0, 1) * 255).round().to(torch.uint8).numpy()).save(path)


def _summary(card: str) -> str:
    """The card's first line of text after the title."""
    lines = [line.strip() for line in card.splitlines()]
    return next((line for line in lines if line and not line.startswith("#")), "EID dehazer")


def _package_notes(white: float, multiple: int) -> str:
    return (
        "\n\n## In this bioimage.io package\n\n"
        f"Inputs are read with {white:g} as 1.0 (preprocessing: scale_linear 1/{white:g}, clip to [0,1]); outputs "
        f"are scaled back by {white:g}. Height and width must be multiples of {multiple}. Weights: ONNX (and "
        "TorchScript where present) of the dehazer with its input preparation, written by `eid export --bioimageio`."
        "\n"
    )
