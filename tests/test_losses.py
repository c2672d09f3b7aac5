"""EID losses: zero at the fixed point, non-zero otherwise, per-image ASM parameters, detach, n_trans."""

from __future__ import annotations

import pytest
import torch

from eid.errors import EIDError
from eid.losses import EquivarianceLoss, HazeConsistencyLoss, pixel_metric
from eid.physics import ASMHaze
from eid.transforms import build_group


def exact_inverse(y: torch.Tensor, physics: ASMHaze) -> torch.Tensor:
    """The ASM inverse, a pointwise (hence rotation-equivariant) map."""
    return physics.A_dagger(y)


def ramp_biased(y: torch.Tensor, physics: ASMHaze) -> torch.Tensor:
    """The inverse plus a left-to-right ramp: not rotation equivariant."""
    return physics.A_dagger(y) + 0.2 * torch.linspace(0, 1, y.shape[-1])


@pytest.fixture
def clear(rng: torch.Generator) -> torch.Tensor:
    return torch.rand(2, 3, 16, 16, generator=rng)


def test_haze_consistency_zero_for_exact_inverse(clear: torch.Tensor) -> None:
    physics = ASMHaze(
        transmission=torch.tensor([0.4, 0.7]).view(2, 1, 1, 1), airlight=[0.9, 0.85, 0.8]
    )
    y = physics.A(clear)
    loss = HazeConsistencyLoss()
    assert loss(y=y, x_net=exact_inverse(y, physics), physics=physics) < 1e-12
    assert loss(y=y, x_net=y, physics=physics) > 1e-3


@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_equivariance_zero_for_equivariant_f_and_constant_asm(
    clear: torch.Tensor, rng: torch.Generator, norm: str
) -> None:
    physics = ASMHaze(transmission=0.5, airlight=0.9)
    loss = EquivarianceLoss(build_group("rot90*flip", rng=rng), norm=norm)
    x_net = exact_inverse(physics.A(clear), physics)
    assert loss(x_net=x_net, physics=physics, model=exact_inverse) < 1e-6
    # not equivariant: the ramp does not rotate with the image
    assert (
        loss(x_net=ramp_biased(physics.A(clear), physics), physics=physics, model=ramp_biased)
        > 1e-3
    )


def test_equivariance_nonzero_for_wrong_inverse(clear: torch.Tensor, rng: torch.Generator) -> None:
    physics = ASMHaze(transmission=0.5, airlight=0.9)
    loss = EquivarianceLoss(build_group("rot90", rng=rng))
    assert loss(x_net=clear, physics=physics, model=lambda y, p: y) > 1e-3


@pytest.mark.parametrize("n_trans", [1, 3])
def test_per_image_transmission_maps_follow_the_image(clear: torch.Tensor, n_trans: int) -> None:
    t = 0.3 + 0.6 * torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    physics = ASMHaze(transmission=t, airlight=torch.tensor([[0.9], [0.7]]).view(2, 1, 1, 1))
    loss = EquivarianceLoss(
        build_group("rot90", n_trans=n_trans, rng=torch.Generator().manual_seed(2))
    )
    x_net = exact_inverse(physics.A(clear), physics)
    assert loss(x_net=x_net, physics=physics, model=exact_inverse) < 1e-10
    params = loss.T.get_params(clear)
    moved = loss.transformed_physics(physics, params, batch=2, n_trans=n_trans)
    assert moved.transmission.shape == (2 * n_trans, 1, 16, 16)
    assert moved.airlight.shape == (2 * n_trans, 1, 1, 1)
    k = int(params["theta"][0]) // 90
    assert torch.equal(moved.transmission[:2], torch.rot90(t, k=k, dims=(-2, -1)))
    assert torch.equal(physics.transmission, t)  # the batch's operator is untouched


def test_sensor_frame_transmission_is_repeated_not_transformed(clear: torch.Tensor) -> None:
    t = 0.3 + 0.6 * torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    physics = ASMHaze(transmission=t, airlight=0.8)
    loss = EquivarianceLoss(build_group("rot90", n_trans=2), transform_physics=False)
    moved = loss.transformed_physics(physics, loss.T.get_params(clear), batch=2, n_trans=2)
    assert torch.equal(moved.transmission, t.repeat(2, 1, 1, 1))


def test_detach_stops_gradient_through_target(clear: torch.Tensor) -> None:
    physics = ASMHaze(transmission=0.5, airlight=0.9)
    x_net = clear.clone().requires_grad_(True)
    attached = EquivarianceLoss(build_group("rot90"))(
        x_net=x_net, physics=physics, model=lambda y, p: y
    )
    attached.backward()
    assert x_net.grad.abs().sum() > 0
    detached = EquivarianceLoss(build_group("rot90"), detach=True)(
        x_net=x_net, physics=physics, model=lambda y, p: y
    )
    assert not detached.requires_grad


def test_alpha_scales_and_names_differ(clear: torch.Tensor) -> None:
    physics = ASMHaze(transmission=0.5, airlight=0.9)
    one = EquivarianceLoss(build_group("hflip", rng=torch.Generator().manual_seed(0)))
    ten = EquivarianceLoss(build_group("hflip", rng=torch.Generator().manual_seed(0)), alpha=10.0)
    model = lambda y, p: y
    assert torch.isclose(
        10 * one(x_net=clear, physics=physics, model=model),
        ten(x_net=clear, physics=physics, model=model),
    )
    assert type(one).__name__ != type(HazeConsistencyLoss()).__name__


def test_unknown_norm() -> None:
    with pytest.raises(EIDError, match="l2"):
        pixel_metric("l3")
