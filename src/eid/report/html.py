"""HTML pieces of a report: the page shell (inline CSS and script, nothing fetched), the summary table with the
best value of each column marked, and small element helpers. Every text that comes from a file name, a method
name or a config is escaped here.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
section.image { overflow-x: auto; }
th, td { padding: 4px 8px; vertical-align: top; }
table.summary td, table.summary th { border-bottom: 1px solid #ddd; text-align: right; }
table.summary td:first-child, table.summary th:first-child { text-align: left; }
td.best { font-weight: bold; background: #e3f4e3; }
table.row th { text-align: center; }
td.missing { color: #a00; text-align: center; vertical-align: middle; border: 1px dashed #caa; }
.scores { font-size: 12px; color: #444; text-align: center; }
.frame { position: relative; display: inline-block; line-height: 0; }
.frame img, .ba img { display: block; }
.box { position: absolute; border: 2px solid #f33; box-sizing: border-box; }
.ba { position: relative; display: inline-block; line-height: 0; --pos: 50%; }
.ba img.before { position: absolute; top: 0; left: 0; clip-path: inset(0 calc(100% - var(--pos)) 0 0); }
.ba input { position: absolute; left: 0; bottom: 0; width: 100%; margin: 0; }
.ba .line { position: absolute; top: 0; bottom: 0; left: var(--pos); border-left: 1px solid #fff; }
img.zoom, img.map { image-rendering: pixelated; }
.hint, .note { font-size: 12px; color: #666; }
.warning { color: #a00; }
pre { background: #f6f6f6; padding: 8px; max-height: 24em; overflow: auto; font-size: 12px; }
img.plot, img.grid { max-width: 100%; }
"""

SCRIPT = """
document.querySelectorAll('.ba input').forEach(function (slider) {
  slider.addEventListener('input', function () {
    slider.parentElement.style.setProperty('--pos', slider.value + '%');
  });
});
"""


BEST = ' class="best"'


def esc(text: object) -> str:
    """``text`` safe in HTML content and quoted attributes."""
    return html.escape(str(text), quote=True)


def fmt(value: float | None) -> str:
    """A score as the page prints it (4 significant decimals; undefined as an en dash)."""
    return f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else "–"


def img(src: str, alt: str, width: int, height: int, cls: str = "") -> str:
    """An ``<img>`` of a report file, shown at ``width`` x ``height`` CSS pixels."""
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} src="{esc(src)}" alt="{esc(alt)}" width="{width}" height="{height}" loading="lazy">'


def page(title: str, body: str) -> str:
    """A complete HTML document with the inline style and script; nothing is loaded from the network."""
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{esc(title)}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def best_rows(
    means: Mapping[str, Mapping[str, float]], metric: str, lower_better: bool
) -> set[str]:
    """The rows holding the best finite mean of ``metric`` (all of them when tied); none when none is finite.

    >>> sorted(best_rows({"DCP": {"niqe": 4.5}, "EID": {"niqe": 4.0}, "H": {"niqe": float("nan")}}, "niqe", True))
    ['EID']
    """
    values = {
        row: v[metric]
        for row, v in means.items()
        if isinstance(v.get(metric), float) and math.isfinite(v[metric])
    }
    if not values:
        return set()
    best = min(values.values()) if lower_better else max(values.values())
    return {row for row, value in values.items() if value == best}


def summary_table(
    means: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str],
    lower_better: Mapping[str, bool],
    counts: Mapping[str, int],
) -> str:
    """One row per column of the report (``means[row][metric]``), the best value per metric in bold and shaded,
    the direction in the header (↑ higher is better, ↓ lower is better)."""
    head = "".join(
        f'<th data-metric="{esc(m)}">{esc(m)} {"↓" if lower_better[m] else "↑"}</th>'
        for m in metrics
    )
    best = {m: best_rows(means, m, lower_better[m]) for m in metrics}
    lines = [f"<tr><th>method</th>{head}<th>images</th></tr>"]
    for row, values in means.items():
        cells = "".join(
            f'<td data-metric="{esc(m)}"{BEST if row in best[m] else ""}>{fmt(values.get(m))}</td>'
            for m in metrics
        )
        lines.append(
            f'<tr data-row="{esc(row)}"><td>{esc(row)}</td>{cells}<td>{counts.get(row, 0)}</td></tr>'
        )
    return '<table class="summary">\n' + "\n".join(lines) + "\n</table>\n"
