"""Inference speed of dehazer architectures side by side, and the quality cost of bf16 on a trained run.

1. **Architectures** (``DehazerConfig`` variants of the ``fast`` default, random weights, hazy input),
   run through ``eid.Dehazer`` (untiled) on a ``--size`` square: GFLOP per megapixel (PyTorch's
   flop counter, 2 per multiply-add), seconds per MP and achieved GFLOP/s. The machine is shared, so
   each round runs every variant once in a new random order, and the ratio to the default is the
   median of the per-round ratios (each measured minutes apart at most, under the same load).
2. **Precision** (``--run RUN --hazy DIR --clear DIR``): the run's dehazer in fp32 and bf16 autocast
   on the same images: PSNR of each against the clear reference and PSNR between the two outputs.
   bf16 is run even where this CPU lacks native bf16 (then it is emulated: slow, same numbers).

The CPU model and its bf16-relevant flags are printed with every speed figure.

    .venv/bin/python benchmarks/bench_inference_speed.py --threads 1 --rounds 5 [--precision bf16]
    .venv/bin/python benchmarks/bench_inference_speed.py --skip-speed --run demo-output/runs/eid \\
        --hazy demo-output/data/test/hazy --clear demo-output/data/test/clear
"""

from __future__ import annotations

import argparse
import datetime
import math
import random
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from eid.inference import Dehazer as Runner
from eid.inference.precision import cpu_flags, cpu_model, native_bf16
from eid.models.dehazer import DehazerConfig, DehazerNet, count_parameters

LOCAL = {"norm": "none", "circular_padding": False}
VARIANTS: dict[str, dict] = {
    "the default before 2026-12-04 (UNet 3x16, group norm, circular)": {},
    "same UNet, norm-free, zero padding": LOCAL,
    "space-to-depth 2, UNet 3x16, norm-free": {**LOCAL, "unshuffle": 2},
    "space-to-depth 2, UNet 3x32, norm-free": {**LOCAL, "unshuffle": 2, "width": 32},
    "space-to-depth 2, UNet 3x32, group norm, circular": {"unshuffle": 2, "width": 32},
    "space-to-depth 2, UNet 3x32, group norm, circular, affine head (natural, endoscopy)": {
        "unshuffle": 2,
        "width": 32,
        "head": "affine",
    },
    "the default: space-to-depth 4, UNet 3x32, group norm, circular, affine head": {
        "unshuffle": 4,
        "width": 32,
        "head": "affine",
    },
    "space-to-depth 4, UNet 3x32, norm-free": {**LOCAL, "unshuffle": 4, "width": 32},
    "space-to-depth 4, UNet 3x64, norm-free": {**LOCAL, "unshuffle": 4, "width": 64},
}
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def machine() -> str:
    """Date, CPU model, the flags that decide the kernels and bf16, torch threads."""
    flags = " ".join(f if f in cpu_flags() else f"no-{f}" for f in FLAGS)
    bf16 = "native" if native_bf16(torch.device("cpu")) else "emulated"
    return (f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; CPU {cpu_model()} ({flags}; bf16 {bf16}); "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip


def gflop_per_mp(net: torch.nn.Module, side: int) -> float:
    """Forward GFLOP of ``net`` per megapixel, counted on one ``side x side`` RGB image."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.rand(1, 3, side, side))
    return counter.get_total_flops() / 1e9 / (side * side / 1e6)


def speed(args: argparse.Namespace) -> None:
    runners = {}
    for name, overrides in VARIANTS.items():
        torch.manual_seed(0)
        net = DehazerNet(DehazerConfig(**overrides)).eval()
        runners[name] = (
            net,
            Runner.from_module(net, device="cpu", tile=None, precision=args.precision),
        )
    x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _, runner in runners.values():
        runner.run(x)  # warm-up: allocator, oneDNN primitives
    order = list(VARIANTS)
    for _ in range(args.rounds):
        random.shuffle(order)
        for name in order:
            start = time.perf_counter()
            runners[name][1].run(x)
            times[name].append(time.perf_counter() - start)
    mp = args.size**2 / 1e6
    base = next(iter(VARIANTS))
    print(
        f"\n{machine()}; input {args.size}x{args.size}, precision {args.precision}, {args.rounds} interleaved rounds\n"
    )
    print(
        "| variant | params | GFLOP/MP | s/MP (median) | GFLOP/s | time vs the first row (median of rounds) | R (px) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, (net, _) in runners.items():
        per_mp = statistics.median(times[name]) / mp
        flops = gflop_per_mp(net, args.size)
        ratio = statistics.median(t / b for t, b in zip(times[name], times[base]))
        print(f"| {name} | {count_parameters(net):,} | {flops:.1f} | {per_mp:.2f} | {flops / per_mp:.1f} | "
              f"{ratio:.3f} | {net.receptive_radius or '-'} |")  # fmt: skip


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """:math:`10\\log_{10}(1/\\mathrm{MSE}(a, b))` for images in [0,1]."""
    return 10 * math.log10(1 / max(torch.mean((a - b) ** 2).item(), 1e-20))


def precision_quality(args: argparse.Namespace) -> None:
    from eid.data.io import read_image

    runners = {
        p: Runner.load(args.run, device="cpu", tile=None, precision=p) for p in ("fp32", "bf16")
    }
    print(f"\n{machine()}; run {args.run}\n")
    print(
        "| image | fp32 vs clear (dB) | bf16 vs clear (dB) | change (dB) | bf16 vs fp32 (dB) | s fp32 | s bf16 |"
    )
    print("|---|---|---|---|---|---|---|")
    rows = []
    for hazy_path in sorted(Path(args.hazy).iterdir()):
        hazy, _ = read_image(hazy_path)
        clear, _ = read_image(Path(args.clear) / hazy_path.name)
        out, secs = {}, {}
        for p, runner in runners.items():
            start = time.perf_counter()
            out[p] = runner.run(hazy[None])[0]
            secs[p] = time.perf_counter() - start
        q32, q16 = psnr(out["fp32"], clear), psnr(out["bf16"], clear)
        rows.append((q32, q16))
        print(f"| {hazy_path.name} | {q32:.3f} | {q16:.3f} | {q16 - q32:+.3f} | {psnr(out['bf16'], out['fp32']):.1f} | "
              f"{secs['fp32']:.2f} | {secs['bf16']:.2f} |")  # fmt: skip
    m32, m16 = (statistics.mean(col) for col in zip(*rows))
    print(f"| **mean of {len(rows)}** | {m32:.3f} | {m16:.3f} | **{m16 - m32:+.3f}** | | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=512, help="side of the timed square image")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--precision", default="fp32", help="of the speed table: fp32, bf16 or auto"
    )
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--run", help="a trained stage-2 run for the precision table")
    parser.add_argument("--hazy", help="hazy images of the precision table")
    parser.add_argument("--clear", help="their clear references (same names)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_speed:
        speed(args)
    if args.run:
        precision_quality(args)


if __name__ == "__main__":
    main()
