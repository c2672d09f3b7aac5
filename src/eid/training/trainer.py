"""The ``Trainer`` of every training stage (stage 1 operator, stage 2 dehazer).

What lives here and why:

* :func:`build_trainer` -- one factory for the ``Trainer``: a CSV or TensorBoard log in ``<run>/logs``
  (:func:`build_logger`), a progress bar that
  shows the logged losses (plain lines when stderr is not a terminal, :mod:`eid.training.progress`), atomic
  checkpoints (``checkpoints/last.ckpt`` plus periodic ``checkpoints/epochNNNN.ckpt``), optional DDP on CPU
  (gloo) or GPU.
* :func:`fit` -- ``trainer.fit`` from a checkpoint read without pickle.

The rest of the plumbing: checkpoints in :mod:`eid.training.checkpoints`, callbacks in
:mod:`eid.training.callbacks`, the data order in :mod:`eid.training.data`, the run folder and the ``--resume``
rules in :mod:`eid.training.run_folder`.

A LightningModule used with these helpers should call ``save_hyperparameters(config_dict)`` with a plain
dict (so the checkpoint carries its full config).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from eid.errors import EIDError
from eid.training.callbacks import NonFiniteGuard, SampleGrid
from eid.training.checkpoints import AtomicCheckpointIO, RunCheckpoint
from eid.training.progress import LineProgress
from eid.training.run_folder import (
    CHECKPOINT_DIR,
)

_QUIET = False


def _quiet_lightning() -> None:
    """Silence Lightning's warnings and log lines that mislead here; once, when the first trainer is built."""
    global _QUIET
    if _QUIET:
        return
    _QUIET = True
    warnings.filterwarnings("ignore", message=".*val_dataloader.*but have no .validation_step.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
    warnings.filterwarnings("ignore", message="Total length of `list` across ranks is zero.*")
    warnings.filterwarnings(
        "ignore", message="The number of training batches .* is smaller than the logging interval.*"
    )
    for handler in logging.getLogger("lightning.pytorch").handlers:
        handler.addFilter(_DropMisleadingMessages())


class _DropMisleadingMessages(logging.Filter):
    """Drop two Lightning messages: a cloud-logging advertisement printed on every run, and "`max_steps=N`
    reached", whose N counts optimizer steps (twice the batches of a GAN run, see :func:`build_trainer`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "litlogger" not in message and "`max_steps=" not in message


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
        raise EIDError(
            "--logger tensorboard needs TensorBoard: pip install 'eid-dehaze[tensorboard]'"
        )
    return TensorBoardLogger(run_dir, name="", version="logs", default_hp_metric=False)


def training_precision(precision: str, accelerator: str = "auto") -> str:
    """Lightning's precision for ``precision``; ``auto``: ``bf16-mixed`` where the device that trains computes bf16
    natively (:func:`eid.inference.precision.native_bf16`: a CPU with avx512_bf16 or AMX, an Ampere or later GPU),
    else ``32-true``. Not the default: on such a CPU (docs/benchmarks/inference-speed.md, section 9) the microscopy
    benchmark's stage 2 took 0.67-0.78x fp32's time but gave 31.67 / 30.86 dB against 31.48 / 31.53 (seeds 0 / 1),
    and both stages in bf16 gave 31.28 / 30.64."""
    if precision != "auto":
        return precision
    import torch

    from eid.inference.precision import native_bf16

    gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if native_bf16(torch.device("cuda" if gpu else "cpu")) else "32-true"


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
    :param precision: Lightning's, or ``auto`` (:func:`training_precision`).
    :param logger: ``csv`` or ``tensorboard`` (:func:`build_logger`).
    """
    from lightning.pytorch.strategies import DDPStrategy

    _quiet_lightning()
    if max_steps is None and epochs is None:
        raise EIDError("neither max_steps nor epochs is set; pass --max-steps N or --epochs N")
    run_dir = Path(run_dir)
    log = build_logger(run_dir, logger)
    if strategy == "auto" and isinstance(devices, int) and devices * num_nodes > 1:
        strategy = DDPStrategy(find_unused_parameters=steps_per_batch > 1)
    bar: Callback = (
        RichProgressBar(leave=True) if sys.stderr.isatty() else LineProgress(steps_per_batch)
    )
    extra: list[Callback] = [
        NonFiniteGuard(),
        RunCheckpoint(
            run_dir / CHECKPOINT_DIR,
            checkpoint_every_n_batches,
            checkpoint_every_n_epochs,
            min_batches_between,
        ),
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
        precision=training_precision(precision, accelerator),
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


def fit(
    trainer: L.Trainer,
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    ckpt_path: Path | None = None,
) -> None:
    """``trainer.fit`` resuming from ``ckpt_path`` if given; checkpoints are read with ``weights_only=True``."""
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
