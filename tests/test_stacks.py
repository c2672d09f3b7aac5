"""TIFF stacks: layout detection, plane access on one scale, faithful write-back, and `eid dehaze` plane by plane."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from typer.testing import CliRunner

from eid.cli import app
from eid.data.codecs import tiff_stack_layout
from eid.data.io import read_image
from eid.data.stacks import Stack
from eid.errors import TiffStackError
from eid.inference import Dehazer, Method, dehaze_paths


@pytest.fixture
def hyperstack(tmp_path):
    """An ImageJ TZCYX uint16 hyperstack (12 planes of 16x20) with a pixel size and z spacing."""
    samples = np.random.default_rng(0).integers(100, 3000, (2, 3, 2, 16, 20), dtype=np.uint16)
    path = tmp_path / "in" / "cells.tif"
    path.parent.mkdir()
    tifffile.imwrite(
        path,
        samples,
        imagej=True,
        metadata={"axes": "TZCYX", "spacing": 0.5, "unit": "um"},
        resolution=(4.0, 4.0),
    )
    return path, samples


def test_layouts():
    assert tiff_stack_layout((5, 32, 32), "ZYX") == (5, False)
    assert tiff_stack_layout((4, 32, 32, 3), "QYXS") == (4, True)
    assert tiff_stack_layout((1, 1, 32, 32), "TZYX") is None  # one plane: an image
    assert tiff_stack_layout((3, 32, 32), "SYX") is None  # planar RGB
    assert tiff_stack_layout((32, 32, 4), "YXS") is None  # RGBA image


def test_an_image_reader_points_stacks_to_dehaze(hyperstack):
    with pytest.raises(
        TiffStackError,
        match="a stack of 12 planes .*eid dehaze, evaluate, synth and the training commands take stacks plane by plane",
    ):
        read_image(hyperstack[0])


def test_planes_share_one_scale_and_write_back_faithfully(hyperstack, tmp_path):
    path, samples = hyperstack
    stack = Stack.read(path, white="max")
    assert len(stack) == 12 and stack.meta.white == samples.max()
    assert float(stack.plane(5)[0, 3, 4]) == pytest.approx(
        samples[0, 2, 1, 3, 4] / samples.max()
    )  # plane 5 = t0 z2 c1
    for index in range(len(stack)):
        stack.set_plane(index, 1 - stack.plane(index))
    stack.write(tmp_path / "out.tif")
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        out = tif.asarray()
        assert tif.is_imagej and tif.series[0].axes == "TZCYX"
        assert tif.imagej_metadata["spacing"] == 0.5 and tif.imagej_metadata["unit"] == "um"
        assert tif.pages[0].get_resolution() == (4.0, 4.0)
    np.testing.assert_array_equal(out, samples.max() - samples)


def test_rgb_stack_round_trip(tmp_path):
    samples = np.random.default_rng(1).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", samples, photometric="rgb")
    stack = Stack.read(tmp_path / "rgb.tif")
    assert tuple(stack.plane(3).shape) == (3, 8, 8)
    stack.write(tmp_path / "copy.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "copy.tif"), samples)


def test_dehaze_paths_processes_a_stack_plane_by_plane_in_batches(hyperstack, tmp_path):
    path, samples = hyperstack
    invert = Dehazer(
        Method(lambda y: 1 - y, white=4095.0), device="cpu", batch_size=5
    )  # 12 planes: 5 + 5 + 2
    assert dehaze_paths([path.parent], tmp_path / "out", invert) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "cells.tif"), 4095 - samples)


def test_cli_dehazes_each_plane_as_it_would_the_plane_alone(tmp_path):
    planes = np.random.default_rng(2).integers(0, 65536, (3, 24, 24), dtype=np.uint16)
    (tmp_path / "stack").mkdir()
    tifffile.imwrite(
        tmp_path / "stack" / "z.tif", planes, photometric="minisblack", metadata={"axes": "ZYX"}
    )
    (tmp_path / "alone").mkdir()
    tifffile.imwrite(tmp_path / "alone" / "z1.tif", planes[1])
    for folder in ("stack", "alone"):
        result = CliRunner().invoke(
            app,
            [
                "dehaze",
                "--method",
                "dcp",
                str(tmp_path / folder),
                "--out",
                str(tmp_path / f"{folder}-out"),
            ],
        )
        assert result.exit_code == 0, result.output
    stacked = tifffile.imread(tmp_path / "stack-out" / "z.tif")
    assert stacked.shape == planes.shape and stacked.dtype == np.uint16
    np.testing.assert_array_equal(stacked[1], tifffile.imread(tmp_path / "alone-out" / "z1.tif"))
    assert not torch.equal(
        torch.from_numpy(stacked.astype(np.int32)), torch.from_numpy(planes.astype(np.int32))
    )


def test_a_dim_stack_gets_the_scale_hint(hyperstack, tmp_path):
    path, _ = hyperstack
    result = CliRunner().invoke(
        app, ["dehaze", "--method", "dcp", str(path), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0 and "pass --white 4095 (or max)" in result.output


def test_training_sets_take_every_plane_of_a_stack_as_one_image(tmp_path):
    from eid.data.datasets import HazyFolder, PairedFolder, UnpairedFolders, data_channels
    from eid.data.io import write_image
    from eid.errors import EIDError

    planes = np.random.default_rng(3).integers(0, 4096, (3, 24, 24), dtype=np.uint16)
    (tmp_path / "hazy").mkdir()
    tifffile.imwrite(
        tmp_path / "hazy" / "a.tif", planes, photometric="minisblack", metadata={"axes": "ZYX"}
    )
    write_image(tmp_path / "hazy" / "b.png", torch.rand(1, 24, 24))
    data = HazyFolder(str(tmp_path / "hazy"), crop=None, channels=1, flip=False, white=4095)
    assert len(data) == 4 and [data[i]["name"] for i in range(4)] == [
        "a_0000",
        "a_0001",
        "a_0002",
        "b",
    ]
    np.testing.assert_allclose(data[2]["hazy"][0].numpy(), planes[2] / 4095, atol=1e-6)
    assert data_channels({"--hazy": [tmp_path / "hazy"]}) == 1
    assert (
        len(UnpairedFolders(str(tmp_path / "hazy"), str(tmp_path / "hazy" / "b.png"), crop=16)) == 4
    )
    with pytest.raises(EIDError, match="a.tif: a TIFF stack; paired sets are matched by file name"):
        PairedFolder(str(tmp_path / "hazy"), str(tmp_path / "hazy"))


def test_stage_1_trains_on_stacks(tmp_path):
    rng = np.random.default_rng(4)
    for folder in ("clear", "hazy"):
        (tmp_path / folder).mkdir()
        tifffile.imwrite(tmp_path / folder / "s.tif", rng.integers(0, 256, (4, 40, 40), dtype=np.uint8),
                         photometric="minisblack", metadata={"axes": "ZYX"})  # fmt: skip
    args = [
        "train-operator",
        "--clear",
        str(tmp_path / "clear"),
        "--hazy",
        str(tmp_path / "hazy"),
        "--out",
        str(tmp_path / "op"),
        "--preset",
        "fast",
        "--crop",
        "32",
        "--max-steps",
        "1",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "op" / "operator.safetensors").is_file()


def test_evaluate_scores_a_stack_plane_by_plane(tmp_path):
    import json

    rng = np.random.default_rng(5)
    ref = rng.integers(500, 3500, (3, 24, 24), dtype=np.uint16)
    pred = (
        ref + np.array([0, 50, 100], dtype=np.uint16)[:, None, None]
    )  # plane k is off by 50 k of 4095
    for side, samples in (("pred", pred), ("ref", ref)):
        (tmp_path / side).mkdir()
        tifffile.imwrite(
            tmp_path / side / "z.tif", samples, photometric="minisblack", metadata={"axes": "ZYX"}
        )
    args = [
        "evaluate",
        "--pred",
        str(tmp_path / "pred"),
        "--ref",
        str(tmp_path / "ref"),
        "--metrics",
        "psnr",
        "--white",
        "4095",
        "--json",
        str(tmp_path / "m.json"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "m.json").read_text())["images"]
    assert [r["name"] for r in rows] == ["z.tif[0]", "z.tif[1]", "z.tif[2]"]
    assert rows[1]["psnr"] == pytest.approx(20 * np.log10(4095 / 50), abs=0.01)
    assert rows[2]["psnr"] == pytest.approx(20 * np.log10(4095 / 100), abs=0.01)
    tifffile.imwrite(
        tmp_path / "ref" / "z.tif", ref[:2], photometric="minisblack", metadata={"axes": "ZYX"}
    )
    result = CliRunner().invoke(app, args)
    assert "has 3 planes but its reference" in str(result.exception)


def test_synth_hazes_every_plane_of_a_stack_with_its_own_parameters(tmp_path):
    import json

    from eid.synth import synthesize_folder

    planes = np.random.default_rng(6).integers(0, 4096, (3, 48, 48), dtype=np.uint16)
    (tmp_path / "in").mkdir()
    tifffile.imwrite(
        tmp_path / "in" / "z.tif", planes, photometric="minisblack", metadata={"axes": "ZYX"}
    )
    report = synthesize_folder([tmp_path / "in"], tmp_path / "out", model="veil", seed=0)
    assert [r["name"] for r in report.images] == ["z.tif[0]", "z.tif[1]", "z.tif[2]"]
    assert len({r["veil"] for r in report.images}) == 3  # each plane draws its own haze
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "clear" / "z.tif"), planes)
    hazy = tifffile.imread(tmp_path / "out" / "hazy" / "z.tif")
    assert hazy.shape == planes.shape and hazy.dtype == np.uint16 and hazy.max() <= planes.max()
    assert (
        json.loads((tmp_path / "out" / "params.json").read_text())["images"][2]["name"]
        == "z.tif[2]"
    )
    skipped = synthesize_folder([tmp_path / "in"], tmp_path / "asm", model="asm", depth="random", save_depth=True,
                                on_skip=lambda path, message: None)  # fmt: skip
    assert "without --save-depth" in skipped.skipped[0][1]
