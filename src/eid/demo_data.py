"""The demo's data set, built from images that ship with scikit-image (and matplotlib): nothing is downloaded.

Colour photographs bundled with scikit-image are resized and split into three disjoint groups: *clear* images
(the unpaired clear set of stage 1), *train* images (hazed; only their hazy versions are used for training) and
*test* images (hazed; their clear versions are kept for PSNR/SSIM). The motorcycle of the Middlebury stereo set
is hazed with its real depth (metres); the other images get a random smooth depth field. Haze follows the
atmospheric scattering model ``I = J t + A (1 - t)``, ``t = exp(-beta d)``. :mod:`eid.demo` runs the demo on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from eid.data.depth import motorcycle_depth
from eid.data.io import write_image
from eid.data.video import array_to_tensor
from eid.synth import SynthConfig, synthesize
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
            return np.array(image.convert("RGB"))
    from skimage import data

    if name == "stereo_motorcycle":
        return data.stereo_motorcycle()[0]
    return getattr(data, name)()


def bundled_image(name: str, short_side: int) -> torch.Tensor:
    """Bundled photograph ``name``, ``(3,H,W)`` in ``[0,1]``, resized (antialiased): min(H, W) = short_side."""
    x = array_to_tensor(_bundled(name)[..., :3])
    h, w = x.shape[-2:]
    scale = short_side / min(h, w)
    size = (max(short_side, round(h * scale)), max(short_side, round(w * scale)))
    return F.interpolate(x[None], size=size, mode="bilinear", antialias=True, align_corners=False)[
        0
    ].clamp(0, 1)


#: Haze of the images with a random depth field, and of the motorcycle with its real depth in metres.
#: Hazy inputs score 11.9 dB PSNR to their clear versions (RESIDE's SOTS hazy images: about 12-16 dB).
HAZE = SynthConfig(
    model="asm", depth="random", beta=(0.4, 0.9), airlight=(0.7, 0.9), depth_range=(0.3, 1.5)
)
HAZE_METRIC_DEPTH = SynthConfig(model="asm", depth="random", beta=(0.15, 0.3), airlight=(0.75, 0.9))


def build_demo_data(root: Path, short_side: int = 192, seed: int = 0) -> DemoData:
    """Write the demo's clear, hazy-train and hazy/clear-test folders under ``root``; return them."""
    data = DemoData(
        root,
        root / "clear",
        root / "train" / "hazy",
        root / "test" / "hazy",
        root / "test" / "clear",
    )
    records = {}
    for name in CLEAR_SET:
        write_image(data.clear / f"{name}.png", bundled_image(name, short_side))
    for index, name in enumerate(TRAIN_SET + TEST_SET):
        clear = bundled_image(name, short_side)
        depth = None
        if name == "stereo_motorcycle":
            _, metres = motorcycle_depth()
            depth = F.interpolate(
                metres[None], size=clear.shape[-2:], mode="bilinear", align_corners=False
            )[0]
        hazy, record, _ = synthesize(
            clear, HAZE if depth is None else HAZE_METRIC_DEPTH, seed=seed + index, depth=depth
        )
        record["depth_source"] = (
            "middlebury disparity (metres)" if depth is not None else "random smooth field"
        )
        records[name] = record
        folder = data.test_hazy if name in TEST_SET else data.train_hazy
        write_image(folder / f"{name}.png", hazy)
        if name in TEST_SET:
            write_image(data.test_clear / f"{name}.png", clear)
    with atomic_write(root / "params.json") as tmp:
        tmp.write_text(json.dumps(records, indent=2))
    return data
