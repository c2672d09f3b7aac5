"""``eid dehaze --backend onnx``: the exported dehazer through ONNX Runtime in the same runner (padding, tiling,
value scales, folders) gives torch's result; a missing onnxruntime or a bad combination is one line (issue 18)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from eid.config import config_to_dict
from eid.errors import EIDError
from eid.export import export_onnx
from eid.export.graph import smooth_image
from eid.inference import Dehazer, onnx_method
from eid.inference.backends import optional_import
from eid.models import DehazerConfig, DehazerNet
from eid.weights import save_weights


def norm_free_run(folder: Path) -> Path:
    """A run folder with a random grey dehazer without norms or circular padding, trained on 12-bit data."""
    torch.manual_seed(0)
    net = DehazerNet(
        DehazerConfig(channels=1, scales=2, width=4, norm="none", circular_padding=False)
    )
    save_weights(folder / "dehazer", net, {"model": config_to_dict(net.config), "white": 4095})
    return folder


def write_folder(folder: Path, channels: int) -> Path:
    """Smooth images of odd sizes: 8-bit PNG and 16-bit TIFF (one more for grey: a 5-plane z-stack)."""
    folder.mkdir()
    image = smooth_image(1, channels, 37, 50, seed=3)[0].permute(1, 2, 0).squeeze(-1).numpy()
    Image.fromarray((image * 255).round().astype(np.uint8)).save(folder / "a.png")
    tifffile.imwrite(
        folder / "b.tif",
        (
            smooth_image(1, channels, 45, 29, seed=4)[0].permute(1, 2, 0).squeeze(-1).numpy()
            * 65535
        ).astype(np.uint16),
    )
    if channels == 1:
        tifffile.imwrite(
            folder / "stack.tif",
            (smooth_image(5, 1, 33, 40, seed=5)[:, 0].numpy() * 65535).astype(np.uint16),
        )
    return folder


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)) if path.suffix == ".png" else tifffile.imread(path)


@pytest.mark.parametrize("name,channels", [("microscopy", 1), ("natural", 3)])
def test_onnx_backend_matches_torch_on_a_folder(eid_cli, tmp_path, name, channels):
    hazy = write_folder(tmp_path / "hazy", channels)
    for backend in ("torch", "onnx"):
        run = eid_cli(
            "dehaze",
            "--model",
            name,
            hazy,
            "--out",
            tmp_path / backend,
            "--backend",
            backend,
            "--device",
            "cpu",
        )
        assert run.code == 0, run.err
    onnx_file = export_onnx(
        name, tmp_path / "model.onnx"
    ).path  # a file written by eid export --onnx: the same
    assert (
        eid_cli(
            "dehaze", "--model", onnx_file, hazy, "--out", tmp_path / "file", "--backend", "onnx"
        ).code
        == 0
    )
    for path in sorted(hazy.iterdir()):
        assert np.array_equal(
            read(tmp_path / "file" / path.name), read(tmp_path / "onnx" / path.name)
        )
    for path in sorted(hazy.iterdir()):
        torch_out, onnx_out = (
            read(tmp_path / backend / path.name).astype(np.int64) for backend in ("torch", "onnx")
        )
        assert torch_out.shape == onnx_out.shape == read(path).shape
        levels = (
            1 if path.suffix == ".png" else 65535 * 2e-4
        )  # one 8-bit level; 2e-4 of the 16-bit range
        assert np.abs(torch_out - onnx_out).max() <= levels, path.name


def test_onnx_file_tiles_exactly_like_torch(tmp_path):
    """A norm-free, zero-padded model tiles exactly under both backends (overlap 2R), on the same scale."""
    run = norm_free_run(tmp_path / "run")
    path = export_onnx(run, tmp_path / "tiny.onnx").path
    image = (smooth_image(1, 1, 150, 170, seed=6)[0, 0].numpy() * 4095).astype(
        np.uint16
    )  # 12-bit data, white 4095
    by_torch = Dehazer.load(run, device="cpu", tile=64, overlap=24)(image)
    by_onnx = Dehazer(onnx_method(path), device="cpu", tile=64, overlap=24)  # 24 >= 2R: exact
    assert by_onnx.white == 4095.0 and by_onnx.plan.exact and by_onnx.plan.tile == 64
    assert np.abs(by_onnx(image).astype(np.int64) - by_torch.astype(np.int64)).max() <= 1
    untiled = Dehazer(onnx_method(path), device="cpu", tile=None)(
        torch.from_numpy(image.astype(np.float32) / 4095)
    )
    assert (
        float((untiled - torch.from_numpy(by_onnx(image).astype(np.float32) / 4095)).abs().max())
        < 1e-3
    )


def test_onnx_backend_refusals_are_one_line(eid_cli, tmp_path, monkeypatch):
    hazy = write_folder(tmp_path / "hazy", 3)
    out = tmp_path / "out"
    assert (
        "--backend onnx runs an EID dehazer"
        in eid_cli(
            "dehaze", "--method", "dcp", hazy, "--out", out, "--backend", "onnx"
        ).error_line()
    )
    assert (
        "add --backend onnx"
        in eid_cli(
            "dehaze", "--model", tmp_path / "m.onnx", hazy, "--out", out, "--backend", "torch"
        ).error_line()
    )
    assert (
        "unknown --backend 'tf'"
        in eid_cli(
            "dehaze", "--model", "natural", hazy, "--out", out, "--backend", "tf"
        ).error_line()
    )
    no_file = eid_cli(
        "dehaze", "--model", tmp_path / "m.onnx", hazy, "--out", out, "--backend", "onnx"
    ).error_line()
    assert "no such ONNX file" in no_file
    (tmp_path / "bad.onnx").write_bytes(b"not a graph")
    assert (
        "not a readable ONNX model"
        in eid_cli(
            "dehaze", "--model", tmp_path / "bad.onnx", hazy, "--out", out, "--backend", "onnx"
        ).error_line()
    )
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    line = eid_cli(
        "dehaze", "--model", "natural", hazy, "--out", out, "--backend", "onnx"
    ).error_line()
    assert "onnxruntime is not installed" in line and "install the export extra" in line
    with pytest.raises(
        EIDError, match=r"install the export extra: pip install 'eid-dehaze\[export\]'$"
    ):
        optional_import("onnxruntime")
