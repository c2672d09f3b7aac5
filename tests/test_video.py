"""Video reading/writing, video dehazing, temporal smoothing and the flicker measure."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import torch

from eid.data.video import VideoReader, VideoWriter
from eid.errors import EIDError
from eid.inference.temporal import FlickerMeter, TemporalSmoother, flicker
from eid.inference.video import dehaze_video


def moving_clip(frames: int = 12, height: int = 32, width: int = 48, seed: int = 0) -> torch.Tensor:
    """A smooth static background with a bright square sliding to the right: ``(T,3,H,W)``."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(
        torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij"
    )
    base = torch.stack([0.3 + 0.4 * xx, 0.2 + 0.5 * yy, 0.5 + 0.2 * xx * yy]) + 0.02 * torch.rand(
        3, 1, 1, generator=g
    )
    clip = base.expand(frames, 3, height, width).clone()
    for t in range(frames):
        clip[t, :, 8:16, 2 + 2 * t : 10 + 2 * t] = torch.tensor([0.9, 0.9, 0.2]).view(3, 1, 1)
    return clip


def write_clip(
    path: Path, clip: torch.Tensor, fps: float | Fraction = 25, codec: str = "auto"
) -> Path:
    with VideoWriter(
        path, fps=fps, width=clip.shape[-1], height=clip.shape[-2], codec=codec
    ) as writer:
        writer.write(clip)
    return path


def read_clip(path: Path) -> torch.Tensor:
    with VideoReader(path) as reader:
        return torch.stack([f.image for f in reader])


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_round_trip_keeps_fps_size_and_frame_count(tmp_path: Path, codec: str) -> None:
    clip = moving_clip()
    path = write_clip(tmp_path / f"clip_{codec}.mp4", clip, fps=Fraction(30000, 1001), codec=codec)
    with VideoReader(path) as reader:
        info = reader.info
        frames = list(reader)
    assert (info.width, info.height, info.fps, info.frames) == (48, 32, Fraction(30000, 1001), 12)
    assert [f.index for f in frames] == list(range(12))
    assert frames[3].time == pytest.approx(3 * 1001 / 30000, abs=1e-3)
    decoded = torch.stack([f.image for f in frames])
    assert (decoded - clip).abs().mean() < 0.02


def test_sampling_rate_and_start(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "clip.mp4", moving_clip(frames=20), fps=10)
    with VideoReader(path) as reader:
        assert [f.index for f in reader.frames(rate=2)] == [0, 5, 10, 15]
        assert [f.index for f in reader.frames(rate=100)] == list(range(20))
        assert [f.index for f in reader.frames(start=1.2)] == list(range(12, 20))
        assert [f.index for f in reader.frames(rate=5, start=0.5)] == [5, 7, 9, 11, 13, 15, 17, 19]
        assert len(list(reader)) == 20  # iterating again restarts from the beginning


@pytest.mark.parametrize(
    ("codec", "size", "pixel_format"),
    [("libx264", (47, 31), "yuv444p"), ("mpeg4", (48, 32), "yuv420p")],
)
def test_odd_size_is_kept_in_4_4_4_and_padded_only_without_it(
    tmp_path: Path, codec: str, size: tuple, pixel_format: str
) -> None:
    clip = moving_clip(frames=3, height=31, width=47)
    path = write_clip(tmp_path / "odd.mp4", clip, codec=codec)
    with VideoReader(path) as reader:
        assert (reader.info.width, reader.info.height) == size
        assert reader._stream.codec_context.pix_fmt == pixel_format
    assert (read_clip(path)[..., :31, :47] - clip).abs().mean() < 0.03


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "not found"),
        (b"", "cannot read video"),
        (b"not a video at all" * 100, "cannot read video"),
    ],
)
def test_unreadable_video_gives_clear_error(
    tmp_path: Path, content: bytes | None, match: str
) -> None:
    path = tmp_path / "broken.mp4"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(EIDError, match=match):
        VideoReader(path)


def test_writer_rejects_wrong_frames_and_leaves_no_file_on_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.mp4"
    with (
        pytest.raises(EIDError, match="does not fit"),
        VideoWriter(path, fps=10, width=16, height=16) as writer,
    ):
        writer.write(torch.rand(3, 8, 8))
    assert not path.exists() and not list(tmp_path.iterdir())
    with pytest.raises(EIDError, match="suffix"):
        VideoWriter(tmp_path / "x.txt", fps=10, width=16, height=16)


