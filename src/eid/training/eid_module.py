"""Stage 2's LightningModule :class:`EIDModule`: the losses of :mod:`eid.training.eid` (haze consistency,
equivariance, the optional adversarial and background priors) with manual optimisation, the per-epoch sample grid
and the export of ``dehazer.{safetensors,yaml}``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from eid.config import config_to_dict
from eid.losses import EquivarianceLoss, HazeConsistencyLoss
from eid.models.dehazer import DehazerNet
from eid.physics.density import PerImageDensity
from eid.training.callbacks import ensure_finite
from eid.training.eid_config import EIDConfig
from eid.training.eid_operator import (
    density_operator,
    frozen_operator,
    observed_operator,
    spreads_density,
)
from eid.training.eid_priors import ClearPriors
from eid.training.eid_samples import SampleColumns
from eid.training.progress import total_batches
from eid.training.run_folder import RunFolder
from eid.transforms import build_group
from eid.weights import save_weights

__all__ = ["EIDModule"]


class EIDModule(SampleColumns, ClearPriors, L.LightningModule):
    """Lightning module of stage 2 (manual optimisation: one Adam step for ``f``, one for ``D`` if on).

    Batches are dicts with ``hazy`` ``(B,C,H,W)`` in ``[0,1]`` and, for an analytic oracle with per-image
    parameters, entries named like its buffers (ASM: ``transmission`` ``(B,1,H|1,W|1)``, ``airlight``
    ``(B,C|1,1,1)``); validation batches add ``clear`` for PSNR/SSIM.

    :param EIDConfig config: the run's config.
    :param physics: the frozen operator (default: :func:`build_operator`).
    :param clear: optional dataset of unpaired clear images for the priors; items are dicts with ``clear`` (or
        ``hazy``, a plain image folder), indexed by ``(index, item_seed)``.
    :param run_dir: where ``dehazer.{safetensors,yaml}`` are exported at each epoch end.
    :param winograd: build a learned operator (when ``physics`` is not given) with Winograd layers
        (:func:`build_operator`; a machine setting, not part of the recipe).
    """

    def __init__(
        self,
        config: EIDConfig,
        physics: nn.Module | None = None,
        clear: Any = None,
        run_dir: str | Path | None = None,
        *,
        winograd: bool = True,
    ) -> None:
        super().__init__()
        self.config = config
        self.save_hyperparameters({"config": config_to_dict(config)})
        self.automatic_optimization = False
        self.dehazer = DehazerNet(config.model)
        physics = frozen_operator(config, physics, winograd)
        self.__dict__["physics"] = physics
        self.__dict__["per_image_density"] = density_operator(config, physics)
        self.spread = spreads_density(config, physics)
        self.__dict__["observed_haze"] = observed_operator(config, self.dehazer)
        self.group_rng = torch.Generator().manual_seed(config.seed)
        self.haze_consistency = HazeConsistencyLoss(config.loss_norm)
        self.equivariance = EquivarianceLoss(
            build_group(config.group, config.n_trans, self.group_rng),
            alpha=config.alpha,
            norm=config.loss_norm,
            detach=config.detach,
            transform_physics=config.transform_physics,
        )
        self.setup_priors(config, clear)
        self.run_dir = None if run_dir is None else Path(run_dir)

    # -- operator handling ------------------------------------------------------------------------
    def train(self, mode: bool = True) -> EIDModule:
        """Switch ``f`` (and ``D``) to ``mode``; the frozen operator always stays in eval mode."""
        super().train(mode)
        self.physics.eval()
        return self

    def on_fit_start(self) -> None:
        self.start_priors()
        self.physics.to(self.device)
        if self.per_image_density is not None:
            self.per_image_density.to(self.device)

    def physics_for(self, batch: dict[str, Any]) -> nn.Module:
        """The operator for this batch: batch entries named like the operator's buffers (the ASM
        oracle's per-image ``transmission``/``airlight``) replace them; a learned operator has none."""
        params = {
            k: v for k, v in batch.items() if isinstance(v, Tensor) and k in self.physics._buffers
        }
        if params:
            self.physics.update(**params)
        return self.physics

    # -- training ---------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        cfg = self.config
        opt = torch.optim.Adam(self.dehazer.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self._lr_factor)
        optimizers = [opt]
        if self.adversarial:
            optimizers.append(
                torch.optim.Adam(
                    self.discriminator.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.999)
                )
            )
        return optimizers, [sched]

    def _lr_factor(self, step: int) -> float:
        if self.config.schedule == "constant" or self._trainer is None:
            return 1.0
        total = total_batches(self.trainer, steps_per_batch=2 if self.adversarial else 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))

    def losses(self, y: Tensor, physics: nn.Module) -> tuple[Tensor, dict[str, Tensor]]:
        """``f(y)`` and the loss terms ``{"mc", "eq", "loss"}`` for one hazy batch (through ``H_s`` with each
        image's density fitted to the dehazer's input estimate when ``density: per_image``, through each image's
        own DCP maps with ``haze: observed``)."""
        z = self.network_input(y, physics)
        x_net = self.dehazer.from_network_input(z)
        if self.per_image_density is not None:
            physics = self.per_image_density
            if self.config.density == "per_image":
                physics.fit(z, y)
        target = y
        if self.observed_haze is not None:  # fitted to y by network_input
            physics = self.observed_haze
            target = physics.reachable
        terms = {"mc": self.haze_consistency(y=target, x_net=x_net, physics=physics)}
        eq_physics = self._spread(physics, len(y)) if self.spread else physics
        terms["eq"] = self.equivariance(x_net=x_net, physics=eq_physics, model=self.dehazer)
        if self.background is not None:
            terms["bg"] = self.background(x_net)
        return x_net, {**terms, "loss": sum(terms.values())}

    def network_input(self, y: Tensor, physics: nn.Module) -> Tensor:
        """The dehazer's input ``z`` for ``y``. With ``haze: observed`` the batch's DCP maps are fitted first, and a
        DCP-input dehazer takes their recovery rather than running DCP on the same images again."""
        if self.observed_haze is not None:
            self.observed_haze.fit(y)
            if self.config.model.input == "dcp" and not y.requires_grad:  # the fit keeps no graph
                return self.observed_haze.recovered
        return self.dehazer.network_input(y, physics)

    def _spread(self, physics: PerImageDensity, n: int) -> PerImageDensity:
        """``physics`` at each image's density times ``density_spread ** u``, ``u ~ U(-1, 1)`` drawn from the
        module's (checkpointed) generator: the equivariance term's operator."""
        u = torch.rand(n, 1, 1, 1, generator=self.group_rng).to(physics.density)
        return physics.at(physics.density * self.config.density_spread ** (2 * u - 1))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        y = batch["hazy"]
        x_net, losses = self.losses(y, self.physics_for(batch))
        optimizers = self.optimizers()
        opt = optimizers[0] if isinstance(optimizers, list) else optimizers
        if self.adversarial:
            clear = self._clear_batch(len(y))
            self.toggle_optimizer(opt)  # D's weights need no gradient in the dehazer's step
            losses["adv"] = self.adversarial_loss(x=clear, x_net=x_net, D=self.discriminator)
            losses["loss"] = losses["loss"] + losses["adv"]
        ensure_finite(losses, self.trainer)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(losses["loss"])
        opt.step()
        if self.adversarial:
            self.untoggle_optimizer(opt)
        self.lr_schedulers().step()
        if self.adversarial:
            opt_d = optimizers[1]
            losses["disc"] = self.discriminator_loss(x=clear, x_net=x_net, D=self.discriminator)
            ensure_finite({"disc": losses["disc"]}, self.trainer)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(losses["disc"])
            opt_d.step()
        self.log_dict(
            {f"train/{k}": v.detach() for k, v in losses.items()}, prog_bar=True, batch_size=len(y)
        )
        return {k: v.detach() for k, v in losses.items()}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        from eid.metrics.paired import psnr, ssim

        x_net = self.dehazer(batch["hazy"], self.physics_for(batch))
        n = len(x_net)
        self.log(
            "val/psnr",
            psnr(x_net, batch["clear"]).mean(),
            batch_size=n,
            sync_dist=True,
            prog_bar=True,
        )
        self.log("val/ssim", ssim(x_net, batch["clear"]).mean(), batch_size=n, sync_dist=True)

    # -- export and resume ------------------------------------------------------------------------
    def export(self, run_dir: str | Path) -> None:
        """Write ``run_dir/dehazer.{safetensors,yaml}`` (weights + full config)."""
        save_weights(RunFolder(run_dir).dehazer, self.dehazer, config_to_dict(self.config))

    def on_train_epoch_end(self) -> None:
        if self.run_dir is not None and self.trainer.is_global_zero:
            self.export(self.run_dir)

    def on_train_end(self) -> None:
        self.on_train_epoch_end()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["eid_group_rng"] = self.group_rng.get_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "eid_group_rng" in checkpoint:
            self.group_rng.set_state(checkpoint["eid_group_rng"])
