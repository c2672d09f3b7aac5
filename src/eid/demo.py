"""The end-to-end demo on data built from images that ship with scikit-image.

1. **Data.** Colour photographs bundled with scikit-image are resized and split into three disjoint
   groups: *clear* images (the unpaired clear set of stage 1), *train* images (hazed; only their hazy
   versions are used for training) and *test* images (hazed; their clear versions are kept for
   PSNR/SSIM). The motorcycle of the Middlebury stereo set is hazed with its real depth (metres);
   the other images get a random smooth depth field. Haze follows the atmospheric scattering model
   ``I = J t + A (1 - t)``, ``t = exp(-beta d)``.
2. **Stage 1** (``fast`` preset): the CycleGAN pseudo-hazing operator from unpaired clear/hazy images.
3. **Stage 2** (``fast`` preset): the equivariant dehazer from the hazy training images only.
4. **Comparison** on the held-out test images: hazy input, dark channel prior, CycleGAN alone and
   EID, scored with PSNR/SSIM (and NIQE/BRISQUE when available); images and ``metrics.json`` are
   written to the output folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from eid.data.io import write_image
from eid.data.synth import SynthConfig, motorcycle_depth, synthesize
from eid.utils import atomic_write

#: Bundled colour photographs by role, disjoint scenes (scikit-image: public domain or CC0;
#: grace_hopper ships with matplotlib, US Navy photo, public domain).
CLEAR_SET = ("astronaut", "hubble_deep_field", "immunohistochemistry")
TRAIN_SET = ("coffee", "rocket", "retina", "chelsea")
TEST_SET = ("stereo_motorcycle", "grace_hopper")


@dataclass
class DemoData:
    """Folders of the demo's data set."""

    root: Path
    clear: Path  # unpaired clear images (stage 1)
    train_hazy: Path  # hazy training images (stages 1 and 2)
    test_hazy: Path  # held-out hazy images
    test_clear: Path  # their clear versions, for PSNR/SSIM


def _bundled(name: str) -> np.ndarray:
    """A bundled image as ``(H,W,3)`` uint8; nothing is downloaded."""
    if name == "grace_hopper":
        from matplotlib import cbook
        from PIL import Image

        with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
            return np.asarray(image.convert("RGB"))
    from skimage import data

    if name == "stereo_motorcycle":
        return data.stereo_motorcycle()[0]
    return getattr(data, name)()


def _to_tensor(array: np.ndarray, short_side: int) -> torch.Tensor:
    """``(H,W,3)`` uint8 -> ``(3,H',W')`` in ``[0,1]``, resized (antialiased) so min(H', W') = short_side."""
    x = torch.from_numpy(np.array(array[..., :3], dtype=np.float32)).permute(2, 0, 1) / 255.0
    h, w = x.shape[-2:]
    scale = short_side / min(h, w)
    size = (max(short_side, round(h * scale)), max(short_side, round(w * scale)))
    return F.interpolate(x[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)


def build_demo_data(root: Path, short_side: int = 192, seed: int = 0) -> DemoData:
    """Write the demo's clear, hazy-train and hazy/clear-test folders under ``root``; return them."""
    data = DemoData(root, root / "clear", root / "train" / "hazy", root / "test" / "hazy", root / "test" / "clear")
    config = SynthConfig(model="asm", depth="random", beta=(0.8, 1.6), airlight=(0.75, 0.95), depth_range=(0.3, 1.5))
    records = {}
    for name in CLEAR_SET:
        write_image(data.clear / f"{name}.png", _to_tensor(_bundled(name), short_side))
    for index, name in enumerate(TRAIN_SET + TEST_SET):
        clear = _to_tensor(_bundled(name), short_side)
        depth = None
        if name == "stereo_motorcycle":
            _, metres = motorcycle_depth()
            depth = F.interpolate(metres[None], size=clear.shape[-2:], mode="bilinear", align_corners=False)[0]
            config_used = SynthConfig(model="asm", depth="random", beta=(0.3, 0.5), airlight=(0.8, 0.9))
        else:
            config_used = config
        hazy, record, _ = synthesize(clear, config_used, seed=seed + index, depth=depth)
        record["depth_source"] = "middlebury disparity (metres)" if depth is not None else "random smooth field"
        records[name] = record
        folder = data.test_hazy if name in TEST_SET else data.train_hazy
        write_image(folder / f"{name}.png", hazy)
        if name in TEST_SET:
            write_image(data.test_clear / f"{name}.png", clear)
    with atomic_write(root / "params.json") as tmp:
        tmp.write_text(json.dumps(records, indent=2))
    return data


def run_demo(out: Path, log: Callable[[str], None] = print, seed: int = 0) -> dict:
    """Run the whole demo into ``out``; return the ``metrics.json`` content."""
    raise NotImplementedError
