"""Lightning plumbing shared by every training stage (stage 1 operator, stage 2 dehazer).

What lives here and why:

* :func:`build_trainer` -- one factory for the ``Trainer``: a CSV or TensorBoard log in ``<run>/logs``
  (:func:`build_logger`), a progress bar that
  shows the logged losses (plain lines when stderr is not a terminal, :mod:`eid.training.progress`), atomic
  checkpoints (``checkpoints/last.ckpt`` plus periodic ``checkpoints/epochNNNN.ckpt``), optional DDP on CPU
  (gloo) or GPU.
* :class:`AtomicCheckpointIO` -- checkpoints are written to a temporary file and moved into place with
  ``os.replace`` (Lightning's own writer goes through an fsspec temp file in ``/tmp`` and a copy, which is
  not atomic across file systems), and are read back with ``torch.load(weights_only=True)``: a checkpoint
  that needs pickle is refused.
* :class:`RunCheckpoint`, :class:`SampleGrid`, :class:`NonFiniteGuard` -- callbacks.
* :class:`SeededSampler` + :class:`ResumableLoader` + :class:`ImageDataModule` -- reproducible data order:
  the order of epoch ``e`` is a permutation seeded by ``seed + e`` (split over DDP ranks like
  ``DistributedSampler``), every item gets its own seed for its random crop/flip, and the loader records
  how many batches of the epoch were consumed, so that a run resumed from a mid-epoch checkpoint sees
  exactly the batches an uninterrupted run would have seen.
* :class:`LearningRates` -- an explicit ``--lr`` given with ``--resume`` replaces the checkpoint's.
* :func:`prepare_run_dir` / :func:`fit` -- the ``--resume`` rules (:mod:`eid.training.run_folder`) and the fit call.

A LightningModule used with these helpers should call ``save_hyperparameters(config_dict)`` with a plain
dict (so the checkpoint carries its full config), and may implement ``sample_columns(batch) -> list[Tensor]``
(each ``(B, C, H, W)`` in ``[0, 1]``) to get a per-epoch sample grid.
"""

from __future__ import annotations

import importlib.util
import logging
import pickle
import random
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from eid.data.datasets import item_seed
from eid.errors import EIDError
from eid.training.progress import LineProgress, batches_done
from eid.training.run_folder import (  # noqa: F401 (re-exported)
    CHECKPOINT_DIR,
    LAST_CHECKPOINT,
    Inputs,
    RunFolder,
    is_ddp_worker,
)
from eid.utils import atomic_write

warnings.filterwarnings("ignore", message=".*val_dataloader.*but have no .validation_step.*")
warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
warnings.filterwarnings("ignore", message="Total length of `list` across ranks is zero.*")
warnings.filterwarnings("ignore", message="The number of training batches .* is smaller than the logging interval.*")


