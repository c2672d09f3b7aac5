"""The per-image haze density ``H_s(x) = t(x)^s x + (1 - t(x)^s) a(x)`` (eid.physics.density)."""

from __future__ import annotations

import pytest
import torch

from eid.errors import EIDError
from eid.losses import EquivarianceLoss
from eid.models.dehazer_config import DehazerConfig
from eid.physics import ASMHaze, LearnedHaze, PerImageDensity, ScatteringHaze
from eid.physics.scattering import scattering_nets
from eid.training.eid_config import EIDConfig
from eid.training.eid_module import EIDModule
from eid.transforms import build_group


class KnownMaps(ScatteringHaze):
    """A scattering operator whose maps are given: ``t`` a left-to-right ramp, grey airlight 0.8."""

    def __init__(self) -> None:
        nets = scattering_nets({"channels": 3, "width": 4, "scales": 2})
        super().__init__(nets["hazer"], nets["estimator"])

    def maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        ramp = torch.linspace(0.2, 0.9, x.shape[-1]).expand(len(x), 1, x.shape[-2], -1)
        return {"transmission": ramp, "airlight": torch.full((len(x), 1, 1, 1), 0.8)}


def test_density_one_is_the_operator(rng: torch.Generator) -> None:
    physics = KnownMaps()
    x = torch.rand(2, 3, 8, 8, generator=rng)
    assert torch.equal(PerImageDensity(physics).A(x), physics.A(x))


def test_density_scales_the_optical_depth_exactly(rng: torch.Generator) -> None:
    """``t^s`` is the same scene at ``s`` times the density: the ASM with ``exp(-s beta d)``."""
    physics = PerImageDensity(KnownMaps())
    x = torch.rand(1, 3, 8, 8, generator=rng)
    physics.density = torch.full((1, 1, 1, 1), 2.0)
    t = KnownMaps().maps(x)["transmission"]
    assert torch.allclose(physics.A(x), ASMHaze(transmission=t**2, airlight=0.8).A(x), atol=1e-6)


def test_fit_recovers_each_images_density(rng: torch.Generator) -> None:
    physics = PerImageDensity(KnownMaps())
    x = torch.rand(3, 3, 16, 16, generator=rng)
    t = KnownMaps().maps(x)["transmission"]
    truth = torch.tensor([0.5, 1.0, 2.0]).view(3, 1, 1, 1)  # points of the default log grid
    y = ASMHaze(transmission=t**truth, airlight=0.8).A(x)
    physics.fit(x, y)
    assert torch.allclose(physics.density, truth, rtol=1e-4)


def test_fit_counts_the_operators_residual(rng: torch.Generator) -> None:
    """A residual ``r(x)`` is part of ``H``: the density is fitted to ``H_s`` with it, computed once."""
    physics = KnownMaps()
    physics.residual = torch.nn.Module()
    calls = []
    physics.residual.forward = lambda x: calls.append(1) or torch.full_like(x, 0.05)
    x = torch.rand(1, 3, 16, 16, generator=rng)
    t = physics.maps(x)["transmission"]
    y = ASMHaze(transmission=t**2, airlight=0.8).A(x) + 0.05
    assert PerImageDensity(physics).fit(x, y).density.item() == pytest.approx(2.0)
    assert len(calls) == 1


def test_fit_clips_to_the_density_range(rng: torch.Generator) -> None:
    physics = PerImageDensity(KnownMaps(), density_range=(0.5, 2.0))
    x = torch.rand(2, 3, 16, 16, generator=rng)
    t = KnownMaps().maps(x)["transmission"]
    y = torch.cat([x[:1], ASMHaze(transmission=t[1:] ** 8, airlight=0.8).A(x[1:])])
    physics.fit(x, y)
    assert physics.density.flatten().tolist() == pytest.approx([0.5, 2.0])


def test_equivariance_keeps_each_images_density(rng: torch.Generator) -> None:
    """The transformed copies are hazed at their own image's density, repeated for ``n_trans`` copies."""
    physics = PerImageDensity(KnownMaps())
    physics.density = torch.tensor([0.5, 2.0]).view(2, 1, 1, 1)
    loss = EquivarianceLoss(build_group("rot90", 2, rng))
    params = loss.T.get_params(torch.rand(2, 3, 8, 8))
    moved = loss.transformed_physics(physics, params, batch=2, n_trans=2)
    assert moved.density.flatten().tolist() == [0.5, 2.0, 0.5, 2.0]
    assert physics.density.flatten().tolist() == [0.5, 2.0]


def test_needs_a_scattering_operator_and_an_estimate() -> None:
    with pytest.raises(EIDError, match="scattering operator"):
        PerImageDensity(LearnedHaze(torch.nn.Identity()))
    with pytest.raises(EIDError, match="model.input to dcp or pinv"):
        EIDConfig(density="per_image")
    with pytest.raises(EIDError, match="density 'sometimes'"):
        EIDConfig(density="sometimes")
    with pytest.raises(EIDError, match="density_range"):
        PerImageDensity(KnownMaps(), density_range=(2.0, 4.0))


