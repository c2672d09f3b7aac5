"""LearnedHaze: range conversion, freezing, gradient flow, export round trip and pickle refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from eid.errors import EIDError
from eid.models import ResnetGenerator
from eid.physics import LearnedHaze, from_gan_range, to_gan_range

CONFIG = {"model": {"channels": 3, "width": 4, "blocks": 1, "n_down": 2}, "seed": 0}


@pytest.fixture
def physics() -> LearnedHaze:
    torch.manual_seed(0)
    return LearnedHaze(
        ResnetGenerator(width=4, blocks=1), ResnetGenerator(width=4, blocks=1), config=CONFIG
    )


def test_range_conversion_is_an_exact_inverse(rng: torch.Generator) -> None:
    x = torch.rand(2, 3, 5, 5, generator=rng)
    assert torch.equal(from_gan_range(to_gan_range(x)), x)
    assert to_gan_range(torch.tensor(0.0)) == -1 and to_gan_range(torch.tensor(1.0)) == 1


def test_outputs_in_unit_range_for_any_size(physics: LearnedHaze, rng: torch.Generator) -> None:
    for shape in [(1, 3, 32, 32), (2, 3, 17, 23), (1, 3, 9, 13)]:
        x = torch.rand(*shape, generator=rng)
        for y in (physics.A(x), physics.A_dagger(x), physics(x)):
            assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1


def test_frozen_but_differentiable(physics: LearnedHaze, rng: torch.Generator) -> None:
    parent = nn.ModuleDict({"physics": physics, "head": nn.Conv2d(3, 3, 1)})
    parent.train()
    assert not physics.training and not physics.g_ab.training
    assert all(not p.requires_grad for p in physics.parameters())
    x = torch.rand(1, 3, 16, 16, generator=rng, requires_grad=True)
    (physics.A(x).sum() + physics.A_dagger(x).sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in physics.parameters())


def test_save_load_round_trip(physics: LearnedHaze, tmp_path: Path, rng: torch.Generator) -> None:
    weights, config = physics.save(tmp_path)
    assert weights.name == "operator.safetensors" and config.name == "operator.yaml"
    x = torch.rand(1, 3, 20, 20, generator=rng)
    for where in (tmp_path, tmp_path / "operator", weights):
        loaded = LearnedHaze.load(where)
        assert torch.equal(loaded.A(x), physics.A(x)) and torch.equal(
            loaded.A_dagger(x), physics.A_dagger(x)
        )
        assert loaded.config == CONFIG and not loaded.training
        assert all(not p.requires_grad for p in loaded.parameters())


def test_refuses_pickled_weights(physics: LearnedHaze, tmp_path: Path) -> None:
    torch.save(physics.g_ab.state_dict(), tmp_path / "G_AB_480.pth")
    with pytest.raises(EIDError, match="pickle"):
        LearnedHaze.load(tmp_path / "G_AB_480.pth")
    physics.save(tmp_path)
    torch.save(physics.g_ab.state_dict(), tmp_path / "operator.safetensors")  # a pickle in disguise
    with pytest.raises(EIDError, match="pickle"):
        LearnedHaze.load(tmp_path)


def test_missing_or_mismatched_operator(physics: LearnedHaze, tmp_path: Path) -> None:
    with pytest.raises(EIDError, match="not found"):
        LearnedHaze.load(tmp_path)
    physics.config = {"model": {"channels": 3, "width": 8, "blocks": 1}}
    physics.save(tmp_path)
    with pytest.raises(EIDError, match="do not match"):
        LearnedHaze.load(tmp_path)


def test_without_g_ba_a_dagger_explains(tmp_path: Path) -> None:
    physics = LearnedHaze(ResnetGenerator(width=4, blocks=1), config=CONFIG)
    physics.save(tmp_path)
    loaded = LearnedHaze.load(tmp_path)
    with pytest.raises(EIDError, match="G_BA"):
        loaded.A_dagger(torch.rand(1, 3, 8, 8))
