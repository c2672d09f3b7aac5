"""``build_report``: a self-contained report folder, ``index.html`` and the pictures it shows.

Layout of ``out``: ``index.html``, ``images/<row>/<column>-{thumb,full,crop,fade}.png``, ``runs/<n>/...``. The page
loads nothing from the network (inline style and script, local images), so it works offline and can be zipped.
Only ``out`` is written; an input folder can be neither ``out`` nor inside it, nor hold it.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from eid.data.io import read_image
from eid.data.scale import White
from eid.errors import EIDError
from eid.metrics import get_metrics
from eid.report import images as pics
from eid.report.collect import INPUT, REFERENCE, Collection, collect
from eid.report.html import esc, page, summary_table
from eid.report.rows import row_html
from eid.report.runs import RunView, view_run
from eid.utils import atomic_write

MARKER = ".eid-report"
OPERATOR_IMAGES = 3
"""Images on which a run's operator maps are shown."""


@dataclass
class Report:
    """The written page, the warnings about the inputs, and how many of the rows it shows."""

    index: Path
    warnings: list[str]
    shown: int
    total: int


def prepare_out(out: Path, inputs: Sequence[Path]) -> None:
    """Create ``out`` or clear a previous report there; refuse input folders in or around it, or foreign files."""
    target = out.resolve()
    for folder in map(Path.resolve, inputs):
        if target.is_relative_to(folder) or folder.is_relative_to(target):
            raise EIDError(
                f"--out {out} overlaps the input folder {folder}; a report is never written inside its inputs"
            )
    if out.exists() and not out.is_dir():
        raise EIDError(f"--out {out} is a file; give a folder for the report")
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise EIDError(f"{out} exists and holds no eid report; choose an empty or new --out")
        for name in ("images", "runs"):
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by eid report\n")


def _run_html(view: RunView) -> str:
    parts = [
        f'<section class="run">\n<h3>{esc(view.name)}</h3>\n<p class="note">{esc(view.path)}</p>'
    ]
    parts += [f'<p class="note">{esc(n)}</p>' for n in view.notes]
    if view.curves:
        parts.append(
            f'<h4>training losses</h4><img class="plot" src="{esc(view.curves)}" alt="{esc(view.name)}: losses">'
        )
    if view.validation:
        parts.append(
            f'<h4>validation PSNR</h4><img class="plot" src="{esc(view.validation)}" alt="{esc(view.name)}: validation PSNR">'
        )
    if view.samples:
        parts.append(
            f'<h4>last sample grid</h4><img class="grid" src="{esc(view.samples)}" alt="{esc(view.name)}: samples">'
        )
    if view.maps:
        rows = "".join(
            f'<tr><td>{esc(name)}<br><span class="note">{esc(values)}</span></td>'
            + "".join(
                f'<td><img src="{esc(src)}" alt="{esc(name)}: {kind}"></td>'
                for kind, src in zip(("input", "t", "a"), files)
            )
            + "</tr>"
            for name, *files, values in view.maps
        )
        parts.append(
            "<h4>operator maps (estimated from the hazy image)</h4><table><tr><th>image</th><th>input</th>"
            f"<th>transmission t</th><th>airlight a</th></tr>{rows}</table>"
        )
    if view.config is not None:
        parts.append(f"<h4>config</h4><pre>{esc(view.config)}</pre>")
    return "\n".join(parts) + "\n</section>"


def _summary(collection: Collection, specs_lower: Mapping[str, bool]) -> str:
    results = collection.results
    metrics = next(iter(results.values())).metric_names if results else []
    lower = {m: specs_lower[m.split("@")[0]] for m in metrics}
    means = {column: result.means for column, result in results.items()}
    return summary_table(means, metrics, lower, {c: len(r.rows) for c, r in results.items()})


def _field_of_view(
    mask: str | None, input: Path | None, ref: Path | None, white: White
) -> str | None:
    """The ``--mask`` to use: as given (``none`` = no mask); by default ``auto`` when the first input image is a
    lit field of view in a dark frame and there is no reference (no-reference scores count the dark corners)."""
    if mask is not None:
        return None if mask == "none" else mask
    if (
        ref is not None or input is None or not Path(input).is_dir()
    ):  # a bad --input is reported by collect()
        return None
    from eid.data.listing import list_images
    from eid.metrics.mask import has_field_of_view

    first = next(iter(list_images([input])), None)
    return (
        "auto"
        if first is not None and has_field_of_view(read_image(first, white=white)[0])
        else None
    )


def build_report(
    out: str | Path,
    methods: Mapping[str, Path],
    input: Path | None = None,
    ref: Path | None = None,
    runs: Sequence[Path] = (),
    metrics: str | None = None,
    mask: str | None = None,
    white: White = "dtype",
    max_images: int = 20,
    crop: tuple[int, int, int] | None = None,
    title: str = "eid report",
) -> Report:
    """Write the report of ``methods`` (``{name: folder}``) on the hazy ``input`` images into ``out``.

    ``metrics`` defaults to ``psnr,ssim`` with ``ref``, else ``niqe,brisque,fade``. The first ``max_images``
    images are shown; the summary covers all of them.
    """
    out = Path(out)
    clash = {INPUT, REFERENCE} & set(methods)
    if clash:
        raise EIDError(
            f"a method may not be called {', '.join(sorted(clash))}; rename it (--method NAME=DIR)"
        )
    columns = (
        ({INPUT: Path(input)} if input else {})
        | {k: Path(v) for k, v in methods.items()}
        | ({REFERENCE: Path(ref)} if ref else {})
    )
    if not columns:
        raise EIDError("nothing to report on; give --input, --method NAME=DIR or --ref")
    specs = get_metrics(metrics or ("psnr,ssim" if ref else "niqe,brisque,fade"))
    mask = _field_of_view(mask, input, ref, white)
    collection = collect(
        columns, specs, mask, white
    )  # reads only: a refused input leaves no folder behind
    prepare_out(out, [*columns.values(), *map(Path, runs)])
    shown = collection.rows[:max_images]
    sections = [
        row_html(row, i, collection.columns, out, white, crop) for i, row in enumerate(shown)
    ]
    hazy = [(r.name, r.files[INPUT]) for r in shown[:OPERATOR_IMAGES]] if INPUT in columns else []
    samples = [(name, pics.shrink(read_image(path, white=white)[0])) for name, path in hazy]
    run_views = [view_run(Path(run), i, out, samples) for i, run in enumerate(runs)]
    more = len(collection.rows) - len(shown)
    body = [
        f"<h1>{esc(title)}</h1>",
        "<h2>Summary</h2>",
        f'<p class="note">Mean over {len(collection.rows)} images; ↑ higher is better, ↓ lower is better; best value per column in bold. '
        + ("Scored against the reference." if ref else "No-reference metrics.")
        + (
            f" <code>@mask</code>: inside the field of view ({esc(mask)}), found on each input image."
            if mask
            else ""
        )
        + "</p>",
        _summary(collection, {s.name: s.lower_better for s in specs}),
        *(f'<p class="warning">warning: {esc(w)}</p>' for w in collection.warnings),
        "<h2>Images</h2>",
        f'<p class="note">Showing the first {len(shown)} of {len(collection.rows)} images.</p>'
        if more
        else "",
        *sections,
        *(["<h2>Training runs</h2>"] + [_run_html(v) for v in run_views] if run_views else []),
    ]
    with atomic_write(out / "index.html") as tmp:
        tmp.write_text(page(title, "\n".join(body)), encoding="utf-8")
    return Report(out / "index.html", collection.warnings, len(shown), len(collection.rows))
