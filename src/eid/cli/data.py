"""``eid data``: rebuild the paper's datasets (Cholec80-Haze, Cell97-Haze, RESIDE) from their public sources."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from eid.cli import app, console
from eid.errors import EIDError, describe_os_error
from eid.metrics.haze_score import SCORERS
from eid.prepare import RESIDE_SUBSETS, PrepareSummary

data_app = typer.Typer(
    help="Build training/test sets from public datasets (see docs/datasets.md for layouts and thresholds).",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")


def _range(text: str, option: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise EIDError(
            f"{option} {text!r} is not a range; write it as LOW,HIGH, e.g. 0.1,0.2"
        ) from None
    if low > high:
        raise EIDError(f"{option} {text!r} has LOW > HIGH; write it as LOW,HIGH")
    return low, high


def _skip(message: str) -> None:
    console.print(f"[yellow]skipped:[/] {escape(message)}", highlight=False)


def _prepare(build: Callable[..., PrepareSummary], *args: Any, **kwargs: Any) -> None:
    """Run ``build``, which skips bad input files with one line each; print what it did and exit 1 if it skipped any.
    An OS error while writing (a full disk) is one line naming the file and the remedy."""
    try:
        summary = build(*args, on_skip=_skip, **kwargs)
    except OSError as exc:
        raise EIDError(describe_os_error(exc)) from exc
    written = (
        ", ".join(f"{k}: {v}" for k, v in sorted(summary.written.items()) if k != "unreadable")
        or "nothing new"
    )
    failed = f"; {len(summary.failed)} input file(s) skipped" if summary.failed else ""
    console.print(
        f"{summary.out_dir}: {written}; {summary.skipped} already done{failed}", highlight=False
    )
    if summary.failed:
        raise typer.Exit(1)


@data_app.command("cholec80")
def cholec80(
    videos: Path = typer.Option(
        ..., "--videos", help="Folder of Cholec80 videos (video01.mp4 ... video80.mp4)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output folder: {train,test}/{clear,hazy}/, manifest.csv, prepare.json."
    ),
    fps: float = typer.Option(1.0, "--fps", help="Frames sampled per second of video."),
    size: int = typer.Option(
        256,
        "--size",
        help="Side of the saved square frames in pixels (480 = the released samples).",
    ),
    crop: int = typer.Option(
        0,
        "--crop",
        help="Side of the square crop around the field of view before resizing; 0 = the disc diameter within the frame.",
    ),
    score: str = typer.Option("dark-channel", "--score", help=f"Haze score: {', '.join(SCORERS)}."),
    t_clear: float | None = typer.Option(
        None, "--t-clear", help="Frames scoring below this are clear (dark-channel default 0.15)."
    ),
    t_hazy: float | None = typer.Option(
        None,
        "--t-hazy",
        help="Frames scoring above this are hazy (dark-channel default 0.30); frames in between are discarded.",
    ),
    test_videos: str = typer.Option(
        "",
        "--test-videos",
        help="Comma-separated test video ids or numbers (default: Cholec80 split, videos 41-80).",
    ),
    fov_threshold: float = typer.Option(
        0.06,
        "--fov-threshold",
        help="Brightness in [0,1] above which a pixel belongs to the field of view.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Sample, crop and sort Cholec80 frames into clear and hazy (surgical smoke), split by video. Resumable.

    A video that cannot be decoded is skipped with one line (exit code 1); the others go on.
    """
    from eid.prepare import prepare_cholec80

    tests = [v.strip() for v in test_videos.split(",") if v.strip()] or None
    _prepare(prepare_cholec80, videos, out, fps=fps, size=size, crop=crop or None, t_clear=t_clear, t_hazy=t_hazy,
             score=score, test_videos=tests, fov_threshold=fov_threshold, progress=progress)  # fmt: skip


@data_app.command("cell97")
def cell97(
    src: Path = typer.Option(
        ..., "--src", help="Unpacked Murphy-lab 'hand-segmented 2D nuclear images' folder."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output folder: {train,test}/{clear,hazy}/ and manifest.csv."
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the split and of each image's veil parameters."
    ),
    test_fraction: float = typer.Option(
        0.2, "--test-fraction", help="Share of images in the test split."
    ),
    contrast: str = typer.Option(
        "0.55,0.75", "--contrast", help="Range LOW,HIGH of the contrast factor c."
    ),
    veil: str = typer.Option("0.1,0.2", "--veil", help="Range LOW,HIGH of the veil height v."),
    background: str = typer.Option(
        "0.02,0.05", "--background", help="Range LOW,HIGH of the smooth background b."
    ),
    veil_sigma: float = typer.Option(
        0.05, "--veil-sigma", help="Veil blur width as a fraction of min(H, W)."
    ),
    include: str | None = typer.Option(
        None,
        "--include",
        help="Glob (relative to --src) of the images to use; default: every image except masks/labels.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Haze the 97 nuclear images with the microscopy veil model into paired train/test sets.

    An image that cannot be read is skipped with one line (exit code 1); the others go on.
    """
    from eid.prepare import prepare_cell97

    _prepare(prepare_cell97, src, out, seed=seed, test_fraction=test_fraction, contrast=_range(contrast, "--contrast"),
             veil=_range(veil, "--veil"), background=_range(background, "--background"),
             veil_sigma=veil_sigma, include=include, progress=progress)  # fmt: skip


@data_app.command("reside")
def reside(
    root: Path = typer.Option(
        ..., "--root", help="Folder of one RESIDE subset (holding hazy/ and clear/ or gt/)."
    ),
    subset: str = typer.Option(..., "--subset", help=f"Which subset: {'|'.join(RESIDE_SUBSETS)}."),
    out: Path = typer.Option(
        ..., "--out", help="Output folder: {train,test}/{clear,hazy}/ and manifest.csv."
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the scene split (its/ots) and of the hazy sampling."
    ),
    test_fraction: float = typer.Option(
        0.1, "--test-fraction", help="its/ots: share of scenes held out as a paired test set."
    ),
    max_hazy_per_scene: int = typer.Option(
        0, "--max-hazy-per-scene", help="Keep at most this many hazy variants per scene (0 = all)."
    ),
    allow_missing: bool = typer.Option(
        False,
        "--allow-missing",
        help="Leave out hazy images without a clear image instead of failing.",
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Parse RESIDE's file naming and build unpaired train sets (its, ots) or paired/hazy-only test sets.

    An image that cannot be read is skipped with one line, and so is every pair it belongs to (never half a pair;
    exit code 1); the others go on.
    """
    from eid.prepare import prepare_reside

    _prepare(prepare_reside, root, subset, out, seed=seed, test_fraction=test_fraction,
             max_hazy_per_scene=max_hazy_per_scene or None, allow_missing=allow_missing, progress=progress)  # fmt: skip
