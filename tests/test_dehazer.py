"""The dehazer f_theta: architecture options, output mapping, pseudo-inverse input, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from eid.config import config_to_dict
from eid.errors import EIDError
from eid.models import DehazerConfig, DehazerNet, load_dehazer
from eid.models.dehazer import count_parameters
from eid.physics import ASMHaze
from eid.weights import save_weights


def tiny(**kw) -> DehazerNet:
    torch.manual_seed(0)
    return DehazerNet(DehazerConfig(**{"channels": 3, "scales": 2, "width": 4, **kw}))


def test_paper_size_matches_the_authors() -> None:
    assert (
        count_parameters(DehazerNet(DehazerConfig(scales=5, width=64, norm="instance")))
        == 34_527_171
    )


@pytest.mark.parametrize(
    "norm,layer",
    [("group", nn.GroupNorm), ("instance", nn.InstanceNorm2d), ("batch", nn.BatchNorm2d)],
)
def test_norm_layers(norm: str, layer: type) -> None:
    kinds = {type(m) for m in tiny(norm=norm).modules()}
    assert layer in kinds
    assert norm == "batch" or nn.BatchNorm2d not in kinds


@pytest.mark.parametrize("shape", [(1, 3, 37, 50), (2, 1, 16, 16)])
def test_any_size_output_in_unit_range(shape: tuple[int, ...], rng: torch.Generator) -> None:
    f = tiny(channels=shape[1])
    out = f(torch.rand(*shape, generator=rng) * 3 - 1)
    assert out.shape == shape and out.min() >= 0 and out.max() <= 1


def test_clamp_straight_through_passes_gradient() -> None:
    y = torch.full((1, 3, 8, 8), 2.0, requires_grad=True)
    tiny(output="clamp_st")(y).sum().backward()
    assert y.grad.abs().sum() > 0
    y.grad = None
    tiny(output="clamp")(y).sum().backward()
    assert y.grad.abs().sum() == 0


def test_pinv_input_needs_physics_and_builds_no_graph_for_data(rng: torch.Generator) -> None:
    f = tiny(input="pinv")
    physics = ASMHaze(transmission=0.5, airlight=0.9)
    y = physics.A(torch.rand(1, 3, 8, 8, generator=rng))
    with pytest.raises(EIDError, match="pseudo-inverse"):
        f(y)
    assert f.network_input(y, physics).grad_fn is None
    y2 = y.clone().requires_grad_(True)
    assert f.network_input(y2, physics).grad_fn is not None  # equivariance branch keeps the graph
    assert torch.allclose(f.unet(physics.A_dagger(y)).clamp(0, 1), f(y, physics))


def test_a_dehazer_from_dcp_starts_at_dcp_and_learns(rng: torch.Generator) -> None:
    """``input: dcp``: f = clip(DCP(y)) before training, and the zero output layer still gets a gradient;
    ``hazy`` and ``pinv`` keep the random start (the latter unmeasured with a zero one)."""
    from eid.baselines.dcp import DarkChannelPrior

    f, physics = tiny(input="dcp"), ASMHaze(transmission=0.5, airlight=0.9)
    y = physics.A(torch.rand(2, 3, 16, 16, generator=rng))
    assert torch.allclose(f(y), DarkChannelPrior()(y).clamp(0, 1), atol=1e-6)
    f(y).sum().backward()
    assert f.unet.Conv_1x1.weight.grad.abs().sum() > 0
    assert not torch.allclose(tiny(input="hazy")(y), y, atol=1e-3)
    assert not torch.allclose(
        tiny(input="pinv")(y, physics), physics.A_dagger(y).clamp(0, 1), atol=1e-3
    )


def test_bad_config_values() -> None:
    with pytest.raises(EIDError, match="hazy"):
        DehazerConfig(input="raw")
    with pytest.raises(EIDError, match="group"):
        DehazerConfig(norm="layer")
    with pytest.raises(EIDError, match="unshuffle"):
        DehazerConfig(unshuffle=0)


@pytest.mark.parametrize("unshuffle", [2, 4])
def test_space_to_depth_runs_the_unet_at_low_resolution(
    unshuffle: int, rng: torch.Generator
) -> None:
    """``S_r^{-1} UNet S_r``: any size in and out, a UNet on ``C r^2`` channels, multiple ``r 2^(S-1)``."""
    f = tiny(unshuffle=unshuffle, norm="none")
    assert (
        f.unet.in_channels == 3 * unshuffle**2 and f.multiple == unshuffle * 2 and f.channels == 3
    )
    y = torch.rand(1, 3, 37, 50, generator=rng)
    assert f(y).shape == y.shape
    with (
        torch.no_grad()
    ):  # at a size multiple, the same as the UNet applied to the space-to-depth image
        z = y[..., :32, :48]
        inner = nn.functional.pixel_shuffle(
            f.unet(nn.functional.pixel_unshuffle(z, unshuffle)), unshuffle
        )
        assert torch.equal(f(z), inner.clamp(0, 1))


@pytest.mark.parametrize("circular", [True, False])
def test_affine_head_is_a_smooth_gain_and_offset(circular: bool, rng: torch.Generator) -> None:
    """``head: affine``: the identity at the start; then ``(1 + a) z + b`` with a field that is constant when the
    UNet's output is, so a 2x2 block pattern cannot appear; any size in and out."""
    f = tiny(unshuffle=2, head="affine", circular_padding=circular)
    assert f.unet.out_channels == 6
    y = torch.rand(1, 3, 37, 50, generator=rng) * 0.8
    with torch.no_grad():
        assert torch.equal(f(y), y)  # the output layer starts at zero
        f.unet.Conv_1x1.bias.copy_(torch.tensor([0.5, 0.5, 0.5, 0.1, 0.1, 0.1]))
        torch.testing.assert_close(f(y), (1.5 * y + 0.1).clamp(0, 1))
    with pytest.raises(EIDError, match="head"):
        DehazerConfig(head="pixelshuffle")


def test_load_round_trip_and_test_path_equals_training_path(
    tmp_path: Path, rng: torch.Generator
) -> None:
    f = tiny(channels=1, norm="group", unshuffle=2)
    save_weights(tmp_path / "dehazer", f, {"model": config_to_dict(f.config), "group": "rot90"})
    g, physics, config = load_dehazer(tmp_path)
    assert physics is None and config["group"] == "rot90" and not g.training
    y = torch.rand(2, 1, 24, 24, generator=rng)
    f.train()
    with torch.no_grad():
        assert torch.equal(
            f(y), g(y)
        )  # same function in training mode and after loading in eval mode


def test_load_missing_run(tmp_path: Path) -> None:
    with pytest.raises(EIDError, match="not found"):
        load_dehazer(tmp_path)
