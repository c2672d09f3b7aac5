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
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(
        path
    )
    return path


def _params(out: Path) -> dict:
    return json.loads((out / "params.json").read_text())


# --- 1, 2: output names ------------------------------------------------------------------------------------


def test_synth_inputs_sharing_a_name_get_distinct_outputs(eid_cli, tmp_path):
    (
        _png(tmp_path / "a" / "x.png", 1),
        _png(tmp_path / "a" / "y.png", 2),
        _png(tmp_path / "b" / "x.png", 3),
    )
    run = eid_cli("synth", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "out", "--seed", "0")
    assert run.code == 0 and "Traceback" not in run.err
    assert "written as x-2.png" in run.err and "3 hazed" in run.err
    names = sorted(p.name for p in (tmp_path / "out" / "clear").iterdir())
    assert names == ["x-2.png", "x.png", "y.png"]
    for folder, name in (("a", "x.png"), ("b", "x-2.png")):  # each clear copy is its own input
        assert np.array_equal(
            np.asarray(Image.open(tmp_path / folder / "x.png")),
            np.asarray(Image.open(tmp_path / "out" / "clear" / name)),
        )
    records = _params(tmp_path / "out")["images"]
    assert [r["name"] for r in records] == ["x-2.png", "x.png", "y.png"]
    assert records[0]["source"] == str(tmp_path / "b" / "x.png")


def test_dehaze_inputs_sharing_a_name_get_distinct_outputs(eid_cli, tmp_path):
    _png(tmp_path / "a" / "x.png", 1), _png(tmp_path / "b" / "x.png", 3)
    run = eid_cli(
        "dehaze",
        "--method",
        "dcp",
        tmp_path / "a",
        tmp_path / "b",
        "--out",
        tmp_path / "out",
        "--device",
        "cpu",
    )
    assert run.code == 0, run.err
    assert "written as x-2.png" in run.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x-2.png", "x.png"]


def test_synth_save_depth_gives_each_image_its_own_depth_map(eid_cli, tmp_path):
    for suffix, seed in ((".png", 1), (".jpg", 2), (".tif", 3)):
        _png(tmp_path / "in" / f"x{suffix}", seed)  # Pillow picks the format from the suffix
    run = eid_cli(
        "synth", tmp_path / "in", "--out", tmp_path / "out", "--save-depth", "--depth", "random"
    )
    assert run.code == 0, run.err
    records = {r["name"]: r for r in _params(tmp_path / "out")["images"]}
    files = {name: r["depth_file"] for name, r in records.items()}
    assert len(set(files.values())) == 3 and all(
        (tmp_path / "out" / f).is_file() for f in files.values()
    )
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
    run = eid_cli(
        "data",
        "cell97",
        "--src",
        tmp_path / "src",
        "--out",
        tmp_path / "out",
        "--veil-sigma",
        "0",
        "--no-progress",
    )
    assert run.code == 2 and "--veil-sigma 0" in run.error_line()


def test_failing_synth_rerun_keeps_params_json(eid_cli, tmp_path):
    _png(tmp_path / "in" / "x.png", 1)
    assert eid_cli("synth", tmp_path / "in", "--out", tmp_path / "out").code == 0
    before = (tmp_path / "out" / "params.json").read_text()
    (tmp_path / "maps").mkdir()  # a depth folder without a map for x.png: every image is skipped
    run = eid_cli(
        "synth",
        tmp_path / "in",
        "--out",
        tmp_path / "out",
        "--depth",
        tmp_path / "maps",
        "--overwrite",
    )
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
    assert (
        not any(p.exists() for p in orphans) and live.exists()
    )  # a concurrent writer's file is kept


def test_an_ome_tiffs_temp_name_keeps_both_suffixes_and_is_cleaned(tmp_path):
    """tifffile writes OME-XML by the ``.ome.tif`` name: the temp file keeps both suffixes, and an orphan of it
    is recognised by :func:`eid.utils.remove_stale_temps`."""
    from eid.utils import _host_tag, atomic_write, remove_stale_temps

    with atomic_write(tmp_path / "cells.ome.tif") as tmp:
        assert tmp.name.startswith(".cells.eid-") and tmp.name.endswith(".tmp.ome.tif")
        tmp.write_bytes(b"x")
    orphan = tmp_path / f".cells.eid-{_host_tag()}-{2**22 + 7}-abcd1234.tmp.ome.tif"
    orphan.write_bytes(b"partial")
    assert (
        remove_stale_temps(tmp_path) == [orphan]
        and (tmp_path / "cells.ome.tif").read_bytes() == b"x"
    )


# --- 11: file names that are not UTF-8 ---------------------------------------------------------------------


