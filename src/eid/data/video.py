"""Video files <-> frame tensors (PyAV), and video dehazing with optional temporal smoothing.

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
* :func:`dehaze_video` runs an image function on batches of frames, optionally smooths the output
  in time (:class:`TemporalSmoother`) and measures flicker (:class:`FlickerMeter`, :func:`flicker`).
  Audio is not copied; the report's notes say so, and say how an odd size was kept.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
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
from eid.progress import progress_bar
from eid.utils import atomic_write

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".webm", ".ogv", ".wmv")
ImageFn = Callable[[Tensor], Tensor]
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


def _grey(x: Tensor) -> Tensor:
    """Channel mean, keeping a channel axis: ``(..., C, H, W) -> (..., 1, H, W)``."""
    return x.mean(dim=-3, keepdim=True)


class FlickerMeter:
    r"""Streaming flicker of an output video in the static regions of its input video.

    .. math::
        \mathrm{flicker} = \frac{\sum_t \sum_p M_t(p)\, \overline{|y_t(p) - y_{t-1}(p)|}}{\sum_t \sum_p M_t(p)},
        \qquad M_t = \big[\mathrm{maxpool}_{3\times 3}\,\overline{|x_t - x_{t-1}|} < \delta\big]

    where :math:`x` are input frames, :math:`y` output frames, the bar is the mean over colour
    channels and the 3x3 max-pool grows moving areas by a pixel so that their edges do not count as
    static. The static mask comes from the input, so a method's own flicker cannot hide itself. In
    ``[0, 1]`` units (multiply by 255 for 8-bit levels); ``nan`` when no pixel was static.

    :param delta: largest input change (in ``[0,1]``) that still counts as static; 0.02 ~ 5 levels,
        above H.264 noise at crf 18.
    """

    def __init__(self, delta: float = 0.02) -> None:
        self.delta = delta
        self.total, self.count = 0.0, 0
        self._prev: tuple[Tensor, Tensor] | None = None

    def update(self, x: Tensor, y: Tensor) -> None:
        """Add the pair (input ``x``, output ``y``), each ``(C,H,W)`` or ``(T,C,H,W)`` in time order."""
        xs, ys = (x.unsqueeze(0), y.unsqueeze(0)) if x.dim() == 3 else (x, y)
        for xt, yt in zip(xs, ys, strict=True):
            if self._prev is not None:
                px, py = self._prev
                motion = F.max_pool2d(_grey((xt - px).abs()).unsqueeze(0), 3, stride=1, padding=1)[0]
                static = motion < self.delta
                self.total += float((_grey((yt - py).abs()) * static).sum())
                self.count += int(static.sum())
            self._prev = (xt, yt)

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else float("nan")


def flicker(frames_in: Iterable[Tensor] | Tensor, frames_out: Iterable[Tensor] | Tensor, delta: float = 0.02) -> float:
    """Mean absolute frame-to-frame change of ``frames_out`` where ``frames_in`` is static (:class:`FlickerMeter`).

    >>> x = torch.zeros(4, 3, 8, 8)                      # a static input scene
    >>> y = torch.tensor([0.0, 0.1, 0.0, 0.1]).view(4, 1, 1, 1).expand(4, 3, 8, 8)
    >>> round(flicker(x, y), 6)                          # output flickers by 0.1 every frame
    0.1
    """
    meter = FlickerMeter(delta)
    for x, y in zip(frames_in, frames_out, strict=True):
        meter.update(x, y)
    return meter.value


class TemporalSmoother:
    r"""Motion-aware exponential moving average of output frames.

    .. math::
        w_t = s \cdot \exp\!\big(-\overline{|x_t - \bar x_{t-1}|} / \tau\big), \quad
        \bar y_t = w_t \odot \bar y_{t-1} + (1 - w_t) \odot y_t, \quad
        \bar x_t = w_t \odot \bar x_{t-1} + (1 - w_t) \odot x_t

    per pixel, with :math:`x` the input frames, :math:`y` the dehazed frames and :math:`\bar y` the
    smoothed output (:math:`\bar y_0 = y_0`). Where the scene is still, :math:`w_t \approx s` and
    the output is averaged over about :math:`(1+s)/(1-s)` frames, which removes frame-to-frame
    flicker of the dehazer; where the scene moves, :math:`w_t \to 0` and the output follows the
    current frame, so motion is not smeared. The weight is driven by the *input* (compared with its
    own running average :math:`\bar x`, so slow drifts are caught too), not by the output: an output
    difference cannot tell the dehazer's flicker (to be removed) from motion (to be kept).

    :param strength: :math:`s \in [0, 1)`; 0 disables smoothing.
    :param tau: motion scale in ``[0,1]`` units; 0.02 ~ 5 grey levels.
    """

    def __init__(self, strength: float, tau: float = 0.02) -> None:
        if not 0.0 <= strength < 1.0:
            raise EIDError(f"temporal smoothing must be in [0, 1), got {strength}; try 0.5-0.8")
        if tau <= 0:
            raise EIDError(f"smoothing tau must be positive, got {tau}; try 0.02")
        self.strength, self.tau = strength, tau
        self._state: tuple[Tensor, Tensor] | None = None

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """Smooth output ``y`` ``(C,H,W)`` of input frame ``x`` ``(C',H,W)``; call in time order."""
        if self._state is None or self.strength == 0:
            self._state = (x, y)
            return y
        xs, ys = self._state
        w = self.strength * torch.exp(-_grey((x - xs).abs()) / self.tau)
        self._state = (torch.lerp(x, xs, w), torch.lerp(y, ys, w))
        return self._state[1]


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
    meters = {"input": FlickerMeter(), "raw": FlickerMeter(), "smoothed": FlickerMeter()}
    start = time.perf_counter()
    with VideoReader(src) as reader, progress_bar("frames", progress) as bar:
        info = reader.info
        width = info.width * (2 if side_by_side else 1)
        task = bar.add_task(f"dehazing {src.name}", total=info.frames or None)
        with VideoWriter(dst, info.fps, width, info.height, codec=codec, crf=crf) as writer:

            def flush(batch: list[Tensor]) -> None:
                x = torch.stack(batch)
                with torch.no_grad():
                    y = image_fn(x)
                if not isinstance(y, Tensor) or y.shape != x.shape:
                    got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
                    raise EIDError(f"the dehazer returned {got} for frames of shape {tuple(x.shape)}; it must keep the shape")
                y = y.detach().float().cpu().clamp(0, 1)
                for xt, yt in zip(x, y, strict=True):
                    meters["input"].update(xt, xt)
                    meters["raw"].update(xt, yt)
                    out = smoother(xt, yt)
                    meters["smoothed"].update(xt, out)
                    writer.write(torch.cat([xt, out], dim=-1) if side_by_side else out)
                bar.advance(task, len(batch))

            batch: list[Tensor] = []
            for frame in reader:
                batch.append(frame.image)
                if len(batch) == batch_size:
                    flush(batch)
                    batch = []
            if batch:
                flush(batch)
            frames = writer.frames
    return VideoReport(
        src, dst, frames, info.fps, info.width, info.height, time.perf_counter() - start,
        meters["input"].value, meters["raw"].value,
        meters["smoothed"].value if temporal_smoothing > 0 else None, _notes(src, dst, info, writer),
    )  # fmt: skip


def _notes(src: Path, dst: Path, info: VideoInfo, writer: VideoWriter) -> tuple[str, ...]:
    """What the output does not keep of the input, or keeps in an unusual way, one line each."""
    notes = []
    if info.audio_streams:
        notes.append(f"{src.name}: its audio is not copied; {dst.name} has the video only")
    size = f"{writer.width}x{writer.height}"
    if writer.padded:
        notes.append(f"{dst.name}: {size} padded to even sides by one replicated row/column ({writer.codec} needs them)")
    elif writer.pixel_format == "yuv444p":
        notes.append(f"{dst.name}: the odd size {size} is kept in H.264 4:4:4, which some players (browsers) do not play")
    return tuple(notes)
