"""Reference images and values of ``../shared/iqa/reference`` (NIQE, BRISQUE, FADE, masks), read the way the
reference README says. A helper module for the metric tests, so that no test file imports another."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# A default-run subset covering the reading cases (RGBA PNG with black FOV, JPEG, blur, 16-bit grey);
# the full table runs with ``-m slow``.
QUICK = {
    "cholec80-smoke/hazy/video07_003217.png",
    "fade/test_image2.JPG",
    "nuclei/img2d.tif",
    "iqa/reference/images/cholec_video07_003217_blur2.png",
}


def reference_rows(shared: Path, quick: bool) -> list[dict[str, str]]:
    """Rows of ``iqa/reference/reference_values.csv`` (only the QUICK ones when ``quick``)."""
    with open(shared / "iqa" / "reference" / "reference_values.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r for r in rows if r["image"] in QUICK] if quick else rows


def load_reference(shared: Path, rel: str) -> torch.Tensor:
    """An image as ``(C,H,W)`` in [0,1] read as the reference README says (alpha dropped, 16-bit full range)."""
    path = shared / rel
    if path.suffix == ".tif":
        import tifffile

        arr = tifffile.imread(path).astype(np.float32) / 65535
    else:
        arr = np.asarray(Image.open(path)).astype(np.float32) / 255
    x = torch.from_numpy(arr)
    return x[None] if x.ndim == 2 else x[..., :3].permute(2, 0, 1)