def test_non_utf8_file_names_in_synth_and_evaluate_csv(eid_cli, tmp_path):
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: not valid UTF-8
    _png(tmp_path / "in" / name, 1)
    assert eid_cli("synth", tmp_path / "in", "--out", tmp_path / "out").code == 0
    assert (tmp_path / "out" / "hazy" / name).is_file()
    out = tmp_path / "out"
    run = eid_cli(
        "evaluate",
        "--pred",
        out / "hazy",
        "--ref",
        out / "clear",
        "--csv",
        tmp_path / "m.csv",
        "--device",
        "cpu",
    )
    assert run.code == 0 and "Traceback" not in run.err
    assert (
        os.fsencode(name) in (tmp_path / "m.csv").read_bytes()
    )  # the name's own bytes, as on disk
    assert read_image(out / "hazy" / name)[0].shape == (3, 24, 32)


# --- 3, 4, 7: files that are multi-page, huge or unreadable -------------------------------------------------


def test_pages_appended_one_by_one_are_all_dehazed(eid_cli, tmp_path):
    pages = np.random.default_rng(0).integers(
        100, 256, (3, 24, 32), dtype=np.uint8
    )  # hazy: DCP changes it
    (tmp_path / "in").mkdir()
    for page in pages:  # three separate writes: three TIFF series of one page each
        tifffile.imwrite(tmp_path / "in" / "p.tif", page, append=True)
    run = eid_cli(
        "dehaze", "--method", "dcp", tmp_path / "in", "--out", tmp_path / "out", "--device", "cpu"
    )
    assert run.code == 0, run.err
    out = tifffile.imread(tmp_path / "out" / "p.tif")
    assert out.shape == (3, 24, 32) and all(not np.array_equal(o, p) for o, p in zip(out, pages))


