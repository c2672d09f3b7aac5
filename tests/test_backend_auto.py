"""``eid dehaze --backend auto`` (the default): ONNX Runtime only where it gives torch's result, torch for tiled
images of a group-norm model, and a cache that exports a run once (``eid.export.cache``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from eid.config import config_to_dict
from eid.errors import EIDError
from eid.export import cache
from eid.export.graph import smooth_image
from eid.export.runtime import backend_method
from eid.inference import Dehazer, build_method, onnx_method, precision
from eid.inference.backends import choose_backend
from eid.models import DehazerConfig, DehazerNet
from eid.weights import save_weights

CPU = torch.device("cpu")


def tiny_run(folder: Path, norm: str, seed: int = 0) -> Path:
    """A run folder with a random grey 2-scale dehazer; ``norm: none`` is zero-padded (exact tiling)."""
    torch.manual_seed(seed)
    net = DehazerNet(
        DehazerConfig(channels=1, scales=2, width=8, norm=norm, circular_padding=norm != "none")
    )
    save_weights(folder / "dehazer", net, {"model": config_to_dict(net.config)})
    return folder


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files the cache exports to, as they are exported (a spy on ``export_onnx``)."""
    calls: list[Path] = []
    real = cache.export_onnx

    def spy(run: str | Path, out: str | Path, **kwargs: object):
        calls.append(Path(out))
        return real(run, out, **kwargs)

    monkeypatch.setattr(cache, "export_onnx", spy)
    return calls


def auto(run: Path, **options: object) -> str:
    return choose_backend("auto", method="eid", model=run, device=CPU, **options).name


def test_auto_picks_onnx_only_on_a_cpu_in_fp32_with_onnxruntime(tmp_path, monkeypatch):
    run = tiny_run(tmp_path / "run", "none")
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    assert auto(run) == auto(run, precision="fp32") == "onnx"
    assert auto(tmp_path / "dehazer.onnx", precision="fp32") == "onnx"
    assert auto(run, operator=tmp_path / "op") == "torch"
    assert auto(run, precision="bf16") == "torch"
    assert (
        choose_backend("auto", method="eid", model=run, device=torch.device("cuda")).name == "torch"
    )
    assert choose_backend("auto", method="dcp", model=None, device=CPU).name == "torch"
    assert choose_backend("onnx", method="eid", model=run, device=CPU).name == "onnx"
    # a CPU with avx512_bf16: --precision auto is torch's bf16
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert auto(run) == "torch" and auto(run, precision="fp32") == "onnx"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    choice = choose_backend("auto", method="eid", model=run, device=CPU, precision="fp32")
    assert choice.name == "torch" and "onnxruntime is not installed" in choice.reason
    with pytest.raises(EIDError, match="unknown --backend 'tf'"):
        choose_backend("tf", method="eid", model=run, device=CPU)


def test_a_norm_free_model_runs_on_onnx_alone(tmp_path, cache_dir):
    method, choice = backend_method(
        "auto", "eid", model=tiny_run(tmp_path / "run", "none"), device="cpu", precision="fp32"
    )
    assert choice == ("onnx", "CPU, fp32") and method.norm_fn is None
    assert method.name.startswith("eid (onnx")


def test_a_group_norm_model_tiled_gets_torchs_result_untiled_onnxs(tmp_path, cache_dir):
    run = tiny_run(tmp_path / "run", "group")
    method, choice = backend_method("auto", "eid", model=run, device="cpu", precision="fp32")
    assert choice.name == "onnx" and "run on torch" in choice.reason and method.norm_fn is not None
    per_tile, _ = backend_method(
        "auto", "eid", model=run, whole_image_norms=False
    )  # --tile-norm tile
    assert per_tile.norm_fn is None
    onnx_alone = onnx_method(cache.cached_onnx_path(run))
    options = {"device": "cpu", "precision": "fp32", "tile": 128, "overlap": 32}
    runners = {
        "auto": Dehazer(method, **options),
        "torch": Dehazer(build_method("eid", model=run, device="cpu"), **options),
        "onnx": Dehazer(onnx_alone, **options),
    }
    big = smooth_image(1, 1, 300, 280, seed=1)  # above 2 tiles: tiled with a down-scaled reference
    out = {name: runner.run(big) for name, runner in runners.items()}
    assert float((out["auto"] - out["torch"]).abs().max()) < 1e-5
    # ONNX Runtime alone normalises each tile with its own statistics: what auto avoids
    assert float((out["onnx"] - out["torch"]).abs().max()) > 1e-3
    # within 2 tiles: one whole-image forward, on ONNX Runtime
    small = smooth_image(1, 1, 200, 120, seed=2)
    untiled = {
        "onnx": Dehazer(onnx_alone, device="cpu", tile=None),
        "torch": Dehazer(build_method("eid", model=run, device="cpu"), device="cpu", tile=None),
    }
    assert torch.equal(runners["auto"].run(small), untiled["onnx"].run(small))
    assert float((untiled["onnx"].run(small) - untiled["torch"].run(small)).abs().max()) < 1e-4


