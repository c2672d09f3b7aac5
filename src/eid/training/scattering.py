r"""Stage 1 for the physically structured operator (:class:`eid.physics.ScatteringHaze`).

With ``a`` a clear and ``b`` a hazy crop in ``[0, 1]``, ``H(a) = t(a) a + (1 - t(a)) A(a)`` and
``H^dagger(b) = (b - \hat A (1 - \hat t)) / \max(\hat t, t_min)`` (maps of ``b``), PatchGAN discriminators
``D_B`` (hazy) and ``D_A`` (clear), and ``sg`` the stop-gradient:

.. math::

    L_G =\ & \tfrac12\big[(D_B(H a) - 1)^2 + (D_A(H^\dagger b) - 1)^2\big]
        + \lambda_{cyc}\,\tfrac12\big[\|H^\dagger(\mathrm{sg}\,H a) - a\|_1 + \|H(H^\dagger b) - b\|_1\big] \\
        &+ \lambda_{param}\,\big[\|\hat t(\mathrm{sg}\,H a) - \mathrm{sg}\,t(a)\|_1 + \|\hat A(\mathrm{sg}\,H a) - \mathrm{sg}\,A(a)\|_1\big]
        + \lambda_{id}\,\|H^\dagger a - a\|_1
        + \lambda_{density}\,\max(0,\ d_{\min} - \overline{1 - t(a)})
        \ [+\ \lambda_{dcp}\,(\|\hat t(b) - t_{DCP}(b)\|_1 + \|\hat A(b) - A_{DCP}(b)\|_1)
        + \lambda_{pair}\,\|H(\mathrm{sg}\,J_{DCP}(b)) - b\|_1]

and the discriminators' LSGAN loss with replay buffers, as in :mod:`eid.training.operator`. The choices,
each against a way the CycleGAN fails:

- **No identity term on the hazing side**: hazing a hazy image must add haze; only ``H^dagger`` of a clear
  image is asked to change nothing.
- **The clear-side cycle trains only the estimator** (``sg``): inverting ``H``'s haze must not teach
  ``H`` to haze less. ``H`` learns from ``D_B`` and from re-creating the real haze, ``H(H^dagger b) = b``.
- **The estimator also recovers the maps ``H`` used** (``lambda_param``), a supervised signal that
  costs nothing since ``H`` made the haze.
- **Optionally, the dark channel prior** (``lambda_dcp``, the ``natural`` preset) anchors the estimator on
  the real hazy images where that prior is strong (atmospheric haze); through ``H(H^dagger b) = b`` it
  then also tells ``H`` how much haze the data hold.
- **Optionally, DCP pseudo-pairs** (``lambda_dcp_pair``): the dark channel prior's dehazed estimate
  ``J_DCP(b)`` of each real hazy crop, hazed by ``H``, must give ``b`` back. This calibrates ``H``'s haze
  density on the real data directly (the adversarial term alone leaves it free to be too dense), and
  it makes ``H`` consistent with a dehazer that starts from DCP (``input: dcp``), whose stage-2 haze
  consistency then starts near zero instead of pulling it away from DCP.
- **No trivial ``t = 1``**: ``t`` starts near 0.7 (:class:`~eid.models.scattering.ScatteringNet`) and a
  hinge keeps the mean haze density ``1 - t`` of ``H`` above ``d_min`` (the data are hazy by assumption).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from eid.baselines.dcp import DarkChannelPrior
from eid.config import config_to_dict
from eid.physics.asm import unscatter
from eid.physics.learned import to_gan_range
from eid.physics.scattering import ScatteringHaze, scattering_nets
from eid.training.cyclegan import HazeOperatorModule, lsgan


class ScatteringOperatorModule(HazeOperatorModule):
    """Stage-1 training of a :class:`ScatteringHaze` (manual optimisation, G step then D step).

    Shares the CycleGAN module's config, checkpointing, replay buffers and export hook; only the
    networks, the losses and the sample grid differ.
    """

    def _build_generators(self) -> None:
        nets = scattering_nets(config_to_dict(self.cfg.model))
        self.operator = ScatteringHaze(
            nets["hazer"], nets["estimator"], nets.get("residual"), frozen=False
        )
        self.dcp = DarkChannelPrior()  # no weights: the optional lambda_dcp terms' estimates

    def generator_parameters(self) -> list[torch.nn.Parameter]:
        """What the generator step trains: the hazer, the estimator and the residual."""
        return list(self.operator.parameters())

    def generator_losses(
        self, a: torch.Tensor, b: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The generator's loss terms (see the module docstring), ``H(a)`` and ``H^dagger(b)``."""
        op, lam = self.operator, self.cfg.loss
        t_a, air_a = op.hazer(a)
        fake_b = op.A(a, transmission=t_a, airlight=air_a)
        est_b = op.estimate(b)
        fake_a = op.A_dagger(b, **est_b)
        gan = 0.5 * (
            lsgan(self.d_b(to_gan_range(fake_b)), True)
            + lsgan(self.d_a(to_gan_range(fake_a)), True)
        )
        hazed = fake_b.detach()
        t_hat, air_hat = op.estimator(hazed)
        cyc = 0.5 * (
            F.l1_loss(unscatter(hazed, t_hat, air_hat, op.t_min).clamp(0.0, 1.0), a)
            + F.l1_loss(op.A(fake_a), b)
        )
        param = F.l1_loss(t_hat, t_a.detach().expand_as(t_hat)) + F.l1_loss(
            air_hat, air_a.detach().expand_as(air_hat)
        )
        ident = F.l1_loss(op.A_dagger(a), a)
        density = F.relu(lam.density_min - (1 - t_a).mean(dim=(1, 2, 3))).mean()
        terms = {"gan": gan, "cyc": cyc, "param": param, "id": ident, "density": density}
        terms["g"] = (
            gan
            + lam.lambda_cyc * cyc
            + lam.lambda_param * param
            + lam.lambda_id * ident
            + lam.lambda_density * density
        )
        if lam.lambda_dcp > 0 or lam.lambda_dcp_pair > 0:
            with torch.no_grad():  # one DCP estimate of the real hazy crops serves both terms
                j_dcp, t_dcp, a_dcp = self.dcp.estimate(b)
        if lam.lambda_dcp > 0:  # the estimator pulled towards DCP's maps
            est_t, est_a = est_b["transmission"], est_b["airlight"]
            terms["dcp"] = F.l1_loss(est_t, t_dcp.expand_as(est_t)) + F.l1_loss(
                est_a, a_dcp.expand_as(est_a)
            )
            terms["g"] = terms["g"] + lam.lambda_dcp * terms["dcp"]
        if lam.lambda_dcp_pair > 0:  # the hazer re-creates the real haze from DCP's estimate
            terms["dcp_pair"] = F.l1_loss(op.A(j_dcp), b)
            terms["g"] = terms["g"] + lam.lambda_dcp_pair * terms["dcp_pair"]
        return terms, fake_b, fake_a

    def _inputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The clear and hazy batch in ``[0, 1]``, the operator's range."""
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return (batch[k].contiguous(memory_format=fmt) for k in ("clear", "hazy"))

    def to_discriminator(self, x: torch.Tensor) -> torch.Tensor:
        """``[0, 1] -> [-1, 1]``, the discriminators' range (shared with the CycleGAN's)."""
        return to_gan_range(x)

    @torch.no_grad()
    def sample_columns(self, batch: dict[str, Any]) -> list[torch.Tensor]:
        """Grid columns: clear, t(clear), H(clear), hazy, t_hat(hazy), airlight_hat(hazy), H^dagger(hazy)."""
        a, b = (batch[k].to(self.device) for k in ("clear", "hazy"))
        channels = a.shape[1]
        maps, est = self.operator.maps(a), self.operator.estimate(b)
        as_image = lambda m: m.expand(-1, channels, *a.shape[-2:])
        return [
            a, as_image(maps["transmission"]), self.operator.A(a), b, as_image(est["transmission"]),
            as_image(est["airlight"]), self.operator.A_dagger(b),
        ]  # fmt: skip

    def export(self, run_dir: str | Path) -> tuple[Path, Path]:
        """Write the current operator as ``operator.safetensors`` + ``operator.yaml`` in ``run_dir``."""
        self.operator.config = config_to_dict(self.cfg)
        return self.operator.save(run_dir)
