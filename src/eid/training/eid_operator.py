"""The frozen operator ``H`` stage 2 trains through: the analytic ASM, a stage-1 run, or a stage-1 checkpoint."""

from __future__ import annotations

import functools
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from eid.baselines.dcp import DarkChannelPrior
from eid.models.dehazer import DehazerNet
from eid.physics.density import PerImageDensity
from eid.physics.observed import ObservedHaze
from eid.training.eid_config import ANALYTIC_OPERATOR, NO_OPERATOR, EIDConfig


def build_operator(config: EIDConfig, winograd: bool = True) -> nn.Module:
    """The frozen haze operator ``H`` named by ``config.operator`` (in eval mode, no gradients); ``winograd``
    builds a learned operator's generators with Winograd layers (a machine setting: same results on CPU,
    :mod:`eid.models.winograd`). With no operator (``haze: observed``, whose losses haze through each image's own
    maps) it is the identity, which nothing trains through."""
    if config.operator == NO_OPERATOR:
        from deepinv.physics import Physics

        physics = Physics()
    elif config.operator == ANALYTIC_OPERATOR:
        from eid.physics import ASMHaze

        t = 1.0 if config.asm_transmission is None else config.asm_transmission
        a = 1.0 if config.asm_airlight is None else config.asm_airlight
        physics = ASMHaze(transmission=t, airlight=a)
    else:
        from eid.physics import load_operator

        physics = load_operator(config.operator, winograd=winograd)
    return physics.eval().requires_grad_(False)


def frozen_operator(
    config: EIDConfig, physics: nn.Module | None = None, winograd: bool = True
) -> nn.Module:
    """Stage 2's ``H``: ``physics`` frozen (built by :func:`build_operator` when not given), and wrapped in
    :class:`CheckpointedOperator` with ``checkpoint_operator`` unless it has per-pixel buffers (an analytic oracle)."""
    physics = (
        build_operator(config, winograd)
        if physics is None
        else physics.eval().requires_grad_(False)
    )
    if config.checkpoint_operator and not any(b.ndim == 4 for b in physics.buffers()):
        return CheckpointedOperator(physics)
    return physics


def spreads_density(config: EIDConfig, physics: nn.Module) -> bool:
    """Whether the equivariance term re-hazes at spread densities: ``density_spread`` above 1 and an operator with
    a density (a scattering operator's maps)."""
    return config.density_spread > 1 and hasattr(physics, "maps")


def density_operator(config: EIDConfig, physics: nn.Module) -> PerImageDensity | None:
    """``physics`` at per-image haze densities, for ``density: per_image`` or a ``density_spread`` above 1; ``None``
    without either. The spread needs a scattering operator's density, and is ignored with a warning otherwise."""
    spread = spreads_density(config, physics)
    if config.density_spread > 1 and not spread:
        rank_zero_warn(
            f"density_spread {config.density_spread} is ignored: the operator has no haze density "
            "(only a scattering operator has one)"
        )
    if config.density == "per_image" or spread:
        return PerImageDensity(physics, config.density_range)
    return None


def observed_operator(config: EIDConfig, dehazer: DehazerNet) -> ObservedHaze | None:
    """Each hazy image's own haze as DCP reads it, for ``haze: observed`` (the dehazer's own DCP when its input is
    DCP, so that input and operator share one airlight); ``None`` otherwise."""
    if config.haze != "observed":
        return None
    if config.model.input == "dcp":
        return ObservedHaze(dehazer.dcp)
    return ObservedHaze(DarkChannelPrior(grey_airlight=config.model.dcp_airlight == "grey"))


class CheckpointedOperator(nn.Module):
    """A frozen operator whose ``A``/``A_dagger`` (and a scattering operator's ``maps``) keep no activations for
    the backward pass.

    When the input carries a graph, the call runs under ``torch.utils.checkpoint`` (recomputed during
    backward): the gradient still reaches the input, the generators' activations are not stored. A scattering
    operator keeps its ``maps`` (checkpointed the same way), so its per-image density and ``density_spread`` work
    wrapped; ``A`` with given maps is a pointwise scatter with nothing to recompute, and runs as it is.
    """

    def __init__(self, physics: nn.Module) -> None:
        super().__init__()
        self.inner = physics
        if hasattr(physics, "maps"):
            self.maps = functools.partial(self._call, physics.maps)
            # PerImageDensity.fit reads it; in __dict__, not registered a second time as a submodule
            self.__dict__["residual"] = getattr(physics, "residual", None)

    def _call(self, fn: Any, x: Tensor) -> Any:
        if torch.is_grad_enabled() and x.requires_grad:
            return torch.utils.checkpoint.checkpoint(fn, x, use_reentrant=False)
        return fn(x)

    def A(self, x: Tensor, **kwargs: Any) -> Tensor:
        if kwargs:  # the maps are given (PerImageDensity): no network runs
            return self.inner.A(x, **kwargs)
        return self._call(self.inner.A, x)

    def A_dagger(self, y: Tensor, **kwargs: Any) -> Tensor:
        return self._call(self.inner.A_dagger, y)
