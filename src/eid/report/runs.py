"""What a report shows of a training run folder: loss and validation curves from Lightning's CSV log, the last
sample grid, a scattering operator's maps ``t`` and ``a`` on a few images, and the run's config.

Both stages log with ``CSVLogger(run, version="logs")``, i.e. ``<run>/logs/metrics.csv``. Stage 1 logs each loss
per step and per epoch (``g_step``, ``g_epoch``): the per-step series is plotted. Stage 2 logs ``train/<loss>``
and, with a validation set, ``val/psnr``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from eid.errors import EIDError
from eid.report.images import as_picture, save
from eid.training.run_folder import RunFolder

LOG = Path("logs") / "metrics.csv"
NOT_LOSSES = ("epoch", "step", "lr")
VALIDATION = "val/psnr"


@dataclass
class RunView:
    """Files (relative to the report folder) and text the page shows for one run."""

    name: str
    path: Path
    curves: str | None = None
    validation: str | None = None
    samples: str | None = None
    maps: list[tuple[str, str, str, str, str]] = field(
        default_factory=list
    )  # image, input, t, a, their values
    config: str | None = None
    notes: list[str] = field(default_factory=list)


def read_log(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Series ``{column: [(step, value), ...]}`` of a Lightning CSV log, empty cells left out."""
    series: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            step = float(record.get("step") or "nan")
            for column, text in record.items():
                if column and text not in ("", None) and column != "step":
                    series.setdefault(column, []).append((step, float(text)))
    return series


def losses(series: dict[str, list[tuple[float, float]]]) -> dict[str, list[tuple[float, float]]]:
    """The loss series to plot: per-step series, else per-epoch ones, never the epoch, step, lr or val columns."""
    picked = {}
    for column, points in series.items():
        if column in NOT_LOSSES or column.startswith("val/"):
            continue
        base = column.removesuffix("_step").removesuffix("_epoch")
        if column.endswith("_epoch") and f"{base}_step" in series:
            continue
        picked[base] = points
    return picked


def plot(series: dict[str, list[tuple[float, float]]], path: Path, ylabel: str = "") -> Path:
    """Small multiples, one panel per series against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    from eid.utils import atomic_write

    cols = min(4, len(series))
    rows = math.ceil(len(series) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.3 * rows), squeeze=False)
    for ax, (name, points) in zip(axes.flat, series.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], lw=1.2)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(series) :]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path


def operator_maps(
    run: Path, images: Sequence[tuple[str, torch.Tensor]], folder: Path
) -> tuple[list[tuple[Path, Path, Path, str]], str | None]:
    """Estimated ``t`` and ``a`` (``ScatteringHaze.estimate``) of each ``(name, (C,H,W) image)``: the input, ``t``
    and ``a`` written as PNGs in ``folder`` and their mean values as text; or nothing and the reason."""
    from eid.physics import load_operator

    try:
        operator = load_operator(run)
    except EIDError as exc:
        return [], f"operator maps not shown: {exc}"
    if not hasattr(operator, "estimate"):
        return [], "a CycleGAN operator has no transmission or airlight maps to show"
    channels = int(operator.config.get("model", {}).get("channels", 3))
    files = []
    for index, (_, image) in enumerate(images):
        y = (
            image
            if image.shape[0] == channels
            else image.mean(0, keepdim=True).expand(channels, -1, -1)
        )
        with torch.inference_mode():
            maps = operator.estimate(y[None])
        h, w = y.shape[-2:]
        t, a = maps["transmission"][0], maps["airlight"][0]
        values = f"mean t {float(t.mean()):.3f}, mean a ({', '.join(f'{float(v):.3f}' for v in a.mean((-2, -1)))})"
        files.append((
            save(folder / f"map{index}-input.png", y), save(folder / f"map{index}-t.png", as_picture(t, h, w)),
            save(folder / f"map{index}-a.png", as_picture(a, h, w)), values,
        ))  # fmt: skip
    return files, None


def view_run(
    run: Path, index: int, out: Path, images: Sequence[tuple[str, torch.Tensor]]
) -> RunView:
    """Write run ``index``'s pictures under ``out/runs/<index>`` and return what the page shows of it."""
    if not run.is_dir():
        raise EIDError(
            f"--run {run} is not a folder; give a training run folder (eid train-operator/train --out)"
        )
    folder = out / "runs" / f"{index}"
    view = RunView(run.name or str(run), run)
    rel = lambda p: p.relative_to(out).as_posix()
    if (run / LOG).is_file():
        series = read_log(run / LOG)
        if losses(series):
            view.curves = rel(plot(losses(series), folder / "losses.png", "loss"))
        if VALIDATION in series:
            view.validation = rel(
                plot({VALIDATION: series[VALIDATION]}, folder / "validation.png", "dB")
            )
    else:
        view.notes.append(
            f"no CSV training log ({LOG.as_posix()}) in this run; a run trained with --logger tensorboard has its curves in TensorBoard"
        )
    grids = sorted((run / "samples").glob("*.png"))
    if grids:
        view.samples = rel(save(folder / "samples.png", _read(grids[-1])))
    if RunFolder(run).operator_weights.is_file():
        files, note = (
            operator_maps(run, images, folder)
            if images
            else ([], "operator maps need the hazy images (--input)")
        )
        view.maps = [
            (name, rel(y), rel(t), rel(a), values)
            for (name, _), (y, t, a, values) in zip(images, files)
        ]
        if note:
            view.notes.append(note)
    if RunFolder(run).config.is_file():
        view.config = RunFolder(run).config.read_text(encoding="utf-8", errors="replace")
    return view


def _read(path: Path) -> torch.Tensor:
    from eid.data.io import read_image

    return read_image(path)[0]
