"""Video dehazing with optional temporal smoothing, and its flicker report.

* :func:`dehaze_video` streams a video: frames are decoded in a background thread, dehazed in batches
  and encoded as they come, with the audio copied unchanged, so memory does not grow with the video's
  length. It optionally smooths the output in time (:class:`TemporalSmoother`) and measures flicker
  (:class:`FlickerMeter`; both in :mod:`eid.inference.temporal`, :func:`flicker` re-exported here); the
  report's notes say what audio could not be copied and how an odd size was kept.

Frames are read and written by :mod:`eid.data.video`; this module only processes them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch
from torch import Tensor

from eid.data.video import VideoInfo, VideoReader, VideoWriter
from eid.errors import EIDError
from eid.inference.temporal import FlickerMeter, TemporalSmoother, flicker
from eid.progress import progress_bar
from eid.utils import prefetched

__all__ = ["VideoReport", "dehaze_video", "flicker"]

ImageFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class VideoReport:
    """Outcome of :func:`dehaze_video`. Flicker figures are in ``[0,1]`` units (see :class:`FlickerMeter`)."""

    src: Path
    dst: Path
    frames: int
    fps: Fraction
    width: int
    height: int
    seconds: float
    flicker_input: float
    flicker_raw: float
    flicker_smoothed: float | None
    notes: tuple[str, ...] = ()

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def dehaze_video(
    src: str | Path,
    dst: str | Path,
    image_fn: ImageFn,
    batch_size: int = 4,
    side_by_side: bool = False,
    temporal_smoothing: float = 0.0,
    progress: bool = True,
    smoothing_tau: float = 0.02,
    codec: str = "auto",
    crf: int = 18,
) -> VideoReport:
    """Dehaze a video frame by frame, keeping its frame rate and size (odd sizes too, see :class:`VideoWriter`).

    :param src: input video; :param dst: output video (refused if it is ``src``).
    :param image_fn: ``(B,3,H,W) -> (B,3,H,W)`` in ``[0,1]``, e.g. the batched tiled inference path.
    :param batch_size: frames per call of ``image_fn``.
    :param side_by_side: write ``input | output`` frames (twice as wide).
    :param temporal_smoothing: strength ``s`` of :class:`TemporalSmoother` (0 = off).
    :param progress: show a progress bar with frames/s.
    :return: a :class:`VideoReport` with the flicker of the input, of the raw output and (when
        smoothing) of the smoothed output, all measured in the input's static regions, and notes on
        what the output does not keep (the audio) or keeps unusually (an odd size).
    """
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise EIDError(f"{dst}: output would overwrite the input video; choose another --out")
    if batch_size < 1:
        raise EIDError(f"batch size must be at least 1, got {batch_size}")
    smoother = TemporalSmoother(temporal_smoothing, smoothing_tau)
    smoothing = temporal_smoothing > 0
    meter = FlickerMeter(streams=("input", "raw", "smoothed") if smoothing else ("input", "raw"))
    start = time.perf_counter()
    with VideoReader(src) as reader, progress_bar("frames", progress) as bar:
        info = reader.info
        width = info.width * (2 if side_by_side else 1)
        task = bar.add_task(f"dehazing {src.name}", total=info.frames or None)
        with VideoWriter(
            dst,
            info.fps,
            width,
            info.height,
            codec=codec,
            crf=crf,
            audio_from=src,
            video_start=info.start,
        ) as writer:

            def flush(batch: list[Tensor]) -> None:
                x = torch.stack(batch)
                with torch.no_grad():
                    y = image_fn(x)
                if not isinstance(y, Tensor) or y.shape != x.shape:
                    got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
                    raise EIDError(
                        f"the dehazer returned {got} for frames of shape {tuple(x.shape)}; it must keep the shape"
                    )
                y = y.detach().float().cpu().clamp(0, 1)
                for xt, yt in zip(x, y, strict=True):
                    out = smoother(xt, yt)
                    meter.update(xt, xt, yt, *((out,) if smoothing else ()))
                    writer.write(torch.cat([xt, out], dim=-1) if side_by_side else out)
                bar.advance(task, len(batch))

            batch: list[Tensor] = []
            frames_ahead = contextlib.closing(prefetched(reader, depth=2 * batch_size))
            with frames_ahead as decoded:  # closed (its thread stopped) before the reader is
                for frame in decoded:
                    batch.append(frame.image)
                    if len(batch) == batch_size:
                        flush(batch)
                        batch = []
            if batch:
                flush(batch)
            frames = writer.frames
    return VideoReport(
        src, dst, frames, info.fps, info.width, info.height, time.perf_counter() - start,
        meter.values["input"], meter.values["raw"], meter.values["smoothed"] if smoothing else None,
        _notes(src, dst, info, writer),
    )  # fmt: skip


def _notes(src: Path, dst: Path, info: VideoInfo, writer: VideoWriter) -> tuple[str, ...]:
    """What the output does not keep of the input, or keeps in an unusual way, one line each."""
    notes = [
        f"{src.name}: {reason}; not copied to {dst.name}"
        for reason in (writer.audio.skipped if writer.audio else ())
    ]
    size = f"{writer.width}x{writer.height}"
    if writer.padded:
        notes.append(
            f"{dst.name}: {size} padded to even sides by one replicated row/column ({writer.codec} needs them)"
        )
    elif writer.pixel_format == "yuv444p":
        notes.append(
            f"{dst.name}: the odd size {size} is kept in H.264 4:4:4, which some players (browsers) do not play"
        )
    return tuple(notes)
