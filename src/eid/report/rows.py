"""One image's section of the report: a table with a column per input, method and reference, and rows for the
picture (a before/after slider for a method), its scores, a zoom crop and FADE's density map; the pictures are
written under ``images/<row>/``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from eid.data.io import read_image
from eid.data.scale import White
from eid.report import images as pics
from eid.report.collect import INPUT, REFERENCE, Row
from eid.report.html import esc, fmt, img

__all__ = ["ROW_LABELS", "Cell", "row_html"]

ROW_LABELS = {"view": "image", "scores": "scores", "crop": "zoom", "fade": "FADE density"}


@dataclass
class Cell:
    """A present cell's files (relative to the report) and its scores."""

    files: dict[str, str]
    scores: Mapping[str, float] | None


def _scores(values: Mapping[str, float] | None) -> str:
    if not values:
        return ""
    return " · ".join(f"{esc(k)} {fmt(v)}" for k, v in values.items())


def _write_row(
    row: Row, index: int, out: Path, white: White, box: tuple[int, int, int]
) -> tuple[dict[str, Cell], float]:
    """Write the thumbnail, full-size copy (when the thumbnail is smaller), crop and FADE map of each present
    column of ``row``; return the cells and the row's FADE scale (one scale, so the maps compare)."""
    full = {c: read_image(p, white=white)[0] for c, p in row.files.items() if p is not None}
    maps = {c: pics.density_map(x) for c, x in full.items() if c != REFERENCE}
    vmax = max((float(m.nan_to_num(0).max()) for m in maps.values() if m is not None), default=1.0)
    cells = {}
    for column, image in full.items():
        stem = f"images/{index:04d}/c{list(row.files).index(column)}"
        thumb = pics.shrink(image)
        files = {
            "thumb": f"{stem}-thumb.png",
            "crop": f"{stem}-crop.png",
            "full": f"{stem}-thumb.png",
        }
        pics.save(out / files["thumb"], thumb)
        pics.save(out / files["crop"], pics.cut(image, box))
        if thumb.shape != image.shape:
            files["full"] = f"{stem}-full.png"
            pics.save(out / files["full"], image)
        if maps.get(column) is not None:
            files["fade"] = f"{stem}-fade.png"
            pics.save(out / files["fade"], pics.false_colour(maps[column], vmax))
        cells[column] = Cell(files, row.scores.get(column))
    return cells, vmax


def _view(
    column: str, cells: Mapping[str, Cell], name: str, size: tuple[int, int], box_html: str
) -> str:
    """The picture of a cell: for a method, a before/after slider over the input (else the reference)."""
    th, tw = size
    base = INPUT if INPUT in cells else REFERENCE if REFERENCE in cells else None
    picture = img(cells[column].files["thumb"], f"{column}: {name}", tw, th)
    if base is None or column in (INPUT, REFERENCE):
        return (
            f'<div class="frame">{picture}{box_html if column == next(iter(cells)) else ""}</div>'
        )
    before = img(cells[base].files["thumb"], f"{base}: {name}", tw, th, "before")
    return (
        f'<div class="ba">{picture}{before}<span class="line"></span><input type="range" min="0" max="100" '
        f'value="50" aria-label="{esc(base)} / {esc(column)}"></div>'
        f'<div class="hint">left: {esc(base)} · right: {esc(column)}</div>'
    )


def row_html(
    row: Row,
    index: int,
    columns: Sequence[str],
    out: Path,
    white: White,
    crop: tuple[int, int, int] | None,
) -> str:
    """One image as a table: a column per input, method and reference; rows for the picture, the scores, the
    zoom crop and FADE's density map; a missing image is a cell saying so."""
    h, w = read_image(next(iter(row.files.values())), white=white)[0].shape[-2:]
    box = pics.crop_box(h, w, crop)
    cells, vmax = _write_row(row, index, out, white, box)
    th, tw = pics.thumb_size(h, w)
    top, left, size = box
    box_html = (
        f'<div class="box" style="top:{100 * top / h:.2f}%;left:{100 * left / w:.2f}%;'
        f'width:{100 * size / w:.2f}%;height:{100 * size / h:.2f}%"></div>'
    )
    lines: dict[str, list[str]] = {"view": [], "scores": [], "crop": [], "fade": []}
    for column in columns:
        if column not in cells:
            lines["view"].append(f'<td class="missing" data-column="{esc(column)}">missing</td>')
            for kind in ("scores", "crop", "fade"):
                lines[kind].append("<td></td>")
            continue
        files, alt = cells[column].files, f"{column}: {row.name}"
        lines["view"].append(
            f'<td data-column="{esc(column)}"><a href="{esc(files["full"])}">full size</a><br>'
            f"{_view(column, cells, row.name, (th, tw), box_html)}</td>"
        )
        lines["scores"].append(f'<td class="scores">{_scores(cells[column].scores)}</td>')
        lines["crop"].append(
            f"<td>{img(files['crop'], f'{alt}, crop', min(th, tw), min(th, tw), 'zoom')}</td>"
        )
        lines["fade"].append(
            f"<td>{img(files['fade'], f'{alt}, FADE density', tw, th, 'map')}</td>"
            if "fade" in files
            else "<td></td>"
        )
    header = "<th></th>" + "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "\n".join(
        f'<tr class="{kind}"><th>{ROW_LABELS[kind]}</th>{"".join(c)}</tr>'
        for kind, c in lines.items()
    )
    note = (
        f'<p class="note">Crop: {size}x{size} px at x={left}, y={top} (red box), native pixels. FADE density per 8x8 '
        f"patch, dark = 0 to yellow = {vmax:.3g} (more fog); one scale across the row.</p>"
    )
    return f'<section class="image" id="image-{index}">\n<h3>{esc(row.name)}</h3>\n<table class="row">\n<tr>{header}</tr>\n{body}\n</table>\n{note}\n</section>'