def test_series_of_different_shapes_are_refused_not_truncated(eid_cli, tmp_path):
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "p.tif", np.zeros((24, 32), np.uint8), append=True)
    tifffile.imwrite(tmp_path / "in" / "p.tif", np.zeros((16, 16), np.uint8), append=True)
    _png(tmp_path / "in" / "ok.png", 1)
    run = eid_cli(
        "dehaze", "--method", "dcp", tmp_path / "in", "--out", tmp_path / "out", "--device", "cpu"
    )
    assert run.code == 1 and "Traceback" not in run.err
    assert (
        "holds 2 images of different shapes" in run.err and (tmp_path / "out" / "ok.png").is_file()
    )
    assert not (tmp_path / "out" / "p.tif").exists()


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width x height`` grey pixels, with almost no data (a decompression bomb)."""
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def test_max_pixels_governs_not_pillows_bomb_limit(eid_cli, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # 24x32 = 768 pixels: a "bomb" to Pillow
    _png(tmp_path / "in" / "ok.png", 1)
    _png_header_only(tmp_path / "in" / "bomb.png", 30_000, 30_000)
    run = eid_cli(
        "dehaze", "--method", "dcp", tmp_path / "in", "--out", tmp_path / "out", "--device", "cpu"
    )
    assert run.code == 1 and "Traceback" not in run.err
    assert "bomb.png: image too large (30000x30000" in run.err and "--max-pixels" in run.err
    assert (tmp_path / "out" / "ok.png").is_file() and Image.MAX_IMAGE_PIXELS == 300
    run = eid_cli("synth", tmp_path / "in" / "ok.png", "--out", tmp_path / "synth")
    assert run.code == 0, run.err


def test_unreadable_file_is_skipped_and_the_batch_goes_on(eid_cli, tmp_path, make_unreadable):
    _png(tmp_path / "in" / "a.png", 1), _png(tmp_path / "in" / "b.png", 2)
    make_unreadable(tmp_path / "in" / "a.png")
    run = eid_cli(
        "dehaze", "--method", "dcp", tmp_path / "in", "--out", tmp_path / "out", "--device", "cpu"
    )
    assert run.code == 1 and "Traceback" not in run.err
    assert (
        "a.png: cannot read (Permission denied)" in run.err
        and (tmp_path / "out" / "b.png").is_file()
    )


# --- 5: corrupted weights and NaN ---------------------------------------------------------------------------


def _dehazer_run(folder: Path, nan: bool = False, checksum: bool = True) -> Path:
    """A stage-2 run folder with a tiny dehazer; ``nan`` fills its weights with NaN; no checksum = an old export."""
    import torch
    from safetensors.torch import save_file

    from eid.config import config_to_dict
    from eid.models import DehazerConfig, DehazerNet
    from eid.weights import save_weights

    torch.manual_seed(0)
    net = DehazerNet(DehazerConfig(channels=3, scales=2, width=4))
    state = {
        k: v.clone().fill_(float("nan")) if nan and v.is_floating_point() else v
        for k, v in net.state_dict().items()
    }
    save_weights(folder / "dehazer", state, {"model": config_to_dict(net.config)})
    if not checksum:
        save_file(
            {k: v.contiguous() for k, v in state.items()},
            str(folder / "dehazer.safetensors"),
            metadata={"format": "pt"},
        )
    return folder


def test_corrupted_weights_are_refused_with_one_line(eid_cli, tmp_path):
    run_dir = _dehazer_run(tmp_path / "run")
    weights = run_dir / "dehazer.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-40:-20] = bytes(
        b ^ 0xFF for b in blob[-40:-20]
    )  # flip tensor bytes, keep the header valid
    weights.write_bytes(bytes(blob))
    _png(tmp_path / "in" / "x.png", 1)
    run = eid_cli(
        "dehaze", "--model", run_dir, tmp_path / "in", "--out", tmp_path / "out", "--device", "cpu"
    )
    assert run.code == 2 and "dehazer.safetensors: checksum mismatch" in run.error_line()
    assert not (tmp_path / "out").exists()


def test_nan_outputs_are_reported_per_image_never_written_black(eid_cli, tmp_path):
    run_dir = _dehazer_run(
        tmp_path / "run", nan=True, checksum=False
    )  # an old export: loads unchecked
    _png(tmp_path / "in" / "x.png", 1), _png(tmp_path / "in" / "y.png", 2)
    run = eid_cli(
        "dehaze", "--model", run_dir, tmp_path / "in", "--out", tmp_path / "out", "--device", "cpu"
    )
    assert run.code == 1 and "Traceback" not in run.err
    assert run.err.count("gave NaN or infinite values") >= 2 and not list(
        (tmp_path / "out").glob("*.png")
    )


def test_one_nan_input_pixel_does_not_spread(tmp_path):
    import torch

    from eid.inference import Dehazer
    from eid.models import DehazerConfig, DehazerNet

    torch.manual_seed(0)
    runner = Dehazer.from_module(
        DehazerNet(DehazerConfig(channels=3, scales=2, width=4)).eval(), device="cpu"
    )
    image = np.random.default_rng(0).random((24, 32, 3)).astype(np.float32)
    image[5, 7, 1] = np.nan
    with pytest.warns(UserWarning, match="1 NaN or infinite input values replaced by 0"):
        out = runner(image)
    assert np.isfinite(out).all() and out.shape == image.shape


# --- 18: small items ----------------------------------------------------------------------------------------


def test_undefined_metrics_are_null_in_json(eid_cli, tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(
        tmp_path / "a" / "black.png"
    )  # BRISQUE is undefined (NaN)
    run = eid_cli(
        "evaluate",
        "--pred",
        tmp_path / "a",
        "--metrics",
        "brisque",
        "--json",
        tmp_path / "m.json",
        "--device",
        "cpu",
    )
    assert run.code == 0, run.err

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    document = json.loads((tmp_path / "m.json").read_text(), parse_constant=refuse)
    assert document["images"][0]["brisque"] is None and document["metrics"]["brisque"] is None


def test_float_tiff_outside_0_1_is_warned_once(tmp_path):
    from eid.data import scale

    scale._FLOAT_WARNED.clear()
    for name in ("a.tif", "b.tif"):
        tifffile.imwrite(
            tmp_path / name, np.linspace(-0.5, 3.0, 24 * 32, dtype=np.float32).reshape(24, 32)
        )
    with pytest.warns(UserWarning) as caught:
        read_image(tmp_path / "a.tif"), read_image(tmp_path / "b.tif")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and all("a.tif" in m for m in messages)
    assert any("below 0 are clipped" in m for m in messages) and any(
        "read with 3 as white" in m for m in messages
    )


# --- 14: nothing to do is not a success --------------------------------------------------------------------


@pytest.mark.parametrize("content", ["empty", "gif"])
@pytest.mark.parametrize("command", ["dehaze", "synth"])
def test_a_folder_without_images_is_an_error(eid_cli, tmp_path, content, command):
    (tmp_path / "in").mkdir()
    if content == "gif":
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "in" / "a.gif")
    extra = ("--method", "dcp") if command == "dehaze" else ()
    run = eid_cli(command, *extra, tmp_path / "in", "--out", tmp_path / "out")
    line = run.error_line()
    assert run.code == 2 and "no image to process" in line
    assert ("only other files (1 .gif)" if content == "gif" else "no files") in line


# --- 17: messages that name the real cause -----------------------------------------------------------------


def test_os_errors_name_the_real_cause_not_the_tile(tmp_path, monkeypatch):
    import errno
    import io

    from rich.console import Console

    from eid.inference import Dehazer, dehaze_paths

    _png(tmp_path / "in" / "x.png", 1)
    target = tmp_path / "out" / "x.png"

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr("eid.data.io.write_image", full_disk)
    log = io.StringIO()
    failures = dehaze_paths([tmp_path / "in"], tmp_path / "out", Dehazer.from_module(lambda y: y, device="cpu"),
                            console=Console(file=log, width=400))  # fmt: skip
    assert failures == 1 and not target.exists()
    assert (
        "No space left on device; free space on that disk" in log.getvalue()
        and "--tile" not in log.getvalue()
    )


def test_messages_of_tiling_and_black_images(tmp_path):
    from eid.data.planes import dim_scale_hint
    from eid.errors import EIDError
    from eid.inference import Dehazer, Method

    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "in" / "black.png")
    assert (
        dim_scale_hint([tmp_path / "in"], "dtype") is None
    )  # an all-black image is no reason for --white 1
    with pytest.raises(
        EIDError, match="--tile 1, --overlap 0; this model needs sides in multiples of 4"
    ):
        Dehazer(Method(lambda y: y, multiple=4), device="cpu", tile=1, overlap=0)


# --- 8, 9, 12, 13, 16, 17: training runs ---------------------------------------------------------------------


@pytest.fixture
def train_asm(eid_cli, asm_oracle):
    """``eid train HAZY OUT [extra]`` with the analytic ASM oracle on tiny crops, no prior, one step."""

    def train(hazy: Path, out: Path, *extra: object):
        return eid_cli(
            "train",
            "--hazy",
            hazy,
            *asm_oracle,
            "--no-prior",
            "--out",
            out,
            "--max-steps",
            "1",
            *extra,
        )

    return train


@pytest.fixture
def hazy_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Four small hazy PNGs. Lightning's log handlers stay bound to the captured stderr of the test that imported
    Lightning, closed since: their "Logging error" reports (a test artefact, not eid's output) are silenced."""
    import logging

    monkeypatch.setattr(logging, "raiseExceptions", False)
    for i in range(4):
        _png(tmp_path / "hazy" / f"{i}.png", i)
    return tmp_path / "hazy"


