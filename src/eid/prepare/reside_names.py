"""RESIDE's file naming: parse the names of each subset, scan a subset into clear/hazy items, and a
paired dataset over them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset

from eid.data.io import read_image
from eid.data.listing import IMAGE_SUFFIXES
from eid.errors import EIDError


@dataclass(frozen=True)
class RESIDEName:
    """What a RESIDE hazy file name says: scene id, haze variant ``k``, airlight ``A`` and ``beta``."""

    scene: str
    variant: str = ""
    airlight: float | None = None
    beta: float | None = None


_NUMBER = r"(\d+(?:\.\d+)?)"
NAMINGS = {
    "id_k_A": re.compile(rf"^(\w+?)_(\d+)_{_NUMBER}$"),  # ITS: 1_1_0.90179
    "id_A_beta": re.compile(rf"^(\w+?)_{_NUMBER}_{_NUMBER}$"),  # OTS / SOTS-outdoor: 0005_0.8_0.04
    "id_k": re.compile(r"^(\w+?)_(\d+)$"),  # SOTS-indoor: 1400_3
    "id": re.compile(r"^(.+)$"),  # HSTS / RTTS: the whole stem names the image
}


def parse_reside_name(stem: str, naming: str) -> RESIDEName | None:
    """Parse a hazy file stem with one of :data:`NAMINGS`; ``None`` when it does not match.

    >>> parse_reside_name("1_1_0.90179", "id_k_A")
    RESIDEName(scene='1', variant='1', airlight=0.90179, beta=None)
    >>> parse_reside_name("0005_0.8_0.04", "id_A_beta")
    RESIDEName(scene='0005', variant='', airlight=0.8, beta=0.04)
    """
    match = NAMINGS[naming].match(stem)
    if match is None:
        return None
    g = match.groups()
    if naming == "id_k_A":
        return RESIDEName(g[0], g[1], float(g[2]))
    if naming == "id_A_beta":
        return RESIDEName(g[0], airlight=float(g[1]), beta=float(g[2]))
    if naming == "id_k":
        return RESIDEName(g[0], g[1])
    return RESIDEName(g[0])


@dataclass(frozen=True)
class RESIDESubset:
    """Where a RESIDE subset keeps its files (first existing candidate under ``--root``) and how it is used."""

    hazy: tuple[str, ...]
    clear: tuple[str, ...]
    naming: str
    role: str  # "train": unpaired train + paired held-out test; "test": paired test; "hazy-only"


RESIDE_SUBSETS = {
    "its": RESIDESubset(("hazy",), ("clear", "gt", "GT"), "id_k_A", "train"),
    "ots": RESIDESubset(("hazy",), ("clear", "gt", "GT"), "id_A_beta", "train"),
    "sots-indoor": RESIDESubset(("hazy", "indoor/hazy"), ("gt", "GT", "clear", "indoor/gt", "indoor/clear"), "id_k", "test"),
    "sots-outdoor": RESIDESubset(("hazy", "outdoor/hazy"), ("gt", "GT", "clear", "outdoor/gt", "outdoor/clear"), "id_A_beta", "test"),
    "hsts": RESIDESubset(("synthetic/synthetic", "hazy"), ("synthetic/original", "gt", "GT", "clear"), "id", "test"),
    "rtts": RESIDESubset(("JPEGImages", "hazy", "."), (), "id", "hazy-only"),
}  # fmt: skip


def _first_dir(root: Path, candidates: Sequence[str]) -> Path | None:
    return next((root / c for c in candidates if (root / c).is_dir()), None)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def crop_to(clear: Tensor, height: int, width: int, name: str = "") -> Tensor:
    """Centre-crop ``clear`` ``(C,H,W)`` to ``height x width`` when it is larger by an even margin.

    This removes the white 10-px NYU border of SOTS-indoor ground truths (640x480 -> 620x460,
    i.e. ``[10:470, 10:630]``) when the hazy images were distributed cropped.
    """
    dh, dw = clear.shape[-2] - height, clear.shape[-1] - width
    if (dh, dw) == (0, 0):
        return clear
    if dh < 0 or dw < 0 or dh % 2 or dw % 2:
        raise EIDError(
            f"{name}: clear image is {clear.shape[-1]}x{clear.shape[-2]} but its hazy image is {width}x{height}; "
            "only a centred border can be cropped: check that the pair belongs together"
        )
    return clear[..., dh // 2 : dh // 2 + height, dw // 2 : dw // 2 + width]


@dataclass(frozen=True)
class RESIDEItem:
    """One hazy image, its parsed name and its clear image (``None`` for hazy-only subsets)."""

    hazy: Path
    clear: Path | None
    name: RESIDEName


def scan_reside(root: str | Path, subset: str, allow_missing: bool = False) -> list[RESIDEItem]:
    """List the hazy images of a RESIDE subset with their clear images.

    The clear image of hazy ``<scene>_...`` is, in order: the clear file with the hazy file's own stem,
    ``<scene>.<ext>`` (the official naming), or a clear file of the same scene under a hazy-style name
    (e.g. ``1400_10.png``, as in copies renamed by some repositories). Many hazy per clear.
    :raises EIDError: unknown subset, missing folders, names that do not follow the subset's naming,
        hazy images without a clear image (unless ``allow_missing``: then they are left out).
    """
    if subset not in RESIDE_SUBSETS:
        raise EIDError(f"unknown RESIDE subset {subset!r}; use one of {', '.join(RESIDE_SUBSETS)}")
    root, layout = Path(root), RESIDE_SUBSETS[subset]
    if not root.is_dir():
        raise EIDError(
            f"{root}: RESIDE folder not found; pass the folder of the {subset} subset with --root"
        )
    hazy_dir = _first_dir(root, layout.hazy)
    if hazy_dir is None:
        raise EIDError(
            f"{root}: no hazy folder ({' or '.join(layout.hazy)}) for {subset}; see docs/datasets.md for layouts"
        )
    clear_dir = _first_dir(root, layout.clear) if layout.clear else None
    if layout.clear and clear_dir is None:
        raise EIDError(
            f"{root}: no clear folder ({' or '.join(layout.clear)}) for {subset}; see docs/datasets.md for layouts"
        )
    clear_by_stem = {p.stem: p for p in _images_in(clear_dir)} if clear_dir else {}
    clear_by_scene: dict[str, Path] = {}
    for stem, path in sorted(clear_by_stem.items()):
        parsed = parse_reside_name(stem, layout.naming)
        clear_by_scene.setdefault(parsed.scene if parsed else stem, path)
    items, missing = [], []
    for path in _images_in(hazy_dir):
        name = parse_reside_name(path.stem, layout.naming)
        if name is None:
            raise EIDError(
                f"{path}: name does not follow the {subset} naming {layout.naming}; check --subset"
            )
        clear = (
            clear_by_stem.get(path.stem)
            or clear_by_stem.get(name.scene)
            or clear_by_scene.get(name.scene)
        )
        if layout.clear and clear is None:
            missing.append(path)
            continue
        items.append(RESIDEItem(path, clear, name))
    if missing and not allow_missing:
        raise EIDError(
            f"{len(missing)} hazy image(s) in {hazy_dir} have no clear image in {clear_dir} "
            f"(e.g. {missing[0].name} needs {parse_reside_name(missing[0].stem, layout.naming).scene}.png); "
            "add them or pass --allow-missing"
        )
    if not items:
        raise EIDError(
            f"{hazy_dir}: no usable hazy images for {subset}; see docs/datasets.md for layouts"
        )
    return items


class RESIDEPairs(Dataset):
    """RESIDE hazy images with their clear images, many hazy per clear.

    Items are dicts ``{"hazy": (C,H,W), "clear": (C,H,W), "name": str}`` in ``[0,1]``; the clear
    image is border-cropped to the hazy size when needed (:func:`crop_to`). Hazy-only subsets
    (RTTS) give ``{"hazy", "name"}``.
    """

    def __init__(
        self,
        root: str | Path,
        subset: str,
        allow_missing: bool = False,
        max_pixels: int | None = None,
    ) -> None:
        self.items = scan_reside(root, subset, allow_missing)
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Tensor | str]:
        item = self.items[index]
        hazy, _ = read_image(item.hazy, max_pixels=self.max_pixels)
        sample: dict[str, Tensor | str] = {"hazy": hazy, "name": item.hazy.stem}
        if item.clear is not None:
            clear, _ = read_image(item.clear, max_pixels=self.max_pixels)
            sample["clear"] = crop_to(clear, hazy.shape[-2], hazy.shape[-1], item.clear.name)
        return sample