@pytest.mark.parametrize("tta", [(), ("--tta",)])
def test_cli_auto_equals_torch_on_an_untiled_image(eid_cli, tmp_path, cache_dir, tta):
    """Float TIFF in and out, so that the comparison is not rounded to 8 bits; test-time averaging included."""
    run = tiny_run(tmp_path / "run", "group")
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "a.tif", smooth_image(1, 1, 60, 84, seed=3)[0, 0].numpy())
    outputs, lines = {}, {}
    for backend in ("auto", "torch"):
        result = eid_cli(
            "dehaze", "--model", run, tmp_path / "in", "--out", tmp_path / backend, "--device", "cpu",
            *(("--backend", backend) if backend == "torch" else ()), *tta,  # auto: the default
        )  # fmt: skip
        assert result.code == 0, result.err
        outputs[backend] = tifffile.imread(tmp_path / backend / "a.tif")
        lines[backend] = [line for line in result.err.splitlines() if line.startswith("backend:")]
    assert lines == {"auto": [lines["auto"][0]], "torch": []}
    assert lines["auto"][0].startswith("backend: onnx (auto: CPU, fp32")
    assert outputs["auto"].dtype == np.float32 and outputs["auto"].shape == (60, 84)
    assert np.abs(outputs["auto"] - outputs["torch"]).max() < 1e-4


def test_the_second_run_reads_the_cache_and_a_corrupt_file_is_replaced(
    tmp_path, cache_dir, exports
):
    run = tiny_run(tmp_path / "run", "none")
    for backend in ("auto", "onnx", "auto"):  # an explicit --backend onnx uses the same cache
        backend_method(backend, "eid", model=run, device="cpu", precision="fp32")
    (path,) = cache_dir.joinpath("onnx").iterdir()
    assert exports == [path] and path.name == f"{cache.cache_key(run)}.onnx"
    assert len(path.stem) == 64  # sha256
    y = smooth_image(1, 1, 32, 32)
    expected = onnx_method(path)(y)
    for damage in (b"not a graph", path.read_bytes()[:1000]):  # garbage, then a truncated file
        path.write_bytes(damage)
        method, choice = backend_method("auto", "eid", model=run, device="cpu", precision="fp32")
        assert choice.name == "onnx" and torch.equal(method(y), expected)
    assert exports == [path] * 3 and [p.name for p in path.parent.iterdir()] == [path.name]


def test_the_key_follows_the_weights_and_the_metadata(tmp_path, cache_dir, monkeypatch):
    run = tiny_run(tmp_path / "run", "none")
    before = cache.cache_key(run)
    assert cache.cache_key(run) == before
    monkeypatch.setattr(cache, "METADATA_KEYS", (*cache.METADATA_KEYS, "a_new_key"))
    assert cache.cache_key(run) != before  # an export that writes more metadata is re-exported
    monkeypatch.undo()
    assert cache.cache_key(tiny_run(tmp_path / "run", "none", seed=1)) != before  # retrained


def test_an_unwritable_cache_falls_back_to_a_temporary_export(tmp_path, monkeypatch, exports):
    # a file where the cache folder should be (a read-only mode would not stop root)
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "not-a-folder"))
    method, choice = backend_method(
        "auto", "eid", model=tiny_run(tmp_path / "run", "none"), device="cpu"
    )
    assert choice.name == "onnx" and method(smooth_image(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    # the cache file, refused, then a temporary one, gone once the session is loaded
    assert len(exports) == 2 and not exports[1].exists()


def test_the_cache_folder_is_eid_cache_dir_else_xdg_else_home(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(cache.CACHE_ENV)
    assert cache.cache_dir() == tmp_path / "xdg" / "eid"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "eid"


def test_a_model_that_does_not_export_runs_on_torch(tmp_path, cache_dir, monkeypatch):
    def refuse(run: str | Path, out: str | Path, **kwargs: object):
        raise EIDError(f"{run}: a dehazer with input: pinv could not be exported to ONNX")

    monkeypatch.setattr(cache, "export_onnx", refuse)
    method, choice = backend_method(
        "auto", "eid", model=tiny_run(tmp_path / "run", "none"), device="cpu"
    )
    assert choice.name == "torch" and "export failed" in choice.reason and method.name == "eid"
    with pytest.raises(EIDError, match="could not be exported"):  # asked for explicitly: the error
        backend_method("onnx", "eid", model=tmp_path / "run", device="cpu")


def test_a_dcp_input_model_is_tiled_on_torch_over_dcp_in_tiles(tmp_path, cache_dir):
    """The export holds DCP whole (not tileable); auto gives tiled images torch's DCP in tiles and network."""
    torch.manual_seed(0)
    config = DehazerConfig(channels=3, scales=2, width=8, input="dcp", unshuffle=2, head="affine")
    net = DehazerNet(config)
    torch.nn.init.normal_(net.unet.Conv_1x1.weight, std=0.1)
    run = tmp_path / "run"
    save_weights(run / "dehazer", net, {"model": config_to_dict(config)})
    method, choice = backend_method("auto", "eid", model=run, device="cpu", precision="fp32")
    assert choice.name == "onnx" and "DCP input in tiles" in choice.reason
    assert method.tileable and method.prepare is not None
    onnx_alone = onnx_method(cache.cached_onnx_path(run))
    assert not onnx_alone.tileable and onnx_alone.prepare is None
    options = {"device": "cpu", "precision": "fp32", "tile": 256}
    big = smooth_image(1, 3, 600, 560, seed=1)
    auto = Dehazer(method, **options)
    assert auto.plan.tile == 256 < big.shape[-1] and auto.plan.exact  # tiled, exactly
    whole = Dehazer(
        onnx_alone, **options
    )  # the export alone is never tiled: one forward on ONNX Runtime
    assert whole.plan.tile is None
    out = {
        "auto": auto.run(big),
        "torch": Dehazer(build_method("eid", model=run, device="cpu"), **options).run(big),
        "whole": whole.run(big),
    }
    assert float((out["auto"] - out["torch"]).abs().max()) < 1e-5
    assert float((out["auto"] - out["whole"]).abs().max()) < 1e-4
