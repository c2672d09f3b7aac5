"""Decoding: :class:`VideoReader` and the frame types and conversions both directions share (see
:mod:`eid.data.video`)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Self

import numpy as np
import torch
from torch import Tensor

from eid.errors import EIDError, VideoReadError

__all__ = [
    "VIDEO_SUFFIXES",
    "Frame",
    "VideoInfo",
    "VideoReader",
    "array_to_tensor",
    "tensor_to_array",
]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".webm", ".ogv", ".wmv")


def _av():
    import av  # lazy: PyAV loads the whole FFmpeg library

    return av


@dataclass(frozen=True)
class VideoInfo:
    """What a video stream holds: ``fps`` is exact (e.g. ``30000/1001``), ``frames`` may be estimated."""

    path: Path
    width: int
    height: int
    fps: Fraction
    frames: int
    duration: float
    codec: str
    audio_streams: int = 0
    start: float = 0.0


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its 0-based ``index`` at the native rate, ``time`` in seconds, ``image`` (3,H,W)."""

    index: int
    time: float
    image: Tensor


def _unreadable(path: Path, problem: object) -> VideoReadError:
    problem = getattr(problem, "strerror", None) or problem
    return VideoReadError(
        f"{path}: cannot read video ({problem}); check that the file is a complete video (mp4, avi, mkv...)"
    )


def array_to_tensor(array: np.ndarray) -> Tensor:
    """``(H, W, 3)`` uint8 -> float32 ``(3, H, W)`` in ``[0, 1]``."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float().div_(255.0)


def tensor_to_array(image: Tensor) -> np.ndarray:
    """Float ``(3, H, W)`` in ``[0, 1]`` -> ``(H, W, 3)`` uint8, rounded."""
    return (
        image.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    )


class VideoReader:
    """Decode a video file frame by frame.

    :param path: video file.
    :param threads: decoder threads (``0`` lets FFmpeg choose).
    :raises VideoReadError: missing file, not a video, no video stream, undecodable data.

    >>> import tempfile, pathlib
    >>> from eid.data.video import VideoWriter
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "clip.mp4"
    >>> with VideoWriter(p, fps=10, width=32, height=16) as w:
    ...     w.write(torch.rand(5, 3, 16, 32))
    >>> with VideoReader(p) as r:
    ...     (r.info.width, r.info.height, r.info.fps, len([f.index for f in r]))
    (32, 16, Fraction(10, 1), 5)
    """

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoReadError(f"{self.path}: video not found; check the path")
        av = _av()
        try:
            self._container = av.open(str(self.path), mode="r")
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise _unreadable(self.path, exc) from None
        if not self._container.streams.video:
            self._container.close()
            raise VideoReadError(f"{self.path}: the file holds no video stream; pass a video file")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._stream.codec_context.thread_count = threads
        self._started = False
        self.info = self._probe()

    def _probe(self) -> VideoInfo:
        s = self._stream
        rate = s.average_rate or s.guessed_rate or s.base_rate
        if not rate or rate <= 0 or not s.width or not s.height:
            self.close()
            raise _unreadable(self.path, "no frame rate or frame size in the stream header")
        fps = Fraction(rate).limit_denominator(1_000_000)
        if s.duration is not None and s.time_base:
            duration = float(s.duration * s.time_base)
        elif self._container.duration:
            duration = self._container.duration / 1_000_000
        else:
            duration = 0.0
        frames = s.frames or round(duration * float(fps))
        audio = len(self._container.streams.audio)
        start = float(s.start_time * s.time_base) if s.start_time and s.time_base else 0.0
        return VideoInfo(
            self.path, s.width, s.height, fps, frames, duration, s.codec_context.name, audio, start
        )

    def __len__(self) -> int:
        return self.info.frames

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def _decoded(self) -> Iterator:
        av = _av()
        try:
            yield from self._container.decode(self._stream)
        except av.FFmpegError as exc:
            raise _unreadable(self.path, exc) from None

    def frames(self, rate: float | None = None, start: float = 0.0) -> Iterator[Frame]:
        """Yield frames from ``start`` seconds on; with ``rate``, about ``rate`` frames per second.

        Sampling keeps the first frame at or after each target time ``start + k / rate`` (within half a
        frame period), so ``rate`` at or above the native frame rate yields every frame. Only kept
        frames are converted to tensors. Frame indices are ``round(time * fps)``, from the stream start.
        """
        if rate is not None and rate <= 0:
            raise EIDError(f"sampling rate must be positive, got {rate}; pass e.g. --fps 1")
        fps = float(self.info.fps)
        s = self._stream
        origin = s.start_time or 0
        if start > 0:
            self._container.seek(int(start / s.time_base) + origin, stream=s, backward=True)
        elif self._started:
            self._container.seek(origin, stream=s, backward=True)
        self._started = True
        target, counter, half = start, 0, 0.5 / fps
        for frame in self._decoded():
            t = (
                float((frame.pts - origin) * s.time_base)
                if frame.pts is not None
                else counter / fps
            )
            counter += 1
            if t + half < target:
                continue
            if rate is not None:
                target = start + (math.floor((t + half - start) * rate) + 1) / rate
            yield Frame(round(t * fps), t, array_to_tensor(frame.to_ndarray(format="rgb24")))

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
