"""The ``eid`` command line: one typer app, one module per command group.

Each module below registers its commands on :data:`app` when imported.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from eid import __version__
from eid.errors import EIDError
from eid.progress import stderr_console

app = typer.Typer(
    name="eid",
    help="Unsupervised image dehazing by equivariant learning (EID).",
    no_args_is_help=True,
    add_completion=True,  # eid --install-completion (bash, zsh, fish, PowerShell)
    pretty_exceptions_enable=False,
)
console = stderr_console()

THREADS_HELP = (
    "CPU threads per process for torch (default: torch's choice; 1 is fastest on a busy machine)."
)
WHITE_HELP = (
    "Stored value read as 1.0: dtype (255 for 8-bit, 65535 for 16-bit files), max (each image's own maximum) or a "
    "number, e.g. 4095 for 12-bit microscopy in 16-bit files."
)


def in_range(
    low: float, high: float | None = None, open_low: bool = False
) -> Callable[[typer.CallbackParam, Any], Any]:
    """A typer callback refusing a numeric option outside ``low..high`` (and NaN) with one line naming the option,
    the value and the range (:mod:`eid.training.limits` checks the config fields the same way)."""
    from eid.training.limits import describe_range, out_of_range

    def check(param: typer.CallbackParam, value: Any) -> Any:
        if value is not None and out_of_range(value, low, high, open_low):
            raise EIDError(
                f"{param.opts[0]} {value:g} is out of range; use {describe_range(low, high, open_low)}"
            )
        return value

    return check


def training_budget(max_steps: int | None, epochs: int | None) -> dict[str, int | None]:
    """Config overrides for ``--max-steps``/``--epochs``: the one given replaces the preset's budget,
    whichever kind (steps or epochs) the preset uses; both given are both kept (Lightning stops at the first)."""
    if max_steps is None and epochs is None:
        return {}
    return {"max_steps": max_steps, "epochs": epochs}


def set_threads(threads: int | None) -> None:
    """Apply a ``--threads`` option (``None`` or 0: keep torch's default)."""
    if threads is not None and threads < 0:
        raise EIDError(f"--threads {threads} is out of range; use >= 0 (0: torch's default)")
    if threads:
        import torch

        torch.set_num_threads(threads)


def warn_if_dim(inputs: Sequence[str | Path], white: str | float) -> None:
    """Print a warning when ``inputs`` hold integer images that use a small part of their range at scale ``white``."""
    from rich.markup import escape

    from eid.data.planes import dim_scale_hint

    hint = dim_scale_hint(inputs, white)
    if hint:
        console.print(f"[yellow]warning:[/] {escape(hint)}")


def _version(value: bool) -> None:
    if value:
        print(f"eid {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Unsupervised image dehazing by equivariant learning (EID).

    Typical flow: `eid train-operator` (stage 1, learn the haze physics from unpaired clear and hazy
    images), `eid train` (stage 2, the equivariant dehazer from hazy images only), `eid dehaze`,
    `eid evaluate`. `eid demo` runs everything on data built from bundled images.
    """


from eid.cli import commands as _commands  # noqa: F401  (registers the subcommands)


def _warning_line(message: Warning | str, *_: Any, **__: Any) -> None:
    """Python warnings (a skipped file, a float TIFF clipped) as one ``warning:`` line, not file:line + source."""
    console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


def main() -> None:
    """Console entry point: run the app, turning :class:`EIDError` into one line and exit code 2."""
    warnings.showwarning = _warning_line
    try:
        app()
    except EIDError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
