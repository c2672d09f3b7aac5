"""Evaluate folders of images: pair predictions with references by name, compute metrics, report.

Pairing rules: a prediction ``name.ext`` matches the reference with the same stem (any image suffix).
With ``reside_names=True``, RESIDE's many-hazy-to-one-clear naming is understood: ``id_k.png`` (and
``id_k_A.png``, ``id_A_beta.jpg``) match the reference ``id.png``; the part before the first ``_``
is the scene id. Mismatched names or sizes are errors that name the files.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from eid.data.listing import iter_inputs
from eid.data.planes import ImageFile, read_planes
from eid.data.scale import White
from eid.errors import EIDError, ImageReadError
from eid.metrics.registry import MetricSpec
from eid.utils import atomic_write


@dataclass
class EvaluationResult:
    """Per-image values (``rows``), their means, and the files that had to be skipped."""

    metric_names: list[str]
    rows: list[dict[str, float | str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def means(self) -> dict[str, float]:
        out = {}
        for name in self.metric_names:
            values = [
                float(r[name])
                for r in self.rows
                if isinstance(r.get(name), (int, float)) and math.isfinite(float(r[name]))
            ]
            out[name] = sum(values) / len(values) if values else float("nan")
        return out

    def to_json(self) -> dict:
        """``{"metrics": {name: mean}, "images": [{"name": ..., name: value}, ...]}``."""
        return {"metrics": self.means, "images": self.rows}

    def write_json(self, path: str | Path) -> None:
        """Write :meth:`to_json`; an undefined value (NaN, e.g. the mean of no finite values) is ``null``, since
        ``NaN`` is not JSON and strict readers refuse the file."""
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps(_json_ready(self.to_json()), indent=2, allow_nan=False))

    def write_csv(self, path: str | Path) -> None:
        # file names that are not valid UTF-8 are written as their own bytes, so each row names its file
        with (
            atomic_write(path) as tmp,
            open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle,
        ):
            writer = csv.DictWriter(handle, fieldnames=["name", *self.metric_names])
            writer.writeheader()
            writer.writerows(self.rows)
            writer.writerow({"name": "mean", **self.means})


def _json_ready(value: object) -> object:
    """``value`` with every non-finite float (in nested dicts and lists) replaced by ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def scene_id(stem: str) -> str:
    """RESIDE scene id of a file stem: the part before the first underscore (``1400_3`` -> ``1400``)."""
    return stem.split("_", 1)[0]


def pair_files(
    pred: Sequence[str | Path], ref: Sequence[str | Path], reside_names: bool = False
) -> list[tuple[Path, Path, str]]:
    """Match prediction files with reference files; return ``(pred, ref, name)`` triples."""
    refs: dict[str, Path] = {}
    for path, rel in iter_inputs(ref, recursive=True):
        key = str(rel.with_suffix(""))
        if key in refs:
            raise EIDError(
                f"references {refs[key]} and {path} share the name {key!r}; keep one per name"
            )
        refs[key] = path
    if (
        reside_names
    ):  # a reference may itself carry a suffix (SOTS copies named like their hazy image)
        for key, path in list(refs.items()):
            refs.setdefault(str(Path(key).parent / scene_id(Path(key).name)), path)
    pairs, missing = [], []
    for path, rel in iter_inputs(pred, recursive=True):
        key = str(rel.with_suffix(""))
        if reside_names and key not in refs:
            key = str(rel.parent / scene_id(rel.stem))
        if key in refs:
            pairs.append((path, refs[key], str(rel)))
        else:
            missing.append(str(rel))
    if missing:
        hint = (
            "; for RESIDE-style names (id_k.png -> id.png) add --reside-names"
            if not reside_names
            else ""
        )
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise EIDError(f"no reference with the name of {', '.join(missing[:3])}{more}{hint}")
    if not pairs:
        raise EIDError("no prediction images found; check --pred")
    return pairs


