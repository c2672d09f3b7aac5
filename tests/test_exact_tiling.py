"""Exact tiling of dehazers with group/instance norms and circular padding (eid.inference.exact_tiling)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from eid.config import config_to_dict
from eid.errors import EIDError
from eid.inference import Dehazer, Method, build_method
from eid.inference.tiling import tile_grid
from eid.models import DehazerConfig, DehazerNet, ResnetGenerator
from eid.models.global_norm import GlobalNormStatistics, WeightedMoments
from eid.physics import LearnedHaze
from eid.weights import save_weights


def dehazer(**kw) -> DehazerNet:
    """A random 2-scale dehazer (receptive radius 11 once its statistics are fixed)."""
    torch.manual_seed(0)
    config = {"channels": 3, "scales": 2, "width": 8, **kw}
    net = DehazerNet(DehazerConfig(**config)).eval()
    # the affine head starts at zero: make it act
    nn.init.normal_(net.unet.Conv_1x1.weight, std=0.1)
    return net


def veiled(rng: torch.Generator, height: int, width: int) -> torch.Tensor:
    """Texture under a veil that thickens from left to right: each tile's own statistics differ."""
    texture = torch.nn.functional.avg_pool2d(
        torch.rand(1, 3, height, width, generator=rng), 3, 1, 1
    )
    veil = torch.linspace(0.0, 0.8, width).expand(1, 1, height, width)
    return texture * (1 - veil) + 0.9 * veil


@pytest.mark.parametrize(
    ("kw", "tile"),
    [
        ({"norm": "group"}, 48),  # the presets' dehazer: group norm, circular padding
        ({"norm": "instance", "circular_padding": False}, 48),
        ({"norm": "none"}, 48),  # circular padding alone
        ({"norm": "group", "unshuffle": 2}, 96),  # R = 23: 2R needs a larger tile
        ({"norm": "group", "unshuffle": 2, "head": "affine"}, 96),  # the endoscopy preset's dehazer
        ({"norm": "group", "unshuffle": 4, "head": "affine"}, 144),  # the fast preset's (R = 51)
    ],
)
def test_exact_tiles_equal_the_untiled_output(rng, kw, tile):
    net = dehazer(**kw)
    x = veiled(rng, max(210, 2 * tile + 18), max(250, 2 * tile + 58))  # above 2 tiles: tiled
    whole = Dehazer.from_module(net, device="cpu", tile=None).run(x)
    exact = Dehazer.from_module(net, device="cpu", tile=tile, batch_size=3)
    assert exact.plan.norm == "exact" and exact.plan.overlap >= 2 * exact.plan.margin
    assert float((exact.run(x) - whole).abs().max()) < 1e-5
    # the test can fail: the down-scaled reference is not exact
    close = Dehazer.from_module(net, device="cpu", tile=tile, tile_norm="global").run(x)
    assert float((close - whole).abs().max()) > 1e-3


def test_exact_tiles_run_under_bf16_autocast(rng):
    """The measured statistics (float32) normalise bf16 activations: batch_norm wants its parameters in one dtype,
    which on a CPU with native bf16, where ``--precision auto`` is bf16, once stopped every tiled image."""
    net = dehazer(norm="group")
    # above 2 tiles of 48, but few: bf16 is emulated, slow, on most CPUs
    x = veiled(rng, 110, 130)
    whole = Dehazer.from_module(net, device="cpu", tile=None, precision="bf16").run(x)
    exact = Dehazer.from_module(net, device="cpu", tile=48, precision="bf16")
    assert exact.plan.norm == "exact" and exact.amp_dtype is torch.bfloat16
    assert float((exact.run(x) - whole).abs().mean()) < 2e-3  # bf16 rounding, in another order


def test_a_dcp_input_dehazer_is_tiled_exactly_on_dcps_tiled_estimate(rng):
    """The natural preset's dehazer: DCP in tiles with the whole image's airlight, then the network exactly on it."""
    net = dehazer(norm="group", unshuffle=2, head="affine", input="dcp")
    net.dcp.gf_radius = 12  # R = 31: tiles of 124 px
    x = veiled(rng, 260, 300)
    whole = Dehazer.from_module(net, device="cpu", tile=None, precision="fp32").run(x)
    runner = Dehazer.from_module(net, device="cpu", tile=96, precision="fp32")
    assert runner.method.prepare is not None and runner.plan.norm == "exact"
    assert runner.plan.margin == net.network_local_radius == 25
    sides: list[int] = []
    recover = net.dcp.recover
    net.dcp.recover = lambda tiles, a: sides.append(max(tiles.shape[-2:])) or recover(tiles, a)
    assert float((runner.run(x) - whole).abs().max()) < 1e-4
    assert sides and max(sides) == 124  # DCP never ran on the whole image
    # the test can fail: the network alone on the hazy image is another function
    with torch.no_grad():
        assert float((runner.method.body(x) - whole).abs().max()) > 1e-2


