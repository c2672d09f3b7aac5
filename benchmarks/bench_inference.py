"""Inference of every shipped preset as ``eid dehaze`` runs it: time per MP, GFLOP/s against this machine's
convolution throughput, fp32 against bf16, and peak RSS at 1 MP and at 4096x4096.

Each preset's dehazer (with the preset's operator where the dehazer takes the pseudo-inverse) gets seeded
random weights in a temporary run folder: time and memory do not depend on the weights. Every figure is
measured side by side in one run, on a smooth random RGB square:

- **default path**: ``backend_method("auto", ...)`` and ``eid.Dehazer`` with the CLI's defaults (``--backend
  auto --precision auto``, the tile side of ``--tile`` unset), as ``eid dehaze --model RUN`` runs it;
- **torch fp32** and **torch bf16** (autocast): the torch module, to show what bf16 gives on this CPU (it is
  emulated, slow, where the CPU lacks avx512_bf16 / AMX; the line above the table says which);
- **onnx fp32**: the run's ONNX export on ONNX Runtime (``--backend onnx``), where onnxruntime is installed;
- **DCP** (``eid dehaze --method dcp``) on the same image: issue 18's 1 MP target, re-based as a ratio;
- **convolution throughput**: the best of three fp32 3x3 convolutions (batch 1; 256 channels at 64², 64 at
  256², 32 at 512²), timed in the same rounds. "% of conv" divides the model's GFLOP/s by it.

GFLOP per MP are counted by PyTorch's flop counter on the torch module (convolutions and matrix products, 2
per multiply-add; DCP's filters count nothing). Rounds are interleaved in a new random order each time, and
each figure is the median. Peak RSS is measured in a fresh subprocess per (preset, size) running the default
path once (the whole process: Python, torch and the model included; ``VmHWM``, Linux only).

    .venv/bin/python benchmarks/bench_inference.py --threads 2
    .venv/bin/python benchmarks/bench_inference.py --threads 2 --presets fast,microscopy --big 0

``paper`` at 4096² is tiled exactly (its ``G_BA`` then its UNet, one pass per norm call): hours on a 2-core CPU, so
leave it out there (``--presets fast,microscopy,natural,endoscopy``) unless a GPU runs it. ``--device cuda`` puts every
torch row, DCP and the convolution reference on the GPU (inputs and outputs cross to it and back, as ``eid dehaze``
does) and adds the peak GPU memory; ONNX Runtime rows stay on the CPU (``benchmarks/gpu_checks.sh``).

Figures: ``docs/benchmarks/inference-speed.md`` (section 8) and ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_backends import time_rounds
from bench_inference_speed import machine
from torch.utils.flop_counter import FlopCounterMode

from eid.config import config_to_dict, load_config
from eid.export.graph import smooth_image
from eid.export.runtime import backend_method
from eid.inference import Dehazer, build_method
from eid.inference.backends import onnx_available
from eid.models import DehazerNet
from eid.training.eid import EIDConfig
from eid.training.operator import OperatorConfig, operator_module
from eid.weights import save_weights

PRESETS = ("fast", "microscopy", "natural", "endoscopy", "paper")
CONV_SHAPES = ((256, 64), (64, 256), (32, 512))  # (channels, side) of the reference convolutions


def preset_run(preset: str, folder: Path) -> Path:
    """A run folder with ``preset``'s dehazer (and operator, for the pseudo-inverse input), seeded weights."""
    config = load_config(EIDConfig, "dehazer", preset=preset)
    torch.manual_seed(0)
    net = DehazerNet(config.model)
    save_weights(
        folder / "dehazer", net, {"model": config_to_dict(net.config), "group": config.group}
    )
    if net.needs_physics:
        operator_module(load_config(OperatorConfig, "operator", preset=preset)).export(folder)
    return folder


def default_runner(run: Path, batch_size: int = 1, device: str = "cpu") -> Dehazer:
    """What ``eid dehaze --model RUN [--batch-size N] [--device D]`` runs with its default options."""
    method, choice = backend_method("auto", "eid", model=run, device=device, precision="auto")
    return Dehazer(
        method, device=device, batch_size=batch_size, precision=choice.runner_precision("auto")
    )