def test_a_start_failing_before_the_first_checkpoint_leaves_no_stub(train_asm, tmp_path, hazy_set):
    bad = np.zeros((24, 32), np.float32)
    bad[3, 4] = np.nan
    tifffile.imwrite(
        hazy_set / "z.tif", bad
    )  # read last: the failure comes once the run folder exists
    run = train_asm(hazy_set, tmp_path / "run")
    assert run.code == 2 and "z.tif" in run.err.splitlines()[-1] and "Traceback" not in run.err
    assert not (tmp_path / "run").exists()
    (hazy_set / "z.tif").unlink()
    assert train_asm(hazy_set, tmp_path / "run").code == 0  # the rerun is not blocked


def test_a_full_disk_at_the_first_checkpoint_leaves_no_stub(
    train_asm, tmp_path, hazy_set, monkeypatch
):
    import errno

    from eid.training.checkpoints import AtomicCheckpointIO

    def full_disk(
        self: object, checkpoint: object, path: object, storage_options: object = None
    ) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", full_disk)
    (tmp_path / "run").mkdir()  # an empty folder given as --out stays, empty
    run = train_asm(hazy_set, tmp_path / "run")
    line = run.err.splitlines()[-1]
    assert run.code == 2 and "last.ckpt: No space left on device; free space on that disk" in line
    assert "Traceback" not in run.err, run.err
    assert list((tmp_path / "run").iterdir()) == []


def test_a_killed_start_is_named_as_such_not_sent_to_resume(train_asm, tmp_path, hazy_set):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("{}\n")  # kill -9 before the first checkpoint
    line = train_asm(hazy_set, tmp_path / "run").error_line()
    assert "holds no checkpoint to resume; remove it or choose another --out" in line
    assert (
        "nothing to resume; start a new run without --resume"
        in train_asm(hazy_set, tmp_path / "run", "--resume").error_line()
    )


@pytest.mark.parametrize(
    ("yaml_text", "cause"),
    [
        ("crop: big\n", "crop: 'big' is not a whole number"),
        ("model: 5\n", "model: 5 is not a mapping"),
        ("lr: .nan\n", "lr nan is out of range"),
        ("model:\n  width: 100000\n", "model.width 100000 is out of range; use 1..256"),
    ],
)
def test_bad_config_values_are_one_line_before_any_folder(
    eid_cli, tmp_path, hazy_set, yaml_text, cause
):
    (tmp_path / "bad.yaml").write_text(yaml_text)
    run = eid_cli(
        "train",
        "--hazy",
        hazy_set,
        "--operator",
        "asm",
        "--config",
        tmp_path / "bad.yaml",
        "--out",
        tmp_path / "run",
    )
    assert run.code == 2 and cause in run.error_line()
    assert not (tmp_path / "run").exists()


def test_yaml_numbers_written_as_text_are_read_as_numbers():
    from eid.config import config_from_dict
    from eid.training.eid_config import EIDConfig

    assert config_from_dict(EIDConfig, {"lr": "1e-4"}).lr == 1e-4  # YAML 1.1 reads 1e-4 as a string


