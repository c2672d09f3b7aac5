"""Field-of-view masks for no-reference metrics on endoscopic frames (a bright disc on black).

``fov_mask(image, how)`` returns a boolean ``(B,1,H,W)`` mask, ``True`` inside the field of view:

- ``"circle"``: the disc inscribed in the frame, centre ``((H-1)/2, (W-1)/2)``, radius ``min(H,W)/2``;
- ``"auto"``: detected per image: pixels whose 5x5 local mean of ``max(R,G,B)`` exceeds ``threshold``
  (default 0.06, about 15/255) mark the lit area; the disc is that area made convex along rows and columns
  (each row and each column is filled between its first and last lit pixel, so dark tissue inside the view
  stays in), then eroded by ``erode`` pixels (default 4) to drop the vignetted rim. A frame with no lit pixel
  gives an empty mask;
- anything else is a mask FILE read with :func:`eid.data.io.read_image`: non-zero (> 0.5 after scaling to
  [0,1]) pixels of its first channel are inside; it must have the images' height and width.

How each metric uses the mask is documented in ``docs/metrics.md``: NIQE and FADE score only the patches
(96x96, resp. 8x8) lying mostly (NIQE, >= 50 %) or fully (FADE) inside; BRISQUE fits its distributions to
the coefficients inside the mask eroded by 3 pixels.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from eid.errors import EIDError


def circle_mask(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The inscribed disc as a boolean ``(1,1,H,W)`` mask."""
    y = torch.arange(height, device=device, dtype=torch.float64)[:, None] - (height - 1) / 2
    x = torch.arange(width, device=device, dtype=torch.float64)[None, :] - (width - 1) / 2
    return (y**2 + x**2 <= (min(height, width) / 2) ** 2)[None, None]


def _fill_between(lit: torch.Tensor, dim: int) -> torch.Tensor:
    """Fill each line along ``dim`` between its first and last ``True``."""
    n = lit.shape[dim]
    pos = torch.arange(n, device=lit.device).view(
        [n if d == dim % lit.ndim else 1 for d in range(lit.ndim)]
    )
    first = torch.where(lit, pos, n).amin(dim, keepdim=True)
    last = torch.where(lit, pos, -1).amax(dim, keepdim=True)
    return (pos >= first) & (pos <= last)


def auto_mask(image: torch.Tensor, threshold: float = 0.06, erode: int = 4) -> torch.Tensor:
    """Detect the lit field of view of each ``(B,C,H,W)`` image in ``[0,1]`` (see the module docstring)."""
    bright = image.amax(1, keepdim=True).to(torch.float32)
    lit = F.avg_pool2d(bright, 5, stride=1, padding=2, count_include_pad=False) > threshold
    region = _fill_between(lit, -1) & _fill_between(lit, -2)
    if erode > 0:
        k = 2 * erode + 1
        region = -F.max_pool2d(-region.to(torch.float32), k, stride=1, padding=erode) > 0.5
    return region


def has_field_of_view(image: torch.Tensor, dark_border: float = 0.05) -> bool:
    """Whether a ``(C,H,W)`` image is a lit field of view in a dark frame (endoscopy, some microscopes): more
    than ``dark_border`` of its pixels fall outside :func:`auto_mask` (its own erosion margin discounted)."""
    outside = 1.0 - float(auto_mask(image[None], erode=0).float().mean())
    return outside > dark_border


def file_mask(path: str | Path, height: int, width: int) -> torch.Tensor:
    """A mask image file as a boolean ``(1,1,H,W)`` tensor (non-zero pixels of its first channel)."""
    from eid.data.io import read_image

    img, _ = read_image(path)
    if tuple(img.shape[-2:]) != (height, width):
        raise EIDError(
            f"mask {path} is {img.shape[-2]}x{img.shape[-1]} but the images are {height}x{width}; "
            "give a mask of the same size"
        )
    return (img[:1] > 0.5)[None]


def fov_mask(image: torch.Tensor, how: str) -> torch.Tensor:
    """Boolean field-of-view mask ``(B,1,H,W)`` for ``image`` ``(B,C,H,W)``: ``how`` = circle, auto or a file path."""
    if image.ndim != 4:
        raise EIDError(
            f"expected a (B,C,H,W) batch, got shape {tuple(image.shape)}; add a batch dimension"
        )
    b, _, h, w = image.shape
    if how == "circle":
        return circle_mask(h, w, image.device).expand(b, 1, h, w)
    if how == "auto":
        return auto_mask(image)
    if not Path(how).is_file():
        raise EIDError(
            f"mask {how!r} is neither 'circle', 'auto' nor an existing file; pass one of those"
        )
    return file_mask(how, h, w).to(image.device).expand(b, 1, h, w)
