"""Video dehazing with optional temporal smoothing, and the flicker measure.

* :func:`dehaze_video` streams a video: frames are decoded in a background thread, dehazed in batches
  and encoded as they come, with the audio copied unchanged, so memory does not grow with the video's
  length. It optionally smooths the output in time (:class:`TemporalSmoother`) and measures flicker
  (:class:`FlickerMeter`, :func:`flicker`); the report's notes say what audio could not be copied and
  how an odd size was kept.

Frames are read and written by :mod:`eid.data.video`; this module only processes them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from eid.data.video import VideoInfo, VideoReader, VideoWriter
from eid.errors import EIDError
from eid.progress import progress_bar
from eid.utils import prefetched

ImageFn = Callable[[Tensor], Tensor]


def _grey(x: Tensor) -> Tensor:
    """Channel mean, keeping a channel axis: ``(..., C, H, W) -> (..., 1, H, W)``."""
    return x.mean(dim=-3, keepdim=True)


class FlickerMeter:
    r"""Streaming flicker of output videos in the static regions of their input video.

    .. math::
        \mathrm{flicker} = \frac{\sum_t \sum_p M_t(p)\, \overline{|y_t(p) - y_{t-1}(p)|}}{\sum_t \sum_p M_t(p)},
        \qquad M_t = \big[\mathrm{maxpool}_{3\times 3}\,\overline{|x_t - x_{t-1}|} < \delta\big]

    where :math:`x` are input frames, :math:`y` output frames, the bar is the mean over colour
    channels and the 3x3 max-pool grows moving areas by a pixel so that their edges do not count as
    static. The static mask comes from the input, so a method's own flicker cannot hide itself. In
    ``[0, 1]`` units (multiply by 255 for 8-bit levels); ``nan`` when no pixel was static. Several
    outputs of the same input (``streams``: e.g. the input itself, the raw and the smoothed output)
    share one mask per frame, computed once.

    :param delta: largest input change (in ``[0,1]``) that still counts as static; 0.02 ~ 5 levels,
        above H.264 noise at crf 18.
    :param streams: names of the output streams, in the order :meth:`update` receives them.
    """

    def __init__(self, delta: float = 0.02, streams: tuple[str, ...] = ("output",)) -> None:
        self.delta, self.streams = delta, streams
        self.totals = dict.fromkeys(streams, 0.0)
        self.count = 0
        self._prev: tuple[Tensor, ...] | None = None

    def update(self, x: Tensor, *ys: Tensor) -> None:
        """Add input ``x`` and one output per stream, each ``(C,H,W)`` or ``(T,C,H,W)`` in time order."""
        if len(ys) != len(self.streams):
            raise ValueError(
                f"FlickerMeter expects {len(self.streams)} output(s) {self.streams}, got {len(ys)}"
            )
        frames = (x, *ys) if x.dim() == 4 else (x.unsqueeze(0), *(y.unsqueeze(0) for y in ys))
        is_input = [y is x for y in ys]  # the input's own flicker reuses its change map
        for now in zip(*frames, strict=True):
            if self._prev is not None:
                change = _grey((now[0] - self._prev[0]).abs())
                static = F.max_pool2d(change.unsqueeze(0), 3, stride=1, padding=1)[0] < self.delta
                self.count += int(static.sum())
                for name, same, y, py in zip(
                    self.streams, is_input, now[1:], self._prev[1:], strict=True
                ):
                    diff = change if same else _grey((y - py).abs())
                    self.totals[name] += float((diff * static).sum())
            self._prev = now

    @property
    def values(self) -> dict[str, float]:
        """Flicker of each stream (``nan`` when no pixel was static)."""
        return {
            name: total / self.count if self.count else float("nan")
            for name, total in self.totals.items()
        }

    @property
    def value(self) -> float:
        """Flicker of the first stream."""
        return self.values[self.streams[0]]


def flicker(
    frames_in: Iterable[Tensor] | Tensor, frames_out: Iterable[Tensor] | Tensor, delta: float = 0.02
) -> float:
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
