"""``eid export``: a trained dehazer as ONNX (``--onnx``) or as a bioimage.io model package (``--bioimageio``)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from eid.cli import THREADS_HELP, app, console, set_threads
from eid.errors import EIDError

#: the output suffix each format needs
SUFFIXES = {"onnx": ".onnx", "bioimageio": ".zip"}


@app.command("export")
def export(
    run: str = typer.Argument(
        ...,
        help="Stage-2 run folder (eid train --out) or a shipped model's name (eid models).",
        show_default=False,
    ),
    out: Path = typer.Argument(
        ..., help="Output file: .onnx with --onnx, .zip with --bioimageio.", show_default=False
    ),
    onnx: bool = typer.Option(
        False,
        "--onnx",
        help="Write one ONNX graph: hazy (N,C,H,W) float32 in [0,1] -> dehazed, input preparation included.",
    ),
    bioimageio: bool = typer.Option(
        False,
        "--bioimageio",
        help="Write a bioimage.io model package (spec 0.5; ONNX and TorchScript weights, test tensors, model card).",
    ),
    white: float | None = typer.Option(
        None,
        "--white",
        help="--bioimageio: the stored value the package reads as 1.0. Default: the run's numeric "
        "white, else 255 (8-bit data; use 65535 for 16-bit, 4095 for 12-bit).",
        show_default=False,
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    threads: int | None = typer.Option(None, "--threads", help=THREADS_HELP),
) -> None:
    """Export a trained dehazer for other runtimes (needs the export extra: `pip install 'eid-dehaze\\[export]'`).

    Examples: `eid export --onnx runs/eid dehazer.onnx`, then `eid dehaze --backend onnx --model dehazer.onnx hazy/
    --out dehazed/`; `eid export --bioimageio microscopy eid-microscopy.zip` for Fiji/deepImageJ or bioimageio.core.
    The ONNX export is checked against torch on a random image before it is kept. Details: docs/export.md.
    """
    set_threads(threads)
    if onnx == bioimageio:
        raise EIDError(
            "give exactly one of --onnx (an .onnx file) or --bioimageio (a bioimage.io .zip)"
        )
    kind = "onnx" if onnx else "bioimageio"
    if out.suffix.lower() != SUFFIXES[kind]:
        raise EIDError(
            f"{out}: --{kind} writes a {SUFFIXES[kind]} file; name the output *{SUFFIXES[kind]}"
        )
    if out.exists() and not overwrite:
        raise EIDError(f"{out} exists; add --overwrite to replace it or choose another name")
    if out.is_dir():
        raise EIDError(f"{out} is a folder; give a file name ending in {SUFFIXES[kind]}")
    if white is not None and not bioimageio:
        raise EIDError("--white applies to --bioimageio only (an ONNX graph takes [0,1] values)")
    from eid.export import export_bioimageio, export_onnx

    if onnx:
        result = export_onnx(run, out)
        console.print(
            f"wrote {escape(str(out))} (opset {result.opset}, {result.exporter} exporter); ONNX Runtime against "
            f"torch on a 64x64 test batch: max abs diff {result.max_abs_diff:.1e}", highlight=False,
        )  # fmt: skip
    else:
        export_bioimageio(run, out, white=white)
        console.print(
            f"wrote {escape(str(out))} (bioimage.io model package, spec 0.5)", highlight=False
        )