@pytest.mark.parametrize(
    ("option", "cause"),
    [
        (("--crop", "0"), "--crop 0 is out of range; use 1..8192"),
        (("--crop", "-5"), "--crop -5 is out of range"),
        (("--crop", "100000"), "--crop 100000 is out of range"),
        (("--batch-size", "0"), "--batch-size 0 is out of range"),
        (("--seed", "-1"), "--seed -1 is out of range"),
        (("--devices", "0"), "--devices 0 is out of range"),
        (("--lr", "nan"), "--lr nan is out of range"),
        (("--threads", "-2"), "--threads -2 is out of range"),
        (("--max-steps", "0"), "--max-steps 0 is out of range; use >= 1"),
        (("--max-steps", "-1"), "--max-steps -1 is out of range"),
    ],
)
@pytest.mark.parametrize("command", ["train", "train-operator"])
def test_bad_numeric_options_are_one_line(eid_cli, tmp_path, hazy_set, command, option, cause):
    inputs = ("--operator", "asm") if command == "train" else ("--clear", hazy_set)
    run = eid_cli(command, "--hazy", hazy_set, *inputs, "--out", tmp_path / "run", *option)
    assert run.code == 2 and cause in run.error_line()
    assert not (tmp_path / "run").exists()


def test_train_operator_out_file_and_input_folder(eid_cli, tmp_path, hazy_set):
    (tmp_path / "file").write_text("x")
    args = ("train-operator", "--clear", hazy_set, "--hazy", hazy_set, "--max-steps", "1")
    assert (
        "--out " + str(tmp_path / "file") + " is a file"
        in eid_cli(*args, "--out", tmp_path / "file").error_line()
    )
    line = eid_cli(*args, "--out", hazy_set).error_line()
    assert (
        "is also an input folder (--clear); choose a new folder" in line and "--resume" not in line
    )


def test_resume_checks_its_inputs_and_takes_a_new_lr(train_asm, eid_cli, tmp_path, hazy_set):
    from eid.training.checkpoints import load_checkpoint

    assert train_asm(hazy_set, tmp_path / "run").code == 0
    other = tmp_path / "other"
    _png(other / "a.png", 9)
    line = train_asm(other, tmp_path / "run", "--resume").error_line()
    assert f"--hazy {other} differs from the run's {hazy_set}" in line
    run = eid_cli(
        "train",
        "--hazy",
        hazy_set,
        "--out",
        tmp_path / "run",
        "--resume",
        "--max-steps",
        "2",
        "--lr",
        "1e-5",
    )
    assert run.code == 0, run.err
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert ckpt["hyper_parameters"]["config"]["lr"] == 1e-5 and ckpt["lr_schedulers"][0][
        "base_lrs"
    ] == [1e-5]
    assert (
        ckpt["optimizer_states"][0]["param_groups"][0]["lr"] <= 1e-5
    )  # the cosine factor of the new base rate


def test_the_non_finite_loss_advice_names_what_works():
    import torch

    from eid.training.callbacks import NonFiniteLossError, ensure_finite

    with pytest.raises(
        NonFiniteLossError,
        match="rerun with a lower --lr \\(with --resume once a checkpoint exists",
    ):
        ensure_finite({"loss": torch.tensor(float("nan"))})


def test_temp_files_of_a_killed_training_run_are_removed(train_asm, tmp_path, hazy_set):
    from eid.utils import _host_tag

    dead = 2**22 + 7  # no such process
    orphan = tmp_path / "run" / "checkpoints" / f".last.eid-{_host_tag()}-{dead}-abcd1234.tmp.ckpt"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"partial")
    assert train_asm(hazy_set, tmp_path / "run").code == 0  # a folder holding only orphans is free
    orphan.write_bytes(b"partial")
    assert train_asm(hazy_set, tmp_path / "run", "--resume", "--max-steps", "2").code == 0
    assert not orphan.exists()


def test_training_messages_name_the_option_given(train_asm, eid_cli, tmp_path, hazy_set):
    (tmp_path / "empty").mkdir()
    line = eid_cli(
        "train",
        "--hazy",
        hazy_set,
        "--operator",
        "asm",
        "--clear",
        tmp_path / "empty",
        "--out",
        tmp_path / "run",
    ).error_line()
    assert (
        "no images found in" in line
        and "check --clear" in line
        and "hazy" not in line.split(";")[-1]
    )
    line = eid_cli(
        "train", "--hazy", hazy_set, "--operator", tmp_path / "x", "--out", tmp_path / "run"
    ).error_line()
    assert (
        f"{tmp_path / 'x'}: no such folder" in line
        and ".safetensors" not in line
        and ".yaml" not in line
    )
    line = train_asm(hazy_set, hazy_set).error_line()
    assert "is also an input folder (--hazy)" in line and "--resume" not in line