class ConvReference:
    """One fp32 3x3 convolution ``channels -> channels`` on its own ``side`` square; ``run`` ignores the shared
    benchmark input, so that it times alongside the runners in :func:`time_rounds`."""

    def __init__(self, channels: int, side: int, device: str = "cpu") -> None:
        self.weight = torch.randn(channels, channels, 3, 3, device=device) * 0.01
        self.input = torch.rand(1, channels, side, side, device=device)
        self.gflop = 2 * channels * channels * 9 * side * side / 1e9

    def run(self, _x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = F.conv2d(self.input, self.weight, padding=1)
        if out.is_cuda:
            torch.cuda.synchronize()  # the runners return to the CPU, which waits for the device too
        return out


def gflop_per_mp(run: Path, side: int) -> float:
    """Forward GFLOP per megapixel of the run's torch method on a ``side`` square."""
    method = build_method("eid", model=run, device="cpu")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        method(smooth_image(1, 3, side, side))
    return counter.get_total_flops() / 1e9 / (side * side / 1e6)


def peak_rss(run: Path, side: int, threads: int, device: str = "cpu") -> dict:
    """Peak RSS (and GPU memory) in GiB and seconds of one default-path run on a ``side`` square, in a fresh process."""
    done = subprocess.run(
        [sys.executable, __file__, "--worker", str(run), str(side), "--threads", str(threads), "--device", device],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        sys.exit(f"worker {run} {side} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_gib(field: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of this process in GiB, from ``/proc/self/status`` (Linux). Not
    ``ru_maxrss``: a child process inherits its parent's peak there, through fork and exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 2**20
    raise SystemExit(
        f"{field} not in /proc/self/status: this benchmark's memory figures need Linux"
    )


def worker(run: str, side: int, device: str) -> None:
    runner = default_runner(Path(run), device=device)
    x = smooth_image(1, 3, side, side)
    before = memory_gib("VmRSS")
    start = time.perf_counter()
    runner.run(x)  # back on the CPU: synchronised with the device
    seconds = time.perf_counter() - start
    gpu = torch.cuda.max_memory_allocated() / 2**30 if runner.device.type == "cuda" else None
    print(
        json.dumps(
            {"seconds": seconds, "peak_rss_gib": memory_gib("VmHWM"), "rss_before_gib": before,
             "peak_gpu_gib": gpu}
        )
    )  # fmt: skip


def timing_table(
    runs: dict[str, Path],
    side: int,
    rounds: int,
    precisions: list[str],
    onnx: bool,
    device: str = "cpu",
) -> list[str]:
    """Rows: each preset's default path, torch in each precision and (``onnx``) ONNX Runtime, with DCP and the conv
    reference, on ``device`` (ONNX Runtime on the CPU)."""
    runners = {"dcp": Dehazer(build_method("dcp", device=device), device=device, tile=None)}
    convs = {f"conv {c}x{s}²": ConvReference(c, s, device) for c, s in CONV_SHAPES}
    runners |= convs
    for preset, run in runs.items():
        runners[f"{preset}: default path"] = default_runner(run, device=device)
        method = build_method("eid", model=run, device=device)
        for precision in precisions:
            runners[f"{preset}: torch {precision}"] = Dehazer(
                method, device=device, tile=None, precision=precision
            )
        if onnx:
            exported, _ = backend_method("onnx", "eid", model=run, device="cpu", precision="fp32")
            runners[f"{preset}: onnx fp32"] = Dehazer(
                exported, device="cpu", tile=None, precision="fp32"
            )
    x = smooth_image(1, 3, side, side)
    _, times, failed = time_rounds(runners, x, rounds)
    median = {name: statistics.median(secs) for name, secs in times.items()}
    conv_gflops = max(conv.gflop / median[name] for name, conv in convs.items())
    mp = side * side / 1e6
    dcp = median["dcp"] / mp
    head = f"convolution throughput (best of {len(CONV_SHAPES)} fp32 3x3 convolutions): **{conv_gflops:.0f} GFLOP/s**"
    rows = [f"{head}; DCP: {dcp:.3f} s/MP", "",
            "| preset | path | GFLOP/MP | s/MP | vs DCP's time | GFLOP/s | % of conv | bf16 vs fp32 time |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for preset, run in runs.items():
        flops = gflop_per_mp(run, side)
        for path in ("default path", *(f"torch {p}" for p in precisions), *(["onnx fp32"] * onnx)):
            per_mp = median[f"{preset}: {path}"] / mp
            ratio = (
                per_mp / (median[f"{preset}: torch fp32"] / mp) if path == "torch bf16" else None
            )
            rows.append(
                f"| {preset} | {path} | {flops:.1f} | {per_mp:.3f} | {per_mp / dcp:.2f}x | {flops / per_mp:.1f} | "
                f"{100 * flops / per_mp / conv_gflops:.0f} % | {f'{ratio:.2f}x' if ratio else ''} |"
            )  # fmt: skip
    rows += [f"| {name} | failed: {why} | | | | | | |" for name, why in failed.items()]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--presets", default=",".join(PRESETS), help="comma-separated shipped presets"
    )
    parser.add_argument(
        "--side", type=int, default=1024, help="the timed square's side (1024: 1 MP)"
    )
    parser.add_argument(
        "--big", type=int, default=4096, help="the large square for peak RSS; 0: skip it"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--precisions",
        default="fp32,bf16",
        help="torch rows; bf16 is emulated, 50-150x slower, where the CPU lacks avx512_bf16 / AMX",
    )
    parser.add_argument("--no-timing", action="store_true", help="the peak RSS table only")
    parser.add_argument(
        "--no-onnx", action="store_true", help="without the ONNX Runtime rows (exports each model)"
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu, or cuda: every torch row and the convolution reference on the GPU",
    )
    parser.add_argument("--worker", nargs=2, metavar=("RUN", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), args.device)
        return
    random.seed(0)
    presets = args.presets.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        runs = {p: preset_run(p, Path(tmp) / p) for p in presets}
        gpu = f"; GPU {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else ""
        print(
            f"\n{machine()}{gpu}; {args.side}x{args.side}, {args.rounds} interleaved rounds after a warm-up\n"
        )
        precisions = args.precisions.split(",")
        if not args.no_timing:
            onnx = onnx_available() and not args.no_onnx
            print(
                "\n".join(timing_table(runs, args.side, args.rounds, precisions, onnx, args.device))
            )
        sides = [args.side] + ([args.big] if args.big else [])
        print(
            "\n| preset | image | default path: seconds (one run) | peak RSS (GiB) | RSS before the run (GiB) "
            "| peak GPU memory (GiB) |"
        )
        print("|---|---|---|---|---|---|")
        for preset, run in runs.items():
            for side in sides:
                res = peak_rss(run, side, args.threads, args.device)
                gpu_peak = "–" if res["peak_gpu_gib"] is None else f"{res['peak_gpu_gib']:.2f}"
                print(f"| {preset} | {side}x{side} | {res['seconds']:.1f} | {res['peak_rss_gib']:.2f} | "
                      f"{res['rss_before_gib']:.2f} | {gpu_peak} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