def pinv_run(folder: Path) -> Path:
    """A saved ``paper``-like run, small: a CycleGAN operator (``G_BA`` of radius 29) and an instance-norm dehazer with
    circular padding on its estimate (``input: pinv``)."""
    torch.manual_seed(0)
    physics = LearnedHaze(
        ResnetGenerator(width=4, blocks=1), ResnetGenerator(width=4, blocks=1),
        config={"model": {"kind": "cyclegan", "width": 4, "blocks": 1, "residual": False}},
    )  # fmt: skip
    for layer in physics.g_ba.modules():  # a trained generator's scale, not the initial N(0, 0.02)
        if isinstance(layer, nn.Conv2d):
            nn.init.normal_(layer.weight, std=0.3)
    physics.save(folder)
    net = dehazer(norm="instance", input="pinv", circular_padding=True)
    save_weights(folder / "dehazer", net, {"model": config_to_dict(net.config)})
    return folder


def test_a_pinv_input_dehazer_is_tiled_exactly_on_g_bas_tiled_estimate(rng, tmp_path):
    """The paper preset's dehazer: the CycleGAN's G_BA in exact tiles, then the UNet exactly on its estimate."""
    run = pinv_run(tmp_path / "run")
    x = veiled(rng, 260, 300)
    whole = Dehazer.load(run, device="cpu", tile=None, precision="fp32").run(x)
    runner = Dehazer.load(run, device="cpu", tile=48, precision="fp32", batch_size=2)
    assert runner.method.prepare is not None and runner.plan.norm == "exact"
    physics = runner.method.prepare.args[0]
    assert runner.plan.margin == 11 and physics.g_ba.local_radius == 29
    sides: list[int] = []
    batches: list[int] = []
    physics.g_ba.register_forward_pre_hook(
        lambda _, args: sides.append(max(args[0].shape[-2:])) or batches.append(len(args[0]))
    )
    assert float((runner.run(x) - whole).abs().max()) < 1e-4
    assert sides and max(sides) == 116  # G_BA never ran on the whole image: tiles of 4R
    assert max(batches) == 2  # in the runner's batches
    sides.clear()
    runner.run(
        x[..., :90, :90]
    )  # at most two tiles a side: one forward of the whole method, as untiled
    assert sides == [92]
    # the test can fail: G_BA's tiles with their own or down-scaled statistics give another estimate
    for norm in ("tile", "global"):
        approximate = Dehazer.load(run, device="cpu", tile=48, precision="fp32", tile_norm=norm)
        z = approximate.method.prepare(x, 48, norm)
        assert float((z - runner.method.prepare(x, 48, "exact")).abs().max()) > 1e-2


def test_the_cyclegan_only_baseline_is_tiled_exactly(rng, tmp_path):
    """``eid dehaze --method cyclegan``: G_BA alone, its statistics measured pass by pass."""
    run = pinv_run(tmp_path / "run")
    x = veiled(rng, 200, 236)
    method = build_method("cyclegan", operator=run, device="cpu")
    assert method.local_radius == 29
    whole = Dehazer(method, device="cpu", tile=None, precision="fp32").run(x)
    runner = Dehazer(method, device="cpu", tile=96, precision="fp32")
    assert runner.plan.norm == "exact" and runner.plan.overlap >= 58 and not runner.plan.wrap
    assert float((runner.run(x) - whole).abs().max()) < 1e-4
    per_tile = Dehazer(method, device="cpu", tile=96, precision="fp32", tile_norm="tile").run(x)
    assert float((per_tile - whole).abs().max()) > 1e-2