def evaluate(
    metrics: Sequence[MetricSpec],
    pred: Sequence[str | Path],
    ref: Sequence[str | Path] | None = None,
    reside_names: bool = False,
    mask_fn: Callable[[torch.Tensor, Path], torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    max_pixels: int | None = None,
    white: White = "dtype",
    on_image: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Compute ``metrics`` for every prediction (paired with ``ref`` when given).

    Both sides are read with the scale ``white`` (:func:`eid.data.io.read_image`): PSNR's peak is that value.

    ``mask_fn(image, path) -> (1,1,H,W) bool`` adds, for each metric that supports masks, a column
    ``<name>@mask`` computed on the masked field of view only. Unreadable files are skipped and listed
    in :attr:`EvaluationResult.skipped`; a size mismatch is an error. A TIFF stack (:mod:`eid.data.stacks`) gives
    one row per plane, ``name[plane]``, against the same plane of its reference stack.
    """
    if white == "max":
        raise EIDError(
            "white=max rescales every image by its own maximum, which changes what is compared; use dtype or a number"
        )
    needs_ref = [m.name for m in metrics if m.needs_reference]
    if needs_ref and not ref:
        raise EIDError(
            f"{', '.join(needs_ref)} need reference images; pass --ref DIR or choose no-reference metrics"
        )
    if ref:
        items = [(p, r, n) for p, r, n in pair_files(pred, ref, reside_names)]
    else:
        items = [(p, None, str(rel)) for p, rel in iter_inputs(pred, recursive=True)]
        if not items:
            raise EIDError("no prediction images found; check --pred")
    names = [m.name for m in metrics]
    if mask_fn is not None:
        names += [f"{m.name}@mask" for m in metrics if m.supports_mask]
    result = EvaluationResult(names)

    def score(
        x: torch.Tensor, y: torch.Tensor | None, pred_path: Path, ref_path: Path | None, name: str
    ) -> None:
        if y is not None and x.shape != y.shape:
            raise EIDError(
                f"{pred_path} is {x.shape[-1]}x{x.shape[-2]}x{x.shape[0]} but its reference {ref_path} is "
                f"{y.shape[-1]}x{y.shape[-2]}x{y.shape[0]}; resize or crop one of them"
            )
        x = x.unsqueeze(0).to(device)
        y = y.unsqueeze(0).to(device) if y is not None else None
        mask = mask_fn(x, pred_path) if mask_fn is not None else None
        row: dict[str, float | str] = {"name": name}
        with torch.inference_mode():
            for metric in metrics:
                row[metric.name] = float(metric.fn(x, y)[0])
                if mask is not None and metric.supports_mask:
                    row[f"{metric.name}@mask"] = float(metric.fn(x, y, mask=mask)[0])
        result.rows.append(row)
        if on_image is not None:
            on_image(name)

    for pred_path, ref_path, name in items:
        try:
            files = [
                read_planes(path, max_pixels=max_pixels, white=white)
                for path in (pred_path, ref_path)
                if path is not None
            ]
        except ImageReadError as exc:
            result.skipped.append(f"{exc}")
            continue
        if reason := _stack_pair_problem(files, mask_fn is not None):
            result.skipped.append(reason)
            continue
        x_file, y_file = files[0], files[1] if len(files) == 2 else None
        for index, x in x_file:
            y = y_file.plane(index) if y_file is not None else None
            score(x, y, pred_path, ref_path, x_file.name(name, index))
    return result


def _stack_pair_problem(files: list[ImageFile], masked: bool) -> str | None:
    """Why a prediction and its reference cannot be scored plane by plane (``None`` when they can): a stack is
    scored against a stack of as many planes (another count is an error), without field-of-view masks."""
    stacks = [f for f in files if f.is_stack]
    if not stacks:
        return None
    if masked:
        return f"{files[0].path}: a TIFF stack; field-of-view masks are for 2-D images, score it without --mask"
    if len(stacks) != len(files):
        flat = next(f for f in files if not f.is_stack)
        return f"{flat.path}: a 2-D image paired with a TIFF stack; score stacks against stacks of as many planes"
    if len(files) == 2 and len(files[0]) != len(files[1]):
        raise EIDError(
            f"{files[0].path} has {len(files[0])} planes but its reference {files[1].path} has {len(files[1])}"
        )
    return None