class _DropMisleadingMessages(logging.Filter):
    """Drop two Lightning messages: a cloud-logging advertisement printed on every run, and "`max_steps=N`
    reached", whose N counts optimizer steps (twice the batches of a GAN run, see :func:`build_trainer`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "litlogger" not in message and "`max_steps=" not in message


for _handler in logging.getLogger("lightning.pytorch").handlers:
    _handler.addFilter(_DropMisleadingMessages())


class NonFiniteLossError(EIDError):
    """A loss became NaN or infinite; the run stops and keeps its last good checkpoint."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write checkpoints atomically (temp file + ``os.replace``) and read them without pickle."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        try:
            with atomic_write(path) as tmp:
                torch.save(checkpoint, tmp)
        except RuntimeError as exc:  # torch's writer reports a full disk as "file write failed"
            raise EIDError(f"{path}: cannot write the checkpoint ({str(exc).splitlines()[0]}); free space on that disk or write elsewhere") from exc

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_checkpoint(path, map_location=map_location)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a Lightning checkpoint with ``torch.load(weights_only=True)``; refuse one that needs pickle."""
    path = Path(path)
    if not path.is_file():
        raise EIDError(f"{path}: checkpoint not found; check the run folder")
    try:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise EIDError(
            f"{path}: the checkpoint holds Python objects that need pickle; eid only loads checkpoints it wrote"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise EIDError(f"{path}: unreadable checkpoint ({str(exc).splitlines()[0]}); resume from another one") from exc


def ensure_finite(losses: Mapping[str, torch.Tensor], trainer: L.Trainer | None = None) -> None:
    """Raise :class:`NonFiniteLossError` if any loss is NaN/Inf on any rank (call it before ``optimizer.step``).

    The decision is reduced over DDP ranks so that every process stops together instead of one rank hanging in
    the next all-reduce.
    """
    finite = all(bool(torch.isfinite(v.detach()).all()) for v in losses.values())
    if trainer is not None:
        finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
    if not finite:
        bad = [k for k, v in losses.items() if not bool(torch.isfinite(v.detach()).all())] or ["(another rank)"]
        step = trainer.global_step if trainer is not None else "?"
        raise NonFiniteLossError(
            f"non-finite loss {', '.join(bad)} at optimizer step {step}; rerun with a lower --lr (with --resume once "
            "a checkpoint exists: it continues from the last good one) or with --precision 32-true"
        )


class NonFiniteGuard(Callback):
    """Stop the run (no checkpoint of the bad state) when ``training_step`` returns a non-finite loss.

    For automatically optimised modules; manually optimised ones call :func:`ensure_finite` before stepping.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
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
    return steps_done or (trainer.max_epochs not in (None, -1) and trainer.current_epoch + 1 >= trainer.max_epochs)


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
        if self.last is not None and done - self.last < self.min_batches and not is_last_epoch(trainer):
            return False
        self.last = done
        return True


class RunCheckpoint(Callback):
    """Save ``last.ckpt`` every ``every_n_batches`` batches, at epoch ends and at the end of training, plus
    ``epochNNNN.ckpt`` every ``every_n_epochs`` epochs (0 = never); epoch-end saves are skipped when fewer than
    ``min_batches`` batches ran since the previous one (:class:`EpochEndThrottle`). Writing goes through the
    trainer's (atomic) checkpoint IO; only rank 0 writes.
    """

    def __init__(self, dirpath: str | Path, every_n_batches: int = 0, every_n_epochs: int = 1, min_batches: int = 1) -> None:
        self.dirpath = Path(dirpath)
        self.every_n_batches = every_n_batches
        self.every_n_epochs = every_n_epochs
        self.last_throttle = EpochEndThrottle(min_batches)
        self.snapshot_throttle = EpochEndThrottle(min_batches)

    def _save(self, trainer: L.Trainer, name: str) -> None:
        trainer.save_checkpoint(self.dirpath / name, weights_only=False)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.every_n_batches > 0 and batches_done(trainer) % self.every_n_batches == 0:
            self._save(trainer, LAST_CHECKPOINT)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.last_throttle.due(trainer):
            self._save(trainer, LAST_CHECKPOINT)
        epoch = trainer.current_epoch + 1
        if self.every_n_epochs > 0 and epoch % self.every_n_epochs == 0 and self.snapshot_throttle.due(trainer):
            self._save(trainer, f"epoch{epoch:04d}.ckpt")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer, LAST_CHECKPOINT)


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

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._batch is None:
            self._batch = _head(batch, self.max_images)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._batch is None or not trainer.is_global_zero or not hasattr(pl_module, "sample_columns"):
            return
        if not self.throttle.due(trainer):
            return
        from torchvision.utils import make_grid

        from eid.data.io import write_image

        with torch.no_grad():
            columns = [c.detach().float().cpu().clamp(0, 1) for c in pl_module.sample_columns(self._batch)]
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
        return type(batch)(_head(v, n) for v in batch) if all(isinstance(v, torch.Tensor) for v in batch) else batch[:n]
    return batch


