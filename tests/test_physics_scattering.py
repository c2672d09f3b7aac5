"""ScatteringHaze: the maps' ranges, the scattering model's identities, export round trip, old runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from eid.errors import EIDError
from eid.models import ResnetGenerator
from eid.models.scattering import ScatteringNet
from eid.physics import ASMHaze, LearnedHaze, ScatteringHaze, load_operator
from eid.physics.scattering import scattering_nets

MODEL = {"kind": "scattering", "channels": 3, "width": 4, "scales": 2, "t_min": 0.05}


def operator(**model) -> ScatteringHaze:
    torch.manual_seed(0)
    config = {"model": {**MODEL, **model}}
    nets = scattering_nets(config["model"])
    return ScatteringHaze(nets["hazer"], nets["estimator"], nets.get("residual"), config=config)


@pytest.mark.parametrize("airlight", ["global", "grey", "veil"])
@pytest.mark.parametrize("transmission", ["shared", "per_channel"])
def test_maps_stay_in_range_for_any_input(
    rng: torch.Generator, airlight: str, transmission: str
) -> None:
    physics = operator(airlight=airlight, transmission=transmission)
    with torch.no_grad():  # push the networks to their extremes: huge weights, extreme inputs
        for p in physics.parameters():
            p.mul_(50)
    inputs = [torch.rand(2, 3, 17, 23, generator=rng), torch.zeros(1, 3, 9, 9), torch.ones(1, 3, 8, 40),
              100 * torch.randn(1, 3, 16, 16, generator=rng)]  # fmt: skip
    for x in inputs:
        for maps in (physics.maps(x), physics.estimate(x)):
            t, a = maps["transmission"], maps["airlight"]
            assert torch.isfinite(t).all() and torch.isfinite(a).all()
            assert t.min() >= physics.t_min - 1e-6 and t.max() <= 1
            assert a.min() >= 0 and a.max() <= 1
            assert (
                t.shape[1] == (1 if transmission == "shared" else 3)
                and t.shape[-2:] == x.shape[-2:]
            )
            assert (
                a.shape[-2:] == ((1, 1) if airlight != "veil" else x.shape[-2:]) and a.shape[1] == 3
            )
            if airlight == "grey":
                assert torch.equal(a[:, :1].expand_as(a), a)
        y = physics.A(x.clamp(0, 1))
        assert y.min() >= 0 and y.max() <= 1  # a convex mix of x and a


def test_starts_hazy_not_from_the_identity(rng: torch.Generator) -> None:
    t = operator().maps(torch.rand(4, 3, 32, 32, generator=rng))["transmission"]
    assert 0.6 < float(t.mean()) < 0.8


def test_transmission_one_is_the_identity(rng: torch.Generator) -> None:
    x = torch.rand(2, 3, 16, 16, generator=rng)
    assert torch.equal(operator().A(x, transmission=1.0), x)
    assert torch.equal(operator().A(x, transmission=torch.ones(2, 1, 16, 16), airlight=0.3), x)


def test_known_maps_give_the_asm_exactly(rng: torch.Generator) -> None:
    x = torch.rand(2, 3, 16, 16, generator=rng)
    t = 0.2 + 0.8 * torch.rand(2, 1, 16, 16, generator=rng)
    a = torch.rand(2, 3, 1, 1, generator=rng)
    assert torch.equal(
        operator().A(x, transmission=t, airlight=a), ASMHaze(transmission=t, airlight=a).A(x)
    )


def test_pseudo_inverse_is_exact_with_exact_estimates(rng: torch.Generator) -> None:
    physics = operator()
    x = torch.rand(2, 3, 16, 16, generator=rng)
    maps = physics.maps(x)
    y = physics.A(x, **maps)
    assert torch.allclose(physics.A_dagger(y, **maps), x, atol=1e-5)


def test_frozen_but_differentiable_in_its_input(rng: torch.Generator) -> None:
    physics = operator().train(True)
    assert not physics.training and not any(p.requires_grad for p in physics.parameters())
    x = torch.rand(1, 3, 16, 16, generator=rng, requires_grad=True)
    physics.A(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_residual_is_bounded_and_starts_at_zero(rng: torch.Generator) -> None:
    physics = operator(residual_bound=0.05)
    x = torch.rand(1, 3, 16, 16, generator=rng)
    assert torch.equal(physics.A(x), physics.A(x, **physics.maps(x)))  # r(x) = 0 at initialisation
    with torch.no_grad():
        for p in physics.residual.parameters():
            p.add_(10)
    assert (physics.residual(x).abs() <= 0.05 + 1e-7).all()


def test_export_round_trip_through_the_loader(tmp_path: Path, rng: torch.Generator) -> None:
    physics = operator(airlight="veil")
    physics.save(tmp_path / "op")
    loaded = load_operator(tmp_path / "op")
    assert isinstance(loaded, ScatteringHaze) and not any(
        p.requires_grad for p in loaded.parameters()
    )
    x = torch.rand(1, 3, 20, 20, generator=rng)
    assert torch.equal(loaded.A(x), physics.A(x)) and torch.equal(
        loaded.A_dagger(x), physics.A_dagger(x)
    )


def test_weights_of_another_shape_are_refused_in_one_line(tmp_path: Path) -> None:
    operator().save(tmp_path / "op")
    config = yaml.safe_load((tmp_path / "op" / "operator.yaml").read_text())
    config["model"]["width"] = 8
    (tmp_path / "op" / "operator.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(EIDError, match="weights do not match the config"):
        load_operator(tmp_path / "op")


def test_a_cyclegan_run_from_before_the_operator_kinds_still_loads(
    tmp_path: Path, rng: torch.Generator
) -> None:
    old = {
        "model": {"channels": 3, "width": 4, "blocks": 1, "n_down": 2},
        "seed": 0,
    }  # no model.kind
    torch.manual_seed(0)
    LearnedHaze(
        ResnetGenerator(width=4, blocks=1), ResnetGenerator(width=4, blocks=1), config=old
    ).save(tmp_path / "op")
    loaded = load_operator(tmp_path / "op")
    assert isinstance(loaded, LearnedHaze)
    assert loaded.A_dagger(torch.rand(1, 3, 16, 16, generator=rng)).shape == (1, 3, 16, 16)


def test_unknown_kind_names_the_file(tmp_path: Path) -> None:
    operator(kind="scattering").save(tmp_path / "op")
    text = (
        (tmp_path / "op" / "operator.yaml")
        .read_text()
        .replace("kind: scattering", "kind: wormhole")
    )
    (tmp_path / "op" / "operator.yaml").write_text(text)
    with pytest.raises(EIDError, match="unknown operator kind 'wormhole'"):
        load_operator(tmp_path / "op")


def test_invalid_map_choices_are_refused() -> None:
    with pytest.raises(EIDError, match="transmission"):
        ScatteringNet(3, transmission="rainbow")
    with pytest.raises(EIDError, match="t_min < t_init"):
        ScatteringNet(3, t_min=0.9)
