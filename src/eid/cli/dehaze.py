"""``eid dehaze``: dehaze image files, folders, globs and videos with EID, CycleGAN-only or DCP."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from eid.cli import THREADS_HELP, WHITE_HELP, app, console, set_threads, warn_if_dim
from eid.data.listing import no_images_error
from eid.data.naming import check_existing, output_paths
from eid.errors import EIDError
from eid.utils import hiding_warnings, recording_warnings

if TYPE_CHECKING:
    from eid.inference.video import VideoReport


@app.command("dehaze")
def dehaze(
    inputs: list[str] = typer.Argument(
        ...,
        help="Image files, folders (searched recursively, nested folders mirrored), glob patterns or videos "
        "(.mp4/.avi/.mov/.mkv...). TIFF stacks (z, time, channels) are dehazed plane by plane.",
        show_default=False,
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Output folder (outputs keep the input names, formats and bit depths); for a "
        "single video input it may be the output video file.",
        show_default=False,
    ),
    method: str = typer.Option(
        "eid", "--method", "-m", help="eid (--model), cyclegan (--operator), dcp or dcp-grey."
    ),
    model: Path | None = typer.Option(
        None,
        "--model",
        help="Stage-2 run folder (eid train --out) or a shipped model's name (eid models) for --method eid.",
    ),
    operator: Path | None = typer.Option(
        None,
        "--operator",
        help="Stage-1 run folder (eid train-operator --out): G_BA for --method cyclegan; "
        "overrides the operator recorded in the --model run for --method eid.",
    ),
    tile: int | None = typer.Option(
        None,
        "--tile",
        help="Images with a side above this are processed in tiles of this side, blended over "
        "--overlap pixels (memory independent of image size); 0 disables tiling. --method dcp(-grey) is never tiled. "
        "Default: 512 times the model's space-to-depth factor (2048 for the fast preset's dehazer).",
    ),
    overlap: int | None = typer.Option(
        None,
        "--overlap",
        help="Overlap between neighbouring tiles in pixels. Default: 64, or twice the receptive "
        "radius of a norm-free model if larger, which makes its tiling exact; at most three quarters of the tile.",
    ),
    tile_norm: str = typer.Option(
        "auto",
        "--tile-norm",
        help="Statistics of group/instance norms when tiling: exact (measured tile by tile, one pass per "
        "norm layer; tiles equal the untiled result, at several times the time), global (recorded on the "
        "whole image down-scaled to 2 tiles; close to it), tile (each tile's own), or auto: exact where the "
        "model allows it (no --tta; a hazy, DCP or CycleGAN H-dagger input), else global. Images up to 2 tiles "
        "are never tiled.",
    ),
    batch_size: int = typer.Option(
        1,
        "--batch-size",
        "-b",
        help="Same-size images (or tiles, or video frames) per forward pass.",
    ),
    backend: str = typer.Option(
        "auto",
        "--backend",
        help="auto: ONNX Runtime (~2x faster) for --method eid on the CPU in fp32 without --operator, if the "
        "export extra eid-dehaze\\[export] is installed (images tiled with whole-image norm statistics run on torch), "
        "else torch; torch; or onnx: the dehazer exported to ONNX (cached) run by ONNX Runtime (CPU; CUDA where "
        "onnxruntime has it), fp32; --model may then be an .onnx file (eid export --onnx).",
    ),
    device: str = typer.Option(
        "auto", "--device", help="auto (CUDA when available), cpu, cuda or cuda:N."
    ),
    threads: int | None = typer.Option(None, "--threads", help=THREADS_HELP),
    precision: str = typer.Option(
        "auto",
        "--precision",
        help="auto (bf16 autocast where the CPU (avx512_bf16/amx_bf16) or GPU has native "
        "bf16, detected at run time; fp32 otherwise), fp32, bf16, or fp16 (CUDA only).",
    ),
    tta: bool = typer.Option(
        False,
        "--tta",
        help="Test-time group averaging: mean of T^-1 f(T y) over an exact finite group (the "
        "model's training group reduced to rot90/flips, else rot90*flip); costs |G| forward passes.",
    ),
    tta_group: str | None = typer.Option(
        None,
        "--tta-group",
        help="Group for test-time averaging (implies --tta), e.g. hflip or rot90*flip.",
    ),
    max_pixels: int | None = typer.Option(
        None,
        "--max-pixels",
        help="Refuse images with more pixels than this (default 150,000,000).",
    ),
    white: str | None = typer.Option(
        None,
        "--white",
        help=WHITE_HELP + " Default: the scale the model was trained on (dtype for dcp).",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace outputs that already exist (by default an existing output is an error).",
    ),
    skip_existing: bool = typer.Option(
        False,
        "--skip-existing",
        help="Keep outputs that already exist and dehaze the other inputs (resume).",
    ),
    side_by_side: bool = typer.Option(
        False, "--side-by-side", help="Videos: write input | output frames side by side."
    ),
    temporal_smoothing: float = typer.Option(
        0.0,
        "--temporal-smoothing",
        help="Videos: strength in [0,1) of the flicker-reducing temporal smoothing "
        "of the output (0 = off; see eid.inference.temporal.TemporalSmoother).",
    ),
) -> None:
    """Dehaze images and videos, keeping each file's size, format, bit depth and channels.

    Examples: `eid dehaze --model runs/eid hazy/ --out dehazed/`,
    `eid dehaze --method dcp 'photos/*.jpg' --out dcp/`, `eid dehaze --model runs/eid clip.mp4 --out clip-dehazed.mp4`.
    Unreadable files (and symbolic link loops) are skipped with a warning; the exit code is 1 if
    any file was skipped. An output that already exists is an error unless --overwrite or --skip-existing is given.
    """
    from eid.export.runtime import backend_method
    from eid.inference import METHODS, Dehazer, dehaze_paths, dehaze_video_file, is_video

    set_threads(threads)
    if method not in METHODS:
        raise EIDError(f"unknown --method {method!r}; use one of {', '.join(METHODS)}")
    videos = [Path(item) for item in inputs if is_video(item) and Path(item).is_file()]
    images = [item for item in inputs if not (is_video(item) and Path(item).is_file())]
    if videos and is_video(out) and (len(videos) > 1 or images):
        raise EIDError(
            f"--out {out} is a video file but several inputs were given; use an output folder"
        )
    video_targets = [out if is_video(out) else out / video.name for video in videos]
    skips = _check_outputs(images, videos, out, video_targets, overwrite, skip_existing)
    chosen, choice = backend_method(
        backend, method, model=model, operator=operator, device=device, precision=precision,
        whole_image_norms=tile_norm != "tile" and tile != 0,
    )  # fmt: skip
    runner = Dehazer(
        chosen,
        device=device,
        tile="auto" if tile is None else tile or None,
        overlap=overlap,
        batch_size=batch_size,
        precision=choice.runner_precision(precision),
        tta=tta_group or tta,
        tile_norm=tile_norm,
        white=white,
    )
    with hiding_warnings(skips):
        warn_if_dim(images, runner.white)
    if backend == "auto" and method == "eid":  # dim where auto stays on torch: a note, not news
        line = f"backend: {choice.name} (auto: {escape(choice.reason)})"
        console.print(f"[dim]{line}[/]" if choice.name == "torch" else line)
    if runner.amp_dtype is not None:
        console.print(
            f"precision: {str(runner.amp_dtype).removeprefix('torch.')} autocast on {runner.device.type}"
        )
    if runner.tta_group:
        console.print(f"test-time averaging over {runner.tta_group}")
    for line in skips:
        console.print(f"[yellow]warning:[/] {escape(line)}")
    failures = len(skips)
    if images:
        with hiding_warnings(skips):
            failures += dehaze_paths(
                images,
                out,
                runner,
                max_pixels=max_pixels,
                skip_existing=skip_existing,
                console=console,
            )
    for video, dst in zip(videos, video_targets):
        if skip_existing and dst.exists():
            continue
        try:
            report = dehaze_video_file(
                video, dst, runner, side_by_side=side_by_side, temporal_smoothing=temporal_smoothing
            )
        except EIDError as exc:
            console.print(f"[yellow]warning:[/] skipped {escape(str(video))}: {escape(str(exc))}")
            failures += 1
            continue
        console.print(
            f"{video.name}: {report.frames} frames at {report.frames_per_second:.2f} frames/s -> {dst}; {_flicker(report)}"
        )
        for note in report.notes:
            console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    if failures:
        raise typer.Exit(1)


def _check_outputs(
    images: list[str],
    videos: list[Path],
    out: Path,
    video_targets: list[Path],
    overwrite: bool,
    skip_existing: bool,
) -> list[str]:
    """Refuse, before any work, existing outputs (without --overwrite or --skip-existing) and inputs that hold only
    what the folder listing skips (symbolic link loops...); return the listing's skip lines, which the run reports
    once as its own and counts as skipped files."""
    (sources, targets), skips = (
        recording_warnings(output_paths, images, out) if images else (([], []), [])
    )
    # refused here, before the run prints its backend and precision
    if images and not sources and not videos:
        if not skips:
            raise no_images_error(images)
        more = f" (and {len(skips) - 1} more)" if len(skips) > 1 else ""
        raise EIDError(f"{', '.join(images)}: no image to process: {skips[0]}{more}")
    check_existing([*targets, *video_targets], [*sources, *videos], overwrite, skip_existing)
    return skips


def _flicker(report: VideoReport) -> str:
    """The report's flicker figures; undefined (NaN) when no pixel of the input stays still between frames."""
    if math.isnan(report.flicker_input):
        return "flicker n/a (no static region in the input)"
    smoothed = report.flicker_smoothed
    also = "" if smoothed is None else f", smoothed {smoothed:.4f}"
    return f"flicker input {report.flicker_input:.4f}, output {report.flicker_raw:.4f}{also}"