class SeededSampler(DistributedSampler):
    """``DistributedSampler`` that yields ``(index, item_seed)`` and can skip the first items of an epoch.

    Datasets in :mod:`eid.data.datasets` accept such keys and draw their crop/flip from ``item_seed``, so the
    data stream is a pure function of ``(seed, epoch, position)``: independent of worker count and order.
    Being a ``DistributedSampler``, Lightning keeps it as it is under DDP (rank and world size are given here).
    """

    def __init__(self, length: int, seed: int, shuffle: bool = True, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(range(length), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.skip = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())
        start, self.skip = self.skip, 0
        for pos in range(start, len(indices)):
            yield indices[pos], item_seed(self.seed, self.epoch, pos * self.num_replicas + self.rank)


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over a :class:`SeededSampler` that Lightning can checkpoint mid-epoch.

    ``state_dict()`` records the epoch and the number of batches yielded; after ``load_state_dict`` the next
    iteration skips those batches (or, if the epoch was complete, starts the next epoch from its beginning).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resume_batches = 0
        self._consumed = 0

    def __iter__(self) -> Iterator[Any]:
        self._consumed, self._resume_batches = self._resume_batches, 0
        self.sampler.skip = self._consumed * self.batch_size
        for batch in super().__iter__():
            self._consumed += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.sampler.epoch), "batches": int(self._consumed)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume_batches = state["batches"] if state["batches"] < len(self) else 0


def seed_worker(worker_id: int) -> None:
    """Seed NumPy and ``random`` in a DataLoader worker from its torch seed (itself derived from the loader's)."""
    base = torch.initial_seed() % 2**32
    np.random.seed(base)
    random.seed(base)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    workers: int = 0,
    shuffle: bool = True,
    num_replicas: int = 1,
    rank: int = 0,
) -> ResumableLoader:
    """A :class:`ResumableLoader` with a :class:`SeededSampler` and seeded workers."""
    sampler = SeededSampler(len(dataset), seed=seed, shuffle=shuffle, num_replicas=num_replicas, rank=rank)
    return ResumableLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=torch.cuda.is_available(),
    )


class ImageDataModule(L.LightningDataModule):
    """Train (and optional validation) loaders over ``(index, item_seed)``-keyed datasets.

    Loaders are built when Lightning asks for them, i.e. after the process group exists, so each DDP rank
    gets its own shard of every epoch.
    """

    def __init__(self, train: Dataset, batch_size: int, seed: int, workers: int = 0, val: Dataset | None = None) -> None:
        super().__init__()
        self.train, self.val = train, val
        self.batch_size, self.seed, self.workers = batch_size, seed, workers

    def _loader(self, dataset: Dataset, shuffle: bool) -> ResumableLoader:
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        return make_loader(dataset, self.batch_size, self.seed, self.workers, shuffle, world, rank)

    def train_dataloader(self) -> ResumableLoader:
        return self._loader(self.train, shuffle=True)

    def val_dataloader(self) -> ResumableLoader | list:
        """The validation loader, or an empty list (Lightning then skips validation)."""
        return self._loader(self.val, shuffle=False) if self.val is not None else []


def prepare_run_dir(run_dir: str | Path, resume: bool, inputs: Inputs | None = None) -> Path | None:
    """Apply the ``--resume`` rules of :class:`~eid.training.run_folder.RunFolder`; return the checkpoint to
    resume from (or ``None`` for a new run, whose folder is then created).

    A new run refuses a non-empty ``run_dir`` (nothing is overwritten); ``resume`` needs
    ``run_dir/checkpoints/last.ckpt`` and the ``inputs`` (option -> folders) the run was started with.
    """
    folder = RunFolder(run_dir)
    if resume:
        return folder.check_resume(inputs or {})
    folder.check_new(inputs or {})
    folder.path.mkdir(parents=True, exist_ok=True)
    return None


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
            schedulers = [c.scheduler for c in trainer.lr_scheduler_configs if c.scheduler.optimizer is optimizer]
            for k, group in enumerate(optimizer.param_groups):
                group["lr"] = group["initial_lr"] = lr
                for scheduler in schedulers:
                    scheduler.base_lrs[k] = lr
                    if isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
                        group["lr"] = lr * scheduler.lr_lambdas[k](scheduler.last_epoch)


#: Training logs of ``--logger``: ``csv`` writes ``<run>/logs/metrics.csv``; ``tensorboard`` writes event files there
#: (losses, learning rates and sample grids), for ``tensorboard --logdir <run>/logs``.
LOGGERS = ("csv", "tensorboard")


