"""The config defaults are the ``fast`` presets; ``paper`` spells out the authors' recipe; saved runs load as made."""

from __future__ import annotations

import dataclasses

import pytest

from eid.config import config_to_dict, load_config, preset_names, saved_config
from eid.errors import EIDError
from eid.training.eid_config import EIDConfig
from eid.training.operator_config import OperatorConfig

KINDS = [("operator", OperatorConfig), ("dehazer", EIDConfig)]


@pytest.mark.parametrize(("kind", "cls"), KINDS)
def test_the_defaults_are_the_fast_preset(kind: str, cls: type) -> None:
    """All but the dehazer's architecture: its dataclass defaults stay the UNet 3x16 with a residual head, which is
    what a ``dehazer.yaml`` written before ``unshuffle`` and ``head`` existed means."""
    fast = load_config(cls, kind, preset="fast")
    if kind == "dehazer":
        assert (fast.model.unshuffle, fast.model.width, fast.model.head) == (4, 32, "affine")
        fast = dataclasses.replace(fast, model=cls().model)
    assert cls() == fast


@pytest.mark.parametrize(("preset", "unshuffle"), [("natural", 4), ("endoscopy", 2)])
def test_the_dcp_start_presets_resolution(preset: str, unshuffle: int) -> None:
    """Through the learned operator a quarter resolution lost 3 dB on the natural benchmark, so endoscopy keeps half;
    through each image's own maps (natural) a quarter gives what half did, 1.8x faster (natural.yaml)."""
    model = load_config(EIDConfig, "dehazer", preset=preset).model
    assert (model.input, model.unshuffle, model.width, model.head) == (
        "dcp",
        unshuffle,
        32,
        "affine",
    )


def test_paper_presets_spell_out_the_authors_recipe() -> None:
    operator = load_config(OperatorConfig, "operator", preset="paper")
    m, d = operator.model, operator.data
    assert (m.kind, m.width, m.blocks, m.residual, m.disc_width, m.disc_norm) == (
        "cyclegan",
        64,
        9,
        False,
        64,
        "instance",
    )
    assert (d.crop, d.load_size, d.batch_size, operator.epochs, operator.max_steps) == (
        256,
        286,
        1,
        200,
        None,
    )
    assert (
        operator.loss.lambda_cyc,
        operator.loss.lambda_id,
        operator.optim.lr,
        operator.buffer_size,
    ) == (10.0, 5.0, 2e-4, 50)
    dehazer = load_config(EIDConfig, "dehazer", preset="paper")
    assert (dehazer.adversarial_weight, dehazer.max_steps, dehazer.epochs, dehazer.lr) == (
        0.0,
        None,
        10,
        1e-5,
    )


@pytest.mark.parametrize(("kind", "cls"), KINDS)
def test_a_saved_config_loads_to_the_config_that_made_it(kind: str, cls: type) -> None:
    for name in preset_names(kind):
        cfg = load_config(cls, kind, preset=name)
        assert saved_config(cls, config_to_dict(cfg)) == cfg


def test_a_run_saved_before_a_field_existed_keeps_the_value_it_was_made_with() -> None:
    """Fields added later are missing from old ``config.yaml`` files: they take the defaults of that time."""
    paper = load_config(OperatorConfig, "operator", preset="paper")
    assert saved_config(OperatorConfig, {}) == paper  # the old defaults were the authors' recipe
    saved = config_to_dict(paper)
    del saved["model"]["kind"], saved["model"]["disc_norm"], saved["model"]["residual"]
    old = saved_config(OperatorConfig, saved)
    assert (old.model.kind, old.model.disc_norm, old.model.residual) == (
        "cyclegan",
        "instance",
        False,
    )
    stage_2 = {
        k: v
        for k, v in config_to_dict(EIDConfig()).items()
        if k not in ("adversarial_weight", "disc_norm")
    }
    assert (
        dataclasses.replace(
            saved_config(EIDConfig, stage_2), adversarial_weight=0.05, disc_norm="none"
        )
        == EIDConfig()
    )
    assert (
        saved_config(EIDConfig, stage_2).adversarial_weight,
        saved_config(EIDConfig, stage_2).disc_norm,
    ) == (0.0, "instance")


@pytest.mark.parametrize(("kind", "cls"), KINDS)
def test_a_run_saved_with_the_former_machine_settings_loads_without_them(
    kind: str, cls: type, tmp_path
) -> None:
    """``winograd`` and ``channels_last`` were recipe fields; old ``config.yaml`` files and checkpoints hold them."""
    saved = config_to_dict(load_config(cls, kind, preset="paper"))
    old = {**saved, "winograd": False, "channels_last": True}
    if cls is EIDConfig:
        del old["channels_last"]  # stage 2 never had it
    assert saved_config(cls, old) == saved_config(cls, saved)
    user = tmp_path / "mine.yaml"
    user.write_text("winograd: false\n")
    with pytest.raises(
        EIDError, match=r"winograd is not a config field any more.*machine setting"
    ) as err:
        load_config(cls, kind, path=user)
    assert "\n" not in str(err.value)
