"""A dehazer whose input is a whole-image estimate, on a large image, tiled against untiled: time, peak RSS, PSNR.

``natural`` and ``endoscopy`` start from the dark channel prior's estimate, ``paper`` from the CycleGAN's ``G_BA``. Such
a dehazer is tiled in two steps: the estimate in tiles (DCP with the whole image's airlight,
``eid.inference.dcp_tiles``; ``G_BA`` with whole-image norm statistics, ``eid.inference.pinv_tiles``), then the network
exactly on it. The image is ``skimage.data.chelsea`` up-scaled to ``--size`` and hazed with a transmission that falls
from left to right. Each mode (``none``: one whole-image forward; a tile side; ``auto``: the runner's default) runs in a
fresh process, which reports its seconds, its peak RSS (``VmHWM``: ``ru_maxrss`` would include this parent's) and its
RSS before the run; the outputs are compared with the untiled one.

Run: .venv/bin/python benchmarks/bench_stage_tiles.py [--model natural|RUN] [--size 4096] [--modes none,512,auto]
     [--precision fp32] [--tile-norm auto] [--threads 2] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# the memory and machine-line helpers of the inference benchmarks (this folder is on sys.path when run as a script)
from bench_inference import memory_gib
from bench_inference_speed import machine


def hazy_image(side: int) -> np.ndarray:
    """A ``side x side`` RGB photo under haze that thickens from left to right (float32 in [0, 1])."""
    from skimage import data, transform

    rng = np.random.default_rng(0)
    clear = transform.resize(data.chelsea() / 255.0, (side, side), order=3).clip(0, 1)
    t = np.linspace(0.9, 0.3, side)[None, :, None]
    noise = rng.normal(0, 0.01, clear.shape)
    return (clear * t + 0.85 * (1 - t) + noise).clip(0, 1).astype(np.float32)


def one_mode(args: argparse.Namespace) -> None:
    """Child: dehaze the image in one mode, save the result, print one line."""
    from eid.inference import Dehazer

    torch.set_num_threads(args.threads)
    hazy = hazy_image(args.size)
    before = memory_gib("VmRSS")
    tile = {"none": None, "auto": "auto"}.get(args.mode, args.mode)
    runner = Dehazer.load(
        args.model,
        device=args.device,
        tile=tile if tile in (None, "auto") else int(tile),
        precision=args.precision,
        tile_norm=args.tile_norm,
    )
    start = time.perf_counter()
    result = runner(hazy)  # a NumPy array back: synchronised with the device
    seconds = time.perf_counter() - start
    np.save(args.save, result)
    gpu = torch.cuda.max_memory_allocated() / 2**30 if runner.device.type == "cuda" else None
    gpu_peak = "–" if gpu is None else f"{gpu:.2f}"
    print(f"{seconds:.1f} {memory_gib('VmHWM'):.2f} {before:.2f} {gpu_peak} {runner.plan.tile}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="natural", help="a shipped model's name or a run folder")
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--modes", default="none,512,auto")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument(
        "--tile-norm",
        default="auto",
        help="the runner's tile norm: auto (exact here), global, tile",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--device", default="cpu", help="cpu, or cuda (GPU memory gets its own column)"
    )
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        return one_mode(args)
    torch.set_num_threads(args.threads)
    gpu = f"; GPU {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else ""
    print(
        f"{machine()}{gpu}; model {args.model}, {args.size}², {args.precision}, tile norm {args.tile_norm}\n"
    )
    print(
        "| mode | tile | seconds | peak RSS (GiB) | RSS before the run (GiB) | peak GPU memory (GiB) | PSNR vs untiled (dB) "
        "| max abs diff |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        outputs = {}
        for mode in args.modes.split(","):
            save = Path(tmp) / f"{mode}.npy"
            line = subprocess.run(
                [sys.executable, __file__, "--mode", mode, "--save", str(save), "--model", args.model,
                 "--size", str(args.size), "--precision", args.precision, "--threads", str(args.threads),
                 "--tile-norm", args.tile_norm, "--device", args.device],
                check=True, capture_output=True, text=True,
            ).stdout.split()  # fmt: skip
            outputs[mode] = np.load(save).astype(np.float64)
            seconds, peak, before, gpu_peak, tile = line[-5:]
            reference = outputs.get("none")
            if reference is None or mode == "none":
                psnr = diff = "–"
            else:
                mse = float(np.mean((outputs[mode] - reference) ** 2))
                psnr = f"{10 * np.log10(1 / max(mse, 1e-30)):.1f}"
                diff = f"{np.abs(outputs[mode] - reference).max():.1e}"
            print(
                f"| {mode} | {tile} | {seconds} | {peak} | {before} | {gpu_peak} | {psnr} | {diff} |"
            )


if __name__ == "__main__":
    main()