def build_logger(run_dir: str | Path, kind: str = "csv") -> Logger:
    """The training log of ``kind`` (one of :data:`LOGGERS`) in ``run_dir/logs``.

    TensorBoard is an optional extra: without it, one line names the extra to install.
    """
    if kind not in LOGGERS:
        raise EIDError(f"--logger {kind!r} is not known; use one of {', '.join(LOGGERS)}")
    if kind == "csv":
        return CSVLogger(run_dir, name="", version="logs")
    if importlib.util.find_spec("tensorboard") is None:
        raise EIDError("--logger tensorboard needs TensorBoard: pip install 'eid-dehaze[tensorboard]'")
    return TensorBoardLogger(run_dir, name="", version="logs", default_hp_metric=False)


def build_trainer(
    run_dir: str | Path,
    *,
    max_steps: int | None = None,
    epochs: int | None = None,
    devices: int | str = 1,
    num_nodes: int = 1,
    precision: str = "32-true",
    accelerator: str = "auto",
    log_every: int = 10,
    checkpoint_every_n_batches: int = 0,
    checkpoint_every_n_epochs: int = 1,
    min_batches_between: int = 50,
    steps_per_batch: int = 1,
    strategy: str | L.pytorch.strategies.Strategy = "auto",
    progress: bool = True,
    samples: bool = True,
    logger: str = "csv",
    callbacks: Sequence[Callback] = (),
) -> L.Trainer:
    """A ``Trainer`` writing everything under ``run_dir``.

    :param max_steps: training batches (iterations) to run; ``None`` = train for ``epochs``.
    :param epochs: epochs to run when ``max_steps`` is ``None``.
    :param steps_per_batch: optimizer steps per batch. Lightning's ``global_step`` counts every
        ``optimizer.step()``; a manually optimised GAN steps two optimizers per batch, so pass 2 there and
        ``max_steps`` keeps meaning "batches".
    :param strategy: ``"auto"`` picks DDP (gloo on CPU) when ``devices * num_nodes > 1``, with
        ``find_unused_parameters`` when ``steps_per_batch > 1``: each step of a GAN leaves the other network's
        parameters unused; with one optimizer every parameter is used and the search would cost a graph pass.
    :param checkpoint_every_n_batches: also refresh ``last.ckpt`` every this many batches (0 = epoch ends only).
    :param min_batches_between: epoch-end checkpoints and sample grids are skipped when fewer batches ran
        since the previous one (small data sets have epochs of one batch).
    :param logger: ``csv`` or ``tensorboard`` (:func:`build_logger`).
    """
    from lightning.pytorch.strategies import DDPStrategy

    if max_steps is None and epochs is None:
        raise EIDError("neither max_steps nor epochs is set; pass --max-steps N or --epochs N")
    run_dir = Path(run_dir)
    log = build_logger(run_dir, logger)
    if strategy == "auto" and isinstance(devices, int) and devices * num_nodes > 1:
        strategy = DDPStrategy(find_unused_parameters=steps_per_batch > 1)
    bar: Callback = RichProgressBar(leave=True) if sys.stderr.isatty() else LineProgress(steps_per_batch)
    extra: list[Callback] = [
        NonFiniteGuard(),
        RunCheckpoint(run_dir / CHECKPOINT_DIR, checkpoint_every_n_batches, checkpoint_every_n_epochs, min_batches_between),
    ]
    if samples:
        extra.append(SampleGrid(run_dir, min_batches=min_batches_between))
    if progress:
        extra.append(bar)
    return L.Trainer(
        default_root_dir=run_dir,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=precision,
        max_steps=max_steps * steps_per_batch if max_steps is not None else -1,
        max_epochs=None if max_steps is not None else epochs,
        logger=log,
        log_every_n_steps=log_every,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        plugins=[AtomicCheckpointIO()],
        callbacks=[*extra, *callbacks],
    )


def fit(trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule, ckpt_path: Path | None = None) -> None:
    """``trainer.fit`` resuming from ``ckpt_path`` if given; checkpoints are read with ``weights_only=True``."""
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
