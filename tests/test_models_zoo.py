"""Shipped models (eid.zoo), model cards (MODEL.md) and fine-tuning (--init-from): tiny runs, no network."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from eid.cli import app
from eid.data.io import read_image, write_image
from eid.errors import EIDError
from eid.zoo import MODELS_DIR, model_summary, resolve_model, shipped_models

SHIPPED = ("microscopy", "natural")
TINY = ["--crop", "16", "--max-steps", "1", "--batch-size", "2"]


def _images(folder: Path, channels: int, seed: int, n: int = 3) -> Path:
    rng = torch.Generator().manual_seed(seed)
    for i in range(n):
        write_image(folder / f"im{i}.png", torch.rand(channels, 40, 48, generator=rng))
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny colour stage-1 run and the stage-2 run trained through it."""
    root = tmp_path_factory.mktemp("zoo")
    clear, hazy = _images(root / "clear", 3, 0), _images(root / "hazy", 3, 1)
    stage1 = ["train-operator", "--clear", clear, "--hazy", hazy, "--out", root / "op", *TINY]
    assert CliRunner().invoke(app, list(map(str, stage1))).exit_code == 0
    stage2 = [
        "train",
        "--hazy",
        hazy,
        "--operator",
        root / "op",
        "--out",
        root / "eid",
        "--no-prior",
        *TINY,
    ]
    result = CliRunner().invoke(app, list(map(str, stage2)))
    assert result.exit_code == 0, result.output
    return {"root": root, "clear": clear, "hazy": hazy, "op": root / "op", "eid": root / "eid"}


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test of the shipped models touched the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_a_user_runs_cards_state_its_data_recipe_steps_and_unknown_licences(
    runs: dict[str, Path],
) -> None:
    op_card = (runs["op"] / "MODEL.md").read_text()
    assert "haze operator (stage 1)" in op_card and "preset: `fast`" in op_card
    assert f"{runs['clear'].resolve()} (3 images; C x H x W: 3x40x48)" in op_card
    assert "read scale (`white`): dtype" in op_card and "1 training batches" in op_card
    assert "model.kind=scattering" in op_card and "training data: Unknown" in op_card
    card = (runs["eid"] / "MODEL.md").read_text()
    assert (
        "EID dehazer (stage 2)" in card
        and f"stage 1 --hazy`: {runs['hazy'].resolve()} (3 images" in card
    )
    assert (
        "stage 1 training: 1 training batches" in card and "- training: 1 training batches" in card
    )
    assert (
        "dehazer: model.channels=3, model.input=hazy, model.scales=3" in card
        and "model.unshuffle=4, model.head=affine, model.norm=group" in card
        and "No validation figures" in card
        and "weights: Unknown" in card
    )
    assert model_summary(runs["eid"]).startswith(
        "EID dehazer (stage 2), preset fast, trained on 3 images"
    )


