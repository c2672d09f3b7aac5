"""Video files <-> frame tensors (PyAV).

PyAV ships its own FFmpeg, so no system ``ffmpeg`` is needed. Frames are float32 ``(3, H, W)``
tensors in ``[0, 1]`` (RGB; grey videos are decoded as RGB).

* :class:`VideoReader` iterates over frames with their index and time, optionally sampled at a
  chosen rate or from a start time (seek to the preceding key frame, then decode forward).
* :class:`VideoWriter` encodes H.264 (``libx264``) when PyAV's FFmpeg has it, MPEG-4 Part 2
  otherwise, in ``yuv420p`` at the source frame rate. 4:2:0 chroma needs even sides, so a frame
  with an odd width or height is encoded in H.264 4:4:4 (``yuv444p``), which keeps its exact size
  (some players, such as browsers, do not play 4:4:4); only MPEG-4, which has no 4:4:4, pads it by
  one replicated row/column. The file is written to a temporary name and moved into place when the
  writer is closed cleanly.

Video dehazing, temporal smoothing and the flicker measure are in :mod:`eid.video`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from eid.errors import EIDError, VideoReadError
from eid.utils import atomic_write

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".webm", ".ogv", ".wmv")
_FF_QP2LAMBDA = 118  # FFmpeg's quantiser -> lambda scale, as in ``ffmpeg -q:v``


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


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its 0-based ``index`` at the native rate, ``time`` in seconds, ``image`` (3,H,W)."""

    index: int
    time: float
    image: Tensor


def _unreadable(path: Path, problem: object) -> VideoReadError:
    problem = getattr(problem, "strerror", None) or problem
    return VideoReadError(f"{path}: cannot read video ({problem}); check that the file is a complete video (mp4, avi, mkv...)")


def array_to_tensor(array: np.ndarray) -> Tensor:
    """``(H, W, 3)`` uint8 -> float32 ``(3, H, W)`` in ``[0, 1]``."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float().div_(255.0)


def tensor_to_array(image: Tensor) -> np.ndarray:
    """Float ``(3, H, W)`` in ``[0, 1]`` -> ``(H, W, 3)`` uint8, rounded."""
    return image.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


class VideoReader:
    """Decode a video file frame by frame.

    :param path: video file.
    :param threads: decoder threads (``0`` lets FFmpeg choose).
    :raises VideoReadError: missing file, not a video, no video stream, undecodable data.

    >>> import tempfile, pathlib
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
        return VideoInfo(self.path, s.width, s.height, fps, frames, duration, s.codec_context.name, audio)

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
            t = float((frame.pts - origin) * s.time_base) if frame.pts is not None else counter / fps
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


def _pick_codec(codec: str) -> str:
    av = _av()
    if codec != "auto":
        if codec not in av.codecs_available:
            raise EIDError(f"video codec {codec!r} is not in this PyAV build; use auto, libx264 or mpeg4")
        return codec
    for name in ("libx264", "mpeg4"):
        with contextlib.suppress(Exception):
            av.codec.Codec(name, "w")
            return name
    raise EIDError("this PyAV build has neither libx264 nor mpeg4 encoders; reinstall av from PyPI")


class VideoWriter:
    """Encode ``(3, H, W)`` / ``(B, 3, H, W)`` frames in ``[0, 1]`` to a video file, atomically.

    :param path: output file; the container comes from the suffix (``.mp4`` recommended).
    :param fps: frame rate (a :class:`~fractions.Fraction` keeps e.g. 29.97 exact).
    :param width: frame width; :param height: frame height. Odd sides are kept with libx264 (in 4:4:4,
        :attr:`pixel_format`) and padded to even with other codecs (:attr:`padded`).
    :param codec: ``auto`` (libx264, else mpeg4), or an FFmpeg encoder name.
    :param crf: H.264 constant rate factor (lower = better; 18 is visually lossless); mpeg4 uses
        a matching fixed quantiser.
    """

    def __init__(
        self, path: str | Path, fps: float | Fraction, width: int, height: int, codec: str = "auto", crf: int = 18
    ) -> None:
        self.path, self.width, self.height = Path(path), int(width), int(height)
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise EIDError(f"{self.path}: unknown video suffix; use one of {', '.join(VIDEO_SUFFIXES)}")
        av = _av()
        self.codec = _pick_codec(codec)
        self._files = contextlib.ExitStack()
        tmp = self._files.enter_context(atomic_write(self.path))
        rate = Fraction(fps).limit_denominator(1_000_000)
        try:
            self._container = av.open(str(tmp), mode="w")
            self._stream = self._container.add_stream(self.codec, rate=rate)
        except av.FFmpegError as exc:
            self._files.close()
            raise EIDError(f"{self.path}: cannot open for writing ({exc}); check the folder and suffix") from None
        odd = bool(self.width % 2 or self.height % 2)
        self.pixel_format = "yuv444p" if odd and self.codec == "libx264" else "yuv420p"
        self.padded = odd and self.pixel_format == "yuv420p"  # 4:2:0 chroma needs even sides
        pad = int(self.padded)
        self._stream.width, self._stream.height = self.width + pad * (self.width % 2), self.height + pad * (self.height % 2)
        self._stream.pix_fmt = self.pixel_format
        if self.codec == "libx264":
            self._stream.options = {"crf": str(crf), "preset": "medium"}
        else:
            self._stream.codec_context.qscale = True  # fixed quantiser: q = crf / 6 (2-31, lower = better)
            self._stream.codec_context.global_quality = max(2, crf // 6) * _FF_QP2LAMBDA
        self.frames = 0

    def write(self, frames: Tensor) -> None:
        """Append one frame ``(3, H, W)`` or a batch ``(B, 3, H, W)``."""
        av = _av()
        batch = frames.unsqueeze(0) if frames.dim() == 3 else frames
        if batch.dim() != 4 or batch.shape[1] != 3 or tuple(batch.shape[2:]) != (self.height, self.width):
            raise EIDError(
                f"frame of shape {tuple(frames.shape)} does not fit the {self.width}x{self.height} RGB video; "
                "pass (3,H,W) or (B,3,H,W) frames of the video's size"
            )
        if self.padded:
            batch = F.pad(batch, (0, self.width % 2, 0, self.height % 2), mode="replicate")
        for image in batch:
            frame = av.VideoFrame.from_ndarray(tensor_to_array(image), format="rgb24")
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
            self.frames += 1

    def close(self, failed: bool = False) -> None:
        """Flush the encoder and move the file into place (or drop it when ``failed``)."""
        try:
            if not failed:
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
            error = RuntimeError("video writing failed") if failed else None
            self._files.__exit__(type(error) if error else None, error, None)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close(failed=kind is not None)
