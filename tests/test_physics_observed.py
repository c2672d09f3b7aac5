"""Stage 2 through each hazy image's own maps (eid.physics.observed) and DCP's grey airlight."""

from __future__ import annotations

import pytest
import torch

from eid.baselines.dcp import DarkChannelPrior
from eid.errors import EIDError
from eid.export.graph import TraceableDarkChannelPrior
from eid.models.dehazer import DehazerNet
from eid.models.dehazer_config import DehazerConfig
from eid.physics import ASMHaze, ObservedHaze
from eid.training.eid_config import EIDConfig
from eid.training.eid_module import EIDModule


def hazy_scene(rng: torch.Generator, n: int = 2, size: int = 32) -> torch.Tensor:
    """Coloured clear images under a left-to-right haze ramp with a bluish airlight."""
    x = torch.rand(n, 3, size, size, generator=rng) * 0.6
    t = torch.linspace(0.3, 0.9, size).expand(n, 1, size, -1)
    return ASMHaze(transmission=t, airlight=[0.7, 0.8, 0.9]).A(x)


def test_grey_airlight_is_the_picked_colours_mean(rng: torch.Generator) -> None:
    y = hazy_scene(rng)
    colour, grey = DarkChannelPrior(gf_radius=4), DarkChannelPrior(gf_radius=4, grey_airlight=True)
    a_colour = colour.airlight(y, colour.dark_channel(y))
    a_grey = grey.airlight(y, grey.dark_channel(y))
    assert not torch.allclose(a_colour[:, 0], a_colour[:, 2])  # the scene's airlight is coloured
    assert torch.allclose(a_grey, a_colour.mean(1, keepdim=True).expand_as(a_colour))
    assert torch.allclose(grey.estimate(y)[2], a_grey)  # the recovery uses it


def test_the_grey_dcp_is_a_dehaze_method(rng: torch.Generator) -> None:
    from eid.inference import build_method

    y = hazy_scene(rng)
    grey = build_method("dcp-grey", device="cpu")
    assert grey.name == "dcp-grey" and not grey.tileable
    assert torch.equal(grey(y), DarkChannelPrior(grey_airlight=True)(y))
    assert not torch.allclose(grey(y), build_method("dcp", device="cpu")(y))


def test_dehazer_reads_its_dcp_airlight_and_the_export_keeps_it(rng: torch.Generator) -> None:
    y = hazy_scene(rng)
    net = DehazerNet(DehazerConfig(channels=3, scales=2, width=4, input="dcp", dcp_airlight="grey"))
    assert net.dcp.grey_airlight
    assert torch.equal(TraceableDarkChannelPrior.like(net.dcp)(y), net.dcp(y))
    assert not torch.allclose(net.dcp(y), DarkChannelPrior()(y))
    with pytest.raises(EIDError, match="dcp_airlight"):
        DehazerConfig(dcp_airlight="blue")


def test_observed_haze_takes_dcps_maps_and_is_consistent_at_its_estimate(
    rng: torch.Generator,
) -> None:
    """``H_y`` holds DCP's ``t_hat(y)`` and ``A_hat(y)``; hazing DCP's own estimate gives ``y`` back wherever the
    estimate is not clipped, so the haze-consistency term starts at zero for a dehazer that starts at DCP."""
    y = hazy_scene(rng)
    dcp = DarkChannelPrior(gf_radius=4)
    physics = ObservedHaze(dcp).fit(y)
    j, t, a = dcp.estimate(y)
    assert torch.equal(physics.transmission, t) and torch.equal(physics.airlight, a)
    unclipped = ((y - a) / t + a > 0) & ((y - a) / t + a < 1)
    assert unclipped.float().mean() > 0.5
    assert torch.allclose(physics.A(j)[unclipped], y[unclipped], atol=1e-5)
    assert torch.allclose(physics.reachable[unclipped], y[unclipped], atol=1e-5)
    assert not torch.allclose(
        physics.reachable[~unclipped], y[~unclipped], atol=1e-3
    )  # y is out of reach there
    other = hazy_scene(rng)
    assert not torch.equal(physics.fit(other).transmission, t)  # refitted per batch
    with pytest.raises(EIDError, match="fit"):
        _ = ObservedHaze(dcp).reachable


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"haze": "analytic"}, "haze 'analytic' is not valid"),
        ({"haze": "observed", "density": "per_image"}, "density: fixed"),
        ({"haze": "observed", "density_spread": 4.0}, "density: fixed"),
    ],
)
def test_observed_haze_config_is_validated(overrides: dict, message: str) -> None:
    with pytest.raises(EIDError, match=message):
        EIDConfig(model=DehazerConfig(input="dcp"), **overrides)


def observed_module(seed: int = 0) -> EIDModule:
    cfg = EIDConfig(
        haze="observed", adversarial_weight=0.0, seed=seed, group="hflip",
        model=DehazerConfig(channels=3, scales=2, width=4, input="dcp", dcp_airlight="grey", head="affine"),
    )  # fmt: skip
    torch.manual_seed(seed)
    return EIDModule(cfg, physics=ASMHaze())  # the learned operator is not used


