"""CycleGAN generator and PatchGAN discriminator: sizes, shapes, ranges, initialisation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from eid.errors import EIDError
from eid.models import DehazerConfig, DehazerNet, PatchGANDiscriminator, ResnetGenerator
from eid.models.upsample import NearestUpsampleConv2d, upsample_conv3x3
from eid.physics import LearnedHaze
from eid.training.operator import parameter_count


def test_paper_sizes_match_the_authors() -> None:
    assert parameter_count(ResnetGenerator(3, 3, width=64, blocks=9)) == 11_378_179
    assert parameter_count(PatchGANDiscriminator(3, width=64)) == 2_764_737
    assert parameter_count(PatchGANDiscriminator(3, width=64, strides=(2, 2, 2, 2))) == 2_764_737


def test_discriminator_receptive_field_and_patch_map() -> None:
    d70 = PatchGANDiscriminator(3, width=4)
    assert d70.receptive_field == 70
    assert PatchGANDiscriminator(3, width=4, strides=(2, 2, 2, 2)).receptive_field == 94
    assert d70(torch.zeros(2, 3, 64, 64)).shape == (2, 1, 7, 7)
    assert PatchGANDiscriminator(3, width=4, strides=(2, 2, 2, 2))(
        torch.zeros(1, 3, 64, 64)
    ).shape == (1, 1, 4, 4)


@pytest.mark.parametrize("channels", [1, 3])
def test_generator_shape_range_and_layers(channels: int, rng: torch.Generator) -> None:
    g = ResnetGenerator(channels, channels, width=8, blocks=2)
    x = torch.rand(2, channels, 32, 48, generator=rng) * 2 - 1
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert g.multiple == 4
    kinds = {type(m) for m in g.modules()}
    assert (
        nn.ConvTranspose2d not in kinds
        and NearestUpsampleConv2d in kinds
        and nn.ReflectionPad2d in kinds
    )
    assert all(not m.affine for m in g.modules() if isinstance(m, nn.InstanceNorm2d))


def test_initialisation_is_normal_002() -> None:
    torch.manual_seed(0)
    g = ResnetGenerator(3, 3, width=32, blocks=2)
    weights = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, nn.Conv2d)])
    biases = torch.cat([m.bias.flatten() for m in g.modules() if isinstance(m, nn.Conv2d)])
    assert abs(weights.std().item() - 0.02) < 1e-3 and abs(weights.mean().item()) < 1e-3
    assert biases.abs().max() == 0


def test_plain_generator_is_blind_to_input_affine_changes_residual_is_not(
    rng: torch.Generator,
) -> None:
    """``Conv7 -> InstanceNorm`` removes ``a x + b`` (a > 0): ``G(a x + b) ~ G(x)``; the residual one keeps it."""
    x = torch.rand(2, 1, 32, 32, generator=rng) * 2 - 1
    darker = 0.4 * x - 0.5
    torch.manual_seed(0)
    plain = ResnetGenerator(1, 1, width=8, blocks=2)
    torch.manual_seed(0)
    residual = ResnetGenerator(1, 1, width=8, blocks=2, residual=True)
    with torch.no_grad():
        assert (plain(x) - plain(darker)).abs().max() < 0.01
        assert (residual(x) - residual(darker)).abs().mean() > 0.2
        black, white = torch.full_like(x, -1.0), torch.ones_like(x)
        assert residual(white).mean() - residual(black).mean() > 1.0


def test_residual_generator_has_the_same_parameters_and_passes_gradients_through_the_clamp() -> (
    None
):
    assert parameter_count(ResnetGenerator(3, 3, width=64, blocks=9, residual=True)) == 11_378_179
    g = ResnetGenerator(1, 1, width=4, blocks=1, residual=True)
    x = torch.full((1, 1, 16, 16), 0.99, requires_grad=True)
    y = g(x)
    assert y.abs().max() <= 1
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().min() > 0


@pytest.mark.parametrize(("n_down", "blocks"), [(2, 2), (1, 3), (3, 1)])
def test_generator_local_radius_bounds_its_measured_support(n_down: int, blocks: int) -> None:
    """With its norm statistics fixed (here: no norms), no output pixel depends on an input farther than
    ``local_radius``, and the bound is close (the exact tiling of ``G_BA`` rests on it)."""
    torch.manual_seed(0)
    generator = ResnetGenerator(3, 3, width=4, blocks=blocks, n_down=n_down).double()
    for parent in list(generator.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.InstanceNorm2d):
                setattr(parent, name, nn.Identity())
    side, reach = 192, 0
    for centre in range(96, 96 + generator.multiple):  # every phase of the down-sampling grid
        x = torch.rand(1, 3, side, side, dtype=torch.float64, requires_grad=True)
        generator(x)[0, :, centre, centre].sum().backward()
        rows_cols = (x.grad.abs().sum(1)[0] > 0).nonzero()
        reach = max(reach, int((rows_cols - centre).abs().max()))
    assert reach <= generator.local_radius <= reach + 16


def test_residual_generator_needs_matching_channels() -> None:
    with pytest.raises(EIDError, match="residual"):
        ResnetGenerator(1, 3, width=4, blocks=1, residual=True)


def test_residual_operator_round_trips_through_the_exported_files(
    tmp_path: Path, rng: torch.Generator
) -> None:
    config = {"model": {"channels": 1, "width": 4, "blocks": 1, "n_down": 2, "residual": True}}
    gens = [ResnetGenerator(1, 1, width=4, blocks=1, residual=True) for _ in range(2)]
    LearnedHaze(*gens, config=config).save(tmp_path)
    loaded = LearnedHaze.load(tmp_path)
    assert loaded.g_ab.residual and loaded.g_ba.residual
    x = torch.rand(1, 1, 16, 16, generator=rng)
    assert torch.equal(loaded.A(x), LearnedHaze(*gens, config=config).A(x))


@pytest.mark.parametrize("bias", [False, True])
def test_upsample_conv_equals_resize_then_conv(bias: bool, rng: torch.Generator) -> None:
    """Exact identity (float64 rounding only), for odd and non-square sizes; the gradients agree too."""
    x = torch.randn(2, 3, 5, 7, generator=rng, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, generator=rng, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=rng, dtype=torch.float64, requires_grad=True) if bias else None
    fused = upsample_conv3x3(x, w, b)
    direct = nn.functional.conv2d(
        nn.functional.interpolate(x, scale_factor=2, mode="nearest"), w, b, padding=1
    )
    assert fused.shape == (2, 4, 10, 14)
    assert (fused - direct).abs().max() < 1e-12
    probe = torch.randn(fused.shape, generator=rng, dtype=torch.float64)
    inputs = (x, w) if b is None else (x, w, b)
    grads_fused = torch.autograd.grad((fused * probe).sum(), inputs)
    grads_direct = torch.autograd.grad((direct * probe).sum(), inputs)
    for gf, gd in zip(grads_fused, grads_direct, strict=True):
        assert (gf - gd).abs().max() < 1e-10


def _legacy_layers(generator: ResnetGenerator) -> nn.Sequential:
    """The generator as it was built before the up-sampling became one layer: ``nn.Upsample`` then ``nn.Conv2d``."""
    layers: list[nn.Module] = []
    for m in generator.model:
        if isinstance(m, NearestUpsampleConv2d):
            conv = nn.Conv2d(m.in_channels, m.out_channels, 3, padding=1)
            conv.load_state_dict(m.state_dict())
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv]
        else:
            layers.append(m)
    return nn.Sequential(*layers)


def test_generator_reads_weights_saved_with_a_separate_upsampling_layer(
    rng: torch.Generator,
) -> None:
    torch.manual_seed(0)
    trained = ResnetGenerator(3, 3, width=8, blocks=2, residual=True)
    legacy = _legacy_layers(trained)
    x = torch.rand(1, 3, 32, 40, generator=rng) * 2 - 1
    with torch.no_grad():
        assert (legacy(x) - trained.model(x)).abs().max() < 1e-5
        saved = {f"g_ab.model.{k}": v for k, v in legacy.state_dict().items()}
        assert (
            "g_ab.model.13.weight" in saved and "g_ab.model.12.weight" not in saved
        )  # the old layout
        holder = nn.Module()
        holder.g_ab = ResnetGenerator(3, 3, width=8, blocks=2, residual=True)
        holder.load_state_dict(saved)  # strict: every key placed, none left over
        assert torch.equal(holder.g_ab(x), trained(x))


def test_dcp_input_starts_from_the_dark_channel_estimate_and_passes_gradients() -> None:
    from eid.baselines.dcp import DarkChannelPrior

    f = DehazerNet(DehazerConfig(channels=3, scales=2, width=4, input="dcp"))
    y = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(f.network_input(y), DarkChannelPrior()(y))
    assert not f.network_input(y).requires_grad  # a measured image: no graph
    y.requires_grad_(True)  # the equivariance branch: the gradient must reach T_g f(y)
    f(y).sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert set(f.state_dict()) == set(
        DehazerNet(DehazerConfig(channels=3, scales=2, width=4)).state_dict()
    )
