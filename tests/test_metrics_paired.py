"""PSNR/SSIM against hand-computed values, and `eid evaluate` pairing, tables and outputs."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import tifffile
import torch
from typer.testing import CliRunner

from eid.cli import app
from eid.data.io import write_image
from eid.errors import EIDError
from eid.metrics import get_metrics
from eid.metrics.evaluate import evaluate, pair_files
from eid.metrics.paired import psnr, ssim


def test_psnr_hand_computed():
    x = torch.zeros(2, 3, 8, 8)
    y = x.clone()
    y[0] += 0.1  # MSE 0.01 -> 20 dB
    y[1, :, :4] = 0.5  # MSE 0.125 -> 9.0309 dB
    assert torch.allclose(psnr(y, x), torch.tensor([20.0, 10 * math.log10(8)]), atol=1e-4)


def test_psnr_identical_is_finite():
    x = torch.rand(1, 3, 8, 8)
    assert float(psnr(x, x)) == pytest.approx(80.0)


def test_ssim_hand_computed_constant_images():
    # Constant images: SSIM = (2 mu_x mu_y + C1)/(mu_x^2 + mu_y^2 + C1), contrast term is 1.
    a, b = 0.2, 0.6
    c1 = 0.01**2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    x, y = torch.full((1, 3, 32, 32), a), torch.full((1, 3, 32, 32), b)
    assert float(ssim(x, y)) == pytest.approx(expected, abs=1e-4)
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-6)


def test_ssim_matches_skimage_gaussian_convention():
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 48, 40, generator=g)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    ref = structural_similarity(
        x[0, 0].double().numpy(),
        y[0, 0].double().numpy(),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=1.0,
    )
    assert float(ssim(y, x)) == pytest.approx(ref, abs=2e-3)


def test_ssim_dehazeformer_downsampling_changes_large_images_only():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 64, 64, generator=g)
    y = (x + 0.2 * torch.rand(x.shape, generator=g)).clamp(0, 1)
    assert torch.equal(ssim(y, x, downsample="dehazeformer"), ssim(y, x))
    big_x = torch.nn.functional.interpolate(x, size=(600, 600), mode="bilinear")
    big_y = torch.nn.functional.interpolate(y, size=(600, 600), mode="bilinear")
    assert not torch.allclose(ssim(big_y, big_x, downsample="dehazeformer"), ssim(big_y, big_x))


def test_mismatched_shapes_raise():
    with pytest.raises(EIDError, match="differ in shape"):
        psnr(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))


def _folder(root, names, value, size=(3, 16, 16)):
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        write_image(root / name, torch.full(size, value + 0.01 * i))
    return root


def test_pairing_by_name_and_reside_names(tmp_path):
    pred = _folder(tmp_path / "pred", ["1_1.png", "1_2.png", "2_1.png"], 0.5)
    ref = _folder(tmp_path / "ref", ["1.png", "2.png"], 0.5)
    with pytest.raises(EIDError, match="--reside-names"):
        pair_files([pred], [ref])
    pairs = pair_files([pred], [ref], reside_names=True)
    assert [(p.name, r.name) for p, r, _ in pairs] == [
        ("1_1.png", "1.png"),
        ("1_2.png", "1.png"),
        ("2_1.png", "2.png"),
    ]


def test_evaluate_on_a_12_bit_scale(tmp_path):
    for side, value in (("pred", 2000), ("ref", 2100)):
        (tmp_path / side).mkdir()
        tifffile.imwrite(tmp_path / side / "a.tif", np.full((16, 16), value, np.uint16))
    scores = {}
    for white in ("dtype", "4095"):
        out = CliRunner().invoke(
            app,
            [
                "evaluate",
                "--pred",
                str(tmp_path / "pred"),
                "--ref",
                str(tmp_path / "ref"),
                "--metrics",
                "psnr",
                "--white",
                white,
                "--json",
                str(tmp_path / f"{white}.json"),
            ],
        )
        assert out.exit_code == 0, out.output
        scores[white] = json.loads((tmp_path / f"{white}.json").read_text())["metrics"]["psnr"]
    assert scores["4095"] == pytest.approx(
        20 * np.log10(4095 / 100), abs=1e-3
    )  # the error is 100 of 4095
    assert scores["dtype"] - scores["4095"] == pytest.approx(
        20 * np.log10(65535 / 4095), abs=0.03
    )  # PSNR's epsilon
    with pytest.raises(EIDError, match="white=max rescales every image"):
        evaluate(get_metrics("psnr"), [tmp_path / "pred"], [tmp_path / "ref"], white="max")


def test_size_mismatch_is_an_error_naming_files(tmp_path):
    pred = _folder(tmp_path / "pred", ["a.png"], 0.5)
    ref = _folder(tmp_path / "ref", ["a.png"], 0.5, size=(3, 16, 17))
    with pytest.raises(EIDError, match="a.png.*reference"):
        evaluate(get_metrics("psnr"), [pred], [ref])


def test_evaluate_cli_json_csv_and_skip(tmp_path):
    pred = _folder(tmp_path / "pred", ["a.png", "b.png"], 0.5)
    ref = _folder(tmp_path / "ref", ["a.png", "b.png"], 0.6)
    out = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--pred",
            str(pred),
            "--ref",
            str(ref),
            "--json",
            str(tmp_path / "m.json"),
            "--csv",
            str(tmp_path / "m.csv"),
        ],
    )
    assert out.exit_code == 0, out.output
    data = json.loads((tmp_path / "m.json").read_text())
    assert set(data) == {"metrics", "images"} and [r["name"] for r in data["images"]] == [
        "a.png",
        "b.png",
    ]
    expected = np.mean([20.0, 20.0])  # both differ by exactly 0.1 everywhere (8-bit rounding aside)
    assert data["metrics"]["psnr"] == pytest.approx(expected, abs=0.2)
    rows = list(csv.DictReader((tmp_path / "m.csv").read_text().splitlines()))
    assert rows[-1]["name"] == "mean" and len(rows) == 3
    (pred / "c.png").write_bytes(b"broken")
    _folder(ref, ["c.png"], 0.6)
    out = CliRunner().invoke(app, ["evaluate", "--pred", str(pred), "--ref", str(ref)])
    assert out.exit_code == 1 and "skipped" in out.output


def test_sots_sample_evaluation(shared_data):
    root = shared_data / "sots-indoor-sample"
    result = evaluate(
        get_metrics("psnr,ssim"), [root / "hazy"], [root / "clear"], reside_names=True
    )
    assert len(result.rows) == 4
    assert 8 < result.means["psnr"] < 16 and 0.4 < result.means["ssim"] < 0.9
