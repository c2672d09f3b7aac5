"""Drivers: dehaze image files, folders, globs, TIFF stacks and videos with a runner."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from torch import Tensor

from eid.data.planes import ImageFile, read_planes
from eid.data.video import VIDEO_SUFFIXES
from eid.errors import EIDError, ImageReadError, describe_os_error
from eid.inference.methods import Method
from eid.inference.runner import Dehazer
from eid.inference.video import VideoReport
from eid.progress import LoggedProgress, stderr_console
from eid.utils import remove_stale_temps

__all__ = ["VIDEO_SUFFIXES", "DehazeSummary", "dehaze_paths", "dehaze_video_file", "is_video"]


@dataclass
class DehazeSummary:
    """What a folder run did: files written, skipped because done, and failures ``(path, reason)``."""

    written: int = 0
    existing: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)


def _progress(console: Console) -> LoggedProgress:
    return LoggedProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[name]}"),
        unit="images",
        console=console,
        transient=False,
    )


def dehaze_paths(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    method_fn: Dehazer | Method | Callable[[Tensor], Tensor],
    *,
    max_pixels: int | None = None,
    skip_existing: bool = False,
    recursive: bool = True,
    console: Console | None = None,
) -> int:
    """Dehaze image files, folders and globs into ``out_dir``; return the number of failed files.

    Each output keeps the input's name, format, bit depth, channels and alpha (``eid.data.io``);
    files found in a folder keep their path relative to it (nested folders are mirrored). Files that
    cannot be read or processed are reported, skipped and counted; the run continues and ends with a
    summary (a :class:`DehazeSummary`) on ``console``. Inputs that would share an output name (the same name
    in two input folders) get distinct names (:func:`eid.data.naming.plan_outputs`), with a note; temporary
    files that a killed run left in ``out_dir`` are removed first. Consecutive images of the same size are batched (``method_fn.batch_size``).
    A TIFF stack (z-stack, time-lapse, hyperstack: :mod:`eid.data.stacks`) is dehazed plane by plane, in batches,
    and written back as a stack with the same layout, sample type and calibration. An output
    folder equal to an input folder, or an output that would overwrite an input, is refused before
    anything is written.
    """
    from eid.data.io import write_image
    from eid.data.listing import check_not_input, check_output_dir, iter_inputs, no_images_error
    from eid.data.naming import plan_outputs

    console = console or stderr_console()
    runner = method_fn if isinstance(method_fn, Dehazer) else Dehazer(method_fn)
    out = check_output_dir(out_dir, inputs)
    pairs = iter_inputs(list(inputs), recursive=recursive)
    if not pairs:
        raise no_images_error(inputs)
    sources = [path for path, _ in pairs]
    plan = plan_outputs(sources, [rel for _, rel in pairs])
    targets = [out / name for name in plan.names]
    for dst in targets:
        check_not_input(dst, sources)
    for line in plan.notices():
        console.print(f"[yellow]note:[/] {escape(line)}")
    if out.is_dir():
        remove_stale_temps(out)

    summary = DehazeSummary()
    pending: list[tuple[Tensor, Any, Path]] = []

    def flush() -> None:
        if not pending:
            return
        try:
            results = runner.run(torch.stack([img for img, _, _ in pending]))
            for result, (_, meta, dst) in zip(results, pending):
                write_image(dst, result, meta)
                summary.written += 1
        except (EIDError, torch.OutOfMemoryError, OSError) as exc:
            for _, meta, dst in pending:
                _fail(meta.path, _reason(exc))
        pending.clear()

    def dehaze_stack(stack: ImageFile, dst: Path) -> None:
        """A TIFF stack, plane by plane in batches, written back as a stack of the same layout."""
        try:
            out = stack.writer(in_place=True)  # each batch of planes is read before it is replaced
            for start in range(0, len(stack), runner.batch_size):
                indices = range(start, min(start + runner.batch_size, len(stack)))
                progress.update(
                    task,
                    name=f"{stack.path.name} planes {start + 1}-{indices[-1] + 1} of {len(stack)}",
                )
                for index, plane in zip(
                    indices, runner.run(torch.stack([stack.plane(i) for i in indices]))
                ):
                    out[index] = plane
            out.write(dst)
            summary.written += 1
        except (EIDError, torch.OutOfMemoryError, OSError) as exc:
            _fail(stack.path, _reason(exc))

    def _fail(path: Path, reason: str) -> None:
        summary.failed.append((path, reason if str(path) in reason else f"{path}: {reason}"))
        console.print(f"[yellow]warning:[/] skipped {escape(summary.failed[-1][1])}")

    with _progress(console) as progress:
        task = progress.add_task("dehazing", total=len(pairs), name="")
        for src, dst in zip(sources, targets):
            progress.update(task, name=src.name)
            if skip_existing and dst.exists():
                summary.existing += 1
            else:
                try:
                    source = read_planes(src, max_pixels=max_pixels, white=runner.white)
                except ImageReadError as exc:
                    _fail(src, str(exc))
                else:
                    if source.is_stack:
                        flush()
                        dehaze_stack(source, dst)
                    else:
                        if pending and (
                            len(pending) >= runner.batch_size
                            or pending[0][0].shape != source.image.shape
                        ):
                            flush()
                        pending.append((source.image, source.meta, dst))
            if len(pending) >= runner.batch_size:
                flush()
            progress.advance(task)
        flush()
    _print_summary(summary, out, console)
    return len(summary.failed)


def _reason(exc: BaseException) -> str:
    """Why a file failed, in one line: an :class:`EIDError` says it; other errors get the likely remedy."""
    if isinstance(exc, EIDError):
        return str(exc)
    if isinstance(exc, OSError):  # a full disk, no permission...: the real cause, not a memory hint
        return describe_os_error(exc)
    return f"out of memory ({str(exc).splitlines()[0]}); try a smaller --tile or --batch-size"


def _print_summary(summary: DehazeSummary, out: Path, console: Console) -> None:
    parts = [f"{summary.written} written to {escape(str(out))}"]
    if summary.existing:
        parts.append(f"{summary.existing} already done")
    if summary.failed:
        parts.append(f"[red]{len(summary.failed)} skipped[/]")
    console.print("dehaze: " + ", ".join(parts))
    for _, reason in summary.failed:
        console.print(f"  skipped {escape(reason)}")


def is_video(path: str | Path) -> bool:
    """Whether ``path`` has a video suffix (:data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def dehaze_video_file(
    src: str | Path,
    dst: str | Path,
    runner: Dehazer,
    *,
    side_by_side: bool = False,
    temporal_smoothing: float = 0.0,
) -> VideoReport:
    """Dehaze a video frame by frame with ``runner.run`` (batched, padded, tiled), keeping fps and size.

    See :func:`eid.inference.video.dehaze_video` for the side-by-side output and temporal smoothing.
    """
    from eid.inference.video import dehaze_video

    return dehaze_video(
        src,
        dst,
        runner.run,
        batch_size=runner.batch_size,
        side_by_side=side_by_side,
        temporal_smoothing=temporal_smoothing,
    )
