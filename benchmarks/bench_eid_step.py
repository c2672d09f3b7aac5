"""Speed and memory of the ``paper`` preset: one stage-2 training step and one inference, 256x256, batch 1.

Every (variant, mode) runs in a fresh subprocess with 2 CPU threads; peak RSS is that process's
``ru_maxrss``. The operator is a randomly initialised stage-1 ``LearnedHaze`` of the authors' size
(two ResNet-9 generators, 11,378,179 parameters each); weights do not change the cost.

Variants:
  naive        the same computation with the frozen generators' weights requiring gradients and the
               pseudo-inverse of the data computed with a graph (what the authors' closure does)
  eid          eid as shipped: frozen weights, H^dagger(y) of the data without a graph, the operator's
               wide 3x3 convolutions by Winograd's algorithm (on CPU, ``fit_eid(winograd=True)``)
  eid+cl       eid with channels_last memory format
  eid+bf16     eid under CPU bfloat16 autocast
  eid+ckpt     eid with checkpoint_operator (generator activations recomputed in backward)
  eid+direct   eid with the operator's convolutions all direct (torch's), as before the fourth session

Run: .venv/bin/python benchmarks/bench_eid_step.py [--steps 3] [--variants eid,naive,...]
     .venv/bin/python benchmarks/bench_eid_step.py --interleave 128 --threads 1 --variants naive,eid,eid+ckpt
     .venv/bin/python benchmarks/bench_eid_step.py --roofline --variants naive,eid

``--roofline`` counts the FLOPs of one training step and one inference of each variant
(``torch.utils.flop_counter.FlopCounterMode``) and divides them by the best convolution throughput this
CPU reaches (:func:`bench_operator_step.conv_throughput`): the time an fp32 direct-convolution
implementation of the same computation needs here, whatever its framework.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

AUTHORS = {"step_s": 4.5, "infer_s": 0.71, "train_rss_gib": 4.1}


def build(variant: str):
    import torch

    from eid.config import load_config
    from eid.models import ResnetGenerator
    from eid.physics import LearnedHaze
    from eid.training.eid import EIDConfig, EIDModule

    torch.manual_seed(0)
    cfg = load_config(
        EIDConfig,
        "dehazer",
        preset="paper",
        overrides={"checkpoint_operator": variant == "eid+ckpt"},
    )
    winograd = variant != "eid+direct"  # as build_operator with fit_eid's default winograd=True
    physics = LearnedHaze(
        ResnetGenerator(3, 3, winograd=winograd), ResnetGenerator(3, 3, winograd=winograd)
    )
    module = EIDModule(cfg, physics=physics)
    if variant == "naive":
        physics.requires_grad_(True)
        module.dehazer.network_input = lambda y, p: p.A_dagger(y)  # graph through G_BA(y) as well
    if variant == "eid+cl":
        module.dehazer.to(memory_format=torch.channels_last)
        physics.to(memory_format=torch.channels_last)
    return module, module.physics


def child(variant: str, mode: str, steps: int, flops: bool = False) -> dict:
    """Median time and peak RSS of ``steps`` train steps or inferences after a warm-up (or, with
    ``flops``, the FLOPs of one)."""
    import contextlib

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(2)
    module, _ = build(variant)
    physics = module.physics
    y = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    if variant == "eid+cl":
        y = y.contiguous(memory_format=torch.channels_last)
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16)
        if variant == "eid+bf16"
        else contextlib.nullcontext()
    )
    if mode == "train":
        opt = torch.optim.Adam(module.dehazer.parameters(), lr=1e-5, weight_decay=1e-8)
        module.dehazer.train()

        def once() -> None:
            with autocast:
                _, losses = module.losses(y, physics)
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            opt.step()
    else:
        module.dehazer.eval()

        @torch.inference_mode()
        def once() -> None:
            with autocast:
                module.dehazer(y, physics)

    if flops:
        counter = FlopCounterMode(display=False)
        with counter:
            once()
        return {"gflop": counter.get_total_flops() / 1e9}
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {"median_s": statistics.median(times[1:]), "rss_gib": rss}


def interleaved(variants: list[str], size: int, steps: int, threads: int) -> dict[str, float]:
    """Median training-step time of each variant, alternating their steps in ONE process so that all
    see the same machine load (a fair ratio on a shared, noisy machine)."""
    import torch

    torch.set_num_threads(threads)
    built = {v: build(v) for v in variants}
    opts = {v: torch.optim.Adam(m.dehazer.parameters(), lr=1e-5) for v, (m, _) in built.items()}
    y = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(steps + 1):
        for v, (module, physics) in built.items():
            start = time.perf_counter()
            _, losses = module.losses(y, physics)
            opts[v].zero_grad(set_to_none=True)
            losses["loss"].backward()
            opts[v].step()
            times[v].append(time.perf_counter() - start)
    return {v: statistics.median(t[1:]) for v, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed repetitions after one warm-up")
    parser.add_argument("--variants", default="naive,eid,eid+cl,eid+bf16,eid+ckpt")
    parser.add_argument(
        "--interleave",
        type=int,
        default=0,
        metavar="SIZE",
        help="instead: alternate the variants' training steps in one process at SIZE x SIZE",
    )
    parser.add_argument("--threads", type=int, default=2, help="threads for --interleave")
    parser.add_argument(
        "--roofline", action="store_true", help="FLOPs per step/inference and the time bound"
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.roofline:
        from bench_operator_step import conv_throughput

        gflops = conv_throughput(2)
        print(f"best measured conv throughput, 2 threads: {gflops:.0f} GFLOP/s\n")
        print(
            "| variant | mode | GFLOP | time bound (s) | authors' figure (s) |\n|---|---|---|---|---|"
        )
        for variant in args.variants.split(","):
            for mode, reported in (("train", AUTHORS["step_s"]), ("infer", AUTHORS["infer_s"])):
                work = child(variant, mode, 1, flops=True)["gflop"]
                print(f"| {variant} | {mode} | {work:.0f} | {work / gflops:.2f} | {reported} |")
        return
    if args.interleave:
        medians = interleaved(args.variants.split(","), args.interleave, args.steps, args.threads)
        print(
            f"| variant | train step (s), interleaved, {args.interleave}x{args.interleave}, {args.threads} thread(s) | ratio to eid |"
        )
        print("|---|---|---|")
        for v, t in medians.items():
            print(f"| {v} | {t:.2f} | {t / medians.get('eid', t):.2f} |")
        return
    if args.child:
        print(json.dumps(child(*args.child, args.steps)))
        return
    rows = []
    for variant in args.variants.split(","):
        result = {}
        for mode in ("train", "infer"):
            out = subprocess.run(
                [sys.executable, __file__, "--steps", str(args.steps), "--child", variant, mode],
                capture_output=True,
                text=True,
                check=True,
            )
            result[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append((variant, result))
        print(f"{variant}: {result}", file=sys.stderr)
    print(
        "| variant | train step (s) | train peak RSS (GiB) | inference (s) | inference peak RSS (GiB) |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| authors' code (reported) | {AUTHORS['step_s']} | {AUTHORS['train_rss_gib']} | {AUTHORS['infer_s']} | - |"
    )
    for variant, r in rows:
        print(
            f"| {variant} | {r['train']['median_s']:.2f} | {r['train']['rss_gib']:.2f} | {r['infer']['median_s']:.3f} | {r['infer']['rss_gib']:.2f} |"
        )


if __name__ == "__main__":
    main()
