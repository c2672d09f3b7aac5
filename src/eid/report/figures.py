"""Labelled comparison figures: one row per image, one column per method, the scores under each tile."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from eid.utils import atomic_write


@dataclass
class Tile:
    """One cell of a comparison: an image ``(C,H,W)`` in ``[0, 1]`` and its scores (``{"PSNR": 21.3}``)."""

    image: torch.Tensor
    scores: Mapping[str, float] = field(default_factory=dict)


def _caption(scores: Mapping[str, float]) -> str:
    return "  ".join(
        f"{name} {value:.2f}" for name, value in scores.items() if not math.isnan(value)
    )  # NaN: left out


def comparison_figure(
    rows: Mapping[str, Mapping[str, Tile]],
    path: str | Path,
    columns: Sequence[str] | None = None,
    tile_inches: float = 2.6,
) -> Path:
    """Write a PNG grid: rows are images (named on the left), columns are methods (named on top).

    ``rows[image][method]`` is a :class:`Tile`; a missing tile is drawn as an empty cell marked
    "missing". Images are shown at their own aspect ratio, never resampled beyond the figure's size.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    columns = list(columns or dict.fromkeys(m for tiles in rows.values() for m in tiles))
    fig, axes = plt.subplots(
        len(rows),
        len(columns),
        figsize=(tile_inches * len(columns), tile_inches * len(rows) + 0.4),
        squeeze=False,
    )
    for r, (image_name, tiles) in enumerate(rows.items()):
        for c, method in enumerate(columns):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            tile = tiles.get(method)
            if tile is None:
                ax.text(0.5, 0.5, "missing", ha="center", va="center", transform=ax.transAxes)
            else:
                array = tile.image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
                ax.imshow(
                    array[..., 0] if array.shape[-1] == 1 else array, cmap="gray", vmin=0, vmax=1
                )
                ax.set_xlabel(_caption(tile.scores), fontsize=8)
            if r == 0:
                ax.set_title(method, fontsize=10)
            if c == 0:
                ax.set_ylabel(image_name, fontsize=8)
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)


def as_tile(image: torch.Tensor | np.ndarray, **scores: float) -> Tile:
    """A :class:`Tile` from a ``(C,H,W)`` tensor or an ``(H,W[,C])`` array in ``[0, 1]``."""
    if isinstance(image, np.ndarray):
        image = torch.as_tensor(image if image.ndim == 3 else image[..., None]).permute(2, 0, 1)
    return Tile(image, scores)
