"""The end-to-end demo: data built from bundled images, both stages, three methods, one report."""

from __future__ import annotations

import json

import pytest

from eid.demo import DEMO_MARKER, prepare_output, run_demo
from eid.demo_data import CLEAR_SET, TEST_SET, TRAIN_SET, build_demo_data
from eid.errors import EIDError


def test_demo_sets_are_disjoint():
    assert not (
        set(CLEAR_SET) & set(TRAIN_SET)
        or set(CLEAR_SET) & set(TEST_SET)
        or set(TRAIN_SET) & set(TEST_SET)
    )


def test_demo_data_is_deterministic(tmp_path):
    a = build_demo_data(tmp_path / "a", short_side=64)
    b = build_demo_data(tmp_path / "b", short_side=64)
    for name in TEST_SET:
        assert (a.test_hazy / f"{name}.png").read_bytes() == (
            b.test_hazy / f"{name}.png"
        ).read_bytes()
    params = json.loads((tmp_path / "a" / "params.json").read_text())
    assert params["stereo_motorcycle"]["depth_source"].startswith("middlebury")


def test_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(EIDError, match="not made by `eid demo`"):
        prepare_output(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_pipeline_end_to_end_with_few_steps(tmp_path):
    out = tmp_path / "demo"
    report = run_demo(out, operator_steps=2, dehazer_steps=2, short_side=64)
    assert set(report["metrics"]) == {"hazy input", "dcp", "cyclegan", "eid"}
    assert all({"psnr", "ssim"} <= set(means) for means in report["metrics"].values())
    assert json.loads((out / "metrics.json").read_text())["metrics"] == report["metrics"]
    for method in ("dcp", "cyclegan", "eid"):
        assert sorted(p.name for p in (out / "dehazed" / method).iterdir()) == sorted(
            f"{n}.png" for n in TEST_SET
        )
    assert (out / "comparison.png").is_file() and (out / DEMO_MARKER).is_file()
    assert (out / "runs" / "eid" / "dehazer.safetensors").is_file()
    page = (out / "report" / "index.html").read_text()
    assert all(label in page for label in ("DCP", "EID")), "the demo's report shows every method"
    run_demo(
        out, operator_steps=1, dehazer_steps=1, short_side=64
    )  # a second run replaces the first