def test_dehaze_video_identity_reproduces_input(tmp_path: Path) -> None:
    clip = moving_clip()
    src = write_clip(tmp_path / "in.mp4", clip, fps=12)
    report = dehaze_video(src, tmp_path / "out.mp4", lambda x: x, batch_size=5, progress=False)
    assert report.frames == 12 and report.fps == 12 and (report.width, report.height) == (48, 32)
    assert (read_clip(tmp_path / "out.mp4") - read_clip(src)).abs().mean() < 0.01
    assert report.flicker_smoothed is None


def test_dehaze_video_side_by_side_and_errors(tmp_path: Path) -> None:
    src = write_clip(tmp_path / "in.mp4", moving_clip(frames=4), fps=8)
    dehaze_video(src, tmp_path / "sbs.mp4", lambda x: 1 - x, side_by_side=True, progress=False)
    out = read_clip(tmp_path / "sbs.mp4")
    assert out.shape == (4, 3, 32, 96)
    assert (out[..., 48:] - (1 - out[..., :48])).abs().mean() < 0.02
    with pytest.raises(EIDError, match="keep the shape"):
        dehaze_video(src, tmp_path / "bad.mp4", lambda x: x[..., :8], progress=False)
    with pytest.raises(EIDError, match="overwrite"):
        dehaze_video(src, src, lambda x: x, progress=False)


class Flickering:
    """A stand-in dehazer whose global brightness jumps from frame to frame (deterministic, any batch size)."""

    def __init__(self) -> None:
        self.seen = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        offsets = torch.tensor([0.06, -0.06, 0.03, -0.03])[
            (torch.arange(x.shape[0]) + self.seen) % 4
        ]
        self.seen += x.shape[0]
        return (x + offsets.view(-1, 1, 1, 1)).clamp(0, 1)


def test_flicker_counts_only_static_input_regions() -> None:
    clip = moving_clip()
    assert flicker(clip, clip) == pytest.approx(0.0, abs=1e-7)  # the moving square is excluded
    assert flicker(clip, Flickering()(clip)) > 0.03
    meter = FlickerMeter()
    meter.update(clip, clip)
    assert meter.count < 11 * 32 * 48  # the square's path is not static


def test_flicker_meter_streams_share_the_input_mask() -> None:
    clip = moving_clip()
    noisy = Flickering()(clip)
    meter = FlickerMeter(streams=("same", "noisy"))
    meter.update(clip[:5], clip[:5], noisy[:5])  # in two parts: the state carries over
    meter.update(clip[5:], clip[5:], noisy[5:])
    assert meter.values == pytest.approx(
        {"same": flicker(clip, clip), "noisy": flicker(clip, noisy)}
    )
    with pytest.raises(ValueError, match="expects 2"):
        meter.update(clip, clip)


def test_temporal_smoothing_reduces_flicker_without_smearing_motion(tmp_path: Path) -> None:
    clip = moving_clip(frames=24)
    src = write_clip(tmp_path / "in.mp4", clip, fps=24)
    raw = dehaze_video(src, tmp_path / "raw.mp4", Flickering(), batch_size=3, progress=False)
    smooth = dehaze_video(
        src,
        tmp_path / "smooth.mp4",
        Flickering(),
        batch_size=3,
        temporal_smoothing=0.8,
        progress=False,
    )
    assert smooth.flicker_raw == pytest.approx(raw.flicker_raw)
    assert smooth.flicker_smoothed < 0.4 * smooth.flicker_raw
    # the moving square is not smeared: at its current position the output keeps its colour
    out = read_clip(tmp_path / "smooth.mp4")
    t = 20
    square = out[t, :, 9:15, 3 + 2 * t : 9 + 2 * t]
    assert (square.mean(dim=(1, 2)) - torch.tensor([0.9, 0.9, 0.2])).abs().max() < 0.1


def test_smoother_is_exact_on_a_still_scene_and_checks_its_strength() -> None:
    x = torch.full((3, 4, 4), 0.5)
    smoother = TemporalSmoother(0.5)
    assert torch.equal(smoother(x, torch.zeros(3, 4, 4)), torch.zeros(3, 4, 4))
    assert torch.allclose(smoother(x, torch.ones(3, 4, 4)), torch.full((3, 4, 4), 0.5))
    with pytest.raises(EIDError, match=r"\[0, 1\)"):
        TemporalSmoother(1.0)
