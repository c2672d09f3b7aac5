"""ASMHaze: forward model, exact inversion, parameter updates and shape errors."""

from __future__ import annotations

import pytest
import torch

from eid.errors import EIDError
from eid.physics import ASMHaze, transmission_from_depth


def test_forward_matches_formula(rng: torch.Generator) -> None:
    x = torch.rand(2, 3, 16, 16, generator=rng)
    t = torch.rand(2, 1, 16, 16, generator=rng)
    a = torch.rand(2, 3, 1, 1, generator=rng)
    physics = ASMHaze(t, a)
    torch.testing.assert_close(physics.A(x), x * t + a * (1 - t))
    torch.testing.assert_close(physics(x), physics.A(x))  # no noise by default


def test_exact_inversion_with_known_t_and_a(rng: torch.Generator) -> None:
    x = torch.rand(3, 3, 16, 16, generator=rng)
    physics = ASMHaze(t_min=0.1)
    physics.update(
        transmission=0.2 + 0.8 * torch.rand(3, 1, 16, 16, generator=rng), airlight=[0.9, 0.8, 0.7]
    )
    torch.testing.assert_close(physics.A_dagger(physics.A(x)), x, atol=1e-6, rtol=0)


def test_a_dagger_clamps_below_t_min() -> None:
    physics = ASMHaze(transmission=0.01, airlight=1.0, t_min=0.1)
    y = torch.full((1, 1, 4, 4), 0.5)
    torch.testing.assert_close(physics.A_dagger(y), (y - 0.99) / 0.1)


def test_update_converts_floats_and_keeps_buffers() -> None:
    physics = ASMHaze()
    physics.update(transmission=0.3, airlight=0.7)
    assert physics.transmission.shape == (
        1,
        1,
        1,
        1,
    ) and physics.transmission.item() == pytest.approx(0.3)
    assert physics.airlight.item() == pytest.approx(0.7)
    assert set(physics.state_dict()) == {"transmission", "airlight"}
    physics.update(transmission=None)  # None keeps the current value
    assert physics.transmission.item() == pytest.approx(0.3)
    clone = physics.clone()
    assert clone.transmission.item() == pytest.approx(0.3)


def test_parameters_as_keyword_arguments_of_a() -> None:
    x = torch.zeros(1, 1, 2, 2)
    assert ASMHaze().A(x, transmission=0.25, airlight=0.8).flatten().tolist() == pytest.approx(
        [0.6] * 4
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"transmission": torch.ones(1, 3, 4, 4)},  # channel dim must be 1
        {"transmission": torch.ones(4, 4)},
        {"airlight": torch.ones(1, 3, 2, 2)},
    ],
)
def test_bad_parameter_shapes_raise(kwargs: dict) -> None:
    with pytest.raises(EIDError, match="must be"):
        ASMHaze().update(**kwargs)


def test_incompatible_with_image_raises() -> None:
    physics = ASMHaze(transmission=torch.ones(4, 1, 8, 8), airlight=torch.ones(1, 3, 1, 1))
    with pytest.raises(EIDError, match="does not fit"):
        physics.A(torch.zeros(2, 3, 8, 8))
    with pytest.raises(EIDError, match="does not fit"):
        ASMHaze(airlight=[1.0, 1.0, 1.0]).A(torch.zeros(1, 1, 8, 8))


def test_transmission_from_depth_per_image_beta() -> None:
    depth = torch.ones(2, 1, 3, 3)
    t = transmission_from_depth(depth, torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(t[0], torch.ones(1, 3, 3))
    torch.testing.assert_close(t[1], torch.full((1, 3, 3), torch.e**-1))


def test_gradients_flow_through_a(rng: torch.Generator) -> None:
    x = torch.rand(1, 3, 8, 8, generator=rng, requires_grad=True)
    ASMHaze(transmission=0.5, airlight=0.9).A(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 0.5))
