"""The options ``eid train`` and ``eid train-operator`` share, defined once: name, default, check and help.

Options whose help differs between the two commands (what a batch holds, what ``--lr`` trains...) are built by
a function given that help, so the name, default and range check still live here only. The machine options
(``--devices`` to ``--threads``: where and how a run executes, not its recipe) come as one :class:`Machine`
through :func:`machine_options`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, get_type_hints

import typer

from eid.cli import THREADS_HELP, WHITE_HELP, in_range
from eid.cli.init_from import INIT_FROM_HELP
from eid.training.limits import MAX_BATCH, MAX_SEED, MAX_SIDE

Command = TypeVar("Command", bound=Callable[..., Any])

OUT = typer.Option(..., "--out", help="Run folder to create (or to continue with --resume).")
EPOCHS = typer.Option(None, "--epochs", callback=in_range(1), help="Epochs to run.")
CROP = typer.Option(
    None, "--crop", callback=in_range(1, MAX_SIDE), help="Random square crop side in pixels."
)
NUM_NODES = typer.Option(1, "--num-nodes", callback=in_range(1), help="Nodes (DDP).")
PRECISION = typer.Option(
    "32-true", "--precision",
    help="Lightning precision: 32-true, bf16-mixed, 16-mixed (GPU), or auto: bf16-mixed where the CPU (avx512_bf16, "
    "AMX) or GPU computes bf16 natively, else 32-true (stage 2 about 1.4x faster there; quality not shown to hold).",
)  # fmt: skip
ACCELERATOR = typer.Option("auto", "--accelerator", help="auto, cpu or gpu.")
LOGGER = typer.Option(
    "csv", "--logger",
    help="Training log in OUT/logs: csv (metrics.csv) or tensorboard (event files with the losses and sample grids; needs eid-dehaze[tensorboard]).",
)  # fmt: skip
WORKERS = typer.Option(0, "--workers", callback=in_range(0), help="Data-loading worker processes.")
THREADS = typer.Option(None, "--threads", help=THREADS_HELP)
INIT_FROM = typer.Option(None, "--init-from", help=INIT_FROM_HELP)


def max_steps_option(help: str) -> Any:
    """``--max-steps N`` (N >= 1)."""
    return typer.Option(None, "--max-steps", callback=in_range(1), help=help)


def batch_size_option(help: str) -> Any:
    """``--batch-size N`` (1 to :data:`~eid.training.limits.MAX_BATCH`)."""
    return typer.Option(None, "--batch-size", callback=in_range(1, MAX_BATCH), help=help)


def lr_option(help: str) -> Any:
    """``--lr X`` (0 < X <= 1)."""
    return typer.Option(None, "--lr", callback=in_range(0, 1, open_low=True), help=help)


def white_option(then: str) -> Any:
    """``--white``: the read scale (:data:`~eid.cli.WHITE_HELP`), then what the command does with it."""
    return typer.Option(None, "--white", help=WHITE_HELP + " " + then)


def devices_option(help: str) -> Any:
    """``--devices N`` (N >= 1)."""
    return typer.Option(1, "--devices", callback=in_range(1), help=help)


def seed_option(help: str) -> Any:
    """``--seed N`` (0 to :data:`~eid.training.limits.MAX_SEED`)."""
    return typer.Option(None, "--seed", callback=in_range(0, MAX_SEED), help=help)


def resume_option(help: str) -> Any:
    """``--resume`` (a flag)."""
    return typer.Option(False, "--resume", help=help)


#: The default a command gives its ``machine: Machine`` parameter; :func:`machine_options` puts the flags there.
MACHINE: Any = None


@dataclass(frozen=True)
class Machine:
    """Where and how a training run executes (command-line flags, never recipe fields): processes per node,
    nodes, Lightning precision and accelerator, log format, data-loading workers and CPU threads."""

    devices: int
    num_nodes: int
    precision: str
    accelerator: str
    logger: str
    workers: int
    threads: int | None

    @property
    def resolved_precision(self) -> str:
        """The Lightning precision the run trains in (``auto`` resolved: :func:`eid.training.trainer.training_precision`)."""
        from eid.training.trainer import training_precision

        return training_precision(self.precision, self.accelerator)

    def trainer_kwargs(self) -> dict[str, Any]:
        """The settings :func:`eid.training.trainer.build_trainer` takes (through ``fit_operator``/``fit_eid``)."""
        return {
            k: getattr(self, k)
            for k in ("devices", "num_nodes", "precision", "accelerator", "logger")
        }


def machine_options(devices_help: str) -> Callable[[Command], Command]:
    """Give a command the options ``--devices`` (with ``devices_help``), ``--num-nodes``, ``--precision``,
    ``--accelerator``, ``--logger``, ``--workers`` and ``--threads`` where it declares ``machine: Machine``;
    the command receives them as that one :class:`Machine`."""
    options = {
        "devices": devices_option(devices_help), "num_nodes": NUM_NODES, "precision": PRECISION,
        "accelerator": ACCELERATOR, "logger": LOGGER, "workers": WORKERS, "threads": THREADS,
    }  # fmt: skip
    types = get_type_hints(Machine)

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command)
        params = list(signature.parameters.values())
        at = [p.name for p in params].index("machine")
        kind = params[at].kind
        flags = [
            inspect.Parameter(n, kind, default=option, annotation=types[n])
            for n, option in options.items()
        ]

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            machine = Machine(**{name: kwargs.pop(name) for name in options})
            return command(**kwargs, machine=machine)

        run.__signature__ = signature.replace(parameters=[*params[:at], *flags, *params[at + 1 :]])  # type: ignore[attr-defined]
        hints = {k: v for k, v in command.__annotations__.items() if k != "machine"}
        run.__annotations__ = {**hints, **{name: types[name] for name in options}}
        return run  # type: ignore[return-value]

    return decorate
