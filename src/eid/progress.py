"""Progress of long jobs: a rich bar in a terminal, plain lines in a log.

rich draws nothing on a console that is not a terminal until the job ends, so the log of a batch job (SLURM,
nohup, CI) would show no progress for the hours a long video takes. :class:`LoggedProgress` prints there,
every ``interval`` seconds and when a task completes, one line per task such as::

    frames 1200/54000 (2%) | 11.8 frames/s | 1:14:35 left | video07.mp4

The training stages print the same kind of line (:mod:`eid.training.progress`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


def stderr_console() -> Console:
    """The console jobs report on: stderr, with messages kept on one line in a log (a terminal wraps them)."""
    return Console(stderr=True, soft_wrap=True)


def progress_line(
    label: str,
    done: float,
    total: float | None,
    rate: float | None,
    unit: str,
    extra: Iterable[str] = (),
) -> str:
    """``label done/total (p%) | rate unit/s | h:mm:ss left | extra...`` (parts that are unknown are left out)."""
    parts = [
        f"{label} {done:g}/{total:g} ({int(100 * done // max(1, total))}%)"
        if total
        else f"{label} {done:g}"
    ]
    if rate:
        parts.append(f"{rate:.3g} {unit}/s")
        if total:
            parts.append(f"{timedelta(seconds=round(max(0.0, total - done) / rate))} left")
    return " | ".join(parts + [e for e in extra if e])


class LoggedProgress(Progress):
    """A rich ``Progress`` that also reports on a console that is not a terminal, as plain lines.

    :param unit: what the tasks count (``frames``, ``images``...), for the rate.
    :param interval: seconds between two lines of a task; its first update and its completion always print.
    """

    def __init__(
        self,
        *columns: str | ProgressColumn,
        unit: str = "items",
        interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*columns, **kwargs)
        self.unit = unit
        self.interval = interval
        self._logged: dict[TaskID, float] = {}
        self._reported_done: set[TaskID] = set()
        if not self.console.is_terminal:
            self.live.transient = (
                True  # the lines replace the final bar, which rich would print at the end
            )

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._log(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log(task_id)

    def _log(self, task_id: TaskID) -> None:
        if self.disable or self.console.is_terminal or task_id in self._reported_done:
            return
        with self._lock:
            task = self._tasks[task_id]
        now = time.monotonic()
        last = self._logged.get(task_id)
        if last is not None and now - last < self.interval and not task.finished:
            return
        self._logged[task_id] = now
        if task.finished:
            self._reported_done.add(task_id)
        self.console.print(self.line(task), highlight=False, markup=False, soft_wrap=True)

    def line(self, task: Task) -> str:
        """The plain progress line of ``task``."""
        name = task.fields.get("name", "")
        rate = task.finished_speed or task.speed
        return progress_line(
            task.description, task.completed, task.total, rate, self.unit, [str(name)]
        )


class RateColumn(ProgressColumn):
    """Items per second of a rich task, e.g. ``12.3 frames/s``."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(
            f"{speed:.1f} {self.unit}/s" if speed else f"- {self.unit}/s",
            style="progress.data.speed",
        )


def progress_bar(unit: str = "frames", enabled: bool = True) -> LoggedProgress:
    """Progress on stderr showing done/total, ``unit``/s and time left (plain lines when stderr is a log)."""
    return LoggedProgress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(unit), TimeRemainingColumn(),
        unit=unit, console=stderr_console(), disable=not enabled, transient=False,
    )  # fmt: skip
