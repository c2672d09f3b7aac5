"""Stage 1: learn the haze physics adversarially from unpaired clear (A) and hazy (B) images (CycleGAN).

With ``a`` a clear and ``b`` a hazy crop (both mapped to ``[-1, 1]``), ``G_AB: A -> B`` (pseudo-hazing
operator H), ``G_BA: B -> A`` (pseudo-inverse H^dagger) and PatchGAN discriminators ``D_A``, ``D_B``:

.. math::

    L_G &= \\tfrac12\\big[(D_B(G_{AB}(a)) - 1)^2 + (D_A(G_{BA}(b)) - 1)^2\\big]
          + \\lambda_{cyc}\\,\\tfrac12\\big[\\|G_{BA}G_{AB}a - a\\|_1 + \\|G_{AB}G_{BA}b - b\\|_1\\big]
          + \\lambda_{id}\\,\\tfrac12\\big[\\|G_{BA}a - a\\|_1 + \\|G_{AB}b - b\\|_1\\big] \\\\
    L_D &= \\tfrac12\\big[(D_A(a) - 1)^2 + D_A(\\tilde a)^2\\big] + \\tfrac12\\big[(D_B(b) - 1)^2 + D_B(\\tilde b)^2\\big]

(LSGAN means over patches), where :math:`\\tilde a, \\tilde b` come from 50-image replay buffers of past fakes.
Recipe (pytorch-GAN CycleGAN, used by the authors): Adam 2e-4, betas (0.5, 0.999), lambda_cyc 10, lambda_id 5,
LR constant for the first half of training, then linear decay to 0. The fakes of the generator step are
reused (detached) for the discriminator step, as upstream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from eid.config import config_to_dict, saved_config
from eid.models.discriminators import PatchGANDiscriminator
from eid.models.generators import ResnetGenerator
from eid.physics.learned import from_gan_range, save_operator, to_gan_range
from eid.training.callbacks import ensure_finite
from eid.training.operator_config import OperatorConfig
from eid.training.progress import total_batches

STEPS_PER_BATCH = 2
"""Optimizer steps per batch (generators, then discriminators): Lightning's ``global_step`` counts both."""


class ReplayBuffer:
    """Pool of past fake images (Shrivastava et al.): stabilises D by showing it older generator outputs.

    For each new image: while the pool is not full, store and return it; afterwards with probability 1/2
    return a random stored image and replace it with the new one, else return the new image. Its images and
    the state of its random generator are saved in checkpoints (:meth:`state_dict`), so resumes are exact.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = torch.Generator().manual_seed(seed)

    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        if self.size <= 0:
            return fakes
        out = []
        for image in fakes.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif bool(torch.rand(1, generator=self.rng) < 0.5):
                i = int(torch.randint(self.size, (1,), generator=self.rng))
                out.append(self.images[i].to(image.device))
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, torch.Tensor]:
        images = torch.stack(self.images).cpu() if self.images else torch.empty(0)
        return {"images": images, "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor], device: torch.device) -> None:
        self.images = [im.to(device) for im in state["images"]] if state["images"].numel() else []
        self.rng.set_state(state["rng"])


def lsgan(prediction: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss ``mean((D(x) - target)^2)`` with target 1 (real) or 0 (fake)."""
    target = torch.ones_like(prediction) if real else torch.zeros_like(prediction)
    return F.mse_loss(prediction, target)


def linear_decay(total: int, decay_start: float):
    """LR factor: 1 for the first ``decay_start * total`` batches, then linearly down to 0 at ``total``."""
    start = int(decay_start * total)

    def factor(k: int) -> float:
        return 1.0 if k < start else max(0.0, 1.0 - (k - start) / max(1, total - start))

    return factor


