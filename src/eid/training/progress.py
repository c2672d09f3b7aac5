"""How far a training run is: batches done and in all, and a progress display for logs.

A terminal gets Lightning's rich progress bar. A batch job's log file (SLURM, nohup, CI) would get a tqdm bar
redrawn with carriage returns, i.e. the whole run on one unreadable line. :class:`LineProgress` prints instead,
at most every ``interval`` seconds and at the end of training, a line in the format of :mod:`eid.progress`::

    batch 120/600 (20%) | 2.41 batch/s | 0:03:19 left | epoch 3 | g 1.37 d 0.31 gan 0.66 cyc 0.051 id 0.040
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import lightning as L
from lightning.pytorch.callbacks import ProgressBar

from eid.progress import progress_line


def batches_done(trainer: L.Trainer) -> int:
    """Training batches run so far in this run (resumes included)."""
    return trainer.fit_loop.total_batch_idx + 1


def total_batches(trainer: L.Trainer, steps_per_batch: int = 1) -> int:
    """Training batches of the whole run (LR schedules, progress): ``max_steps`` or epochs x batches per epoch."""
    if trainer.max_steps != -1:
        return max(1, trainer.max_steps // steps_per_batch)
    return max(1, int(trainer.estimated_stepping_batches))


def format_metrics(metrics: dict[str, Any]) -> str:
    """``name value`` pairs of the per-step values: ``g_step`` shows as ``g``; ``*_epoch`` means are left out."""
    shown: dict[str, Any] = {}
    for key, value in metrics.items():
        if key == "v_num" or key.endswith("_epoch"):
            continue
        shown[key.removesuffix("_step")] = value
    return " ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()
    )


class LineProgress(ProgressBar):
    """Progress as plain lines on ``stream`` (default ``sys.stderr``), written by global rank 0 only.

    :param steps_per_batch: optimizer steps per batch, as given to ``build_trainer``.
    :param interval: seconds between lines; the first batch and the last one always print.
    """

    def __init__(
        self, steps_per_batch: int = 1, interval: float = 30.0, stream: TextIO | None = None
    ) -> None:
        super().__init__()
        self.steps_per_batch = steps_per_batch
        self.total = 1
        self.interval = interval
        self.stream = stream
        self.enabled = True
        self._start = 0.0
        self._start_batches = 0
        self._last_print: float | None = None

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self.enabled:
            print(*args, file=self.stream or sys.stderr, flush=True, **kwargs)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.total = total_batches(trainer, self.steps_per_batch)
        self._start = time.monotonic()
        self._start_batches = batches_done(trainer)  # > 0 when resumed
        self._last_print = None

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        now = time.monotonic()
        done = batches_done(trainer)
        if (
            self._last_print is not None
            and now - self._last_print < self.interval
            and done < self.total
        ):
            return
        self._last_print = now
        self.print(self.line(trainer, pl_module, done, now))

    def line(self, trainer: L.Trainer, pl_module: L.LightningModule, done: int, now: float) -> str:
        """The progress line after ``done`` batches of the run."""
        elapsed = now - self._start
        rate = (done - self._start_batches) / elapsed if elapsed > 0 else None
        metrics = format_metrics(self.get_metrics(trainer, pl_module))
        return progress_line(
            "batch",
            done,
            self.total,
            rate,
            "batch",
            [f"epoch {trainer.current_epoch + 1}", metrics],
        )
