"""Audio pass-through: :class:`AudioCopy` copies a video's audio streams, packet for packet, into another file.

The audio is not decoded or re-encoded, so it is bit-identical. Packets are muxed as the video is written,
each once the video has reached its time, so the output is interleaved and no more than a few packets are
held in memory, whatever the video's length. Time zero is the first video frame of the source, as in the
dehazed video. A stream whose codec the output container cannot hold (Vorbis into ``.mp4``, say) is left
out, and :attr:`AudioCopy.skipped` says why.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

from eid.data.video.reader import _av, _unreadable

__all__ = ["AudioCopy"]


def _fits(template: object, format_name: str) -> str | None:
    """``None`` if a stream like ``template`` can be written in ``format_name``; else the reason."""
    av = _av()
    probe = av.open(io.BytesIO(), mode="w", format=format_name)
    try:
        probe.add_stream_from_template(template)
        probe.start_encoding()
    except (av.FFmpegError, ValueError) as exc:
        return str(exc)
    finally:
        probe.close()
    return None


class AudioCopy:
    """Copy the audio streams of ``src`` into ``output`` (an open PyAV output container), in step with the video.

    :param src: the source video file.
    :param output: the output container, before its first packet is muxed.
    :param video_start: time in seconds of the source's first video frame (the output's time zero).
    """

    def __init__(self, src: Path, output: object, video_start: float = 0.0) -> None:
        av = _av()
        self.src, self.video_start, self.skipped = Path(src), video_start, []
        try:
            self._input = av.open(str(self.src), mode="r")
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise _unreadable(self.src, exc) from None
        self._streams = {}
        for stream in self._input.streams.audio:
            reason = _fits(stream, output.format.name.split(",")[0])
            if reason is None:
                self._streams[stream.index] = output.add_stream_from_template(stream)
            else:
                self.skipped.append(
                    f"audio stream {stream.index} ({stream.codec_context.name}): {reason}"
                )
        self._packets: Iterator | None = None
        self._next = None
        if self._streams:
            inputs = [s for s in self._input.streams.audio if s.index in self._streams]
            self._packets = (p for p in self._input.demux(*inputs) if p.dts is not None)
        self.copied = len(self._streams)

    def _time(self, packet: object) -> float:
        return float(packet.dts * packet.time_base) - self.video_start

    def mux_until(self, output: object, seconds: float | None) -> None:
        """Mux the source's audio packets up to ``seconds`` of output time (all of them when ``None``)."""
        while self._packets is not None:
            if self._next is None:
                self._next = next(self._packets, None)
                if self._next is None:
                    self._packets = None
                    return
            packet = self._next
            if seconds is not None and self._time(packet) > seconds:
                return
            shift = round(self.video_start / packet.time_base)
            if shift:
                packet.dts -= shift
                if packet.pts is not None:
                    packet.pts -= shift
            packet.stream = self._streams[packet.stream.index]
            output.mux(packet)
            self._next = None

    def close(self) -> None:
        self._input.close()