def test_eid_models_lists_the_shipped_models_with_their_summaries(eid_cli) -> None:
    run = eid_cli("models")
    assert run.code == 0
    listed = dict(line.split("\t")[:2] for line in run.out.splitlines())
    assert set(listed) == set(SHIPPED) and all(listed[name] for name in SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_are_small_carry_a_card_with_licences_and_load_by_name(name: str) -> None:
    from eid.inference import Dehazer

    folder = resolve_model(name)
    assert folder == MODELS_DIR / name and sum(f.stat().st_size for f in folder.iterdir()) < 5e6
    card = (folder / "MODEL.md").read_text()
    assert "## Licence" in card and "Cholec80" in card and "built from commit `" in card
    channels = 1 if name == "microscopy" else 3
    image = torch.rand(channels, 37, 53, generator=torch.Generator().manual_seed(0))
    out = Dehazer.load(folder, device="cpu")(image)
    assert out.shape == image.shape and torch.isfinite(out).all()


VEIL_SIGMA = 0.09375
"""The veil blur of the microscopy starter's build data (6 px on 64x64; ``scripts/build_models.py``)."""


def _held_out(name: str, shared: Path | None) -> torch.Tensor:
    """Clear crops the model never saw (the held-out part of its build data, ``scripts/build_models.py``), ``(N,C,H,W)``.

    microscopy: the 16 crops of columns 384-511 on the image's one scale; natural: coffee's right third.
    """
    if name == "microscopy":
        import tifffile

        image = torch.from_numpy(
            tifffile.imread(shared / "nuclei" / "img2d.tif").astype("float32")
        )[None]
        image = image / image.max()
        return torch.stack(
            [
                image[:, i : i + 64, j : j + 64]
                for i in range(0, 512, 64)
                for j in range(384, 512, 64)
            ]
        )
    from eid.demo_data import bundled_image

    photo = bundled_image("coffee", 192)
    return photo[None, :, :96, photo.shape[-1] * 2 // 3 :][..., :96]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_raise_psnr_on_held_out_synthetic_hazy_crops(
    name: str, request: pytest.FixtureRequest
) -> None:
    """Hazed in memory as the build hazes them (microscopy: the veil on the image's one scale), with another seed."""
    from eid.baselines.dcp import DarkChannelPrior
    from eid.inference import Dehazer
    from eid.metrics.paired import psnr
    from eid.synth import SynthConfig, synthesize

    clear = _held_out(
        name, request.getfixturevalue("shared_data") if name == "microscopy" else None
    )
    haze = (
        SynthConfig(model="veil", veil_sigma=VEIL_SIGMA)
        if name == "microscopy"
        else SynthConfig(depth_range=(0.3, 1.5), beta=(0.4, 0.9), airlight=(0.7, 0.9))
    )
    hazy = torch.stack([synthesize(x, haze, seed=7 + i)[0] for i, x in enumerate(clear)])
    dehazer = Dehazer.load(resolve_model(name), device="cpu")
    scores = {
        "hazy": psnr(hazy, clear).mean().item(),
        "eid": psnr(torch.stack([dehazer(y) for y in hazy]), clear).mean().item(),
        "dcp": psnr(DarkChannelPrior()(hazy).clamp(0, 1), clear).mean().item(),
    }
    assert scores["eid"] > scores["hazy"] + 1.0, scores
    if name == "microscopy":
        assert scores["eid"] > scores["dcp"] + 1.0, scores


def _card_scores(name: str) -> dict[str, float]:
    """The held-out PSNR figures of a shipped model's card (its Validation section, measured by the build)."""
    card = (MODELS_DIR / name / "MODEL.md").read_text()
    return {
        method: float(value)
        for method, value in re.findall(r"^- held-out (.+) PSNR: ([0-9.]+)$", card, re.MULTILINE)
    }


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_cards_record_a_psnr_gain_on_the_held_out_crops_of_the_build(name: str) -> None:
    """The build's own held-out figures (``eid dehaze`` + ``eid evaluate`` on files): EID above the hazy input, and for
    microscopy above DCP too (its crops used to be hazed at each crop's own maximum, and EID lost 5 dB)."""
    scores = _card_scores(name)
    assert scores["EID"] > scores["hazy input"], scores
    if name == "microscopy":
        assert scores["EID"] > scores["DCP"], scores


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_name_no_folder_of_the_build_machine(name: str) -> None:
    """The build's data and run folders are recorded as ``<build_models.py --work>/...`` (informational), never as an
    absolute path that a user's run could resolve."""
    import yaml

    folder = MODELS_DIR / name
    for file in folder.glob("*.yaml"):
        strings = _strings(yaml.safe_load(file.read_text()))
        assert not [s for s in strings if Path(s).is_absolute()], file
    card = (folder / "MODEL.md").read_text()
    assert "<build_models.py --work>/" in card and "/tmp/" not in card


def test_a_shipped_operator_needs_the_users_clear_images_for_the_prior(
    tmp_path: Path, eid_cli
) -> None:
    """``eid train --operator microscopy`` never looks for the build's clear crops: without ``--clear`` it is one line
    naming the remedies; with ``--clear`` (and ``--init-from``) it trains from the package's files alone."""
    grey = _images(tmp_path / "grey", 1, 4)
    refused = eid_cli(
        "train",
        "--hazy",
        grey,
        "--operator",
        "microscopy",
        "--out",
        tmp_path / "no",
        "--preset",
        "microscopy",
        *TINY,
    )
    line = refused.error_line()
    assert (
        "<build_models.py --work>/microscopy/data/clear" in line
        and "--clear DIR" in line
        and "--no-prior" in line
    )
    assert not (tmp_path / "no").exists()
    run = eid_cli("train", "--hazy", grey, "--operator", "microscopy", "--clear", grey, "--out", tmp_path / "ft",
                  "--preset", "microscopy", "--crop", "32", "--max-steps", "1", "--batch-size", "2",
                  "--init-from", "microscopy")  # fmt: skip  # crop 32: the prior's discriminator needs 2x2 at its end
    assert run.code == 0, run.err
    import yaml

    config = yaml.safe_load((tmp_path / "ft" / "dehazer.yaml").read_text())
    assert config["clear"] == [str(grey.resolve())] and config["operator"] == str(
        MODELS_DIR / "microscopy"
    )
    card = (
        tmp_path / "ft" / "MODEL.md"
    ).read_text()  # stage 1 is the shipped model's stage 1, not its stage 2
    shipped = (MODELS_DIR / "microscopy" / "MODEL.md").read_text()
    stage1 = next(line for line in shipped.splitlines() if line.startswith("- stage 1 training: "))
    assert stage1 in card.splitlines()


def test_resolve_model_prefers_an_existing_folder_and_names_the_shipped_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "microscopy").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_model("microscopy") == Path("microscopy") and set(SHIPPED) <= set(
        shipped_models()
    )
    with pytest.raises(
        EIDError,
        match="no such folder or shipped model; give a run folder or one of: microscopy, natural",
    ):
        resolve_model("nope")


