"""Stage 2's data beyond plain hazy folders: an ``eid synth`` folder with its per-image ASM parameters (the
oracle operator), the fixed validation window, and the whole images a set's airlight is estimated from."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from eid.data.datasets import CropDataset, HazyFolder, ImageSource, resize_short_side
from eid.data.scale import White
from eid.errors import EIDError


class SynthASMFolder:
    """Hazy images of an ``eid synth`` ASM folder with each image's true ``transmission`` and ``airlight``.

    Reads ``root/params.json`` (per image ``beta`` and ``A``) and ``root/depth/<name>.tiff`` (written
    with ``--save-depth``), so that the ASM oracle hazes with ``t = exp(-beta d)`` cropped and flipped
    exactly like the hazy crop. Items: ``{"hazy", "transmission", "airlight", "name"}``.

    :param root: the synth output folder (holding ``hazy/``, ``depth/``, ``params.json``).
    :param kwargs: crop/flip/channels/seed of :class:`~eid.data.datasets.CropDataset`.
    """

    def __init__(self, root: str | Path, **kwargs: Any) -> None:
        import json

        self.root = Path(root)
        params = self.root / "params.json"
        if not params.is_file():
            raise EIDError(
                f"{params}: not found; the ASM oracle needs an `eid synth` folder or --asm-t/--asm-a"
            )
        records = [r for r in json.loads(params.read_text())["images"] if r.get("model") == "asm"]
        self.records = [r for r in records if self._depth(r).is_file()]
        if not self.records:
            raise EIDError(
                f"{self.root}: no ASM images with depth maps; synthesise with --save-depth or pass --asm-t/--asm-a"
            )
        self.crops = CropDataset(**kwargs)

    def _depth(self, record: dict[str, Any]) -> Path:
        return (self.root / "depth" / record["name"]).with_suffix(".tiff")

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: Any) -> dict[str, Any]:
        from eid.data.depth import read_depth
        from eid.physics.asm import transmission_from_depth

        record = self.records[key[0] if isinstance(key, tuple) else key]
        _, rng = self.crops._generator(key)
        hazy = self.crops.load(ImageSource(self.root / "hazy" / record["name"]))
        t = transmission_from_depth(read_depth(self._depth(record)), float(record["beta"]))
        hazy, t = self.crops.augment([hazy, t], rng)
        airlight = torch.as_tensor(record["A"], dtype=torch.float32).reshape(-1, 1, 1)
        if airlight.shape[0] != hazy.shape[0]:
            airlight = airlight.mean(0, keepdim=True)
        return {
            "hazy": hazy,
            "transmission": t,
            "airlight": airlight,
            "name": Path(record["name"]).stem,
        }


class SameCropEveryEpoch:
    """Serve item ``i`` with the crop of seed 0 whatever the epoch, so validation scores are comparable."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        return self.dataset[(key[0], 0)]


def synth_root(hazy: list[Path]) -> Path:
    """The ``eid synth`` folder holding ``hazy`` (``root/hazy`` or ``root`` itself)."""
    first = Path(hazy[0])
    return first.parent if len(hazy) == 1 and first.name == "hazy" else first


def whole_images(
    hazy: Sequence[str | Path], channels: int, white: White, limit: int = 64, short_side: int = 512
) -> Iterator[torch.Tensor]:
    """Up to ``limit`` of the hazy images, evenly spaced, whole (no crop, no flip), those with a shorter side above
    ``short_side`` reduced to it: what the dehazer's set airlight is estimated from (bounded time on large sets)."""
    folder = HazyFolder(
        [str(p) for p in hazy], crop=None, flip=False, channels=channels, white=white
    )
    for index in range(0, len(folder), -(-len(folder) // limit)):
        image = folder[index]["hazy"]
        yield resize_short_side(image, short_side) if min(image.shape[-2:]) > short_side else image
