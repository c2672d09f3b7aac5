"""The dark channel prior's airlight pooled with its image set's (``dcp_set_weight``, the natural preset)."""

from __future__ import annotations

import pytest
import torch

from eid.baselines.dcp import DarkChannelPrior
from eid.errors import EIDError
from eid.export.graph import TraceableDarkChannelPrior
from eid.models.dehazer import DehazerNet
from eid.models.dehazer_config import DehazerConfig
from eid.physics import ASMHaze

AIRLIGHT = 0.8


def scene(rng: torch.Generator, size: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """``(clear, hazy)`` ``(1,3,size,size)``: saturated colours (dark channel 0) under haze that is opaque at the top
    (``t`` 0.02, where DCP reads the airlight) and light at the bottom (``t`` 0.9)."""
    clear = 0.2 + 0.8 * torch.rand(1, 3, size, size, generator=rng)
    clear = clear.scatter(1, torch.randint(0, 3, (1, 1, size, size), generator=rng), 0.0)
    t = torch.linspace(0.02, 0.9, size).view(1, 1, size, 1).expand(1, 1, size, size)
    return clear, ASMHaze(transmission=t, airlight=AIRLIGHT).A(clear)


def psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float(-10 * torch.log10(((x - ref) ** 2).mean()))


def test_a_light_crop_gets_the_sets_airlight_and_a_better_recovery(rng: torch.Generator) -> None:
    """A crop of the light bottom has no opaque haze: its own airlight is a guess far from 0.8. Pooled with the
    whole images' airlight (exact here) the error halves at weight 0.5, and the recovery gains over 3 dB."""
    scenes = [scene(rng) for _ in range(3)]
    clear, hazy = scenes[0][0][..., 64:, :32], scenes[0][1][..., 64:, :32]
    own = DarkChannelPrior(grey_airlight=True, gf_radius=8)
    pooled = DarkChannelPrior(grey_airlight=True, gf_radius=8, set_weight=0.5)
    pooled.fit_set_airlight(h[0] for _, h in scenes)
    torch.testing.assert_close(
        pooled.set_airlight,
        torch.full((1, 3, 1, 1), AIRLIGHT),
        atol=5e-3,
        rtol=0,  # t J <= 0.004
    )
    a_own, a_pooled = (dcp.airlight(hazy, dcp.dark_channel(hazy)) for dcp in (own, pooled))
    assert (a_own - AIRLIGHT).abs().max() > 0.1
    torch.testing.assert_close(a_pooled, (a_own + pooled.set_airlight) / 2)
    assert psnr(pooled(hazy), clear) > psnr(own(hazy), clear) + 3


def test_the_set_airlight_is_the_mean_of_the_images_own(rng: torch.Generator) -> None:
    images = [0.2 + 0.6 * torch.rand(3, 24 + 8 * i, 40, generator=rng) for i in range(3)]
    dcp = DarkChannelPrior(set_weight=1.0, gf_radius=4)  # colour: one airlight per channel
    own = [dcp.own_airlight(y[None], dcp.dark_channel(y[None]))[0] for y in images]
    dcp.fit_set_airlight(images)
    torch.testing.assert_close(dcp.set_airlight, torch.stack(own).mean(0, keepdim=True))
    y = images[0][None]
    torch.testing.assert_close(dcp.airlight(y, dcp.dark_channel(y)), dcp.set_airlight)  # weight 1


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: DarkChannelPrior(set_weight=0.5)(torch.rand(1, 3, 16, 16)), "fit_set_airlight"),
        (lambda: DarkChannelPrior(set_weight=0.5).fit_set_airlight([]), "no images"),
        (lambda: DarkChannelPrior(set_weight=1.5), "within"),
        (lambda: DehazerConfig(dcp_set_weight=0.5), "needs input: dcp"),
        (lambda: DehazerConfig(input="dcp", dcp_set_weight=-0.1), "within"),
    ],
)
def test_misuse_says_what_to_do(build, message: str) -> None:
    with pytest.raises(EIDError, match=message):
        build()


def test_the_dehazer_saves_its_set_airlight_and_the_export_keeps_it(rng: torch.Generator) -> None:
    config = DehazerConfig(scales=2, width=4, input="dcp", dcp_airlight="grey", dcp_set_weight=0.5)
    net = DehazerNet(config)
    net.dcp.fit_set_airlight(h[0] for _, h in (scene(rng, 48) for _ in range(2)))
    assert "dcp.set_airlight" in net.state_dict()
    loaded = DehazerNet(config)
    loaded.load_state_dict(net.state_dict())
    y = scene(rng, 48)[1][..., 24:, :]
    assert torch.equal(loaded(y), net(y))
    assert torch.equal(TraceableDarkChannelPrior.like(net.dcp)(y), net.dcp(y))
    assert "dcp.set_airlight" not in DehazerNet(DehazerConfig(input="dcp")).state_dict()


def test_whole_images_are_spaced_and_bounded(tmp_path, rng: torch.Generator) -> None:
    from eid.data.io import write_image
    from eid.training.eid_data import whole_images

    for i in range(5):
        write_image(tmp_path / f"{i}.png", torch.rand(3, 40 + 20 * i, 80, generator=rng))
    images = list(whole_images([tmp_path], channels=3, white="dtype", limit=2, short_side=64))
    assert [tuple(im.shape) for im in images] == [
        (3, 40, 80),
        (3, 80, 64),
    ]  # images 0 and 3 (100x80 -> 80x64)


def test_a_loaded_set_airlight_is_used_and_an_unfitted_one_refused(rng: torch.Generator) -> None:
    """Loading weights marks the set's airlight as usable (no device sync per call); NaN (never fitted) is refused."""
    y = scene(rng, 48)[1]
    fitted = DarkChannelPrior(set_weight=0.5, gf_radius=4).fit_set_airlight([y[0]])
    loaded = DarkChannelPrior(set_weight=0.5, gf_radius=4)
    loaded.load_state_dict(fitted.state_dict())
    assert torch.equal(loaded(y), fitted(y))
    loaded.load_state_dict(DarkChannelPrior(set_weight=0.5).state_dict())
    with pytest.raises(EIDError, match="fit_set_airlight"):
        loaded(y)
