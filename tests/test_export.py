"""``eid export``: ONNX graphs that agree with torch, input preparation included, and a bioimage.io package that
validates offline (issues 18 and 21)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from eid.config import config_to_dict
from eid.errors import EIDError
from eid.export import METADATA_KEYS, export_bioimageio, export_onnx
from eid.export.graph import smooth_image
from eid.inference.backends import onnx_method
from eid.models import DehazerConfig, DehazerNet
from eid.models.dehazer_files import load_dehazer
from eid.weights import save_weights
from eid.zoo import resolve_model

TOLERANCE = 1e-4


def random_run(folder: Path, **model: object) -> Path:
    """A stage-2 run folder with a random-weight dehazer (seeded)."""
    torch.manual_seed(0)
    net = DehazerNet(DehazerConfig(**model))  # type: ignore[arg-type]
    save_weights(
        folder / "dehazer",
        net,
        {"model": config_to_dict(net.config), "group": "rot90", "white": 4095},
    )
    return folder


def onnx_output(path: Path, y: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"input": y.numpy()})[0])


def assert_matches_torch(
    run: Path | str, path: Path, sizes: tuple[tuple[int, int, int], ...]
) -> None:
    """ONNX Runtime against the dehazer as ``eid`` loads it, at sizes other than the export's example (smooth
    images: on pixel noise DCP's airlight pick among equal dark-channel values may differ, see docs/export.md)."""
    net, physics, _ = load_dehazer(resolve_model(run))
    for seed, (batch, h, w) in enumerate(sizes, start=1):
        y = smooth_image(batch, net.config.channels, h, w, seed=seed)
        with torch.no_grad():
            expected = net(y, physics)
        assert float((onnx_output(path, y) - expected).abs().max()) < TOLERANCE, (run, batch, h, w)


@pytest.mark.parametrize(
    "name", ["microscopy", "natural"]
)  # input: hazy (group norm) and input: dcp
def test_shipped_models_export_with_dynamic_sizes_and_agree_with_torch(name, tmp_path):
    result = export_onnx(name, tmp_path / f"{name}.onnx")
    assert result.exporter == "torchscript" and result.max_abs_diff < TOLERANCE
    # sides in multiples of the graph's (16: space-to-depth 4 then two poolings); the runner pads others
    assert_matches_torch(name, result.path, ((1, 48, 80), (3, 96, 144)))
    meta = ort.InferenceSession(str(result.path)).get_modelmeta().custom_metadata_map
    assert {f"eid.{key}" for key in METADATA_KEYS} <= set(meta)
    assert meta["eid.input"] == ("dcp" if name == "natural" else "hazy")
    assert meta["eid.tileable"] == ("0" if name == "natural" else "1")
    assert meta["eid.working_scale"] == "4"  # both presets' space-to-depth


def test_random_norm_free_model_exports_its_radius_and_scale(tmp_path):
    run = random_run(
        tmp_path / "run",
        channels=3,
        scales=2,
        width=4,
        norm="none",
        circular_padding=False,
        unshuffle=2,
    )
    result = export_onnx(run, tmp_path / "tiny.onnx")
    assert_matches_torch(run, result.path, ((2, 36, 20),))
    meta = ort.InferenceSession(str(result.path)).get_modelmeta().custom_metadata_map
    net, _, _ = load_dehazer(run)
    assert meta["eid.receptive_radius"] == str(net.receptive_radius) and meta["eid.multiple"] == "4"
    assert (
        meta["eid.white"] == "4095"
        and meta["eid.group"] == "rot90"
        and meta["eid.working_scale"] == "2"
    )
    assert (
        onnx_method(result.path).working_scale == 2
    )  # so --backend onnx picks the same default tile


@pytest.mark.parametrize("unshuffle", [2, 4])  # the endoscopy and the fast presets
def test_the_default_architecture_exports(tmp_path, unshuffle):
    """Space-to-depth, group norm, circular padding and the affine head's padded bilinear field (the presets'
    dehazer), with an output layer that acts (it starts at zero)."""
    torch.manual_seed(0)
    net = DehazerNet(
        DehazerConfig(channels=3, scales=2, width=4, unshuffle=unshuffle, head="affine")
    )
    torch.nn.init.normal_(net.unet.Conv_1x1.weight, std=0.1)
    save_weights(tmp_path / "run" / "dehazer", net, {"model": config_to_dict(net.config)})
    result = export_onnx(tmp_path / "run", tmp_path / "default.onnx")
    assert_matches_torch(
        tmp_path / "run", result.path, ((1, 40, 56), (2, 48, 32))
    )  # multiples of 8


