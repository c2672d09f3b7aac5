"""Tiled vs whole-image output of a trained network with group/instance norms, per-tile or global statistics.

For each image (scaled to each ``--sizes`` side) the method runs untiled and tiled (``--tile``,
``--overlap``) with ``tile_norm="tile"`` (each tile normalised with its own statistics) and
``tile_norm="global"`` (statistics recorded on the whole image down-scaled to ``2 x tile``;
:mod:`eid.models.global_norm`), and the PSNR of each tiled output to the untiled one is reported
(higher = closer; 1.0 = white). Sides of at most ``2 x tile`` are not tiled in ``global`` mode (one
whole-image forward), so the default sizes are above that.

    .venv/bin/python benchmarks/bench_tile_norm.py --operator RUN [--model RUN] [IMAGES...]

``--operator`` scores the CycleGAN-only method (``G_BA``, instance norms) of a stage-1 run; ``--model``
the EID dehazer of a stage-2 run (group norms). Default images: the hazy frames of
``../shared/data/cholec80-smoke``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from eid.data.io import read_image
from eid.data.listing import list_images
from eid.inference import Dehazer, build_method

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cholec80-smoke" / "hazy"


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / F.mse_loss(a, b).clamp_min(1e-12)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", type=Path, default=[SHARED])
    parser.add_argument("--operator", type=Path, help="stage-1 run: score CycleGAN-only (G_BA)")
    parser.add_argument("--model", type=Path, help="stage-2 run: score the EID dehazer")
    parser.add_argument(
        "--sizes", default="960,1440", help="comma-separated image sides (above 2 tiles: tiled)"
    )
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    methods = {}
    if args.operator:
        methods["cyclegan"] = build_method("cyclegan", operator=args.operator, device="cpu")
    if args.model:
        methods["eid"] = build_method("eid", model=args.model, device="cpu")
    paths = list_images(args.images)
    print(
        "| method | image side | images | PSNR tiled vs whole, per-tile statistics (dB) | global statistics (dB) |"
    )
    print("|---|---|---|---|---|")
    for name, method in methods.items():
        for side in (int(s) for s in args.sizes.split(",")):
            scores: dict[str, list[float]] = {"tile": [], "global": []}
            for path in paths:
                x = F.interpolate(
                    read_image(path)[0][None], size=(side, side), mode="bilinear", antialias=True
                )
                whole = Dehazer(method, device="cpu", tile=None).run(x)
                for mode, values in scores.items():
                    runner = Dehazer(
                        method, device="cpu", tile=args.tile, overlap=args.overlap, tile_norm=mode
                    )
                    values.append(psnr(runner.run(x), whole))
            medians = {mode: statistics.median(v) for mode, v in scores.items()}
            print(
                f"| {name} | {side} | {len(paths)} | {medians['tile']:.1f} | {medians['global']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