def test_exact_statistics_take_one_stopped_pass_per_norm_call(rng):
    """Pass k runs the tiles up to norm call k only; the final pass runs them whole."""
    net = dehazer(norm="group")
    stats = GlobalNormStatistics([net])
    calls = stats.count_calls(lambda: net(torch.rand(1, 3, 16, 16)))
    assert (
        calls == len(stats.layers) == 7
    )  # 2 scales: 2 + 2 encoder convs, the up-conv, 2 decoder convs
    runner = Dehazer.from_module(net, device="cpu", tile=48)
    plan = runner.plan
    firsts, lasts = [], []
    hooks = [
        net.unet.Conv1.register_forward_hook(lambda *_: firsts.append(1)),
        net.unet.Conv_1x1.register_forward_hook(lambda *_: lasts.append(1)),
    ]
    runner.run(veiled(rng, 150, 170))
    for hook in hooks:
        hook.remove()
    wrap = 12  # the radius 11 rounded up to the size multiple 2, on each side
    tiles = len(tile_grid(150 + 2 * wrap, 170 + 2 * wrap, 48, plan.overlap, 2, plan.margin))
    # one whole forward counts the calls; then only the final pass reaches the output layer
    assert len(lasts) == 1 + tiles
    # the first block (norm calls 0 and 1) completes in the count, in passes 2..6 and in the final pass
    assert len(firsts) == 1 + (calls - 2) * tiles + tiles


def test_weighted_moments_of_a_partition_are_the_whole_images():
    """Weights that sum to one over tiles give the whole input's mean and variance, at any layer scale."""
    x = torch.randn(1, 4, 8, 8, dtype=torch.float64)
    layer = nn.GroupNorm(2, 4)
    moments = WeightedMoments()
    left = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    left[..., :8] = 1.0
    for weight in (left, 1 - left):  # the layer runs at half the tiles' resolution
        moments.start(weight)
        moments.add(layer, x)
    mean, var = moments.result()
    grouped = x.reshape(2, -1)
    torch.testing.assert_close(mean[0].double(), grouped.mean(1), rtol=0, atol=1e-6)
    torch.testing.assert_close(var[0].double(), grouped.var(1, unbiased=False), rtol=0, atol=1e-6)


def test_auto_falls_back_to_the_global_reference_where_exact_cannot_run():
    net = dehazer(norm="group")
    assert Dehazer.from_module(net, device="cpu", tile=48, tta=True).plan.norm == "global"
    assert (
        Dehazer.from_module(net, device="cpu", tile=24).plan.norm == "global"
    )  # no room for 2R = 22
    unknown = Method(net, multiple=2, modules=(net,))  # no local radius declared
    assert Dehazer(unknown, device="cpu", tile=48).plan.norm == "global"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"tta": True}, "--tta"),
        ({"tile": 24}, "--overlap >= 22"),
        ({"overlap": 8}, "--overlap >= 22"),
    ],
)
def test_exact_refuses_what_it_cannot_reproduce(kw, message):
    net = dehazer(norm="group")
    with pytest.raises(EIDError, match=message):
        Dehazer.from_module(net, device="cpu", **{"tile": 48, "tile_norm": "exact", **kw})


def test_cli_tiles_a_group_norm_run_exactly(eid_cli, tmp_path, rng):
    """``eid dehaze --tile 48`` (default tile norm) writes the untiled result of a saved group-norm run."""
    import tifffile

    from eid.config import config_to_dict
    from eid.weights import save_weights

    net = dehazer(norm="group")
    save_weights(tmp_path / "run" / "dehazer", net, {"model": config_to_dict(net.config)})
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "a.tif", veiled(rng, 150, 170)[0].permute(1, 2, 0).numpy())
    for tile, out in (("48", "tiled"), ("0", "whole")):
        result = eid_cli("dehaze", "--model", tmp_path / "run", tmp_path / "in", "--out", tmp_path / out,
                         "--tile", tile, "--backend", "torch")  # fmt: skip
        assert result.code == 0, result
    tiled, whole = (tifffile.imread(tmp_path / name / "a.tif") for name in ("tiled", "whole"))
    assert tiled.dtype == "float32" and abs(tiled - whole).max() < 1e-5


@pytest.mark.parametrize(("unshuffle", "tile"), [(1, 512), (2, 1024), (4, 2048)])
def test_the_default_tile_grows_with_the_space_to_depth_factor(unshuffle, tile):
    """Tiles hold as many pixels of the widest layers: 512 for a full-resolution network, 2048 for the fast preset's."""
    runner = Dehazer.from_module(dehazer(unshuffle=unshuffle), device="cpu")
    assert runner.method.working_scale == unshuffle and runner.plan.tile == tile
    assert Dehazer.from_module(dehazer(unshuffle=unshuffle), device="cpu", tile=96).plan.tile == 96
    with pytest.raises(EIDError, match="unknown tile 'big'"):
        Dehazer.from_module(dehazer(unshuffle=unshuffle), device="cpu", tile="big")