@pytest.mark.parametrize(
    ("option", "cause"),
    [
        (("--crop", "32"), "--crop 32 would change the run's crop from 16 to 32"),
        (("--batch-size", "4"), "--batch-size 4 would change the run's batch_size from 2 to 4"),
        (("--seed", "5"), "--seed 5 would change the run's seed from 0 to 5"),
        (("--group", "hflip"), "--group hflip would change the run's group from"),
        (("--preset", "paper"), "--preset paper differs from the run's fast"),
    ],
)
def test_resume_refuses_options_it_cannot_apply(train_asm, tmp_path, hazy_set, option, cause):
    assert train_asm(hazy_set, tmp_path / "run").code == 0
    before = (tmp_path / "run" / "checkpoints" / "last.ckpt").read_bytes()
    line = train_asm(
        hazy_set, tmp_path / "run", "--resume", "--max-steps", "2", *option
    ).error_line()
    assert cause in line
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").read_bytes() == before  # nothing ran


def test_resume_refuses_a_config_file_that_changes_the_run(train_asm, tmp_path, hazy_set):
    assert train_asm(hazy_set, tmp_path / "run").code == 0
    (tmp_path / "c.yaml").write_text("model:\n  width: 8\n")
    line = train_asm(
        hazy_set, tmp_path / "run", "--resume", "--config", tmp_path / "c.yaml"
    ).error_line()
    assert f"--config {tmp_path / 'c.yaml'} would change the run's model.width" in line


def test_train_operator_resume_refuses_a_new_crop(eid_cli, tmp_path, hazy_set):
    args = ("train-operator", "--clear", hazy_set, "--hazy", hazy_set, "--out", tmp_path / "run", "--crop", "16",
            "--batch-size", "2", "--max-steps", "1")  # fmt: skip
    assert eid_cli(*args).code == 0
    assert (
        "--crop 24 would change the run's data.crop from 16 to 24"
        in eid_cli(*args, "--resume", "--crop", "24").error_line()
    )
    assert (
        eid_cli(*args[:-1], "2", "--resume").code == 0
    )  # the start's own options repeated are accepted


# --- 14: eid data skips a bad file with one line and says so in its exit code ------------------------------


def test_data_cell97_skips_a_bad_file_with_one_line_and_exit_1(eid_cli, tmp_path):
    _png(tmp_path / "src" / "a.png", 1)
    (tmp_path / "src" / "bad.png").write_bytes(b"")
    run = eid_cli(
        "data", "cell97", "--src", tmp_path / "src", "--out", tmp_path / "out", "--no-progress"
    )
    assert run.code == 1 and "Traceback" not in run.err and "Warning" not in run.err
    lines = [line for line in run.err.splitlines() if "bad.png" in line]
    assert len(lines) == 1 and lines[0].startswith("skipped:") and "empty file" in lines[0]
    assert (
        "1 input file(s) skipped" in run.err and len(list((tmp_path / "out").rglob("a.png"))) == 2
    )


