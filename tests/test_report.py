"""Metric tables: no file name or value is cut, in a log (full width) or in a narrow terminal (names wrap)."""

from __future__ import annotations

import io

from rich.console import Console

from eid.report.tables import markdown_table, metrics_table, print_table

COLUMNS = ["niqe", "brisque", "fade", "niqe@mask", "brisque@mask", "fade@mask"]
ROWS = [{"name": f"video07_00321{i}.png", **{c: 1.5 + i for c in COLUMNS}} for i in range(2)]


def test_a_log_gets_the_whole_table_and_the_console_keeps_its_width():
    console = Console(file=io.StringIO(), width=80)
    print_table(console, metrics_table(ROWS, COLUMNS, means={c: 2.0 for c in COLUMNS}))
    text = console.file.getvalue()
    assert "video07_003210.png" in text and "video07_003211.png" in text and "brisque@mask" in text
    assert "…" not in text and max(len(line) for line in text.splitlines()) > 80
    assert console.width == 80


def test_a_narrow_terminal_wraps_names_instead_of_cutting_them():
    console = Console(file=io.StringIO(), width=60, force_terminal=True, color_system=None)
    print_table(console, metrics_table(ROWS, COLUMNS[:4]))
    lines = console.file.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 60
    names = "".join(line.split("│")[1].strip() for line in lines if line.startswith("│"))
    assert "video07_003210.png" in names and "video07_003211.png" in names


def test_markdown_table_rows():
    assert (
        markdown_table(ROWS[:1], ["niqe"])
        == "| name | niqe |\n|---|---|\n| video07_003210.png | 1.5000 |\n"
    )


def test_comparison_figure_is_labelled_and_marks_missing_tiles(tmp_path) -> None:
    import numpy as np
    import torch
    from PIL import Image

    from eid.report.figures import Tile, comparison_figure

    g = torch.Generator().manual_seed(0)
    rows = {
        "a.png": {
            "hazy": Tile(torch.rand(3, 20, 30, generator=g)),
            "EID": Tile(torch.rand(3, 20, 30, generator=g), {"PSNR": 21.5}),
        },
        "b.png": {"hazy": Tile(torch.rand(1, 20, 30, generator=g))},  # grey, and EID missing
    }
    path = comparison_figure(rows, tmp_path / "grid.png")
    image = np.asarray(Image.open(path))
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 200
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically
