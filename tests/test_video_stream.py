"""Video as a stream: background decoding (``eid.utils.prefetched``) and the audio copied unchanged."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from eid.data.video import VideoReader
from eid.inference.video import dehaze_video
from eid.utils import prefetched


def clip_with_audio(
    path: Path, audio_codec: str, frames: int = 20, fps: int = 10, rate: int = 16000
) -> Path:
    """A 2 s clip of moving noise with a 440 Hz tone in ``audio_codec``."""
    g = np.random.default_rng(0)
    with av.open(str(path), mode="w") as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = 32, 16, "yuv420p"
        audio = out.add_stream(audio_codec, rate=rate)
        audio.layout = "mono"
        for i in range(frames):
            image = g.integers(0, 255, (16, 32, 3), dtype=np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(video.encode())
        tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(frames * rate // fps) / rate)[None]
        fmt, data = (
            ("u8", (128 + 127 * tone).astype(np.uint8))
            if audio_codec == "pcm_u8"
            else ("fltp", tone.astype(np.float32))
        )
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        out.mux(audio.encode(frame))
        out.mux(audio.encode())
    return path


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def test_audio_is_copied_unchanged_and_frames_kept(tmp_path: Path) -> None:
    src = clip_with_audio(tmp_path / "in.mp4", "aac")
    report = dehaze_video(src, tmp_path / "out.mp4", lambda x: 1 - x, batch_size=3, progress=False)
    assert report.frames == 20 and report.notes == ()
    with VideoReader(tmp_path / "out.mp4") as reader:
        assert len(list(reader)) == 20 and reader.info.audio_streams == 1
    copied, original = audio_packets(tmp_path / "out.mp4"), audio_packets(src)
    assert len(original) > 10 and copied == original  # bit for bit


def test_audio_the_container_cannot_hold_is_reported(tmp_path: Path) -> None:
    src = clip_with_audio(tmp_path / "in.avi", "pcm_u8")  # 8-bit PCM does not go into .mp4
    report = dehaze_video(src, tmp_path / "out.mp4", lambda x: x, progress=False)
    assert report.frames == 20 and audio_packets(tmp_path / "out.mp4") == []
    assert (
        len(report.notes) == 1 and "pcm_u8" in report.notes[0] and "not copied" in report.notes[0]
    )
    report = dehaze_video(
        src, tmp_path / "out.avi", lambda x: x, progress=False
    )  # but into .avi it does
    assert report.notes == () and audio_packets(tmp_path / "out.avi") == audio_packets(src)


def test_prefetched_keeps_order_and_raises_the_producers_error() -> None:
    assert list(prefetched(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("broken frame")

    with pytest.raises(ValueError, match="broken frame"):
        list(prefetched(failing()))


def test_prefetched_stops_its_thread_when_the_consumer_stops() -> None:
    produced = []

    def endless():
        while True:
            produced.append(1)
            yield torch.zeros(1)

    stream = prefetched(endless(), depth=2)
    next(stream)
    stream.close()
    assert not any(t.name == "eid-prefetch" for t in threading.enumerate())
    assert len(produced) <= 5  # at most the queue's depth ahead