def test_data_reside_skips_a_bad_file_and_never_writes_half_a_pair(eid_cli, tmp_path):
    root = tmp_path / "SOTS"
    for scene, seed in (("1400", 1), ("1401", 2)):
        _png(root / "gt" / f"{scene}.png", seed)
        for k in (1, 2):
            _png(root / "hazy" / f"{scene}_{k}.png", seed * 10 + k)
    blob = (root / "gt" / "1400.png").read_bytes()
    (root / "gt" / "1400.png").write_bytes(
        blob[: len(blob) // 2]
    )  # truncated: its header is still valid
    run = eid_cli(
        "data",
        "reside",
        "--root",
        root,
        "--subset",
        "sots-indoor",
        "--out",
        tmp_path / "out",
        "--no-progress",
    )
    assert run.code == 1 and "Traceback" not in run.err
    lines = [line for line in run.err.splitlines() if "1400.png" in line]
    assert len(lines) == 1 and lines[0].startswith("skipped:")  # one line, though two pairs need it
    for kind in ("hazy", "clear"):  # the pairs of 1401 only: no hazy image without its clear one
        assert sorted(p.name for p in (tmp_path / "out" / "test" / kind).iterdir()) == [
            "1401_1.png",
            "1401_2.png",
        ]


def test_data_cholec80_skips_a_bad_video_and_goes_on(eid_cli, tmp_path):
    import torch

    from eid.data.video import VideoWriter

    (tmp_path / "videos").mkdir()
    with VideoWriter(tmp_path / "videos" / "video01.mp4", fps=4, width=48, height=32) as writer:
        writer.write(torch.rand(4, 3, 32, 48))
    (tmp_path / "videos" / "video02.mp4").write_bytes(b"\x00" * 1000)
    run = eid_cli(
        "data",
        "cholec80",
        "--videos",
        tmp_path / "videos",
        "--out",
        tmp_path / "out",
        "--size",
        "32",
        "--no-progress",
    )
    assert run.code == 1 and "Traceback" not in run.err
    line = next(line for line in run.err.splitlines() if "video02.mp4" in line)
    assert line.startswith("skipped:") and "cannot read video" in line
    rows = (tmp_path / "out" / "manifest.csv").read_text().splitlines()[1:]
    assert rows and all(row.startswith("video01,") for row in rows)


def test_symbolic_link_loops_are_one_line_each_and_count_as_skipped(eid_cli, tmp_path):
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a.png").symlink_to("b.png")
    (tmp_path / "only" / "b.png").symlink_to(
        "a.png"
    )  # a loop with image names: nothing else to process
    (tmp_path / "mixed" / "sub").mkdir(parents=True)
    _png(tmp_path / "mixed" / "ok.png", 1)
    (tmp_path / "mixed" / "sub" / "x.png").symlink_to("x.png")  # a link to itself
    (tmp_path / "mixed" / "up").symlink_to(tmp_path / "mixed")  # a link to a folder above
    for command, extra in (("dehaze", ("--method", "dcp", "--device", "cpu")), ("synth", ())):
        line = eid_cli(
            command, *extra, tmp_path / "only", "--out", tmp_path / f"{command}-only"
        ).error_line()
        assert (
            "no image to process" in line
            and "a.png: skipped, a symbolic link loop (and 1 more)" in line
        )
    run = eid_cli(
        "dehaze",
        "--method",
        "dcp",
        "--device",
        "cpu",
        tmp_path / "mixed",
        "--out",
        tmp_path / "out",
    )
    assert run.code == 1 and "Traceback" not in run.err and "UserWarning" not in run.err
    lines = [line for line in run.err.splitlines() if "symbolic link loop" in line]
    assert len(lines) == 2 and all(
        line.startswith("warning:") for line in lines
    )  # once each, one line each
    assert [p.name for p in (tmp_path / "out").rglob("*.png")] == ["ok.png"]


# --- 18: existing outputs ----------------------------------------------------------------------------------


def test_existing_outputs_are_kept_unless_overwrite_is_given(eid_cli, tmp_path):
    _png(tmp_path / "in" / "x.png", 1), _png(tmp_path / "in" / "y.png", 2)
    args = (
        "dehaze",
        "--method",
        "dcp",
        "--device",
        "cpu",
        tmp_path / "in",
        "--out",
        tmp_path / "out",
    )
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x.png").write_bytes(b"mine")
    line = eid_cli(*args).error_line()
    assert (
        f"{tmp_path / 'out' / 'x.png'} already exists; pass --overwrite to replace, --skip-existing to keep"
        in line
    )
    assert (tmp_path / "out" / "x.png").read_bytes() == b"mine" and not (
        tmp_path / "out" / "y.png"
    ).exists()
    assert (
        eid_cli(*args, "--skip-existing").code == 0
        and (tmp_path / "out" / "x.png").read_bytes() == b"mine"
    )
    assert eid_cli(*args, "--overwrite").code == 0 and read_image(tmp_path / "out" / "x.png")[
        0
    ].shape == (3, 24, 32)
    assert "contradict" in eid_cli(*args, "--overwrite", "--skip-existing").error_line()
    synth = ("synth", tmp_path / "in", "--out", tmp_path / "synth")
    assert eid_cli(*synth).code == 0
    before = (tmp_path / "synth" / "hazy" / "x.png").read_bytes()
    line = eid_cli(*synth, "--seed", "3").error_line()
    assert (
        "hazy/x.png already exists (and 3 more); pass --overwrite to replace or choose another --out"
        in line
    )
    assert (tmp_path / "synth" / "hazy" / "x.png").read_bytes() == before
    assert eid_cli(*synth, "--seed", "3", "--overwrite").code == 0
    assert (tmp_path / "synth" / "hazy" / "x.png").read_bytes() != before


# --- 18: video -----------------------------------------------------------------------------------------------


def _clip_with_audio(path: Path, width: int, height: int) -> Path:
    """Four frames of ``width x height`` video (libx264, 4:4:4 for odd sides) and a second of silent AAC audio."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=4)
        video.width, video.height, video.pix_fmt = width, height, "yuv444p"
        audio = container.add_stream("aac", rate=8000)
        rng = np.random.default_rng(0)
        for _ in range(4):
            frame = av.VideoFrame.from_ndarray(
                rng.integers(80, 256, (height, width, 3), dtype=np.uint8), format="rgb24"
            )
            container.mux(video.encode(frame))
        samples = av.AudioFrame.from_ndarray(
            np.zeros((1, 8000), np.float32), format="fltp", layout="mono"
        )
        samples.sample_rate = 8000
        container.mux(audio.encode(samples))
        container.mux(video.encode())
        container.mux(audio.encode())
    return path


def test_video_keeps_an_odd_size_and_its_audio(eid_cli, tmp_path):
    from eid.data.video import VideoReader

    src = _clip_with_audio(tmp_path / "clip.mp4", 33, 17)
    run = eid_cli(
        "dehaze", "--method", "dcp", "--device", "cpu", src, "--out", tmp_path / "out.mp4"
    )
    assert run.code == 0 and "Traceback" not in run.err
    notes = [line for line in run.err.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: out.mp4: the odd size 33x17 is kept in H.264 4:4:4, which some players (browsers) do not play"
    ]
    with VideoReader(tmp_path / "out.mp4") as reader:
        assert (reader.info.width, reader.info.height, reader.info.audio_streams) == (33, 17, 1)
        assert len(list(reader)) == 4


# --- 18: tifffile's own log lines ----------------------------------------------------------------------------


def _tiff_with_a_lost_page(path: Path) -> Path:
    """A 3-plane ZYX stack whose first page points to a second page past the end of the file."""
    import io
    import struct

    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer, np.zeros((3, 24, 32), np.uint8), photometric="minisblack", metadata={"axes": "ZYX"}
    )
    blob = bytearray(buffer.getvalue())
    first = struct.unpack("<I", blob[4:8])[0]
    after_tags = first + 2 + 12 * struct.unpack("<H", blob[first : first + 2])[0]
    blob[after_tags : after_tags + 4] = struct.pack("<I", len(blob) + 1000)
    path.write_bytes(bytes(blob))
    return path


def test_stack_reads_drop_tifffiles_log_lines(tmp_path, caplog):
    import logging

    from eid.data.stacks import Stack, stack_planes

    path = _tiff_with_a_lost_page(tmp_path / "s.tif")
    with caplog.at_level(logging.DEBUG, logger="tifffile"):
        assert stack_planes(path) == 3 and len(Stack.read(path)) == 3
    assert (
        not caplog.records
    )  # "invalid page offset" is tifffile's, said on top of eid's own handling


def test_a_tiff_without_pages_is_one_line_without_tifffiles_log(eid_cli, tmp_path):
    _png(tmp_path / "in" / "ok.png", 1)
    (tmp_path / "in" / "empty.tif").write_bytes(
        b"II*\x00" + b"\x00" * 40
    )  # a header pointing to no page
    run = eid_cli(
        "dehaze", "--method", "dcp", "--device", "cpu", tmp_path / "in", "--out", tmp_path / "out"
    )
    assert run.code == 1 and "Traceback" not in run.err and "contains no pages" not in run.err
    assert f"warning: skipped {tmp_path / 'in' / 'empty.tif'}: no image in the file" in run.err


def test_epochs_alone_replaces_a_presets_step_budget(asm_oracle, eid_cli, tmp_path, hazy_set):
    """The fast preset budgets 300 steps; ``--epochs 1`` on 4 images in batches of 2 runs 2 steps, not 300."""
    import yaml

    from eid.training.checkpoints import load_checkpoint

    run = eid_cli(
        "train",
        "--hazy",
        hazy_set,
        *asm_oracle,
        "--no-prior",
        "--out",
        tmp_path / "run",
        "--epochs",
        "1",
    )
    assert run.code == 0, run.err
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (config["epochs"], config["max_steps"]) == (1, None)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 2


def test_equal_weights_are_saved_as_identical_files(tmp_path):
    """The safetensors header is written with sorted keys, so a deterministic rebuild gives the same bytes."""
    import torch

    from eid.weights import load_weights, save_weights

    tensors = {"b": torch.arange(6.0).view(2, 3), "a": torch.ones(5, dtype=torch.float64)}
    blobs = {save_weights(tmp_path / f"w{i}", tensors, {"k": i})[0].read_bytes() for i in range(6)}
    assert len(blobs) == 1
    loaded, _ = load_weights(tmp_path / "w0")
    assert all(torch.equal(loaded[k], v) for k, v in tensors.items())


def test_a_crop_too_small_for_the_prior_is_one_line(eid_cli, tmp_path, hazy_set, asm_oracle):
    """The prior's PatchGAN needs 16 px (24 with instance norm): a smaller --crop is refused before the run folder.
    (The ``--crop`` given after the oracle's flags is the one the command takes.)"""
    args = (*asm_oracle, "--clear", hazy_set, "--max-steps", "1")
    run = eid_cli("train", "--hazy", hazy_set, *args, "--crop", "8", "--out", tmp_path / "run")
    line = run.err.strip().splitlines()[-1]
    assert run.code == 2 and "Traceback" not in run.err
    assert (
        line.startswith("error: crop 8 is too small")
        and "--crop 16" in line
        and "--no-prior" in line
    )
    assert not (tmp_path / "run").exists()
    run = eid_cli(
        "train",
        "--hazy",
        hazy_set,
        *args,
        "--crop",
        "16",
        "--preset",
        "microscopy",
        "--out",
        tmp_path / "r2",
    )
    assert run.code == 2 and "--crop 24" in run.err.strip().splitlines()[-1]