def test_stage2_losses_go_through_each_images_own_maps(rng: torch.Generator) -> None:
    module = observed_module()
    y = hazy_scene(rng)
    y[..., :6, :6] = 1.0  # brighter than the airlight: DCP's recovery clips there
    x_net, losses = module.losses(y, module.physics)
    haze = ObservedHaze(module.dehazer.dcp).fit(y)
    assert torch.allclose(losses["mc"], (haze.A(x_net) - haze.reachable).square().mean())
    assert losses["mc"] < 1e-10  # f starts at DCP's clipped estimate: the anchor pulls nowhere
    assert (haze.A(x_net) - y).square().mean() > 1e-4  # where y was out of reach
    assert losses["eq"] > 0 and torch.isfinite(losses["loss"])
    assert (
        module.observed_haze.dcp is module.dehazer.dcp
    )  # one airlight for the input and the operator


def test_stage2_sample_grid_shows_the_observed_transmission(rng: torch.Generator) -> None:
    module = observed_module()
    y = hazy_scene(rng)
    columns = module.sample_columns({"hazy": y})
    assert len(columns) == 5  # hazy, DCP(y), f(y), H_y(f(y)), t_hat(y)
    t = ObservedHaze(module.dehazer.dcp).fit(y).transmission
    assert torch.equal(columns[-1], t.expand_as(y))


def test_stage2_runs_dcp_once_on_the_hazy_batch(
    rng: torch.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The maps' fit and a DCP-input dehazer share one DCP run on ``y``; the other runs on the re-hazed images of the
    equivariance term. The input is the one ``network_input`` gives."""
    module = observed_module()
    y = hazy_scene(rng)
    dcp = module.dehazer.dcp
    inputs: list[torch.Tensor] = []
    estimate = dcp.estimate
    monkeypatch.setattr(dcp, "estimate", lambda image: inputs.append(image) or estimate(image))
    x_net = module.losses(y, module.physics)[0]
    assert len(inputs) == 2 and torch.equal(inputs[0], y) and not torch.equal(inputs[1], y)
    monkeypatch.setattr(dcp, "estimate", estimate)
    assert torch.equal(x_net, module.dehazer(y))


def test_the_natural_preset_trains_from_hazy_images_alone(
    eid_cli, tmp_path, rng: torch.Generator
) -> None:
    """Its losses haze through each image's own maps: no stage-1 operator, no clear images; resume and dehaze work."""
    from eid.config import read_yaml
    from eid.data.io import read_image, write_image
    from eid.weights import load_weights

    for i, image in enumerate(hazy_scene(rng)):
        write_image(tmp_path / "hazy" / f"{i}.png", image)
    args = (
        "--hazy",
        tmp_path / "hazy",
        "--out",
        tmp_path / "run",
        "--batch-size",
        "2",
        "--crop",
        "32",
    )
    run = eid_cli("train", *args, "--preset", "natural", "--max-steps", "2")
    assert run.code == 0, run.err
    assert "no stage-1 operator" in run.err  # the start line (progress goes to stderr)
    assert not (tmp_path / "run" / "operator.safetensors").exists()
    dcp = DarkChannelPrior(
        grey_airlight=True, set_weight=1.0
    )  # the set's airlight, from the whole hazy images
    dcp.fit_set_airlight(read_image(path)[0] for path in sorted((tmp_path / "hazy").iterdir()))
    state, _ = load_weights(tmp_path / "run" / "dehazer")
    torch.testing.assert_close(state["dcp.set_airlight"], dcp.set_airlight)
    card = (tmp_path / "run" / "MODEL.md").read_text()
    assert "model.dcp_set_weight=0.5" in card
    assert (
        f"- set airlight (mean of DCP's over the hazy training images): {dcp.set_airlight[0, 0, 0, 0]:.3f}\n"
        in card
    )
    assert read_yaml(tmp_path / "run" / "dehazer.yaml")["operator"] == "none"
    assert "--operator" not in read_yaml(tmp_path / "run" / "inputs.yaml")
    assert (
        "- operator: none (each image's own DCP maps)"
        in (tmp_path / "run" / "MODEL.md").read_text()
    )
    unused = eid_cli("train", *args[:3], tmp_path / "run2", *args[4:], "--preset", "natural", "--max-steps", "1",
                     "--clear", tmp_path / "hazy")  # fmt: skip
    assert (
        unused.code == 0 and "--clear is not used" in unused.err
    )  # the preset's prior weight is 0
    resumed = eid_cli("train", *args, "--resume", "--max-steps", "3")
    assert resumed.code == 0, resumed.err
    dehazed = eid_cli(
        "dehaze", "--model", tmp_path / "run", tmp_path / "hazy", "--out", tmp_path / "out"
    )
    assert dehazed.code == 0, dehazed.err
    hazy, out = (read_image(tmp_path / folder / "0.png")[0] for folder in ("hazy", "out"))
    assert out.shape == hazy.shape and (out - hazy).abs().mean() > 0.05  # DCP's start removes haze


def test_a_preset_whose_losses_need_an_operator_asks_for_one(eid_cli, tmp_path, rng) -> None:
    from eid.data.io import write_image

    write_image(tmp_path / "hazy" / "0.png", hazy_scene(rng, n=1)[0])
    run = eid_cli(
        "train", "--hazy", tmp_path / "hazy", "--out", tmp_path / "run"
    )  # the fast preset
    assert "no operator" in run.error_line() and "--operator" in run.error_line()
    assert not (tmp_path / "run").exists()
    with pytest.raises(EIDError, match="haze: observed"):
        EIDConfig(operator="none", haze="observed", model=DehazerConfig(input="pinv"))
