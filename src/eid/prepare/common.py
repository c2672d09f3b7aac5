"""What every dataset builder shares: the append-only manifest, the resume state, the output folder
check and the summary of a run."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor

from eid.errors import EIDError
from eid.utils import atomic_write


class Manifest:
    """An append-only CSV of prepared files; each row is one ``write`` of a complete line.

    Rows are appended after their image file is in place, so a recorded row always has its file. A
    crash can at worst leave a partial last line, which is dropped (atomically) when reopened.
    """

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path, self.columns = path, list(columns)
        self.rows: list[dict[str, str]] = []
        if path.is_file():
            text = path.read_text()
            complete = text[: text.rfind("\n") + 1]
            if complete != text:
                with atomic_write(path) as tmp:
                    tmp.write_text(complete)
            reader = csv.DictReader(io.StringIO(complete))
            if reader.fieldnames is not None and list(reader.fieldnames) != self.columns:
                raise EIDError(
                    f"{path}: manifest columns {reader.fieldnames} differ from {self.columns}; use a new --out"
                )
            self.rows = list(reader)
        if not self.rows and not (path.is_file() and path.stat().st_size):
            with atomic_write(path) as tmp:
                tmp.write_text(",".join(self.columns) + "\n")

    def append(self, row: dict[str, object]) -> None:
        line = io.StringIO()
        csv.writer(line).writerow([row[c] for c in self.columns])
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line.getvalue())
        self.rows.append({c: str(row[c]) for c in self.columns})


def write_state(path: Path, state: dict) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))


def load_state(path: Path, settings: dict) -> dict:
    """The resume state in ``path``, checking that it was made with the same ``settings``."""
    if not path.is_file():
        return {"settings": settings, "items": {}}
    state = json.loads(path.read_text())
    if state.get("settings") != settings:
        changed = sorted(k for k in settings if state.get("settings", {}).get(k) != settings[k])
        raise EIDError(
            f"{path.parent} was prepared with other settings ({', '.join(changed)}); "
            "rerun with the same options to resume, or choose a new --out"
        )
    return state


def check_out(out_dir: Path, source: Path) -> Path:
    out_dir, source = Path(out_dir).resolve(), Path(source).resolve()
    if out_dir == source or source in out_dir.parents:
        raise EIDError(
            f"output folder {out_dir} is inside the input folder {source}; choose an --out outside it"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def resize_square(image: Tensor, size: int) -> Tensor:
    """Antialiased bilinear resize of ``(C,H,W)`` to ``size x size``."""
    return F.interpolate(
        image[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )[0]


OnSkip = Callable[[str], None]
"""Called with one line naming an input file that was left out and why."""


@dataclass
class PrepareSummary:
    """What a preparation run did (this run only): files written per folder, items already done (``skipped``)
    and one line per input file left out because it could not be read (``failed``)."""

    out_dir: Path
    written: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    failed: list[str] = field(default_factory=list)

    def add(self, key: str, n: int = 1) -> None:
        self.written[key] = self.written.get(key, 0) + n

    def fail(self, message: str, on_skip: OnSkip) -> None:
        """Record an input left out and report it."""
        self.failed.append(message)
        on_skip(message)
