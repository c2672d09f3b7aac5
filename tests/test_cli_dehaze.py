"""``eid dehaze`` end to end through the typer app (DCP needs no trained run)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from eid.cli import app
from eid.data.io import read_image


@pytest.fixture
def hazy_dir(tmp_path):
    gen = np.random.default_rng(0)
    src = tmp_path / "hazy"
    src.mkdir()
    Image.fromarray(gen.integers(100, 256, (37, 50, 3), dtype=np.uint8)).save(src / "rgb.png")
    tifffile.imwrite(src / "grey16.tif", gen.integers(20000, 65536, (37, 50), dtype=np.uint16))
    return src


def invoke(*args: str):
    return CliRunner().invoke(app, ["dehaze", *args])


def test_dcp_end_to_end_keeps_size_and_format(hazy_dir, tmp_path):
    out = tmp_path / "out"
    result = invoke("--method", "dcp", str(hazy_dir), "--out", str(out), "--device", "cpu")
    assert result.exit_code == 0, result.output
    grey, meta = read_image(out / "grey16.tif")
    assert tuple(grey.shape) == (1, 37, 50) and meta.dtype == "uint16"
    rgb, meta = read_image(out / "rgb.png")
    assert tuple(rgb.shape) == (3, 37, 50) and meta.dtype == "uint8"
    original, _ = read_image(hazy_dir / "rgb.png")
    assert float((rgb - original).abs().mean()) > 1e-3  # DCP changed something


def test_corrupt_file_is_skipped_with_nonzero_exit(hazy_dir, tmp_path):
    (hazy_dir / "zero.png").write_bytes(b"")
    out = tmp_path / "out"
    result = invoke("--method", "dcp", str(hazy_dir), "--out", str(out), "--device", "cpu")
    assert result.exit_code == 1
    assert "1 skipped" in result.output and "zero.png" in result.output
    assert (out / "rgb.png").is_file() and (out / "grey16.tif").is_file()


def test_dim_16_bit_images_get_a_hint_that_white_removes(tmp_path):
    (tmp_path / "in").mkdir()
    tifffile.imwrite(
        tmp_path / "in" / "n.tif",
        np.random.default_rng(0).integers(0, 236, (32, 32), dtype=np.uint16),
    )
    result = invoke("--method", "dcp", str(tmp_path / "in"), "--out", str(tmp_path / "a"))
    assert (
        result.exit_code == 0
        and "reach only 235 of 65535; pass --white 255 (or max)" in result.output
    )
    result = invoke(
        "--method", "dcp", str(tmp_path / "in"), "--out", str(tmp_path / "b"), "--white", "255"
    )
    assert result.exit_code == 0 and "warning" not in result.output
    assert (
        tifffile.imread(tmp_path / "b" / "n.tif").max() <= 255
    )  # written back on the scale it was read


def test_glob_input(hazy_dir, tmp_path):
    out = tmp_path / "out"
    result = invoke(
        "--method", "dcp", str(hazy_dir / "*.png"), "--out", str(out), "--device", "cpu"
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.iterdir()] == ["rgb.png"]


def test_output_equal_to_input_is_refused(hazy_dir):
    result = invoke("--method", "dcp", str(hazy_dir), "--out", str(hazy_dir), "--device", "cpu")
    assert result.exit_code != 0
    assert "input folder" in str(result.exception)


def test_eid_without_model_is_a_clear_error(hazy_dir, tmp_path):
    result = invoke(str(hazy_dir), "--out", str(tmp_path / "out"), "--device", "cpu")
    assert result.exit_code != 0 and "--model" in str(result.exception)


def test_help_documents_every_option():
    result = CliRunner().invoke(app, ["dehaze", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for option in (
        "--method",
        "--model",
        "--operator",
        "--tile",
        "--overlap",
        "--batch-size",
        "--device",
        "--precision",
        "--tta",
        "--max-pixels",
        "--skip-existing",
        "--side-by-side",
        "--temporal-smoothing",
        "--white",
        "--threads",
    ):
        assert option in result.output


def test_threads_option_sets_torchs_thread_count(hazy_dir, tmp_path):
    import torch

    result = invoke(
        "--method", "dcp", str(hazy_dir), "--out", str(tmp_path / "out"), "--threads", "2"
    )
    assert result.exit_code == 0 and torch.get_num_threads() == 2


def test_video_through_the_cli_keeps_fps_size_and_frames(tmp_path):
    import torch

    from eid.data.video import VideoReader, VideoWriter

    clip = torch.linspace(0.3, 0.8, 6).view(6, 1, 1, 1).expand(6, 3, 24, 40).contiguous()
    src = tmp_path / "clip.mp4"
    with VideoWriter(src, fps=12, width=40, height=24) as writer:
        writer.write(clip)
    out = tmp_path / "out" / "clip.mp4"
    result = invoke("--method", "dcp", str(src), "--out", str(out), "--side-by-side")
    assert result.exit_code == 0, result.output
    assert (
        "flicker n/a (no static region in the input)" in result.output
    )  # every pixel changes by 0.1 per frame
    with VideoReader(out) as reader:
        frames = [f.image for f in reader]
        assert (reader.info.width, reader.info.height, float(reader.info.fps)) == (80, 24, 12.0)
    assert len(frames) == 6
    assert torch.allclose(frames[0][:, :, :40], clip[0], atol=0.05)  # left half: the input
