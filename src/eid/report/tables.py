"""Render metric results as rich tables (terminal) and Markdown (docs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def metrics_table(
    rows: Sequence[Mapping[str, object]],
    columns: Sequence[str],
    means: Mapping[str, float] | None = None,
    title: str | None = None,
    first: str = "name",
) -> Table:
    """A rich table with one row per image (or method) and, optionally, a final row of means."""
    table = Table(title=title, show_lines=False)
    table.add_column(
        first, overflow="fold"
    )  # a narrow terminal wraps names rather than cutting them to "…"
    for col in columns:
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(str(row.get(first, "")), *(_fmt(row.get(c, "")) for c in columns))
    if means is not None:
        table.add_section()
        table.add_row("mean", *(_fmt(means.get(c, "")) for c in columns), style="bold")
    return table


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` on ``console``; to a file or pipe (a log) at the table's full width.

    A console that is not a terminal is 80 columns wide, which would cut file names and metric headers.
    """
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update(max_width=10_000), table).maximum
    width = console.width
    console.width = max(width, natural)
    try:
        console.print(table)
    finally:
        console.width = width


def markdown_table(
    rows: Sequence[Mapping[str, object]], columns: Sequence[str], first: str = "name"
) -> str:
    """The same table as Markdown text."""
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in rows:
        lines.append(
            f"| {row.get(first, '')} | " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |"
        )
    return "\n".join(lines) + "\n"
