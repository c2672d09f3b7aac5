"""Progress in logs: plain lines (no carriage returns, no bar), throttled; training lines carry the losses and the
run's total in batches."""

from __future__ import annotations

import io
import re

import lightning as L
import torch
from rich.console import Console
from torch.utils.data import DataLoader, TensorDataset

from eid.progress import LoggedProgress, progress_line, stderr_console
from eid.training.progress import LineProgress, format_metrics
from eid.training.trainer import build_trainer


class Toy(L.LightningModule):
    """A one-weight regression that logs its loss to the progress bar."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = ((self.w * batch[0] - 2 * batch[0]) ** 2).mean()
        self.log("fit", loss, prog_bar=True, on_step=True, on_epoch=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def run(bar: LineProgress, max_steps: int | None = None, epochs: int | None = None) -> list[str]:
    """Lines printed by ``bar`` over a toy run of 4 batches per epoch."""
    torch.manual_seed(0)
    trainer = L.Trainer(
        max_steps=max_steps or -1, max_epochs=epochs, callbacks=[bar], logger=False, enable_checkpointing=False,
        enable_model_summary=False, accelerator="cpu", log_every_n_steps=1,
    )  # fmt: skip
    trainer.fit(Toy(), DataLoader(TensorDataset(torch.randn(16, 3)), batch_size=4))
    return bar.stream.getvalue().splitlines()


def test_format_metrics_shows_step_values_only():
    text = format_metrics(
        {"v_num": "logs", "g_step": 1.23456, "g_epoch": 9.0, "train/loss": 0.5, "step": 3}
    )
    assert text == "g 1.23 train/loss 0.5 step 3"


def test_a_line_per_batch_with_losses_and_time_left():
    lines = run(LineProgress(interval=0, stream=io.StringIO()), max_steps=6)
    assert [line.split(" | ")[0] for line in lines] == [
        f"batch {k}/6 ({100 * k // 6}%)" for k in range(1, 7)
    ]
    assert lines[4].split(" | ")[3] == "epoch 2"  # batch 5 is the first of the second epoch
    assert re.search(r"\| [\d.]+ batch/s \| 0:00:0\d left \| epoch 1 \| fit \d", lines[0])
    losses = [float(line.rsplit("fit ", 1)[1]) for line in lines]
    assert losses[-1] < losses[0]
    assert "\r" not in "".join(lines)


def test_throttled_to_the_first_and_last_batch_and_counts_epochs():
    lines = run(LineProgress(interval=3600, stream=io.StringIO()), epochs=3)
    assert [line.split(" | ")[::3] for line in lines] == [
        ["batch 1/12 (8%)", "epoch 1"],
        ["batch 12/12 (100%)", "epoch 3"],
    ]


class TwoOptimizers(Toy):
    """Steps two optimizers per batch, like the stage-1 GAN (Lightning counts both in ``global_step``)."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.v = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        for opt, p in zip(self.optimizers(), (self.w, self.v)):
            loss = ((p * batch[0] - 2 * batch[0]) ** 2).mean()
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
        self.log("fit", loss, prog_bar=True)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [torch.optim.SGD([self.w], lr=0.1), torch.optim.SGD([self.v], lr=0.1)]


def test_a_two_optimizer_run_counts_batches_not_optimizer_steps(tmp_path):
    trainer = build_trainer(tmp_path, max_steps=5, steps_per_batch=2, samples=False)
    assert trainer.max_steps == 10
    (bar,) = [
        c for c in trainer.callbacks if isinstance(c, LineProgress)
    ]  # pytest captures stderr: not a terminal
    bar.interval, bar.stream = 0, io.StringIO()
    trainer.fit(TwoOptimizers(), DataLoader(TensorDataset(torch.randn(16, 3)), batch_size=4))
    assert [line.split(" | ")[0] for line in bar.stream.getvalue().splitlines()] == [
        f"batch {k}/5 ({20 * k}%)" for k in range(1, 6)
    ]


def test_a_resumed_run_counts_from_its_checkpoint(tmp_path):
    trainer = L.Trainer(
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )
    trainer.fit(Toy(), DataLoader(TensorDataset(torch.randn(16, 3)), batch_size=4))
    trainer.save_checkpoint(tmp_path / "three.ckpt")
    bar = LineProgress(interval=0, stream=io.StringIO())
    trainer = L.Trainer(
        max_steps=6,
        callbacks=[bar],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(
        Toy(),
        DataLoader(TensorDataset(torch.randn(16, 3)), batch_size=4),
        ckpt_path=tmp_path / "three.ckpt",
        weights_only=True,
    )
    assert [line.split(" | ")[0] for line in bar.stream.getvalue().splitlines()] == [
        "batch 4/6 (66%)",
        "batch 5/6 (83%)",
        "batch 6/6 (100%)",
    ]
    assert bar._start_batches == 3


def test_progress_line_with_and_without_a_total():
    line = progress_line("frames", 1200, 54000, 11.8, "frames", ["video07.mp4", ""])
    assert (
        line == "frames 1200/54000 (2%) | 11.8 frames/s | 1:14:35 left | video07.mp4"
    )  # 52800 / 11.8 = 4475 s
    assert progress_line("evaluating", 5, None, None, "images") == "evaluating 5"


def job_log(console: Console, interval: float, steps: int = 5) -> str:
    with LoggedProgress(
        unit="frames", interval=interval, console=console, transient=False
    ) as progress:
        task = progress.add_task("frames", total=steps, name="clip.mp4")
        for _ in range(steps):
            progress.advance(task)
    return console.file.getvalue().strip()  # rich ends a live display in a log with an empty line


def test_a_job_in_a_log_prints_plain_lines_first_and_last_when_throttled():
    text = job_log(Console(file=io.StringIO(), width=100), interval=3600)
    lines = text.splitlines()
    assert (
        len(lines) == 2
        and lines[0].startswith("frames 1/5 (20%) | ")
        and lines[1].startswith("frames 5/5 (100%) | ")
    )
    assert lines[1].endswith(" | clip.mp4") and "━" not in text  # no final bar after the lines
    assert [
        line.split(" | ")[0]
        for line in job_log(Console(file=io.StringIO()), interval=0).splitlines()
    ] == [f"frames {k}/5 ({20 * k}%)" for k in range(1, 6)]


def test_a_terminal_gets_the_bar_only():
    text = job_log(Console(file=io.StringIO(), width=100, force_terminal=True), interval=0)
    assert "━" in text and "(100%) |" not in text


def test_the_job_console_keeps_a_long_message_on_one_line(capsys):
    stderr_console().print("word " * 60 + "end")
    assert capsys.readouterr().err == "word " * 60 + "end\n"
