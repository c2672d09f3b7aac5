"""Match a report's folders image by image and score every cell with :func:`eid.metrics.evaluate.evaluate`.

The *anchor* folder (the hazy inputs, else the reference, else the first method) names the images and fixes
their sizes. A method or reference image of another name or size is *missing* in that row; each folder with
missing images gets one warning line. Scores are those of ``eid evaluate`` on the same image, so the summary
means equal ``eid evaluate --json`` on a complete folder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from eid.data.io import read_image
from eid.data.listing import iter_inputs
from eid.data.scale import White
from eid.errors import EIDError, ImageReadError
from eid.metrics.evaluate import EvaluationResult, evaluate
from eid.metrics.registry import MetricSpec

INPUT = "input"
REFERENCE = "reference"


@dataclass
class Row:
    """One image: its file in each column (``None``: missing) and each scored column's values."""

    name: str
    files: dict[str, Path | None]
    scores: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class Collection:
    """The rows, the scored columns' results (as ``eid evaluate`` gives them) and the warning lines."""

    columns: list[str]
    rows: list[Row]
    results: dict[str, EvaluationResult]
    warnings: list[str]


def _by_stem(folder: Path) -> dict[str, Path]:
    """Images under ``folder`` keyed by their relative path without suffix (as ``eid evaluate`` pairs them)."""
    if not folder.is_dir():
        raise EIDError(f"{folder} is not a folder; give a folder of images")
    return {str(rel.with_suffix("")): path for path, rel in iter_inputs([folder], recursive=True)}


def _size(path: Path, white: White) -> tuple[int, int] | None:
    """``(H, W)`` of a 2-D image; ``None`` for an unreadable file or a TIFF stack (not shown in a report)."""
    try:
        return tuple(read_image(path, white=white)[0].shape[-2:])
    except ImageReadError:  # a TIFF stack too (TiffStackError)
        return None


def _first(names: Sequence[str], n: int = 3) -> str:
    """The first ``n`` names, then an ellipsis."""
    return ", ".join(names[:n]) + (" ..." if len(names) > n else "")


def _warning(
    column: str, folder: Path, absent: list[str], other_size: list[str], total: int
) -> str:
    parts = [f"{len(absent)} of {total} images missing ({_first(absent)})"] if absent else []
    if other_size:
        parts.append(f"{len(other_size)} of another size or unreadable ({_first(other_size)})")
    return f"{column} ({folder}): {'; '.join(parts)}; their cells say missing"


def collect(
    columns: Mapping[str, Path],
    specs: Sequence[MetricSpec],
    mask: str | None = None,
    white: White = "dtype",
) -> Collection:
    """Match ``columns`` (``input``, the methods, ``reference``; at least one) by name and score them.

    Scored columns are the input and the methods; with a reference, against it (only where it is present).
    ``mask`` (``circle``, ``auto`` or a mask file, :func:`eid.metrics.mask.fov_mask`) adds ``<metric>@mask``
    columns, scored on the field of view of the anchor image, the same for every column.
    """
    rows, warnings = _match(columns, white)
    scored = [c for c in columns if c != REFERENCE]
    names = [s.name for s in specs] + (
        [f"{s.name}@mask" for s in specs if s.supports_mask] if mask else []
    )
    results = {c: EvaluationResult(names) for c in scored}
    for row in rows:
        ref = row.files.get(REFERENCE)
        if any(s.needs_reference for s in specs) and ref is None:
            continue  # nothing to compare with; the row's cells show no scores
        mask_fn = _mask_of(mask, row, white)
        for column in scored:
            path = row.files[column]
            one = (
                evaluate(specs, [path], [ref] if ref else None, mask_fn=mask_fn, white=white)
                if path
                else None
            )
            if one is not None and one.rows:
                row.scores[column] = {k: v for k, v in one.rows[0].items() if k != "name"}
                results[column].rows.append({"name": row.name, **row.scores[column]})
    return Collection(list(columns), rows, results, warnings)


def _match(columns: Mapping[str, Path], white: White) -> tuple[list[Row], list[str]]:
    """The rows named by the anchor folder, each column's file of the same name and size or ``None``, and one
    warning per folder with missing images (and one for anchor files that are not 2-D images)."""
    anchor = (
        INPUT if INPUT in columns else REFERENCE if REFERENCE in columns else next(iter(columns))
    )
    anchor_files = _by_stem(columns[anchor])
    sizes = {key: _size(path, white) for key, path in anchor_files.items()}
    rows = [
        Row(key, {anchor: anchor_files[key]}) for key, size in sizes.items() if size is not None
    ]
    if not rows:
        raise EIDError(f"{columns[anchor]} holds no 2-D image to report on; check the folder")
    left_out = [key for key, size in sizes.items() if size is None]
    warnings = (
        [
            f"{anchor} ({columns[anchor]}): {len(left_out)} left out, unreadable or TIFF stacks ({_first(left_out)})"
        ]
        if left_out
        else []
    )
    for column, folder in columns.items():
        if column == anchor:
            continue
        found = _by_stem(folder)
        absent, other_size = [], []
        for row in rows:
            path = found.get(row.name)
            ok = path is not None and _size(path, white) == sizes[row.name]
            row.files[column] = path if ok else None
            if not ok:
                (absent if path is None else other_size).append(row.name)
        if absent or other_size:
            warnings.append(_warning(column, folder, absent, other_size, len(rows)))
    return rows, warnings


def _mask_of(
    how: str | None, row: Row, white: White
) -> Callable[[torch.Tensor, Path], torch.Tensor] | None:
    """``eid evaluate``'s ``mask_fn`` giving the field of view of the row's anchor image, whatever is scored."""
    if how is None:
        return None
    from eid.metrics.mask import fov_mask

    anchor = read_image(next(iter(row.files.values())), white=white)[0][None]
    return lambda image, path: fov_mask(anchor.to(image.device), how).expand(
        image.shape[0], 1, -1, -1
    )