class HazeOperatorModule(L.LightningModule):
    """Stage-1 CycleGAN with manual optimisation; exports ``operator.safetensors/.yaml`` at each epoch end.

    :param config: :class:`OperatorConfig` (or its dict form, as stored in a checkpoint).
    :param run_dir: where the operator files are exported (``None``: no export).
    :param winograd: the generators' wide 3x3 convolutions by Winograd's algorithm (CPU, float32; same
        results, :mod:`eid.models.winograd`). A machine setting, not part of the recipe.
    :param channels_last: the networks and batches in the ``channels_last`` memory format (a machine setting).
    """

    def __init__(
        self,
        config: OperatorConfig | dict[str, Any],
        run_dir: str | Path | None = None,
        *,
        winograd: bool = True,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        cfg = config if isinstance(config, OperatorConfig) else saved_config(OperatorConfig, config)
        self.cfg = cfg
        self.winograd = winograd
        self.channels_last = channels_last
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.automatic_optimization = False
        self.save_hyperparameters(config_to_dict(cfg), ignore=["run_dir"])
        self._build_generators()
        m = cfg.model
        self.d_a = PatchGANDiscriminator(m.channels, m.disc_width, m.disc_strides, m.disc_norm)
        self.d_b = PatchGANDiscriminator(m.channels, m.disc_width, m.disc_strides, m.disc_norm)
        self.buffer_a = ReplayBuffer(cfg.buffer_size, cfg.seed)
        self.buffer_b = ReplayBuffer(cfg.buffer_size, cfg.seed + 1)
        self._buffers_restored = False
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def _build_generators(self) -> None:
        """The operator's networks: ``G_AB`` and ``G_BA`` (a subclass builds another operator)."""
        m = self.cfg.model
        self.g_ab = ResnetGenerator(
            m.channels, m.channels, m.width, m.blocks, m.n_down, m.residual, self.winograd
        )
        self.g_ba = ResnetGenerator(
            m.channels, m.channels, m.width, m.blocks, m.n_down, m.residual, self.winograd
        )

    def generator_parameters(self) -> list[nn.Parameter]:
        """What the generator step trains: both generators."""
        return [*self.g_ab.parameters(), *self.g_ba.parameters()]

    def configure_optimizers(self) -> tuple[list, list]:
        o = self.cfg.optim
        opt_g = torch.optim.Adam(self.generator_parameters(), lr=o.lr, betas=o.betas)
        opt_d = torch.optim.Adam(
            [*self.d_a.parameters(), *self.d_b.parameters()], lr=o.lr, betas=o.betas
        )
        factor = linear_decay(total_batches(self.trainer, STEPS_PER_BATCH), o.decay_start)
        scheds = [torch.optim.lr_scheduler.LambdaLR(opt, factor) for opt in (opt_g, opt_d)]
        return [opt_g, opt_d], scheds

    def on_fit_start(self) -> None:
        if not self._buffers_restored and self.global_rank > 0:  # distinct pools per DDP rank
            self.buffer_a.rng.manual_seed(self.cfg.seed + 2 * self.global_rank)
            self.buffer_b.rng.manual_seed(self.cfg.seed + 2 * self.global_rank + 1)

    def _inputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The clear and hazy batch in the generators' range (``[-1, 1]``)."""
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return (to_gan_range(batch[k]).contiguous(memory_format=fmt) for k in ("clear", "hazy"))

    def to_discriminator(self, x: torch.Tensor) -> torch.Tensor:
        """An image in the generators' range as the discriminators take it (``[-1, 1]``: unchanged)."""
        return x

    def generator_losses(
        self, a: torch.Tensor, b: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The generator's loss terms (``g`` = their weighted sum), ``G_AB(a)`` and ``G_BA(b)``."""
        lam = self.cfg.loss
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        loss_gan = 0.5 * (lsgan(self.d_b(fake_b), True) + lsgan(self.d_a(fake_a), True))
        loss_cyc = 0.5 * (F.l1_loss(self.g_ba(fake_b), a) + F.l1_loss(self.g_ab(fake_a), b))
        loss_g = loss_gan + lam.lambda_cyc * loss_cyc
        if lam.lambda_id > 0:
            loss_id = 0.5 * (F.l1_loss(self.g_ba(a), a) + F.l1_loss(self.g_ab(b), b))
            loss_g = loss_g + lam.lambda_id * loss_id
        else:
            loss_id = torch.zeros((), device=a.device)
        return {"g": loss_g, "gan": loss_gan, "cyc": loss_cyc, "id": loss_id}, fake_b, fake_a

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        a, b = self._inputs(batch)
        opt_g, opt_d = self.optimizers()

        self.toggle_optimizer(opt_g)  # D weights need no gradient in the generator step
        terms, fake_b, fake_a = self.generator_losses(a, b)
        ensure_finite({"g": terms["g"]}, self.trainer)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(terms["g"])
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        self.toggle_optimizer(opt_d)
        real_a, real_b, fake_a, fake_b = (self.to_discriminator(x) for x in (a, b, fake_a, fake_b))
        pool_a, pool_b = self.buffer_a.query(fake_a), self.buffer_b.query(fake_b)
        loss_d_a = 0.5 * (lsgan(self.d_a(real_a), True) + lsgan(self.d_a(pool_a), False))
        loss_d_b = 0.5 * (lsgan(self.d_b(real_b), True) + lsgan(self.d_b(pool_b), False))
        loss_d = loss_d_a + loss_d_b
        ensure_finite({"d": loss_d}, self.trainer)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        for sched in self.lr_schedulers():
            sched.step()
        logged = {k: v.detach() for k, v in terms.items()} | {"d": loss_d.detach()}
        self.log_dict(logged, prog_bar=True, on_step=True, on_epoch=True, batch_size=a.shape[0])
        self.log("lr", opt_g.param_groups[0]["lr"], on_step=True, on_epoch=False)

    @torch.no_grad()
    def sample_columns(self, batch: dict[str, Any]) -> list[torch.Tensor]:
        """Grid columns: clear, G_AB(clear), G_BA(G_AB(clear)), hazy, G_BA(hazy), G_AB(G_BA(hazy))."""
        a, b = (to_gan_range(batch[k].to(self.device)) for k in ("clear", "hazy"))
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        cols = [a, fake_b, self.g_ba(fake_b), b, fake_a, self.g_ab(fake_a)]
        return [from_gan_range(c) for c in cols]

    def on_train_epoch_end(self) -> None:
        if self.run_dir is not None and self.trainer.is_global_zero:
            self.export(self.run_dir)

    def export(self, run_dir: str | Path) -> tuple[Path, Path]:
        """Write the current generators as ``operator.safetensors`` + ``operator.yaml`` in ``run_dir``."""
        return save_operator(run_dir, self.g_ab, self.g_ba, config_to_dict(self.cfg))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["replay_buffers"] = {
            "a": self.buffer_a.state_dict(),
            "b": self.buffer_b.state_dict(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        buffers = checkpoint.get("replay_buffers")
        if buffers:
            self.buffer_a.load_state_dict(buffers["a"], self.device)
            self.buffer_b.load_state_dict(buffers["b"], self.device)
            self._buffers_restored = True