def test_stage2_fits_the_density_of_every_batch(rng: torch.Generator) -> None:
    """With ``density: per_image`` the losses go through ``H_s``, fitted to the dehazer's DCP input."""
    cfg = EIDConfig(
        density="per_image", adversarial_weight=0.0,
        model=DehazerConfig(channels=3, scales=2, width=4, input="dcp"),
    )  # fmt: skip
    module = EIDModule(cfg, physics=KnownMaps())
    y = torch.rand(2, 3, 16, 16, generator=rng)
    losses = module.losses(y, module.physics)[1]
    assert torch.isfinite(losses["loss"])
    fitted = module.per_image_density.density
    assert fitted.shape == (2, 1, 1, 1)  # one per image, where it starts as one for all
    z = module.dehazer.network_input(y)
    assert torch.equal(fitted, PerImageDensity(KnownMaps()).fit(z, y).density)


def test_at_gives_the_operator_at_other_densities(rng: torch.Generator) -> None:
    """``at`` hazes at the given densities and leaves the batch's operator as it was."""
    physics = PerImageDensity(KnownMaps())
    x = torch.rand(2, 3, 8, 8, generator=rng)
    density = torch.tensor([0.5, 3.0]).view(2, 1, 1, 1)
    moved = physics.at(density)
    t = KnownMaps().maps(x)["transmission"]
    assert torch.allclose(
        moved.A(x), ASMHaze(transmission=t**density, airlight=0.8).A(x), atol=1e-6
    )
    assert physics.density.flatten().tolist() == [1.0]
    assert moved.physics is physics.physics  # the networks are shared, not copied


def spread_module(spread: float, physics: torch.nn.Module, seed: int = 0) -> EIDModule:
    cfg = EIDConfig(
        density_spread=spread, adversarial_weight=0.0, seed=seed,
        model=DehazerConfig(channels=3, scales=2, width=4),
    )  # fmt: skip
    torch.manual_seed(seed)  # the same dehazer weights for every spread
    return EIDModule(cfg, physics=physics)


def test_spread_rehazes_the_equivariance_term_at_random_densities(
    rng: torch.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``density_spread: 4``: haze consistency at the image's density (1, fixed), the equivariance term's operator
    at ``4 ** u`` per image, ``u`` in ``[-1, 1]``, drawn from the module's seeded generator."""
    y = torch.rand(64, 3, 8, 8, generator=rng)
    seen: dict[str, torch.Tensor] = {}
    for name in ("a", "b"):
        module = spread_module(4.0, KnownMaps())
        monkeypatch.setattr(
            module.equivariance, "forward",
            lambda x_net, physics, model, name=name: seen.setdefault(name, physics.density) * 0,
        )  # fmt: skip
        module.losses(y, module.physics)
        assert module.per_image_density.density.flatten().tolist() == [1.0]  # the MC term's
    density = seen["a"].flatten()
    assert torch.equal(density, seen["b"].flatten())  # seeded
    assert density.shape == (64,) and 0.25 <= density.min() and density.max() <= 4.0
    assert density.min() < 0.5 and density.max() > 2.0  # spread over the range, not one value
    assert (density.log().mean()).abs() < 0.3  # log-uniform around the image's own density


def test_spread_changes_the_equivariance_loss(rng: torch.Generator) -> None:
    y = torch.rand(4, 3, 16, 16, generator=rng)
    same, spread = (spread_module(s, KnownMaps()).losses(y, KnownMaps())[1] for s in (1.0, 4.0))
    assert torch.equal(same["mc"], spread["mc"])
    assert not torch.allclose(same["eq"], spread["eq"])


def test_spread_needs_a_density() -> None:
    """A spread below 1 is refused; an operator without a haze density (CycleGAN) ignores it with a warning."""
    with pytest.raises(EIDError, match="density_spread 0.5"):
        EIDConfig(density_spread=0.5)
    with pytest.warns(UserWarning, match="density_spread 4.0 is ignored"):
        module = spread_module(4.0, LearnedHaze(torch.nn.Identity()))
    assert module.per_image_density is None


def test_spread_survives_a_checkpointed_operator(rng: torch.Generator) -> None:
    """``checkpoint_operator: true`` wraps the operator; its maps stay visible, checkpointed, so the spread and the
    per-image density still apply, with the unwrapped operator's gradients."""
    import warnings

    from eid.training.eid_operator import CheckpointedOperator

    torch.manual_seed(0)
    nets = scattering_nets({"channels": 3, "width": 4, "scales": 2})
    physics = ScatteringHaze(nets["hazer"], nets["estimator"])
    y = torch.rand(2, 3, 16, 16, generator=rng)
    grads, losses = [], []
    for wrapped in (physics, CheckpointedOperator(physics)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "density_spread is ignored"
            module = spread_module(4.0, wrapped)
        assert module.spread and module.per_image_density is not None
        loss = module.losses(y, module.physics)[1]
        loss["loss"].backward()
        losses.append(loss["eq"].detach())
        grads.append([p.grad.clone() for p in module.dehazer.parameters()])
    assert torch.allclose(*losses, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))
