"""The pictures of a report: thumbnails, the fixed zoom crop, FADE density maps and false-colour maps.

Images are only ever shrunk: a thumbnail of an image smaller than :data:`THUMB` is the image itself, and a crop
keeps its native pixels (the page enlarges it with nearest-neighbour rendering, so pixels stay visible).
Every file is an 8-bit PNG, which every browser shows (a TIFF or a 16-bit PNG would not display everywhere).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from eid.data.io import write_image
from eid.errors import EIDError

THUMB = 256
"""Longest side of a thumbnail, in pixels: five columns fit a laptop screen; 20 rows x 5 columns stay a few MB."""
MIN_CROP = 16


def thumb_size(height: int, width: int, longest: int = THUMB) -> tuple[int, int]:
    """``(H, W)`` scaled down so that the longest side is at most ``longest``; never up.

    >>> thumb_size(200, 700), thumb_size(40, 56)
    ((73, 256), (40, 56))
    """
    scale = min(1.0, longest / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def shrink(image: torch.Tensor, longest: int = THUMB) -> torch.Tensor:
    """``(C,H,W)`` image scaled down (antialiased) to :func:`thumb_size`; a small enough image is returned as is."""
    size = thumb_size(*image.shape[-2:], longest)
    if size == tuple(image.shape[-2:]):
        return image
    return F.interpolate(
        image[None], size=size, mode="bilinear", antialias=True, align_corners=False
    )[0].clamp(0, 1)


def crop_box(
    height: int, width: int, crop: tuple[int, int, int] | None = None
) -> tuple[int, int, int]:
    """``(top, left, size)`` of the zoom square: ``crop`` as ``(x, y, size)`` clipped into the image, or the centre
    square a quarter of the shorter side wide (at least :data:`MIN_CROP` pixels).

    >>> crop_box(200, 700), crop_box(200, 700, (690, 10, 64))
    ((75, 325, 50), (10, 636, 64))
    """
    if crop is None:
        size = min(height, width, max(MIN_CROP, min(height, width) // 4))
        return (height - size) // 2, (width - size) // 2, size
    x, y, size = crop
    size = max(1, min(size, height, width))
    return min(max(0, y), height - size), min(max(0, x), width - size), size


def cut(image: torch.Tensor, box: tuple[int, int, int]) -> torch.Tensor:
    """The square ``box`` (:func:`crop_box`) of a ``(C,H,W)`` image, native pixels."""
    top, left, size = box
    return image[:, top : top + size, left : left + size]


@lru_cache(maxsize=1)
def _fade_model() -> torch.nn.Module:
    from eid.metrics.fade import FADE

    return FADE()


def density_map(image: torch.Tensor) -> torch.Tensor | None:
    """FADE's per-patch fog density ``(H // 8, W // 8)`` of a ``(C,H,W)`` image (``None`` below 8x8 pixels)."""
    try:
        with torch.inference_mode():
            return _fade_model().density_map(image[None].double())[0].float()
    except EIDError:
        return None


def false_colour(values: torch.Tensor, vmax: float, cmap: str = "viridis") -> torch.Tensor:
    """``(3,H,W)`` colour image of a ``(H,W)`` map on the scale ``0 .. vmax`` (NaN drawn as black)."""
    from matplotlib import colormaps

    scaled = (values / max(vmax, 1e-12)).clamp(0, 1).nan_to_num(0.0)
    rgb = colormaps[cmap](scaled.cpu().numpy())[..., :3]
    return torch.from_numpy(rgb).permute(2, 0, 1).float()


def as_picture(maps: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A ``(C,h,w)`` operator map (``C`` = 1 or 3; a global airlight is ``h = w = 1``) as a ``(C,H,W)`` picture."""
    if maps.shape[-2:] != (height, width):
        maps = (
            maps.expand(-1, height, width)
            if maps.shape[-2:] == (1, 1)
            else F.interpolate(maps[None], size=(height, width), mode="nearest")[0]
        )
    return maps.clamp(0, 1)


def save(path: Path, image: torch.Tensor) -> Path:
    """Write a ``(C,H,W)`` image in ``[0, 1]`` as an 8-bit PNG."""
    return write_image(path, image.detach().float().cpu())
