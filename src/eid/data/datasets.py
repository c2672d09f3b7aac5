"""Folder datasets for training and validation: unpaired clear/hazy, hazy only, and paired hazy/clear.

Images of any size, format, bit depth and channel count are read through :mod:`eid.data.io` (so values are
float32 in ``[0, 1]``), converted to ``channels`` (grey is repeated to RGB; RGB becomes grey by Rec.601
luma), optionally resized so that the shorter side is ``load_size``, then randomly cropped to ``crop`` (an
image smaller than the crop is first resized up, keeping its aspect ratio) and randomly flipped left-right.
Every plane of a TIFF stack (z-slices, time points, channels: :mod:`eid.data.stacks`) is one image
(:class:`ImageSource`), read alone; its name is ``<stem>_<plane>``. Paired sets need one image per file.

Randomness comes only from the key: an item is requested either by ``index`` (seeded by the dataset's
``seed`` and the index) or by ``(index, item_seed)`` as yielded by
:class:`eid.training.data.SeededSampler`, so a run is reproducible whatever the worker count.
Items are dicts: ``{"clear": (C,h,w), "hazy": (C,h,w), "name": str}`` (keys present as relevant).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from eid.data.scale import White, parse_white
from eid.data.sources import ImageSource, data_channels, image_sources, read_source, require_sources
from eid.errors import EIDError

__all__ = [
    "CropDataset", "HazyFolder", "ImageSource", "PairedFolder", "UnpairedFolders", "center_crop_to", "data_channels",
    "image_sources", "item_seed", "read_source", "resize_short_side", "to_channels",
]  # fmt: skip

Key = int | tuple[int, int]

_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)


def item_seed(seed: int, epoch: int, position: int) -> int:
    """A per-item seed from (run seed, epoch, position in the epoch's global order); stable across runs."""
    return (seed * 1_000_003 + epoch * 7_919 + position * 104_729) % (2**63 - 1)


def to_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """``(C,H,W)`` with C in {1, 3} -> ``(channels,H,W)``: grey repeated to RGB, RGB to grey by luma."""
    if image.shape[0] == channels:
        return image
    if channels == 3:
        return image.expand(3, -1, -1).contiguous()
    return (image * _LUMA).sum(0, keepdim=True)


def resize_short_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(C,H,W)`` so that min(H, W) == ``size`` (bicubic with antialiasing, clamped to [0, 1])."""
    h, w = image.shape[-2:]
    if min(h, w) == size:
        return image
    scale = size / min(h, w)
    hw = (max(size, round(h * scale)), max(size, round(w * scale)))
    out = F.interpolate(image[None], size=hw, mode="bicubic", antialias=True, align_corners=False)[
        0
    ]
    return out.clamp(0, 1)


class CropDataset(Dataset):
    """Base class: reading, channel conversion, resizing and the shared random crop + flip.

    :param int | None crop: square crop side; ``None`` keeps the whole (resized) image.
    :param int | None load_size: resize so the shorter side is this before cropping (``None``: keep size).
    :param int channels: 1 or 3 output channels.
    :param bool flip: random left-right flip (probability 1/2).
    :param int seed: seed for items requested by plain index.
    :param int | None max_pixels: passed to :func:`eid.data.io.read_image`.
    :param white: the stored value read as 1.0 (:func:`eid.data.io.read_image`): ``"dtype"``, ``"max"`` or a
        number, e.g. 4095 for 12-bit microscopy stored in 16-bit files.
    """

    def __init__(
        self,
        crop: int | None = 256,
        load_size: int | None = None,
        channels: int = 3,
        flip: bool = True,
        seed: int = 0,
        max_pixels: int | None = None,
        white: White = "dtype",
    ) -> None:
        if channels not in (1, 3):
            raise EIDError(f"channels={channels} is not supported; use 1 or 3")
        self.crop, self.load_size, self.channels = crop, load_size, channels
        self.flip, self.seed, self.max_pixels, self.white = (
            flip,
            seed,
            max_pixels,
            parse_white(white),
        )

    def _generator(self, key: Key) -> tuple[int, torch.Generator]:
        index, seed = key if isinstance(key, tuple) else (key, item_seed(self.seed, 0, key))
        return int(index), torch.Generator().manual_seed(int(seed))

    def load(self, source: ImageSource) -> torch.Tensor:
        """Read ``source`` as ``(channels, H, W)`` in [0, 1] (no resizing)."""
        return to_channels(read_source(source, self.max_pixels, self.white), self.channels)

    def resize(self, image: torch.Tensor) -> torch.Tensor:
        """Resize so that the shorter side is ``load_size`` (no-op when it is ``None``)."""
        return resize_short_side(image, self.load_size) if self.load_size else image

    def augment(self, images: list[torch.Tensor], rng: torch.Generator) -> list[torch.Tensor]:
        """Apply ONE random crop/flip to images of equal size (paired data stays aligned)."""
        if self.crop is not None:
            if min(images[0].shape[-2:]) < self.crop:
                images = [resize_short_side(im, self.crop) for im in images]
            h, w = images[0].shape[-2:]
            top = int(torch.randint(h - self.crop + 1, (1,), generator=rng))
            left = int(torch.randint(w - self.crop + 1, (1,), generator=rng))
            images = [im[:, top : top + self.crop, left : left + self.crop] for im in images]
        if self.flip and bool(torch.rand(1, generator=rng) < 0.5):
            images = [im.flip(-1) for im in images]
        return [im.contiguous() for im in images]


class UnpairedFolders(CropDataset):
    """Unpaired clear (domain A) and hazy (domain B) images for stage 1.

    Length is ``max(#clear, #hazy)``; item ``i`` takes hazy image ``i mod #hazy`` (and clear ``i mod #clear``
    when there are more clear images) and pairs it with a randomly drawn image of the other domain, as in
    the upstream "unaligned" CycleGAN dataset. Each image gets its own random crop and flip.
    """

    def __init__(
        self,
        clear: str | Path | Sequence[str | Path],
        hazy: str | Path | Sequence[str | Path],
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.clear_sources, self.hazy_sources = (
            require_sources(clear, "clear"),
            require_sources(hazy, "hazy"),
        )

    def __len__(self) -> int:
        return max(len(self.clear_sources), len(self.hazy_sources))

    def __getitem__(self, key: Key) -> dict[str, torch.Tensor | str]:
        index, rng = self._generator(key)
        nc, nh = len(self.clear_sources), len(self.hazy_sources)
        if nh >= nc:
            h, c = index % nh, int(torch.randint(nc, (1,), generator=rng))
        else:
            c, h = index % nc, int(torch.randint(nh, (1,), generator=rng))
        (clear,) = self.augment([self.resize(self.load(self.clear_sources[c]))], rng)
        (hazy,) = self.augment([self.resize(self.load(self.hazy_sources[h]))], rng)
        return {"clear": clear, "hazy": hazy, "name": self.hazy_sources[h].name}


class HazyFolder(CropDataset):
    """Hazy images only (stage 2): items ``{"hazy", "name"}``."""

    def __init__(self, hazy: str | Path | Sequence[str | Path], **kwargs) -> None:
        super().__init__(**kwargs)
        self.sources = require_sources(hazy, "hazy")

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, key: Key) -> dict[str, torch.Tensor | str]:
        index, rng = self._generator(key)
        (hazy,) = self.augment([self.resize(self.load(self.sources[index]))], rng)
        return {"hazy": hazy, "name": self.sources[index].name}


def _clear_stem(hazy_stem: str, clear_stems: set[str]) -> str | None:
    """Matching clear name: the same stem, else the part before the first ``_`` (RESIDE ``1400_1`` -> ``1400``)."""
    if hazy_stem in clear_stems:
        return hazy_stem
    head = hazy_stem.split("_")[0]
    return head if head in clear_stems else None


def center_crop_to(image: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Central ``h x w`` window of ``(C,H,W)``."""
    top, left = (image.shape[-2] - h) // 2, (image.shape[-1] - w) // 2
    return image[:, top : top + h, left : left + w]


class PairedFolder(CropDataset):
    """Hazy images with their clear references, matched by file name (validation / evaluation).

    A hazy ``name.ext`` matches clear ``name.*``, or ``prefix.*`` for RESIDE-style ``prefix_k`` names (many
    hazy per clear). When the two sizes differ (SOTS: 640x480 references for 620x460 hazy images) both are
    centre-cropped to the common size. Crop and flip are shared by the pair. Items ``{"hazy", "clear", "name"}``.
    """

    def __init__(
        self,
        hazy: str | Path | Sequence[str | Path],
        clear: str | Path | Sequence[str | Path],
        crop: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(crop=crop, **kwargs)
        clear_sources, hazy_sources = require_sources(clear, "clear"), require_sources(hazy, "hazy")
        stacked = next((s.path for s in clear_sources + hazy_sources if s.plane is not None), None)
        if stacked is not None:
            raise EIDError(
                f"{stacked}: a TIFF stack; paired sets are matched by file name, so save one plane per file"
            )
        clear_by_stem = {s.path.stem: s for s in clear_sources}
        self.pairs: list[tuple[ImageSource, ImageSource]] = []
        missing = []
        for source in hazy_sources:
            stem = _clear_stem(source.path.stem, set(clear_by_stem))
            if stem is None:
                missing.append(source.path.name)
            else:
                self.pairs.append((source, clear_by_stem[stem]))
        if missing:
            raise EIDError(
                f"{len(missing)} hazy image(s) without a clear reference of the same name (e.g. {missing[0]}); "
                "name references like the hazy images (or prefix_k -> prefix)"
            )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: Key) -> dict[str, torch.Tensor | str]:
        index, rng = self._generator(key)
        hazy_source, clear_source = self.pairs[index]
        hazy, clear = self.load(hazy_source), self.load(clear_source)
        h, w = min(hazy.shape[-2], clear.shape[-2]), min(hazy.shape[-1], clear.shape[-1])
        pair = [self.resize(center_crop_to(hazy, h, w)), self.resize(center_crop_to(clear, h, w))]
        hazy, clear = self.augment(pair, rng)
        return {"hazy": hazy, "clear": clear, "name": hazy_source.name}
