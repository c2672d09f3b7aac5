"""Encoding: :class:`VideoWriter` (H.264 or MPEG-4, atomic; see :mod:`eid.data.video`)."""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Self

import torch.nn.functional as F
from torch import Tensor

from eid.data.video.audio import AudioCopy
from eid.data.video.reader import VIDEO_SUFFIXES, _av, tensor_to_array
from eid.errors import EIDError
from eid.utils import atomic_write

__all__ = ["VideoWriter"]

_FF_QP2LAMBDA = 118  # FFmpeg's quantiser -> lambda scale, as in ``ffmpeg -q:v``


def _pick_codec(codec: str) -> str:
    av = _av()
    if codec != "auto":
        if codec not in av.codecs_available:
            raise EIDError(
                f"video codec {codec!r} is not in this PyAV build; use auto, libx264 or mpeg4"
            )
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
    :param audio_from: a video whose audio streams are copied unchanged, in step with the frames written
        (:class:`~eid.data.video.audio.AudioCopy`; :attr:`audio` says what was copied and skipped).
    :param video_start: time in seconds of ``audio_from``'s first video frame, this video's time zero.
    """

    def __init__(
        self, path: str | Path, fps: float | Fraction, width: int, height: int, codec: str = "auto", crf: int = 18,
        audio_from: str | Path | None = None, video_start: float = 0.0,
    ) -> None:  # fmt: skip
        self.path, self.width, self.height = Path(path), int(width), int(height)
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise EIDError(
                f"{self.path}: unknown video suffix; use one of {', '.join(VIDEO_SUFFIXES)}"
            )
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
            raise EIDError(
                f"{self.path}: cannot open for writing ({exc}); check the folder and suffix"
            ) from None
        odd = bool(self.width % 2 or self.height % 2)
        self.pixel_format = "yuv444p" if odd and self.codec == "libx264" else "yuv420p"
        self.padded = odd and self.pixel_format == "yuv420p"  # 4:2:0 chroma needs even sides
        pad = int(self.padded)
        self._stream.width, self._stream.height = (
            self.width + pad * (self.width % 2),
            self.height + pad * (self.height % 2),
        )
        self._stream.pix_fmt = self.pixel_format
        if self.codec == "libx264":
            self._stream.options = {"crf": str(crf), "preset": "medium"}
        else:
            self._stream.codec_context.qscale = (
                True  # fixed quantiser: q = crf / 6 (2-31, lower = better)
            )
            self._stream.codec_context.global_quality = max(2, crf // 6) * _FF_QP2LAMBDA
        self.frames, self._rate = 0, rate
        try:
            self.audio = (
                AudioCopy(Path(audio_from), self._container, video_start) if audio_from else None
            )
        except Exception:
            self._container.close()
            self._files.close()
            raise

    def write(self, frames: Tensor) -> None:
        """Append one frame ``(3, H, W)`` or a batch ``(B, 3, H, W)``."""
        av = _av()
        batch = frames.unsqueeze(0) if frames.dim() == 3 else frames
        if (
            batch.dim() != 4
            or batch.shape[1] != 3
            or tuple(batch.shape[2:]) != (self.height, self.width)
        ):
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
            if self.audio is not None:
                self.audio.mux_until(self._container, self.frames / self._rate)

    def close(self, failed: bool = False) -> None:
        """Flush the encoder and move the file into place (or drop it when ``failed``)."""
        try:
            if not failed:
                for packet in self._stream.encode():
                    self._container.mux(packet)
                if self.audio is not None:
                    self.audio.mux_until(self._container, None)
        finally:
            if self.audio is not None:
                self.audio.close()
            self._container.close()
            error = RuntimeError("video writing failed") if failed else None
            self._files.__exit__(type(error) if error else None, error, None)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(failed=kind is not None)