def test_init_from_starts_from_the_sources_weights(runs: dict[str, Path], tmp_path: Path) -> None:
    from eid.config import config_to_dict, load_config
    from eid.run_layout import OPERATOR
    from eid.training.init_from import load_initial_weights, operator_networks
    from eid.training.operator import OperatorConfig, operator_module
    from eid.weights import load_weights

    cfg = load_config(OperatorConfig, "operator", preset="fast")
    module = operator_module(cfg)
    load_initial_weights(
        operator_networks(module), runs["op"], OPERATOR, config_to_dict(cfg)["model"], "operator"
    )
    saved, _ = load_weights(runs["op"] / OPERATOR)
    assert all(torch.equal(v, saved[k]) for k, v in operator_networks(module).state_dict().items())


def test_init_from_fine_tunes_both_stages_on_the_users_data(runs: dict[str, Path], eid_cli) -> None:
    root = runs["root"]
    stage1 = eid_cli("train-operator", "--clear", runs["clear"], "--hazy", runs["hazy"], "--out", root / "op2", *TINY,
                     "--init-from", runs["op"])  # fmt: skip
    assert stage1.code == 0, stage1.err
    assert (
        f"started from (`--init-from`): {runs['op'].resolve()}"
        in (root / "op2" / "MODEL.md").read_text()
    )
    stage2 = eid_cli("train", "--hazy", runs["hazy"], "--operator", root / "op2", "--out", root / "eid2", "--no-prior",
                     *TINY, "--init-from", runs["eid"])  # fmt: skip
    assert stage2.code == 0, stage2.err


