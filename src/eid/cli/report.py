"""``eid report``: a self-contained HTML report comparing dehazing methods image by image, with training runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from eid.cli import THREADS_HELP, WHITE_HELP, app, console, set_threads
from eid.data.scale import parse_white
from eid.errors import EIDError, describe_os_error


def parse_method(text: str) -> tuple[str, Path]:
    """``NAME=DIR`` -> ``(NAME, DIR)``; a bare ``DIR`` is named after its folder.

    >>> [(name, folder.as_posix()) for name, folder in map(parse_method, ["EID=out/eid", "out/dcp"])]
    [('EID', 'out/eid'), ('dcp', 'out/dcp')]
    """
    name, sep, folder = text.partition("=")
    if not sep:
        return Path(text).name, Path(text)
    if not name.strip() or not folder:
        raise EIDError(f"--method {text!r}: use NAME=DIR, e.g. --method EID=dehazed/eid")
    return name.strip(), Path(folder)


def parse_crop(text: str | None) -> tuple[int, int, int] | None:
    """``X,Y,SIZE`` in pixels -> a tuple; ``None`` stays ``None`` (the centre square)."""
    if text is None:
        return None
    try:
        x, y, size = (int(v) for v in text.split(","))
    except ValueError:
        raise EIDError(f"--crop {text!r}: use X,Y,SIZE in pixels, e.g. --crop 100,40,64") from None
    if x < 0 or y < 0 or size < 1:
        raise EIDError(f"--crop {text!r}: X and Y must be >= 0 and SIZE >= 1")
    return x, y, size


def write_report(out: Path, methods: dict[str, Path], **kwargs: object) -> None:
    """Build the report (:func:`eid.report.page.build_report`), print its warnings, one line each, and its path."""
    from eid.report.page import build_report

    try:
        report = build_report(out, methods, **kwargs)
    except OSError as exc:  # a full disk, a read-only folder...
        raise EIDError(describe_os_error(exc)) from exc
    for line in report.warnings:
        console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
    shown = (
        f" (first {report.shown} of {report.total} images shown)"
        if report.shown < report.total
        else ""
    )
    console.print(f"report {escape(str(report.index))}{shown}", highlight=False, soft_wrap=True)


@app.command("report")
def report_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Report folder to write (index.html and its images); never an input folder.",
        ),
    ],
    input: Annotated[
        Path | None,
        typer.Option("--input", help="Folder of the hazy input images; names and sizes every row."),
    ] = None,
    method: Annotated[
        list[str],
        typer.Option(
            "--method",
            help="NAME=DIR: a method's outputs, same names as --input. Repeat per method.",
        ),
    ] = (),
    ref: Annotated[
        Path | None,
        typer.Option("--ref", help="Folder of clear references: PSNR/SSIM and a reference column."),
    ] = None,
    run: Annotated[
        list[Path],
        typer.Option(
            "--run",
            help="Training run folder to show (losses, samples, operator maps, config). Repeatable.",
        ),
    ] = (),
    metrics: Annotated[
        str | None,
        typer.Option(
            "--metrics",
            help="Comma-separated metrics. Default: psnr,ssim with --ref, else niqe,brisque,fade.",
        ),
    ] = None,
    mask: Annotated[
        str | None,
        typer.Option(
            "--mask",
            help="Also score the field of view only (circle, auto or a mask FILE), found on each input image. Default: auto when the inputs are a lit field of view in a dark frame and there is no --ref; none turns it off.",
        ),
    ] = None,
    max_images: Annotated[
        int,
        typer.Option(
            "--max-images", min=1, help="Images shown on the page (the summary covers all)."
        ),
    ] = 20,
    crop: Annotated[
        str | None,
        typer.Option(
            "--crop",
            help="Zoom region X,Y,SIZE in pixels (default: the centre square, a quarter of the shorter side).",
        ),
    ] = None,
    white: Annotated[str, typer.Option("--white", help=WHITE_HELP)] = "dtype",
    threads: Annotated[int | None, typer.Option("--threads", help=THREADS_HELP)] = None,
) -> None:
    """Write an offline HTML report: a summary table (best per column), per image input | methods | reference with
    scores, a before/after slider, a zoomed crop and FADE density maps, and the training runs given with --run.
    """
    set_threads(threads)
    methods = dict(parse_method(m) for m in method)
    if len(methods) < len(method):
        raise EIDError("two --method options share a name; give each NAME=DIR a distinct NAME")
    write_report(
        out,
        methods,
        input=input,
        ref=ref,
        runs=run,
        metrics=metrics,
        mask=mask,
        white=parse_white(white),
        max_images=max_images,
        crop=parse_crop(crop),
    )
