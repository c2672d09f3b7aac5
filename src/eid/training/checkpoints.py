"""Checkpoints written atomically and read without pickle.

:class:`AtomicCheckpointIO` writes to a temporary file moved into place with ``os.replace`` (Lightning's own
writer goes through an fsspec temp file in ``/tmp`` and a copy, which is not atomic across file systems), and
reads back with ``torch.load(weights_only=True)``: a checkpoint that needs pickle is refused.
:class:`RunCheckpoint` refreshes ``checkpoints/last.ckpt`` (and keeps periodic ``epochNNNN.ckpt``).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback

from eid.errors import EIDError
from eid.training.callbacks import EpochEndThrottle
from eid.training.progress import batches_done
from eid.training.run_folder import (
    LAST_CHECKPOINT,
)
from eid.utils import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write checkpoints atomically (temp file + ``os.replace``) and read them without pickle."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        try:
            with atomic_write(path) as tmp:
                torch.save(checkpoint, tmp)
        except RuntimeError as exc:  # torch's writer reports a full disk as "file write failed"
            raise EIDError(
                f"{path}: cannot write the checkpoint ({str(exc).splitlines()[0]}); free space on that disk or write elsewhere"
            ) from exc

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
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
        raise EIDError(
            f"{path}: unreadable checkpoint ({str(exc).splitlines()[0]}); resume from another one"
        ) from exc


class RunCheckpoint(Callback):
    """Save ``last.ckpt`` every ``every_n_batches`` batches, at epoch ends and at the end of training, plus
    ``epochNNNN.ckpt`` every ``every_n_epochs`` epochs (0 = never); epoch-end saves are skipped when fewer than
    ``min_batches`` batches ran since the previous one (:class:`EpochEndThrottle`). Writing goes through the
    trainer's (atomic) checkpoint IO; only rank 0 writes.
    """

    def __init__(
        self,
        dirpath: str | Path,
        every_n_batches: int = 0,
        every_n_epochs: int = 1,
        min_batches: int = 1,
    ) -> None:
        self.dirpath = Path(dirpath)
        self.every_n_batches = every_n_batches
        self.every_n_epochs = every_n_epochs
        self.last_throttle = EpochEndThrottle(min_batches)
        self.snapshot_throttle = EpochEndThrottle(min_batches)

    def _save(self, trainer: L.Trainer, name: str) -> None:
        trainer.save_checkpoint(self.dirpath / name, weights_only=False)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.every_n_batches > 0 and batches_done(trainer) % self.every_n_batches == 0:
            self._save(trainer, LAST_CHECKPOINT)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.last_throttle.due(trainer):
            self._save(trainer, LAST_CHECKPOINT)
        epoch = trainer.current_epoch + 1
        if (
            self.every_n_epochs > 0
            and epoch % self.every_n_epochs == 0
            and self.snapshot_throttle.due(trainer)
        ):
            self._save(trainer, f"epoch{epoch:04d}.ckpt")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer, LAST_CHECKPOINT)
