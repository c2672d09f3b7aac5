"""Inference backends side by side: torch eager fp32, ``channels_last``, ``torch.compile`` and ONNX Runtime.

Two models: the shipped ``natural`` model (``input: dcp``: the dark channel prior runs inside the forward) and
the ``fast`` preset's dehazer (the default architecture: space-to-depth 4, UNet 3 scales x 32, group norm, circular
padding, affine head; random weights, hazy input). Each backend runs through ``eid.Dehazer`` untiled, as ``eid dehaze`` would, on a smooth
random RGB square of each ``--sizes`` side. The machine is shared, so each round runs every backend once in a new
random order, and "vs eager" is the median of the per-round ratios to eager in that round. The first call of each
backend at each size is a warm-up, timed apart: it includes ``torch.compile``'s compilation (``dynamic=False``: one
per size). If ``torch.compile`` fails on this machine, its error is printed instead.

    .venv/bin/python benchmarks/bench_backends.py --threads 1 --rounds 3

Figures: ``docs/benchmarks/inference-speed.md`` (backends section).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

# the date, CPU model and flags line of the inference benchmarks (this folder is on sys.path when run as a script)
from bench_inference_speed import machine

from eid.config import config_to_dict, load_config
from eid.export import export_onnx
from eid.export.graph import smooth_image
from eid.inference import Dehazer as Runner
from eid.inference import build_method, onnx_method
from eid.models import DehazerNet
from eid.training.eid import EIDConfig
from eid.weights import save_weights


def fast_preset_run(folder: Path) -> Path:
    """A run folder holding the ``fast`` preset's dehazer with seeded weights."""
    config = load_config(EIDConfig, "dehazer", preset="fast")
    torch.manual_seed(0)
    net = DehazerNet(config.model)
    save_weights(folder / "dehazer", net, {"model": config_to_dict(net.config)})
    return folder


def backends(run: Path | str, folder: Path, compile_too: bool) -> dict[str, Runner]:
    """name -> runner of every backend (``torch.compile`` compiles lazily, in its first call at each size)."""
    method = build_method("eid", model=run, device="cpu")  # what eid dehaze runs
    options = {"device": "cpu", "tile": None, "precision": "fp32"}
    runners = {
        "torch eager": Runner(method, **options),
        "torch channels_last": Runner(method, channels_last=True, **options),
    }
    if compile_too:
        runners["torch.compile"] = Runner(
            replace(method, fn=torch.compile(method.fn, dynamic=False)), **options
        )
    onnx = export_onnx(run, folder / f"{Path(str(run)).name}.onnx")
    runners["onnxruntime (CPU)"] = Runner(onnx_method(onnx.path), **options)
    return runners


def time_rounds(
    runners: dict[str, Runner], x: torch.Tensor, rounds: int
) -> tuple[dict[str, float], dict[str, list[float]], dict[str, str]]:
    """Seconds of every runner's first call on ``x`` (warm-up, compilation), then of ``rounds`` interleaved rounds;
    a runner whose first call fails (``torch.compile`` without a working compiler) is left out with its error."""
    first: dict[str, float] = {}
    failed: dict[str, str] = {}
    for name, runner in list(runners.items()):
        start = time.perf_counter()
        try:
            runner.run(x)
        except Exception as exc:  # noqa: BLE001 - report any backend's failure as one line and go on
            failed[name] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]}"
            del runners[name]
            continue
        first[name] = time.perf_counter() - start
    times: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners)
    for _ in range(rounds):
        random.shuffle(order)
        for name in order:
            start = time.perf_counter()
            runners[name].run(x)
            times[name].append(time.perf_counter() - start)
    return first, times, failed


def report(
    model: str, side: int, first: dict[str, float], times: dict[str, list[float]], failed: dict[str, str],
    emit: Callable[[str], None],
) -> None:  # fmt: skip
    """Table rows: s/MP, speed against eager (median of the per-round ratios) and the first call's seconds."""
    eager = times["torch eager"]
    mp = side * side / 1e6
    for name, secs in times.items():
        ratio = statistics.median(e / t for e, t in zip(eager, secs))  # > 1: faster than eager
        emit(
            f"| {model} | {side}x{side} | {name} | {statistics.median(secs) / mp:.2f} | {ratio:.2f}x | {first[name]:.1f} |"
        )
    for name, why in failed.items():
        emit(f"| {model} | {side}x{side} | {name} | failed: {why} | - | - |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--sizes", default="512,1024", help="sides of the timed squares, comma-separated"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="leave torch.compile out (it compiles ~100 s per size)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    random.seed(0)
    print(f"\n{machine()}; {args.rounds} interleaved rounds after one warm-up\n")
    print(
        "| model | input | backend | s/MP (median) | speed vs eager (median of rounds) | first call (s) |"
    )
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        models = {
            "natural (shipped, input dcp)": "natural",
            "fast preset (random weights)": fast_preset_run(Path(tmp) / "fast"),
        }
        for model, run in models.items():
            runners = backends(run, Path(tmp), not args.no_compile)
            for side in (int(s) for s in args.sizes.split(",")):
                report(
                    model,
                    side,
                    *time_rounds(runners, smooth_image(1, 3, side, side), args.rounds),
                    print,
                )


if __name__ == "__main__":
    main()
