"""Depth and disparity maps for haze synthesis: read a file (``.npy``, ``.npz``, TIFF, PNG), turn
disparity into depth with a stereo calibration, fill invalid pixels, and the bundled motorcycle scene."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
import torch
from scipy import ndimage
from torch import Tensor

from eid.data.codecs import open_pillow
from eid.errors import EIDError

DEPTH_SUFFIXES = (".npy", ".npz", ".tif", ".tiff", ".png")


@dataclass(frozen=True)
class DisparityCalibration:
    r"""Stereo calibration turning disparity (px) into depth (m), Middlebury 2014 convention.

    .. math:: Z\,[\mathrm{m}] = \frac{B\,[\mathrm{mm}]\; f\,[\mathrm{px}]}{(\mathrm{disp} + \mathrm{doffs})\,1000}

    ``doffs`` is the x-difference of the two principal points (``cx1 - cx0``).

    >>> round(float(MOTORCYCLE_CALIBRATION.depth(np.array([59.91]))[0]), 2)
    2.11
    """

    baseline_mm: float
    focal_px: float
    doffs_px: float

    def depth(self, disparity: np.ndarray) -> np.ndarray:
        """Depth in metres; non-finite disparity (no stereo match) gives NaN."""
        disparity = np.asarray(disparity, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = self.baseline_mm * self.focal_px / (disparity + self.doffs_px) / 1000.0
        return np.where(np.isfinite(disparity) & (disparity + self.doffs_px > 0), z, np.nan)


#: Calibration of scikit-image's 4x-downsampled Middlebury ``stereo_motorcycle`` (from its docstring).
MOTORCYCLE_CALIBRATION = DisparityCalibration(
    baseline_mm=193.001, focal_px=994.978, doffs_px=31.086
)


def fill_invalid(depth: np.ndarray, name: str = "depth map") -> np.ndarray:
    """Replace non-finite or non-positive depths by the depth of the nearest valid pixel (Euclidean).

    Stereo holes (occlusions, no match) are small and next to valid surfaces, so copying the nearest
    valid value keeps the map piecewise smooth without inventing new depths.
    """
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise EIDError(
            f"{name} has no valid (finite, positive) depth; check the file or its --depth-scale/--disparity"
        )
    if valid.all():
        return depth
    _, (rows, cols) = ndimage.distance_transform_edt(~valid, return_indices=True)
    return depth[rows, cols]


def read_depth(
    path: str | Path, calibration: DisparityCalibration | None = None, scale: float = 1.0
) -> Tensor:
    """Read a depth (or, with ``calibration``, disparity) map as a ``(1,H,W)`` float32 tensor in metres.

    Files: ``.npy``; ``.npz`` (key ``depth``, ``disp``, ``arr_0`` or its only array); TIFF (float or
    integer); PNG (raw integer values, e.g. millimetres with ``scale=0.001``). Depth values are
    multiplied by ``scale``. Invalid pixels (NaN, inf, <= 0) are filled by :func:`fill_invalid`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                keys = [k for k in ("depth", "disp", "arr_0") if k in archive] or list(
                    archive.keys()
                )
                if len(keys) != 1 and keys[0] not in ("depth", "disp", "arr_0"):
                    raise EIDError(
                        f"{path}: several arrays ({', '.join(keys)}); store the depth under key 'depth'"
                    )
                array = archive[keys[0]]
        elif suffix in (".tif", ".tiff"):
            array = tifffile.imread(path)
        elif suffix == ".png":
            with open_pillow(
                path
            ) as image:  # large maps: --max-pixels governs, not Pillow's bomb limit
                array = np.asarray(image)
        else:
            raise EIDError(
                f"{path}: unsupported depth file; use one of {', '.join(DEPTH_SUFFIXES)}"
            )
    except (OSError, ValueError) as exc:
        raise EIDError(f"{path}: cannot read depth map ({exc}); check the file") from exc
    array = np.squeeze(np.asarray(array, dtype=np.float64))
    if array.ndim != 2:
        raise EIDError(
            f"{path}: depth map must be 2-D, got shape {array.shape}; save a single-channel map"
        )
    depth = calibration.depth(array) if calibration else array * scale
    return torch.from_numpy(fill_invalid(depth, str(path)).astype(np.float32)).unsqueeze(0)


def motorcycle_depth() -> tuple[Tensor, Tensor]:
    """scikit-image's Middlebury ``stereo_motorcycle`` left view and its metric depth.

    Returns ``(image (3,500,741) in [0,1], depth (1,500,741) in metres)``. The disparity's 7.35 % of
    ``+inf`` pixels (no ground truth) are filled with the nearest valid depth; depths span about 2.1-5.0 m.
    """
    from skimage.data import stereo_motorcycle  # bundled with scikit-image (no download)

    left, _, disparity = stereo_motorcycle()
    image = torch.from_numpy(left).permute(2, 0, 1).float() / 255.0
    depth = MOTORCYCLE_CALIBRATION.depth(disparity.astype(np.float64))
    return image, torch.from_numpy(
        fill_invalid(depth, "motorcycle_disp").astype(np.float32)
    ).unsqueeze(0)
