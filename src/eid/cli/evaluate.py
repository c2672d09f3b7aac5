"""``eid evaluate``: paired (PSNR/SSIM) and no-reference (NIQE/BRISQUE/FADE) evaluation of folders."""

from __future__ import annotations

from pathlib import Path

import torch
import typer
from rich.progress import Progress

from eid.cli import app, console
from eid.data.io import read_image
from eid.errors import EIDError
from eid.metrics import get_metrics
from eid.metrics.evaluate import evaluate
from eid.report.tables import metrics_table
from eid.utils import resolve_device


def _mask_fn(how: str):
    """``circle``/``auto`` field-of-view detection, or a mask image file (non-zero = inside)."""
    if how in ("circle", "auto"):
        from eid.metrics.mask import fov_mask

        return lambda image, path: fov_mask(image, how)
    mask_file = Path(how)
    if not mask_file.is_file():
        raise EIDError(f"--mask {how!r}: use circle, auto or an existing mask image file")
    mask = read_image(mask_file)[0][:1] > 0.5

    def from_file(image: torch.Tensor, path: Path) -> torch.Tensor:
        if mask.shape[-2:] != image.shape[-2:]:
            raise EIDError(f"mask {mask_file} is {mask.shape[-1]}x{mask.shape[-2]} but {path} is {image.shape[-1]}x{image.shape[-2]}")
        return mask.to(image.device).expand(image.shape[0], 1, -1, -1)

    return from_file


@app.command("evaluate")
def evaluate_command(
    pred: list[Path] = typer.Option(..., "--pred", help="Folder(s), files or globs of images to score (e.g. dehazed outputs)."),
    ref: list[Path] = typer.Option(None, "--ref", help="Reference (clear) folder(s) for paired metrics; files are matched by name."),
    metrics: str = typer.Option(
        None, "--metrics", help="Comma-separated metric names. Default: psnr,ssim with --ref, else niqe,brisque."
    ),
    reside_names: bool = typer.Option(False, "--reside-names", help="Match RESIDE names: prediction id_k.png -> reference id.png."),
    mask: str = typer.Option(None, "--mask", help="For no-reference metrics, also score the field of view only: circle, auto or a mask FILE."),
    json_path: Path = typer.Option(None, "--json", help="Write {'metrics': {name: mean}, 'images': [...]} to this file."),
    csv_path: Path = typer.Option(None, "--csv", help="Write per-image values and the mean row to this CSV file."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    max_pixels: int = typer.Option(None, "--max-pixels", help="Refuse larger images (default 150 MP)."),
    quiet: bool = typer.Option(False, "--quiet", help="Print only the means."),
) -> None:
    """Score images: PSNR/SSIM against references, or NIQE/BRISQUE/FADE without references.

    Prints a per-image table and the means; exits with status 1 if any file could not be read.
    """
    names = metrics or ("psnr,ssim" if ref else "niqe,brisque")
    specs = get_metrics(names)
    dev = resolve_device(device)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("evaluating", total=None)
        result = evaluate(
            specs, pred, ref or None, reside_names=reside_names, mask_fn=_mask_fn(mask) if mask else None,
            device=dev, max_pixels=max_pixels, on_image=lambda name: progress.advance(task),
        )
    rows = [] if quiet else result.rows
    console.print(metrics_table(rows, result.metric_names, result.means, title="evaluation"))
    if json_path:
        result.write_json(json_path)
    if csv_path:
        result.write_csv(csv_path)
    for message in result.skipped:
        console.print(f"[yellow]skipped:[/] {message}", highlight=False)
    if result.skipped:
        console.print(f"{len(result.rows)} scored, {len(result.skipped)} skipped")
        raise typer.Exit(1)
