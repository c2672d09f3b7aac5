"""Exact tiling: a dehazer without per-image statistics, tiled with overlap >= 2R, equals the untiled run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from eid.inference import Dehazer
from eid.models import DehazerConfig, DehazerNet
from eid.models.dehazer import unet_receptive_radius


def local_dehazer(**kw) -> DehazerNet:
    """A norm-free, zero-padded dehazer with He-initialised weights: unit gain per layer, so distant
    pixels matter and an inexact tiling shows (PyTorch's default init makes the residual tiny)."""
    torch.manual_seed(0)
    config = {
        "channels": 3,
        "scales": 3,
        "width": 8,
        "norm": "none",
        "circular_padding": False,
        **kw,
    }
    f = DehazerNet(DehazerConfig(**config)).eval()
    for conv in (m for m in f.modules() if isinstance(m, nn.Conv2d)):
        nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        nn.init.uniform_(conv.bias, -0.1, 0.1)
    return f


@pytest.mark.parametrize(
    "scales,unshuffle,head",
    [
        (2, 1, "residual"),
        (3, 1, "residual"),
        (2, 2, "residual"),
        (3, 2, "residual"),
        (2, 2, "affine"),
        (3, 2, "affine"),
    ],
)
def test_output_depends_only_on_inputs_within_the_receptive_radius(scales, unshuffle, head, rng):
    """Perturb one pixel (in the unclamped UNet path, float64): no output changes beyond R."""
    f = local_dehazer(scales=scales, unshuffle=unshuffle, head=head).double()
    radius = f.receptive_radius
    upsampling = (
        head == "affine"
    )  # the bilinear up-sampling of the affine field reads one more UNet pixel
    assert radius == unshuffle * (unet_receptive_radius(scales) + upsampling) + unshuffle - 1
    side = 2 * radius + 4 * f.multiple
    y = torch.rand(1, 3, side, side, generator=rng, dtype=torch.float64)
    c = side // 2
    z = y.clone()
    z[..., c, c] += 1.0
    with torch.no_grad():
        changed = (f.from_network_input(z) - f.from_network_input(y)).abs().amax(1)[0] > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert changed.any()
    assert (rows - c).abs().max() <= radius and (cols - c).abs().max() <= radius


@pytest.mark.parametrize("unshuffle,tile", [(1, 96), (2, 160)])
def test_tiled_equals_untiled_for_a_norm_free_model(unshuffle, tile, rng):
    f = local_dehazer(unshuffle=unshuffle)
    y = torch.rand(1, 3, 203, 331, generator=rng)
    tiled = Dehazer.from_module(f, device="cpu", tile=tile)  # default overlap: 2R, so exact
    assert tiled.plan.exact and tiled.plan.overlap == max(64, 2 * f.receptive_radius)
    whole = Dehazer.from_module(f, device="cpu", tile=None)
    assert (tiled.run(y) - whole.run(y)).abs().max() < 1e-5


def test_too_small_an_overlap_is_not_exact(rng):
    f = local_dehazer()
    runner = Dehazer.from_module(f, device="cpu", tile=96, overlap=16)
    assert not runner.plan.exact
    y = torch.rand(1, 3, 203, 331, generator=rng)
    whole = Dehazer.from_module(f, device="cpu", tile=None).run(y)
    assert (runner.run(y) - whole).abs().max() > 1e-2


@pytest.mark.parametrize(
    "kw", [{"norm": "group"}, {"norm": "instance"}, {"circular_padding": True}]
)
def test_models_with_image_statistics_or_wrap_around_are_not_local(kw):
    """Group/instance norms and circular padding: not local, so only the exact tile norm (the default
    for them, :mod:`eid.inference.exact_tiling`) tiles them exactly, not the down-scaled reference."""
    f = local_dehazer(**kw)
    assert f.receptive_radius is None and f.local_radius == 29
    runner = Dehazer.from_module(f, device="cpu", tile=96, tile_norm="global")
    assert not runner.plan.exact and runner.plan.overlap == 64
    runner = Dehazer.from_module(f, device="cpu", tile=96)
    assert runner.plan.norm == "exact" and runner.plan.exact and runner.plan.margin == 29


def test_a_dcp_input_is_local_only_past_its_dcp_stage():
    """DCP's airlight is a whole-image estimate: the dehazer has no radius on ``y``, but its network has one on
    ``z = DCP(y)``, which the runner computes first (in tiles) and then tiles exactly."""
    f = local_dehazer(input="dcp")
    assert f.receptive_radius is None and f.local_radius is None
    assert f.network_receptive_radius == f.network_local_radius == 29
    runner = Dehazer.from_module(f, device="cpu", tile=96)
    assert runner.method.prepare is not None and runner.plan.exact and runner.plan.margin == 29


def test_default_overlap_fits_a_small_tile():
    f = local_dehazer(unshuffle=2)  # R = 59, multiple 8
    runner = Dehazer.from_module(f, device="cpu", tile=64)
    assert (
        runner.plan.overlap == 48 and not runner.plan.exact
    )  # 2R = 118 does not fit; a 16 px stride


def test_default_overlap_leaves_tiles_a_quarter_stride() -> None:
    """``--tile 64`` alone once overlapped 60 px, a 4 px stride (hundreds of tiles per megapixel); an explicit
    ``--overlap`` is still taken as given, and a known radius keeps its exact overlap where the tile has room."""
    from eid.inference import Method

    identity = Method(lambda y: y, multiple=4)
    assert Dehazer(identity, device="cpu", tile=64).plan.overlap == 48
    assert Dehazer(identity, device="cpu", tile=512).plan.overlap == 64
    assert Dehazer(identity, device="cpu", tile=64, overlap=60).plan.overlap == 60
    local = Method(lambda y: y, multiple=4, receptive_radius=29)
    assert Dehazer(local, device="cpu", tile=96).plan.exact