def test_fine_tuning_the_natural_starter_pools_with_the_users_airlight(
    tmp_path: Path, eid_cli
) -> None:
    """The starter reads each photo's own airlight (its training set is synthetic); a run fine-tuned from it with the
    natural preset pools with the mean airlight of the user's hazy images, estimated at the start."""
    from eid.baselines.dcp import DarkChannelPrior
    from eid.config import read_yaml
    from eid.weights import load_weights

    starter = resolve_model("natural")
    assert read_yaml(starter / "dehazer.yaml")["model"]["dcp_set_weight"] == 0
    assert "dcp.set_airlight" not in load_weights(starter / "dehazer")[0]
    hazy = _images(tmp_path / "hazy", 3, 5)
    run = eid_cli("train", "--hazy", hazy, "--out", tmp_path / "run", "--preset", "natural", "--init-from", "natural",
                  "--crop", "32", "--max-steps", "1", "--batch-size", "2")  # fmt: skip
    assert run.code == 0, run.err
    assert read_yaml(tmp_path / "run" / "dehazer.yaml")["model"]["dcp_set_weight"] == 0.5
    dcp = DarkChannelPrior(grey_airlight=True, set_weight=1.0)
    dcp.fit_set_airlight(read_image(path)[0] for path in sorted(hazy.iterdir()))
    state, _ = load_weights(tmp_path / "run" / "dehazer")
    torch.testing.assert_close(state["dcp.set_airlight"], dcp.set_airlight)


def test_init_from_an_incompatible_model_is_one_line_naming_both(
    runs: dict[str, Path], eid_cli
) -> None:
    root = runs["root"]
    stage1 = eid_cli("train-operator", "--clear", runs["clear"], "--hazy", runs["hazy"], "--out", root / "bad1", *TINY,
                     "--init-from", "microscopy")  # fmt: skip
    line = stage1.error_line()
    assert (
        stage1.code == 2 and "microscopy" in line and "channels=1" in line and "channels=3" in line
    )
    assert not (root / "bad1").exists()
    grey = _images(root / "grey", 1, 2)
    stage2 = eid_cli("train", "--hazy", grey, "--operator", "asm", "--asm-t", "0.5", "--asm-a", "0.8", "--out",
                     root / "bad2", *TINY, "--init-from", runs["eid"])  # fmt: skip
    line = stage2.error_line()
    assert str(runs["eid"].resolve()) in line and "channels=3" in line and "channels=1" in line
    assert (
        "--resume"
        in eid_cli(
            "train", "--hazy", grey, "--out", runs["eid"], "--resume", "--init-from", "natural"
        ).error_line()
    )


def test_dehaze_by_name_in_the_cli_and_the_api(tmp_path: Path, eid_cli) -> None:
    import eid

    image = torch.rand(3, 24, 40, generator=torch.Generator().manual_seed(3))
    write_image(tmp_path / "in" / "a.png", image)
    run = eid_cli("dehaze", "--model", "natural", tmp_path / "in", "--out", tmp_path / "out")
    assert run.code == 0, run.err
    assert (tmp_path / "out" / "a.png").is_file()
    assert eid.Dehazer.from_pretrained("natural", device="cpu")(image).shape == image.shape


def test_a_dehazer_saved_before_a_model_field_existed_counts_as_its_default(tmp_path: Path) -> None:
    """A ``dehazer.yaml`` written before ``unshuffle`` and ``head`` means the full-resolution residual UNet."""
    import yaml

    from eid.config import config_to_dict
    from eid.models import DehazerConfig
    from eid.run_layout import DEHAZER
    from eid.training.init_from import check_model, source_model

    old = {"channels": 1, "input": "hazy", "scales": 3, "width": 16}
    (tmp_path / "dehazer.yaml").write_text(yaml.safe_dump({"model": old}))
    (tmp_path / "dehazer.safetensors").write_bytes(b"")
    model = config_to_dict(DehazerConfig(channels=1))
    assert source_model(tmp_path, DEHAZER) == model
    check_model(tmp_path, DEHAZER, model, "dehazer")  # the same architecture: accepted
    with pytest.raises(
        EIDError,
        match=r"head=residual, unshuffle=1\) does not fit this run's \(head=affine, unshuffle=4",
    ):
        check_model(tmp_path, DEHAZER, {**model, "head": "affine", "unshuffle": 4}, "dehazer")
