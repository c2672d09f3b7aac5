"""``eid evaluate``: paired (PSNR/SSIM) and no-reference (NIQE/BRISQUE/FADE) evaluation of folders."""

from __future__ import annotations

from pathlib import Path

import torch
import typer
from rich.markup import escape

from eid.cli import THREADS_HELP, WHITE_HELP, app, console, set_threads
from eid.data.io import read_image
from eid.data.scale import parse_white
from eid.errors import EIDError
from eid.metrics import get_metrics
from eid.metrics.evaluate import evaluate
from eid.progress import LoggedProgress
from eid.report.tables import metrics_table, print_table
from eid.utils import resolve_device


def printable(text: str) -> str:
    """``text`` safe to print on any stream: bytes of a file name that are not UTF-8 shown as ``\\xe9``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _mask_fn(how: str, source: Path | None):
    """Field of view of each scored image: :func:`eid.metrics.mask.fov_mask` (``circle``, ``auto`` or a mask
    file) of the image itself or, with ``source``, of the image of the same name in that folder."""
    from eid.metrics.mask import fov_mask

    if how not in ("circle", "auto") and not Path(how).is_file():
        raise EIDError(f"--mask {how!r}: use circle, auto or an existing mask image file")
    if source is None:
        return lambda image, path: fov_mask(image, how)
    if not source.is_dir():
        raise EIDError(
            f"--mask-from {source} is not a folder; give the folder of the input (hazy) images"
        )
    by_stem: dict[str, Path] = {}
    for candidate in sorted(source.iterdir(), reverse=True):  # first name in sorted order wins
        by_stem[candidate.stem] = candidate

    def of_source(image: torch.Tensor, path: Path) -> torch.Tensor:
        original_path = by_stem.get(path.stem)
        if original_path is None:
            raise EIDError(
                f"--mask-from {source} has no image named {path.stem}.*; it must hold the inputs of --pred"
            )
        original = read_image(original_path)[0][None].to(image.device)
        if original.shape[-2:] != image.shape[-2:]:
            raise EIDError(
                f"{original_path} and {path} differ in size; --mask-from needs the inputs of --pred"
            )
        return fov_mask(original, how).expand(image.shape[0], 1, -1, -1)

    return of_source


def _check_report_inputs(pred: list[Path], ref: list[Path] | None, reside_names: bool) -> None:
    """Refuse, before scoring, what ``--report`` cannot show: files or globs, several references, RESIDE names."""
    if not all(p.is_dir() for p in pred):
        raise EIDError(
            "--report needs folders as --pred (one column per folder); give folders, not files or globs"
        )
    if ref and len(ref) > 1:
        raise EIDError("--report takes one --ref folder; merge the references or run eid report")
    if reside_names:
        raise EIDError(
            "--report matches images by their own names; it does not take --reside-names"
        )


@app.command("evaluate")
def evaluate_command(
    pred: list[Path] = typer.Option(
        ..., "--pred", help="Folder(s), files or globs of images to score (e.g. dehazed outputs)."
    ),
    ref: list[Path] = typer.Option(
        None,
        "--ref",
        help="Reference (clear) folder(s) for paired metrics; files are matched by name.",
    ),
    metrics: str = typer.Option(
        None,
        "--metrics",
        help="Comma-separated metric names. Default: psnr,ssim with --ref, else niqe,brisque.",
    ),
    reside_names: bool = typer.Option(
        False, "--reside-names", help="Match RESIDE names: prediction id_k.png -> reference id.png."
    ),
    mask: str = typer.Option(
        None,
        "--mask",
        help="For no-reference metrics, also score the field of view only: circle, auto or a mask FILE.",
    ),
    mask_from: Path = typer.Option(
        None,
        "--mask-from",
        help="Detect the --mask on the image of the same name in this folder (e.g. the hazy "
        "inputs) instead of on each scored image, so that every method is scored on the same field of view.",
    ),
    white: str = typer.Option(
        "dtype",
        "--white",
        help=WHITE_HELP + " Applies to --pred and --ref (PSNR's peak is this value).",
    ),
    json_path: Path = typer.Option(
        None, "--json", help="Write {'metrics': {name: mean}, 'images': [...]} to this file."
    ),
    csv_path: Path = typer.Option(
        None, "--csv", help="Write per-image values and the mean row to this CSV file."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    threads: int = typer.Option(None, "--threads", help=THREADS_HELP),
    max_pixels: int = typer.Option(
        None, "--max-pixels", help="Refuse larger images (default 150 MP)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="Print only the means."),
    report: Path = typer.Option(
        None,
        "--report",
        help="Also write an HTML report (as eid report) to this folder: one column per --pred folder, "
        "the --ref column, and the --mask-from images as the input column.",
    ),
) -> None:
    """Score images: PSNR/SSIM against references, or NIQE/BRISQUE/FADE without references.

    Prints a per-image table and the means; exits with status 1 if any file could not be read.
    """
    set_threads(threads)
    if mask_from is not None and not mask:
        raise EIDError("--mask-from needs --mask circle or auto")
    names = metrics or ("psnr,ssim" if ref else "niqe,brisque")
    specs = get_metrics(names)
    if report is not None:
        _check_report_inputs(pred, ref, reside_names)
    dev = resolve_device(device)
    with LoggedProgress(unit="images", console=console, transient=True) as progress:
        task = progress.add_task("evaluating", total=None)
        result = evaluate(
            specs,
            pred,
            ref or None,
            reside_names=reside_names,
            mask_fn=_mask_fn(mask, mask_from) if mask else None,
            device=dev,
            max_pixels=max_pixels,
            white=parse_white(white),
            on_image=lambda name: progress.advance(task),
        )
    rows = [] if quiet else [{**row, "name": printable(str(row["name"]))} for row in result.rows]
    print_table(console, metrics_table(rows, result.metric_names, result.means, title="evaluation"))
    if json_path:
        result.write_json(json_path)
    if csv_path:
        result.write_csv(csv_path)
    if report is not None:
        from eid.cli.report import write_report

        labels = [p.name for p in pred]
        if len(set(labels)) < len(labels) or {"input", "reference"} & set(
            labels
        ):  # the report's own column names
            labels = [str(p.resolve()) for p in pred]
        methods = dict(zip(labels, pred))
        write_report(
            report,
            methods,
            input=mask_from,
            ref=ref[0] if ref else None,
            metrics=names,
            mask=mask,
            white=parse_white(white),
        )
    for message in result.skipped:
        console.print(f"[yellow]skipped:[/] {escape(printable(message))}", highlight=False)
    if result.skipped:
        console.print(f"{len(result.rows)} scored, {len(result.skipped)} skipped")
        raise typer.Exit(1)
