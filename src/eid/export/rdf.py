"""The bioimage.io resource description (spec 0.5 ``ModelDescr``) of an exported dehazer.

One input ``input`` and one output ``output``, axes ``batch, channel, y, x``; the output's spatial sizes are the
input's. The files it names (weights, test tensors, README, cover) are in ``folder`` (see
:func:`eid.export.bioimage.export_bioimageio`, which chooses the scale ``white`` and writes them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from eid.export.to_onnx import package_version

__all__ = ["AUTHORS", "CITATION", "LICENCE", "model_description"]

LICENCE = "BSD-3-Clause"
#: the EID paper; a DOI, not a URL: bioimageio.spec checks URLs online while validating
CITATION = (
    "Wen, Xie, Chen: Equivariant Learning for Unsupervised Image Dehazing, arXiv 2601.13986",
    "10.48550/arXiv.2601.13986",
)
AUTHORS = ("eid developers",)


def model_description(
    folder: Path, *, name: str, summary: str, channels: int, multiple: int, white: float,
    opset: int, torchscript: bool,
) -> Any:  # fmt: skip
    """The validated ``bioimageio.spec.model.v0_5.ModelDescr`` of the package files in ``folder``."""
    from bioimageio.spec.model import v0_5 as m

    space = m.ParameterizedSize(min=multiple * 4, step=multiple)
    channel_names = ["grey"] if channels == 1 else ["red", "green", "blue"]
    values = m.IntervalOrRatioDataDescr(type="float32", range=(0.0, white))
    inputs = m.InputTensorDescr(
        id=m.TensorId("input"), description=f"hazy image, stored values read with {white:g} as 1.0",
        axes=[
            m.BatchAxis(), m.ChannelAxis(channel_names=[m.Identifier(c) for c in channel_names]),
            m.SpaceInputAxis(id=m.AxisId("y"), size=space), m.SpaceInputAxis(id=m.AxisId("x"), size=space),
        ],
        test_tensor=m.FileDescr(source=folder / "test_input.npy"), sample_tensor=m.FileDescr(source=folder / "sample_input.tif"),
        data=values,
        preprocessing=[
            m.ScaleLinearDescr(kwargs=m.ScaleLinearKwargs(gain=1.0 / white)),
            m.ClipDescr(kwargs=m.ClipKwargs(min=0.0, max=1.0)),
        ],
    )  # fmt: skip
    outputs = m.OutputTensorDescr(
        id=m.TensorId("output"), description=f"dehazed image on the input's scale ({white:g} = 1.0)",
        axes=[
            m.BatchAxis(), m.ChannelAxis(channel_names=[m.Identifier(c) for c in channel_names]),
            *(m.SpaceOutputAxis(id=m.AxisId(a), size=m.SizeReference(tensor_id=m.TensorId("input"), axis_id=m.AxisId(a)))
              for a in ("y", "x")),
        ],
        test_tensor=m.FileDescr(source=folder / "test_output.npy"), sample_tensor=m.FileDescr(source=folder / "sample_output.tif"),
        data=values,
        postprocessing=[m.ScaleLinearDescr(kwargs=m.ScaleLinearKwargs(gain=white))],
    )  # fmt: skip
    weights = m.WeightsDescr(
        # the TorchScript trace is the original where present: the ONNX graph comes from the same trace
        onnx=m.OnnxWeightsDescr(source=folder / "weights.onnx", opset_version=opset, parent="torchscript" if torchscript else None),
        torchscript=(
            m.TorchscriptWeightsDescr(source=folder / "weights.pt", pytorch_version=m.Version(torch.__version__.split("+")[0]))
            if torchscript else None
        ),
    )  # fmt: skip
    return m.ModelDescr(
        name=name, description=summary, authors=[m.Author(name=a) for a in AUTHORS],
        cite=[m.CiteEntry(text=CITATION[0], doi=m.Doi(CITATION[1]))], license=m.LicenseId(LICENCE),
        documentation=m.FileDescr(source=folder / "README.md"), covers=[m.FileDescr(source=folder / "cover.png")], inputs=[inputs], outputs=[outputs],
        weights=weights, tags=["dehazing", "image-restoration", "2d", "eid", *(["fluorescence-light-microscopy"] if channels == 1 else [])],
        version=package_version(),
    )  # fmt: skip
