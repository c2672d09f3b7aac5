r"""Physically structured learned haze operator: the scattering model with learned maps.

.. math::

    H(x) = t(x) \odot x + (1 - t(x)) \odot a(x)\ [+\ r(x)], \qquad
    H^\dagger(y) = \frac{y - \hat a(y)\,(1 - \hat t(y))}{\max(\hat t(y), t_{\min})}

``t, a`` come from a :class:`~eid.models.scattering.ScatteringNet` looking at the clear image (a
transmission, i.e. depth, estimator and an airlight or veil head); ``t_hat, a_hat`` from a second one
looking at the hazy image. With known maps ``H`` is :class:`~eid.physics.ASMHaze` exactly, and
``H^dagger`` inverts it exactly. Unlike the CycleGAN ``G_AB``, ``H`` can only attenuate and add light,
so it cannot stay the identity while its maps say haze, and ``input: pinv`` is a physical inversion.

Saved like :class:`~eid.physics.LearnedHaze`: ``operator.safetensors`` (keys ``hazer.*``,
``estimator.*``, ``residual.*``) + ``operator.yaml`` with ``model.kind: scattering``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from deepinv.physics import Physics
from torch import Tensor, nn

from eid.errors import EIDError
from eid.models.scattering import BoundedResidual, ScatteringNet
from eid.physics.asm import scatter, unscatter
from eid.weights import save_weights

NET_KEYS = ("channels", "width", "scales", "transmission", "airlight", "t_min")


def scattering_nets(model: dict[str, Any]) -> dict[str, nn.Module]:
    """The operator's networks for a ``model`` config section: ``hazer``, ``estimator`` [, ``residual``]."""
    kwargs = {k: model[k] for k in NET_KEYS if k in model}
    nets: dict[str, nn.Module] = {
        "hazer": ScatteringNet(**kwargs),
        "estimator": ScatteringNet(**kwargs),
    }
    if float(model.get("residual_bound", 0.0)) > 0:
        nets["residual"] = BoundedResidual(
            int(model.get("channels", 3)),
            int(model.get("width", 16)),
            float(model["residual_bound"]),
        )
    return nets


class ScatteringHaze(Physics):
    r"""Learned scattering operator ``H`` and its physical pseudo-inverse ``H^dagger`` (see the module docstring).

    :param ScatteringNet hazer: ``x -> (t, a)`` for ``H``.
    :param ScatteringNet estimator: ``y -> (t_hat, a_hat)`` for ``H^dagger``.
    :param BoundedResidual | None residual: optional bounded correction ``r(x)``.
    :param dict config: the stage-1 config (saved with the weights).
    :param bool frozen: eval mode and no gradients (stage 2 and inference); stage 1 trains it unfrozen.

    >>> physics = ScatteringHaze(ScatteringNet(3, 4, 2), ScatteringNet(3, 4, 2))
    >>> x = torch.rand(1, 3, 8, 8)
    >>> torch.equal(physics.A(x, transmission=1.0), x)
    True
    """

    def __init__(
        self, hazer: ScatteringNet, estimator: ScatteringNet, residual: BoundedResidual | None = None,
        config: dict[str, Any] | None = None, frozen: bool = True, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.hazer, self.estimator, self.residual = hazer, estimator, residual
        self.t_min = hazer.t_min
        self.config = dict(config or {})
        self.frozen = frozen
        if frozen:
            self.requires_grad_(False)
            super().train(False)

    def train(self, mode: bool = True) -> ScatteringHaze:
        """A frozen operator stays in eval mode whatever the surrounding module does."""
        return super().train(False if self.frozen else mode)

    def maps(self, x: Tensor) -> dict[str, Tensor]:
        """``{"transmission": t(x), "airlight": a(x)}`` of ``H`` for clear ``x``."""
        t, a = self.hazer(x)
        return {"transmission": t, "airlight": a}

    def estimate(self, y: Tensor) -> dict[str, Tensor]:
        """``{"transmission": t_hat(y), "airlight": a_hat(y)}`` of ``H^dagger`` for hazy ``y``."""
        t, a = self.estimator(y)
        return {"transmission": t, "airlight": a}

    def A(
        self,
        x: Tensor,
        transmission: Tensor | float | None = None,
        airlight: Tensor | float | None = None,
        **kwargs: Any,
    ) -> Tensor:
        """Haze clear ``x`` in ``[0, 1]``; given ``transmission``/``airlight`` replace the learned maps."""
        t, a = _given_or(self.maps, x, transmission, airlight)
        y = scatter(x, t, a)
        return y if self.residual is None else y + self.residual(x)

    def A_dagger(
        self,
        y: Tensor,
        transmission: Tensor | float | None = None,
        airlight: Tensor | float | None = None,
        **kwargs: Any,
    ) -> Tensor:
        """Invert the scattering model on hazy ``y`` with the estimated (or given) maps, clipped to ``[0, 1]``."""
        t, a = _given_or(self.estimate, y, transmission, airlight)
        return unscatter(y, t, a, self.t_min).clamp(0.0, 1.0)

    def save(self, run_dir: str | Path) -> tuple[Path, Path]:
        """Write ``run_dir/operator.safetensors`` (keys ``hazer.*``, ``estimator.*`` [, ``residual.*``]) and
        ``run_dir/operator.yaml`` atomically."""
        from eid.physics.learned import OPERATOR_STEM

        return save_weights(Path(run_dir) / OPERATOR_STEM, self.state_dict(), self.config)

    @classmethod
    def from_state(
        cls, state: dict[str, Tensor], config: dict[str, Any], where: str
    ) -> ScatteringHaze:
        """Build a frozen operator from exported tensors and their config (``where`` names the file in errors)."""
        nets = scattering_nets(config.get("model", {}))
        operator = cls(nets["hazer"], nets["estimator"], nets.get("residual"), config=config)
        try:
            operator.load_state_dict(state)
        except RuntimeError as exc:
            raise EIDError(
                f"{where}: weights do not match the config in operator.yaml; re-export the run"
            ) from exc
        return operator


def _given_or(
    estimate: Any, image: Tensor, transmission: Any, airlight: Any
) -> tuple[Tensor, Tensor]:
    """``(t, a)``: the given maps (floats or tensors), else those ``estimate(image)`` returns."""
    maps = estimate(image) if transmission is None or airlight is None else {}
    as_map = lambda v: torch.as_tensor(v, dtype=image.dtype, device=image.device)
    t = maps["transmission"] if transmission is None else as_map(transmission)
    a = maps["airlight"] if airlight is None else as_map(airlight)
    return t, a