@pytest.mark.slow  # the torch.export-based exporter takes 10-20 s
def test_pinv_dehazer_exports_with_its_operator(tmp_path):
    run = random_run(tmp_path / "run", channels=1, scales=2, width=4, input="pinv")
    for name in (
        "operator.safetensors",
        "operator.yaml",
    ):  # the shipped scattering operator (veil airlight)
        shutil.copy(resolve_model("microscopy") / name, run / name)
    result = export_onnx(run, tmp_path / "pinv.onnx")
    assert result.exporter == "dynamo"
    assert_matches_torch(
        run, result.path, ((2, 40, 56),)
    )  # the operator's veil grid: sides in multiples of 8
    assert (
        ort.InferenceSession(str(result.path)).get_modelmeta().custom_metadata_map["eid.multiple"]
        == "8"
    )


def test_an_exporter_failure_is_one_line_naming_the_mode(tmp_path, monkeypatch):
    from eid.export import to_onnx

    def unsupported(*_: object) -> None:
        raise RuntimeError("Unsupported: ONNX export of operator frobnicate\n(long trace)")

    monkeypatch.setattr(to_onnx, "_graph", unsupported)
    with pytest.raises(
        EIDError,
        match=r"input: dcp could not be exported to ONNX \(Unsupported.*frobnicate\); dehaze it with --backend torch$",
    ):
        export_onnx("natural", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
    monkeypatch.undo()
    monkeypatch.setattr(
        to_onnx, "_check", lambda *_: 0.5
    )  # a graph that disagrees with torch is not kept
    with pytest.raises(
        EIDError, match=r"differs from torch by 0\.5 \(> 0\.0001\); dehaze with --backend torch$"
    ):
        export_onnx("microscopy", tmp_path / "y.onnx")
    assert list(tmp_path.iterdir()) == []


def test_cli_export_writes_onnx_and_refuses_bad_requests_in_one_line(eid_cli, tmp_path):
    out = tmp_path / "m.onnx"
    run = eid_cli("export", "--onnx", "microscopy", out)
    assert run.code == 0 and out.is_file() and "max abs diff" in run.err, run.err
    assert "exists; add --overwrite" in eid_cli("export", "--onnx", "microscopy", out).error_line()
    assert (
        "exactly one of --onnx" in eid_cli("export", "microscopy", tmp_path / "a.onnx").error_line()
    )
    assert (
        "writes a .zip file"
        in eid_cli("export", "--bioimageio", "microscopy", tmp_path / "a.onnx").error_line()
    )
    assert (
        "no such folder or shipped model"
        in eid_cli("export", "--onnx", tmp_path / "nope", tmp_path / "b.onnx").error_line()
    )


def test_bioimageio_package_of_the_microscopy_model_validates_offline(tmp_path, monkeypatch):
    spec = pytest.importorskip("bioimageio.spec")
    import httpx

    def no_network(*args: object, **_: object) -> None:
        raise AssertionError(f"network request during export or validation: {args}")

    monkeypatch.setattr(httpx, "request", no_network)
    monkeypatch.setattr(httpx, "stream", no_network)
    out = export_bioimageio("microscopy", tmp_path / "microscopy.zip")
    names = set(zipfile.ZipFile(out).namelist())
    assert {
        "rdf.yaml",
        "weights.onnx",
        "weights.pt",
        "test_input.npy",
        "test_output.npy",
        "README.md",
    } <= names
    descr = spec.load_description(out, perform_io_checks=True)
    assert descr.validation_summary.status == "valid-format", descr.validation_summary.format()
    assert str(descr.license) == "BSD-3-Clause" and "10.48550/arXiv.2601.13986" in str(
        descr.cite[0].doi
    )
    with zipfile.ZipFile(
        out
    ) as package:  # the test tensors reproduce through the package's ONNX weights
        package.extractall(tmp_path / "unpacked")
    unpacked = tmp_path / "unpacked"
    assert "## Validation" in (unpacked / "README.md").read_text()  # the run's model card
    raw, expected = (np.load(unpacked / f"test_{kind}.npy") for kind in ("input", "output"))
    got = (
        onnx_output(
            unpacked / "weights.onnx",
            torch.from_numpy(np.clip(raw / 255.0, 0, 1).astype(np.float32)),
        )
        * 255.0
    )
    assert float(np.abs(got.numpy() - expected).max()) < 255 * TOLERANCE
