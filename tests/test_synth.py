"""Haze synthesis: depth sources, samplers, determinism, exact inversion, veil model, folders and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from typer.testing import CliRunner

from eid.cli import app
from eid.data.depth import MOTORCYCLE_CALIBRATION, fill_invalid, motorcycle_depth, read_depth
from eid.data.io import read_image, write_image
from eid.errors import EIDError
from eid.physics import ASMHaze, transmission_from_depth
from eid.physics.generators import (
    HazeParamGenerator,
    VeilParamGenerator,
    image_seed,
    ramp_depth,
    smooth_field,
)
from eid.synth import SynthConfig, synthesize, synthesize_folder


@pytest.fixture
def clear_folder(tmp_path: Path, rng: torch.Generator) -> Path:
    """Three small RGB PNGs of different sizes."""
    folder = tmp_path / "clear_in"
    for name, (h, w) in {"a.png": (24, 32), "b.png": (32, 32), "c.png": (20, 28)}.items():
        write_image(folder / name, torch.rand(3, h, w, generator=rng))
    return folder


# ----------------------------------------------------------------------------------------- depth


def test_motorcycle_depth_range_and_filled() -> None:
    image, depth = motorcycle_depth()
    assert image.shape == (3, 500, 741) and depth.shape == (1, 500, 741)
    assert torch.isfinite(depth).all()
    assert 2.1 <= depth.min() < 2.12 and 5.0 <= depth.max() < 5.03


def test_disparity_conversion_and_inf_filled(tmp_path: Path) -> None:
    disp = np.array([[59.91, np.inf], [7.19, 7.19]], np.float32)
    np.save(tmp_path / "d.npy", disp)
    depth = read_depth(tmp_path / "d.npy", MOTORCYCLE_CALIBRATION)[0]
    z = 193.001 * 994.978 / (np.array([59.91, 7.19]) + 31.086) / 1000
    assert depth[0, 0].item() == pytest.approx(z[0], rel=1e-6) and depth[
        1, 0
    ].item() == pytest.approx(z[1], rel=1e-6)
    assert depth[0, 1].item() == pytest.approx(
        z[0], rel=1e-6
    )  # the inf pixel takes its nearest valid neighbour (0,0)


def test_fill_invalid_nearest_and_all_invalid() -> None:
    depth = np.array([[1.0, np.nan, np.nan, 4.0]])
    assert fill_invalid(depth).tolist() == [[1.0, 1.0, 4.0, 4.0]]
    with pytest.raises(EIDError, match="no valid"):
        fill_invalid(np.full((2, 2), np.inf))


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".tiff", ".png"])
def test_read_depth_formats(tmp_path: Path, suffix: str) -> None:
    mm = np.arange(1, 13, dtype=np.uint16).reshape(3, 4) * 100
    path = tmp_path / f"depth{suffix}"
    if suffix == ".npy":
        np.save(path, mm)
    elif suffix == ".npz":
        np.savez(path, depth=mm)
    elif suffix == ".tiff":
        tifffile.imwrite(path, mm)
    else:
        Image.fromarray(mm).save(path)  # 16-bit grey PNG
    depth = read_depth(path, scale=0.001)
    assert depth.shape == (1, 3, 4) and depth.dtype == torch.float32
    np.testing.assert_allclose(depth[0].numpy(), mm / 1000, rtol=1e-6)


def test_read_depth_rejects_colour_maps(tmp_path: Path) -> None:
    np.save(tmp_path / "d.npy", np.ones((3, 4, 3)))
    with pytest.raises(EIDError, match="2-D"):
        read_depth(tmp_path / "d.npy")


def test_synthetic_depths(rng: torch.Generator) -> None:
    ramp = ramp_depth(10, 6, near=0.5, far=2.0)
    assert ramp[0, 0, 0] == pytest.approx(2.0) and ramp[0, -1, 0] == pytest.approx(0.5)
    assert torch.equal(ramp[0, :, 0], ramp[0, :, -1])
    field = smooth_field(64, 96, rng)
    assert field.shape == (1, 64, 96) and field.min() == 0 and field.max() == 1
    # low frequency: neighbouring pixels differ far less than the field's range
    assert field.diff(dim=-1).abs().max() < 0.1


# -------------------------------------------------------------------------------------- samplers


def test_haze_generator_ranges_and_determinism() -> None:
    gen = HazeParamGenerator(
        beta=(0.6, 1.8), airlight=(0.7, 1.0), per_channel=True, img_size=(16, 16)
    )
    p = gen.step(batch_size=64, seed=3)
    assert p["airlight"].shape == (64, 3, 1, 1) and p["beta"].shape == (64,)
    assert 0.6 <= p["beta"].min() and p["beta"].max() <= 1.8
    assert 0.7 <= p["airlight"].min() and p["airlight"].max() <= 1.0
    assert p["depth"].min() >= 0.3 - 1e-6 and p["depth"].max() <= 2.0 + 1e-6
    torch.testing.assert_close(p["transmission"], transmission_from_depth(p["depth"], p["beta"]))
    q = gen.step(batch_size=64, seed=3)
    assert all(torch.equal(p[k], q[k]) for k in p)
    assert not torch.equal(p["beta"], gen.step(batch_size=64, seed=4)["beta"])


def test_haze_generator_feeds_asm_physics() -> None:
    gen = HazeParamGenerator(depth="ramp", img_size=(8, 8))
    physics = ASMHaze()
    physics.update(**gen.step(batch_size=2, seed=0))
    assert physics.A(torch.rand(2, 3, 8, 8)).shape == (2, 3, 8, 8)


def test_fixed_parameters_are_exact() -> None:
    p = HazeParamGenerator(beta=1.25, airlight=0.8, img_size=(4, 4)).step(seed=0)
    assert p["beta"].item() == 1.25 and p["airlight"].item() == pytest.approx(0.8)
    with pytest.raises(EIDError, match="lower bound"):
        HazeParamGenerator(beta=(2.0, 1.0))


def test_veil_generator_ranges() -> None:
    p = VeilParamGenerator(img_size=(8, 8)).step(batch_size=32, seed=0)
    assert (0.45 <= p["contrast"]).all() and (p["contrast"] <= 0.65).all()
    assert (p["contrast"] + p["veil"] + p["background"] <= 1.0 + 1e-6).all()


def test_image_seed_is_stable_and_distinct() -> None:
    assert image_seed(0, "x.png") == image_seed(0, "x.png")
    assert len({image_seed(0, f"{i}.png") for i in range(100)} | {image_seed(1, "0.png")}) == 101


# ------------------------------------------------------------------------------------- per image


@pytest.mark.parametrize("depth", ["ramp", "random"])
def test_exact_inversion_from_recorded_parameters(rng: torch.Generator, depth: str) -> None:
    x = torch.rand(3, 20, 24, generator=rng)
    config = SynthConfig(
        depth=depth, beta=(0.6, 1.0), airlight=(0.7, 1.0), per_channel_airlight=True
    )
    hazy, record, used_depth = synthesize(x, config, seed=5)
    t = transmission_from_depth(used_depth[None], record["beta"])
    assert t.min() >= 0.1  # A_dagger is exact where t >= t_min
    physics = ASMHaze(transmission=t, airlight=record["A"])
    torch.testing.assert_close(physics.A_dagger(hazy[None])[0], x, atol=2e-5, rtol=0)


def test_given_depth_is_used(tmp_path: Path, rng: torch.Generator) -> None:
    x = torch.rand(1, 8, 8, generator=rng)
    depth = torch.full((1, 8, 8), 2.0)
    hazy, record, _ = synthesize(x, SynthConfig(beta=0.5, airlight=1.0), seed=0, depth=depth)
    t = np.exp(-1.0)
    torch.testing.assert_close(hazy, x * t + (1 - t))
    assert record["depth_min"] == record["depth_max"] == 2.0
    np.save(tmp_path / "d.npy", np.ones((8, 8)))
    with pytest.raises(EIDError, match="pass its map"):
        synthesize(x, SynthConfig(depth=str(tmp_path / "d.npy")), seed=0)


# ---------------------------------------------------------------------------------------- folders


def test_folder_is_deterministic_and_order_independent(tmp_path: Path, clear_folder: Path) -> None:
    kw = {"beta": (0.6, 1.8), "airlight": (0.7, 1.0), "per_channel_airlight": True, "seed": 7}
    synthesize_folder([clear_folder], tmp_path / "o1", **kw)
    synthesize_folder([clear_folder], tmp_path / "o2", **kw)
    synthesize_folder(
        [clear_folder / "b.png"], tmp_path / "o3", **kw
    )  # alone: same result for b.png
    for name in ("a.png", "b.png", "c.png"):
        assert (tmp_path / "o1/hazy" / name).read_bytes() == (
            tmp_path / "o2/hazy" / name
        ).read_bytes()
    assert (tmp_path / "o1/hazy/b.png").read_bytes() == (tmp_path / "o3/hazy/b.png").read_bytes()
    assert (tmp_path / "o1/params.json").read_text() == (tmp_path / "o2/params.json").read_text()
    synthesize_folder([clear_folder], tmp_path / "o4", **{**kw, "seed": 8})
    assert (tmp_path / "o1/hazy/a.png").read_bytes() != (tmp_path / "o4/hazy/a.png").read_bytes()


def test_params_json_and_skipped_files(tmp_path: Path, clear_folder: Path) -> None:
    (clear_folder / "broken.png").write_bytes(b"not an image")
    skipped = []
    report = synthesize_folder(
        [clear_folder], tmp_path / "out", depth="ramp", beta=1.5, airlight=0.85, save_depth=True,
        on_skip=lambda path, message: skipped.append(message),
    )  # fmt: skip
    assert len(report.images) == 3 and len(report.skipped) == 1 and "broken.png" in skipped[0]
    doc = json.loads((tmp_path / "out/params.json").read_text())
    assert doc["config"]["model"] == "asm" and doc["config"]["seed"] == 0
    assert [r["name"] for r in doc["images"]] == ["a.png", "b.png", "c.png"]
    first = doc["images"][0]
    assert (
        first["model"] == "asm"
        and first["beta"] == 1.5
        and first["A"] == 0.85
        and first["depth_source"] == "ramp"
    )
    assert first["seed"] == image_seed(0, "a.png")
    assert doc["skipped"][0]["name"].endswith("broken.png")
    depth = tifffile.imread(tmp_path / "out/depth/a.tiff")
    assert (
        depth.dtype == np.float32 and depth.shape == (24, 32) and depth.max() == pytest.approx(2.0)
    )
    clear, _ = read_image(tmp_path / "out/clear/a.png")
    torch.testing.assert_close(clear, read_image(clear_folder / "a.png")[0])


def test_depth_folder_by_stem_and_size_mismatch(tmp_path: Path, clear_folder: Path) -> None:
    depths = tmp_path / "depths"
    depths.mkdir()
    np.save(depths / "a.npy", np.full((24, 32), 1.0))
    np.save(depths / "b.npy", np.full((5, 5), 1.0))  # wrong size; c has none
    with pytest.warns(UserWarning, match="skipped"):
        report = synthesize_folder(
            [clear_folder], tmp_path / "out", depth=str(depths), beta=1.0, airlight=1.0
        )
    assert [r["name"] for r in report.images] == ["a.png"]
    assert report.images[0]["depth_source"].endswith("a.npy")
    reasons = " ".join(m for _, m in report.skipped)
    assert "5x5" in reasons and "no depth map" in reasons


def test_veil_on_16bit_single_channel(tmp_path: Path, rng: torch.Generator) -> None:
    """uint16 grey with values 0..235: hazed on its own scale, stays uint16 grey, clear copy is identical."""
    raw = (torch.rand(48, 40, generator=rng) ** 3 * 235).round().numpy().astype(np.uint16)
    raw[0, 0] = 235
    tifffile.imwrite(tmp_path / "cells.tif", raw)
    report = synthesize_folder([tmp_path / "cells.tif"], tmp_path / "out", model="veil", seed=1)
    hazy = tifffile.imread(tmp_path / "out/hazy/cells.tif")
    assert hazy.dtype == np.uint16 and hazy.shape == raw.shape
    assert np.array_equal(tifffile.imread(tmp_path / "out/clear/cells.tif"), raw)
    assert hazy.max() <= 235 and hazy.mean() > raw.mean()  # veil adds background, no clipping
    record = report.images[0]
    assert record["model"] == "veil" and {
        "contrast",
        "veil",
        "background",
        "sigma_px",
        "seed",
    } <= set(record)
    x = raw.astype(np.float64) / 235
    y = hazy.astype(np.float64) / 235
    assert np.corrcoef(x.ravel(), y.ravel())[0, 1] > 0.9  # contrast reduced, structure kept
    assert y.std() < x.std()


@pytest.mark.shared
def test_veil_on_shared_nuclei(tmp_path: Path, shared_data: Path) -> None:
    report = synthesize_folder([shared_data / "nuclei/img2d.tif"], tmp_path / "out", model="veil")
    assert not report.skipped
    hazy = tifffile.imread(tmp_path / "out/hazy/img2d.tif")
    assert hazy.dtype == np.uint16 and 0 < hazy.max() <= 235


def test_refuses_input_folder_as_output(tmp_path: Path, clear_folder: Path) -> None:
    with pytest.raises(EIDError, match="input folder"):
        synthesize_folder([clear_folder], clear_folder)
    previous = tmp_path / "previous"
    synthesize_folder([clear_folder], previous)
    with pytest.raises(EIDError, match="input folder"):  # would overwrite previous/hazy
        synthesize_folder([previous / "hazy"], previous)


def test_unknown_model_and_missing_depth() -> None:
    with pytest.raises(EIDError, match="unknown haze model"):
        SynthConfig(model="fog")
    with pytest.raises(EIDError, match="neither ramp"):
        SynthConfig(depth="/no/such/depth.npy")


# -------------------------------------------------------------------------------------------- CLI


def test_cli_synth(tmp_path: Path, clear_folder: Path) -> None:
    runner = CliRunner()
    args = [
        "synth",
        str(clear_folder),
        "--out",
        str(tmp_path / "out"),
        "--beta-range",
        "0.6,1.8",
        "--per-channel-airlight",
        "--save-depth",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out/hazy").iterdir()) == ["a.png", "b.png", "c.png"]
    assert len(list((tmp_path / "out/depth").iterdir())) == 3
    (clear_folder / "zero.png").write_bytes(b"")
    assert (
        runner.invoke(app, [*args[:3], str(tmp_path / "out2")]).exit_code == 1
    )  # a file was skipped
    bad = runner.invoke(
        app,
        [
            "synth",
            str(clear_folder),
            "--out",
            str(tmp_path / "o3"),
            "--beta",
            "1",
            "--beta-range",
            "1,2",
        ],
    )
    assert isinstance(bad.exception, EIDError)


@pytest.mark.parametrize("white", ["max", "dtype"])
def test_cli_synth_white_sets_one_scale_for_crops(tmp_path: Path, white: str) -> None:
    """A crop and its half-bright copy (same name, so the same haze draw): ``--white max`` hazes each at its own
    maximum, so the dim one's output is the bright one's halved; ``--white dtype`` puts the veil on the files'
    common scale, so the dim crop gets the same absolute veil."""
    g = np.random.default_rng(0)
    bright = (60 + 180 * g.random((48, 48))).astype(np.uint8)
    for folder, image in (("bright", bright), ("dim", (bright // 2).astype(np.uint8))):
        (tmp_path / folder).mkdir()
        Image.fromarray(image).save(tmp_path / folder / "crop.png")
        args = [
            "synth",
            str(tmp_path / folder),
            "--out",
            str(tmp_path / f"out-{folder}"),
            "--model",
            "veil",
        ]
        assert CliRunner().invoke(app, [*args, "--white", white]).exit_code == 0
    hazy = {
        f: np.asarray(Image.open(tmp_path / f"out-{f}" / "hazy" / "crop.png"), float)
        for f in ("bright", "dim")
    }
    halved = np.abs(hazy["dim"] - hazy["bright"] / 2).mean()
    assert (halved < 1.0) if white == "max" else (halved > 5.0)
    bad = CliRunner().invoke(
        app, ["synth", str(tmp_path / "dim"), "--out", str(tmp_path / "x"), "--white", "-3"]
    )
    assert bad.exit_code != 0
