"""Fault injection (issue 17): each test builds one fault, runs the real ``eid`` entry point or API and checks the
exit code, the one-line message naming the cause, the absence of a traceback and that nothing is lost or
overwritten. Items are numbered as in the issue; docs/reliability.md lists which test covers which guarantee."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from eid.data.io import read_image


def _png(path: Path, seed: int, size: tuple[int, int] = (24, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def _params(out: Path) -> dict:
    return json.loads((out / "params.json").read_text())


# --- 1, 2: output names ------------------------------------------------------------------------------------


def test_synth_inputs_sharing_a_name_get_distinct_outputs(eid_cli, tmp_path):
    _png(tmp_path / "a" / "x.png", 1), _png(tmp_path / "a" / "y.png", 2), _png(tmp_path / "b" / "x.png", 3)
    run = eid_cli("synth", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "out", "--seed", "0")
    assert run.code == 0 and "Traceback" not in run.err
    assert "written as x-2.png" in run.err and "3 hazed" in run.err
    names = sorted(p.name for p in (tmp_path / "out" / "clear").iterdir())
    assert names == ["x-2.png", "x.png", "y.png"]
    for folder, name in (("a", "x.png"), ("b", "x-2.png")):  # each clear copy is its own input
        assert np.array_equal(np.asarray(Image.open(tmp_path / folder / "x.png")), np.asarray(Image.open(tmp_path / "out" / "clear" / name)))
    records = _params(tmp_path / "out")["images"]
    assert [r["name"] for r in records] == ["x-2.png", "x.png", "y.png"]
    assert records[0]["source"] == str(tmp_path / "b" / "x.png")


def test_dehaze_inputs_sharing_a_name_get_distinct_outputs(eid_cli, tmp_path):
    _png(tmp_path / "a" / "x.png", 1), _png(tmp_path / "b" / "x.png", 3)
    run = eid_cli("dehaze", "--method", "dcp", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "out", "--device", "cpu")
    assert run.code == 0, run.err
    assert "written as x-2.png" in run.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x-2.png", "x.png"]


def test_synth_save_depth_gives_each_image_its_own_depth_map(eid_cli, tmp_path):
    for suffix, seed in ((".png", 1), (".jpg", 2), (".tif", 3)):
        _png(tmp_path / "in" / f"x{suffix}", seed)  # Pillow picks the format from the suffix
    run = eid_cli("synth", tmp_path / "in", "--out", tmp_path / "out", "--save-depth", "--depth", "random")
    assert run.code == 0, run.err
    records = {r["name"]: r for r in _params(tmp_path / "out")["images"]}
    files = {name: r["depth_file"] for name, r in records.items()}
    assert len(set(files.values())) == 3 and all((tmp_path / "out" / f).is_file() for f in files.values())
    for record in records.values():  # each map is the depth that image was hazed with
        depth = tifffile.imread(tmp_path / "out" / record["depth_file"])
        assert depth.min() == pytest.approx(record["depth_min"], abs=1e-5)


# --- 6, 15: synth options and re-runs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "cause"),
    [
        (("--model", "veil", "--veil-sigma", "0"), "--veil-sigma 0"),
        (("--model", "veil", "--veil-sigma", "-0.1"), "--veil-sigma -0.1"),
        (("--beta", "-1"), "--beta -1"),
        (("--airlight", "5"), "--airlight 5"),
        (("--beta-range", "2,1"), "--beta-range 2,1"),
    ],
)
def test_synth_refuses_out_of_range_options(eid_cli, tmp_path, option, cause):
    _png(tmp_path / "in" / "x.png", 1)
    run = eid_cli("synth", tmp_path / "in", "--out", tmp_path / "out", *option)
    assert run.code == 2 and cause in run.error_line()
    assert not (tmp_path / "out").exists()


def test_cell97_refuses_zero_veil_sigma(eid_cli, tmp_path):
    _png(tmp_path / "src" / "n.png", 1)
    run = eid_cli("data", "cell97", "--src", tmp_path / "src", "--out", tmp_path / "out", "--veil-sigma", "0", "--no-progress")
    assert run.code == 2 and "--veil-sigma 0" in run.error_line()


def test_failing_synth_rerun_keeps_params_json(eid_cli, tmp_path):
    _png(tmp_path / "in" / "x.png", 1)
    assert eid_cli("synth", tmp_path / "in", "--out", tmp_path / "out").code == 0
    before = (tmp_path / "out" / "params.json").read_text()
    (tmp_path / "maps").mkdir()  # a depth folder without a map for x.png: every image is skipped
    run = eid_cli("synth", tmp_path / "in", "--out", tmp_path / "out", "--depth", tmp_path / "maps")
    assert run.code == 1 and "no depth map" in run.err and "Traceback" not in run.err
    assert (tmp_path / "out" / "params.json").read_text() == before
    assert (tmp_path / "out" / "hazy" / "x.png").is_file()


# --- 10, 16: file modes and orphaned temp files ------------------------------------------------------------


def test_outputs_honour_the_umask(eid_cli, tmp_path):
    _png(tmp_path / "in" / "x.png", 1)
    previous = os.umask(0o022)
    try:
        assert eid_cli("synth", tmp_path / "in", "--out", tmp_path / "out").code == 0
    finally:
        os.umask(previous)
    for path in (tmp_path / "out" / "hazy" / "x.png", tmp_path / "out" / "params.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_temp_files_of_a_killed_run_are_removed_at_the_next_start(eid_cli, tmp_path):
    _png(tmp_path / "in" / "x.png", 1)
    dead = 2**22 + 7  # above the default pid_max: no such process
    from eid.utils import _host_tag

    orphans = [
        tmp_path / "out" / "hazy" / f".x.eid-{_host_tag()}-{dead}-abcd1234.tmp.png",
        tmp_path / "out" / f".params.eid-{_host_tag()}-{dead}-abcd1234.tmp.json",
    ]
    live = tmp_path / "out" / "hazy" / f".y.eid-{_host_tag()}-{os.getpid()}-abcd1234.tmp.png"
    for path in (*orphans, live):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    assert eid_cli("synth", tmp_path / "in", "--out", tmp_path / "out").code == 0
    assert not any(p.exists() for p in orphans) and live.exists()  # a concurrent writer's file is kept


# --- 11: file names that are not UTF-8 ---------------------------------------------------------------------


def test_non_utf8_file_names_in_synth_and_evaluate_csv(eid_cli, tmp_path):
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: not valid UTF-8
    _png(tmp_path / "in" / name, 1)
    assert eid_cli("synth", tmp_path / "in", "--out", tmp_path / "out").code == 0
    assert (tmp_path / "out" / "hazy" / name).is_file()
    out = tmp_path / "out"
    run = eid_cli("evaluate", "--pred", out / "hazy", "--ref", out / "clear", "--csv", tmp_path / "m.csv", "--device", "cpu")
    assert run.code == 0 and "Traceback" not in run.err
    assert os.fsencode(name) in (tmp_path / "m.csv").read_bytes()  # the name's own bytes, as on disk
    assert read_image(out / "hazy" / name)[0].shape == (3, 24, 32)
