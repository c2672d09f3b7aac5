"""Stage 1 on the demo's data: does the CycleGAN learn the haze in the demo's budget?

Builds the data of ``eid demo`` (:func:`eid.demo_data.build_demo_data`), trains the ``fast`` operator for
``--steps`` optimiser steps (the demo: 400), and scores it on the held-out test images:

* ``G_BA``: PSNR of ``G_BA(hazy)`` to the clear image (the CycleGAN-only baseline; the hazy
  input's own PSNR is the no-change level);
* ``G_AB``: PSNR of ``G_AB(clear)`` to the clear image (high = it left the image unchanged) and to
  the hazy image (high = it reproduced the haze).

``--split halves`` replaces the demo's split of scenes (clear and hazy training images of different
scenes) by one half of every training scene clear and the other half hazed: the same content on both
sides, disjoint pixels. It tests whether the discriminators tell the domains apart by content.

    .venv/bin/python benchmarks/bench_demo_operator.py --steps 400 --split scenes
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import torch

from eid import demo_data
from eid.config import load_config
from eid.data.io import read_image, write_image
from eid.inference import build_method
from eid.metrics import get_metrics
from eid.synth import synthesize
from eid.training.operator import OperatorConfig, fit_operator


def split_halves(data: demo_data.DemoData, short_side: int = 192) -> None:
    """Replace the clear and hazy training folders: each training scene split along its long side,
    one half clear, the other hazed with the demo's haze (which half alternates between scenes)."""
    shutil.rmtree(data.clear)
    shutil.rmtree(data.train_hazy)
    for index, name in enumerate(demo_data.CLEAR_SET + demo_data.TRAIN_SET):
        image = demo_data.bundled_image(name, short_side)
        axis = -1 if image.shape[-1] >= image.shape[-2] else -2
        first, second = image.chunk(2, dim=axis)
        clear, to_haze = (second, first) if index % 2 else (first, second)
        write_image(data.clear / f"{name}.png", clear)
        write_image(
            data.train_hazy / f"{name}.png", synthesize(to_haze, demo_data.HAZE, seed=index)[0]
        )


def last_logged(log: Path, column: str) -> float:
    """The last value of ``column`` in a Lightning CSV log."""
    with log.open() as f:
        return [float(row[column]) for row in csv.DictReader(f) if row.get(column)][-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=400, help="optimiser steps (G and D per batch)"
    )
    parser.add_argument("--split", choices=("scenes", "halves"), default="scenes")
    parser.add_argument("--lambda-id", type=float, help="identity loss weight (fast preset: 5)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, help="keep the data and the run here (default: temporary)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        data = demo_data.build_demo_data(root / "data", seed=args.seed)
        if args.split == "halves":
            split_halves(data)
        overrides = {"max_steps": args.steps, "seed": args.seed}
        if args.lambda_id is not None:
            overrides["loss"] = {"lambda_id": args.lambda_id}
        cfg = load_config(OperatorConfig, "operator", preset="fast", overrides=overrides)
        cfg = dataclasses.replace(cfg, epochs=None)
        run = root / "operator"
        start = time.perf_counter()
        fit_operator(
            cfg, data.clear, data.train_hazy, run, devices=1, accelerator="cpu", progress=False
        )
        seconds = time.perf_counter() - start
        method = build_method("cyclegan", operator=run, device="cpu")
        physics = method.modules[0]
        psnr = get_metrics(["psnr"])[0].fn
        log = run / "logs" / "metrics.csv"
        d_loss, g_loss = last_logged(log, "d_step"), last_logged(log, "gan_step")
        print(
            f"split {args.split}, {args.steps} steps, identity weight {cfg.loss.lambda_id}: "
            f"{seconds:.0f} s; last D loss {d_loss:.3f}, last G adversarial loss {g_loss:.3f}"
        )
        print(
            "| test image | hazy input (dB) | G_BA(hazy) vs clear (dB) | G_AB(clear) vs clear (dB) "
            "| G_AB(clear) vs hazy (dB) |"
        )
        print("|---|---|---|---|---|")
        for path in sorted(data.test_hazy.iterdir()):
            hazy, clear = (
                read_image(path)[0][None],
                read_image(data.test_clear / path.name)[0][None],
            )
            with torch.no_grad():
                dehazed, hazed = method(hazy), physics.A(clear)
            scores = [
                psnr(hazy, clear),
                psnr(dehazed, clear),
                psnr(hazed, clear),
                psnr(hazed, hazy),
            ]
            print(f"| {path.stem} | " + " | ".join(f"{float(s):.2f}" for s in scores) + " |")


if __name__ == "__main__":
    main()
