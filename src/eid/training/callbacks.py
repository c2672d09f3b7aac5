"""Callbacks shared by both stages: stop on a non-finite loss (:class:`NonFiniteGuard`, :func:`ensure_finite`),
per-epoch sample grids (:class:`SampleGrid`), an explicit ``--lr`` on resume (:class:`LearningRates`), and the
throttle that keeps one-batch epochs from writing every batch (:class:`EpochEndThrottle`).

A LightningModule may implement ``sample_columns(batch) -> list[Tensor]`` (each ``(B, C, H, W)`` in ``[0, 1]``)
to get a per-epoch sample grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger

from eid.errors import EIDError
from eid.training.progress import batches_done


class NonFiniteLossError(EIDError):
    """A loss became NaN or infinite; the run stops and keeps its last good checkpoint."""


def ensure_finite(losses: Mapping[str, torch.Tensor], trainer: L.Trainer | None = None) -> None:
    """Raise :class:`NonFiniteLossError` if any loss is NaN/Inf on any rank (call it before ``optimizer.step``).

    The decision is reduced over DDP ranks so that every process stops together instead of one rank hanging in
    the next all-reduce.
    """
    finite = all(bool(torch.isfinite(v.detach()).all()) for v in losses.values())
    if trainer is not None:
        finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
    if not finite:
        bad = [k for k, v in losses.items() if not bool(torch.isfinite(v.detach()).all())] or [
            "(another rank)"
        ]
        step = trainer.global_step if trainer is not None else "?"
        raise NonFiniteLossError(
            f"non-finite loss {', '.join(bad)} at optimizer step {step}; rerun with a lower --lr (with --resume once "
            "a checkpoint exists: it continues from the last good one) or with --precision 32-true"
        )


class NonFiniteGuard(Callback):
    """Stop the run (no checkpoint of the bad state) when ``training_step`` returns a non-finite loss.

    For automatically optimised modules; manually optimised ones call :func:`ensure_finite` before stepping.
    """

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if isinstance(outputs, Mapping):
            losses = {k: v for k, v in outputs.items() if isinstance(v, torch.Tensor)}
        elif isinstance(outputs, torch.Tensor):
            losses = {"loss": outputs}
        else:
            return
        ensure_finite(losses, trainer)


def is_last_epoch(trainer: L.Trainer) -> bool:
    """At an epoch end: whether training stops after this epoch (``max_steps`` reached or last epoch)."""
    steps_done = trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps
    return steps_done or (
        trainer.max_epochs not in (None, -1) and trainer.current_epoch + 1 >= trainer.max_epochs
    )


class EpochEndThrottle:
    """Lets an epoch-end action through only if ``min_batches`` batches ran since it last went through, or
    if it is the last epoch.

    Epoch-end grids and checkpoints are meant for epochs of many batches; on a small data set (ten images,
    one batch per epoch) they would otherwise be written at every step (hundreds of files, gigabytes of
    checkpoints, minutes of writing).
    """

    def __init__(self, min_batches: int) -> None:
        self.min_batches = min_batches
        self.last: int | None = None

    def due(self, trainer: L.Trainer) -> bool:
        done = batches_done(trainer)
        if (
            self.last is not None
            and done - self.last < self.min_batches
            and not is_last_epoch(trainer)
        ):
            return False
        self.last = done
        return True


class SampleGrid(Callback):
    """Write ``<run>/samples/epochNNNN.png`` at epoch ends (at least ``min_batches`` batches apart and at the
    last epoch, see :class:`EpochEndThrottle`): one row per image, one column per output.

    The images are the first batch seen by this process (at most ``max_images``), so successive grids show the
    same inputs. Columns come from ``pl_module.sample_columns(batch)``; rank 0 only.
    """

    def __init__(self, run_dir: str | Path, max_images: int = 4, min_batches: int = 1) -> None:
        self.folder = Path(run_dir) / "samples"
        self.max_images = max_images
        self.throttle = EpochEndThrottle(min_batches)
        self._batch: Any = None

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self._batch is None:
            self._batch = _head(batch, self.max_images)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (
            self._batch is None
            or not trainer.is_global_zero
            or not hasattr(pl_module, "sample_columns")
        ):
            return
        if not self.throttle.due(trainer):
            return
        from torchvision.utils import make_grid

        from eid.data.io import write_image

        with torch.no_grad():
            columns = [
                c.detach().float().cpu().clamp(0, 1) for c in pl_module.sample_columns(self._batch)
            ]
        tiles = torch.stack(columns, dim=1).flatten(0, 1)  # row-major: image i, column j
        grid = make_grid(tiles, nrow=len(columns), padding=2, pad_value=1.0)
        write_image(self.folder / f"epoch{trainer.current_epoch + 1:04d}.png", grid)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", grid, batches_done(trainer))


def _head(batch: Any, n: int) -> Any:
    """The first ``n`` items of a (nested) batch, detached; non-tensors are kept as they are."""
    if isinstance(batch, torch.Tensor):
        return batch[:n].detach().clone()
    if isinstance(batch, Mapping):
        return {k: _head(v, n) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return (
            type(batch)(_head(v, n) for v in batch)
            if all(isinstance(v, torch.Tensor) for v in batch)
            else batch[:n]
        )
    return batch


class LearningRates(Callback):
    """Set the learning rate of optimizers (index -> lr) once a checkpoint is restored.

    A checkpoint restores its optimizers' and schedulers' learning rates; an explicit ``--lr`` given with
    ``--resume`` must win (the advice after a non-finite loss). The scheduler keeps its progress: a
    ``LambdaLR`` goes on with its factor at the current step, applied to the new base rate.
    """

    def __init__(self, lrs: Mapping[int, float]) -> None:
        self.lrs = dict(lrs)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for index, lr in self.lrs.items():
            optimizer = trainer.optimizers[index]
            schedulers = [
                c.scheduler
                for c in trainer.lr_scheduler_configs
                if c.scheduler.optimizer is optimizer
            ]
            for k, group in enumerate(optimizer.param_groups):
                group["lr"] = group["initial_lr"] = lr
                for scheduler in schedulers:
                    scheduler.base_lrs[k] = lr
                    if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
                        group["lr"] = lr * scheduler.lr_lambdas[k](scheduler.last_epoch)


#: Training logs of ``--logger``: ``csv`` writes ``<run>/logs/metrics.csv``; ``tensorboard`` writes event files there
