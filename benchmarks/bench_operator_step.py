"""Time and peak RSS of one stage-1 (CycleGAN) training step, ``paper`` preset, 256x256, on CPU.

Each configuration runs in a fresh subprocess (so its peak RSS is its own) through the real Lightning
``Trainer`` + :class:`eid.training.operator.HazeOperatorModule`; the time of each batch (G step + D step +
schedulers) is taken between ``on_train_batch_start`` and ``on_train_batch_end`` and the median over the steps
after ``--warmup`` is reported, with the process CPU time per step (less sensitive to other load).

Configurations: ``eid`` (our step: D frozen during the G step, fakes reused for D, the generators' wide 3x3
convolutions by Winograd, :mod:`eid.models.winograd`), ``eid, direct conv`` (the same with torch's direct
convolutions only), ``standard`` (D weight gradients also computed in the G backward, as the upstream loop
does), ``channels_last``, ``bf16`` (CPU autocast), each at ``--threads`` threads (and 1 thread for ``eid``).

    .venv/bin/python benchmarks/bench_operator_step.py [--steps 4] [--warmup 1] [--threads 2] [--batch 1]
    .venv/bin/python benchmarks/bench_operator_step.py --roofline [--threads 2]
    .venv/bin/python benchmarks/bench_operator_step.py --generator [--threads 2]
    .venv/bin/python benchmarks/bench_operator_step.py --winograd-layers [--threads 2]
    .venv/bin/python benchmarks/bench_operator_step.py --upsample-layers [--threads 2]
    .venv/bin/python benchmarks/bench_operator_step.py --upstream CHECKOUT --only eid --rounds 3

``--upstream CHECKOUT`` also times the authors' stage-1 code itself: ``implementations/cyclegan/cyclegan.py``
of a checkout of ``eriklindernoren/PyTorch-GAN`` (the CycleGAN implementation EID trained with), run unchanged
on synthetic unpaired 300x300 images (its own bicubic resize to 286 and 256 crop) with the same thread count.
Its step time is read from its progress line (the ETA it prints is the last batch's time multiplied by the
batches left); its first ``--warmup`` + 1 batches are skipped, since the batch after the first also pays for
the sample grid the script saves at batch 0 (one test image, so that grid needs less memory than a step).
``--rounds N`` repeats the whole list of configurations N times, alternating them, as the host's speed drifts.

``--roofline`` bounds any implementation of the recipe on this CPU: it counts the floating-point
operations of one ``eid`` training step (``torch.utils.flop_counter.FlopCounterMode``: convolutions and
matmuls, forward and backward) and measures the best throughput this CPU reaches on the step's most
frequent convolution (3x3, 256 -> 256 channels at 64x64, forward and backward). Step FLOPs divided by
that throughput is the time any fp32 direct-convolution implementation of the recipe needs on this CPU
(oneDNN, which torch uses, has only direct convolution on an AVX2 CPU). Winograd's algorithm does fewer
multiplications, so the roofline also counts the step as executed with :mod:`eid.models.winograd` and
divides it by the throughput of a large matrix product, the best this CPU does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {
    "eid": {},
    "eid, direct conv": {"winograd": False},
    "standard": {"standard": True},
    "channels_last": {"channels_last": True},
    "bf16": {"precision": "bf16-mixed"},
    "eid, 1 thread": {"threads": 1},
}


def worker(spec: dict) -> dict:
    import lightning as L
    import torch
    from torch.utils.data import Dataset
    from torch.utils.flop_counter import FlopCounterMode

    from eid.config import load_config
    from eid.training.data import ImageDataModule
    from eid.training.operator import STEPS_PER_BATCH, HazeOperatorModule, OperatorConfig
    from eid.training.trainer import build_trainer, fit

    torch.set_num_threads(spec["threads"])

    class Noise(Dataset):
        def __len__(self) -> int:
            return 64

        def __getitem__(self, key: tuple[int, int]) -> dict:
            g = torch.Generator().manual_seed(key[1])
            return {
                "clear": torch.rand(3, 256, 256, generator=g),
                "hazy": torch.rand(3, 256, 256, generator=g),
            }

    class Standard(HazeOperatorModule):
        """Upstream loop: no freezing of D during the G step (its weight gradients are computed and dropped)."""

        def toggle_optimizer(self, optimizer) -> None:
            pass

        def untoggle_optimizer(self, optimizer) -> None:
            pass

    class Timer(L.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

            self.cpu: list[float] = []

        def on_train_batch_start(self, *args) -> None:
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, *args) -> None:
            self.times.append(time.perf_counter() - self.t0)
            self.cpu.append(time.process_time() - self.c0)

    overrides = {"max_steps": spec["steps"] + spec["warmup"], "epochs": None}
    cfg = load_config(
        OperatorConfig, "operator", preset="paper", overrides=overrides
    )  # the authors' recipe
    cfg.checkpoint_every_n_batches = 0
    cfg.checkpoint_every_n_epochs = 0
    cfg.data.batch_size = spec.get("batch", 1)
    machine = {
        "winograd": spec.get("winograd", True),
        "channels_last": spec.get("channels_last", False),
    }  # machine settings, not recipe fields
    module = (Standard if spec.get("standard") else HazeOperatorModule)(cfg, **machine)
    timer = Timer()
    counter = FlopCounterMode(display=False) if spec.get("flops") else contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as run_dir, counter:
        trainer = build_trainer(
            run_dir, max_steps=cfg.max_steps, accelerator="cpu", precision=spec.get("precision", "32-true"),
            steps_per_batch=STEPS_PER_BATCH, progress=False, samples=False, callbacks=[timer], log_every=1000,
        )  # fmt: skip
        fit(trainer, module, ImageDataModule(Noise(), cfg.data.batch_size, seed=0))
    if spec.get("flops"):
        return {"step_gflop": counter.get_total_flops() / 1e9 / len(timer.times)}
    times, cpu = timer.times[spec["warmup"] :], timer.cpu[spec["warmup"] :]
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "cpu_s": statistics.median(cpu),
        "peak_rss_gib": peak_gib,
    }


UPSTREAM_SCRIPT = Path("implementations/cyclegan/cyclegan.py")
# Run with ``python -c`` in a fresh process: sets the thread count, runs the upstream script unchanged, prints its peak RSS.
UPSTREAM_RUNNER = """
import resource, runpy, sys, torch
torch.set_num_threads(int(sys.argv[1]))
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
print("\\npeak_rss_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
ETA = re.compile(r"\[Batch (\d+)/(\d+)\].*ETA: (?:(\d+) days?, )?(\d+):(\d+):([\d.]+)")


def upstream_step_times(log: str) -> list[float]:
    """Per-batch seconds from the upstream progress lines: ``ETA = (batches left) x (last batch time)``, one epoch."""
    times = []
    for line in log.replace("\r", "\n").splitlines():
        if match := ETA.search(line):
            batch, total, days, hours, minutes, seconds = match.groups()
            eta = ((int(days or 0) * 24 + int(hours)) * 60 + int(minutes)) * 60 + float(seconds)
            times.append(eta / (int(total) - int(batch)))
    return times


def upstream_script(checkout: Path) -> Path:
    """The CycleGAN script of a PyTorch-GAN checkout, or exit saying what to pass."""
    script = (checkout / UPSTREAM_SCRIPT).resolve()
    if not script.is_file():
        raise SystemExit(
            f"error: {script} not found; pass the root of a PyTorch-GAN checkout to --upstream"
        )
    return script


def upstream(script: Path, steps: int, warmup: int, threads: int, batch: int) -> dict:
    """Time the unchanged upstream CycleGAN ``script`` for ``warmup + 1 + steps`` batches of one epoch."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for split, count in (("train", (warmup + 1 + steps) * batch), ("test", 1)):
            for domain in "AB":
                (root / "data" / "bench" / split / domain).mkdir(parents=True)
                for i in range(count):
                    pixels = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(
                        root / "data" / "bench" / split / domain / f"{i}.png"
                    )
        cwd = root / "run" / "cyclegan"  # the script reads ../../data/<dataset_name>
        cwd.mkdir(parents=True)
        args = ["--dataset_name", "bench", "--n_epochs", "1", "--decay_epoch", "0", "--n_cpu", "0"]
        args += ["--batch_size", str(batch)]
        done = subprocess.run(
            [sys.executable, "-c", UPSTREAM_RUNNER, str(threads), str(script), *args], cwd=cwd, capture_output=True,
            text=True, check=False, env={**os.environ, "PYTHONPATH": str(script.parent)},
        )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"error: the upstream script failed:\n{done.stderr[-2000:]}")
    times = upstream_step_times(done.stdout)[warmup + 1 :]
    peak_kib = int(done.stdout.rsplit("peak_rss_kib", 1)[1])
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "cpu_s": None,
        "peak_rss_gib": peak_kib / 2**20,
    }


def gflop(fn, *args) -> float:
    """GFLOP that ``fn(*args)`` runs (forward, plus backward if ``fn`` calls it), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn(*args)
    return counter.get_total_flops() / 1e9


def component_flops() -> dict[str, float]:
    """FLOPs of the pieces the roofline discussion needs (``paper`` sizes, 256x256)."""
    import torch
    import torch.nn.functional as F

    from eid.models.discriminators import PatchGANDiscriminator
    from eid.models.generators import ResnetGenerator
    from eid.models.upsample import upsample_conv3x3

    x = torch.zeros(1, 3, 256, 256)
    up_layers = [(torch.zeros(1, 256, 64, 64), torch.zeros(128, 256, 3, 3)),
                 (torch.zeros(1, 128, 128, 128), torch.zeros(64, 128, 3, 3))]  # fmt: skip
    with torch.no_grad():
        generator = gflop(ResnetGenerator(), x)  # up-sampling as executed: 2x2 phase kernels
        phases = sum(gflop(upsample_conv3x3, u, w) for u, w in up_layers)
        resize_conv = sum(gflop(lambda u, w: F.conv2d(F.interpolate(u, scale_factor=2), w, padding=1), u, w)
                          for u, w in up_layers)  # fmt: skip
        transposed = sum(
            gflop(F.conv_transpose2d, u, w.transpose(0, 1), None, 2, 1, 1) for u, w in up_layers
        )
    d = PatchGANDiscriminator(3, 64, (2, 2, 2, 1))
    return {
        "generator": generator,
        "generator_resize_conv": generator - phases + resize_conv,
        "generator_transposed": generator - phases + transposed,
        "discriminator_fwd_bwd": gflop(lambda: d(x).sum().backward()),
    }


def median_time(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after one warm-up run."""
    fn()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def generator_timings(threads: int, repeats: int = 3) -> None:
    """Median time of one ``paper`` generator at 256x256, Winograd layers on and off (and channels_last at
    batch 1 and 2): forward, forward + backward with trainable weights (stage 1) and with frozen weights,
    gradient to the input only (stage 2's operator), at batch 1, 2 and 4."""
    import torch

    from eid.models.generators import ResnetGenerator

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    generators = {True: ResnetGenerator(winograd=True), False: ResnetGenerator()}
    generators[False].load_state_dict(generators[True].state_dict())
    print(
        "| batch | memory format | convolution | forward (s) | forward + backward (s) | frozen, to input (s) |"
    )
    print("|---|---|---|---|---|---|")
    for batch in (1, 2, 4):
        variants = [(torch.contiguous_format, True), (torch.contiguous_format, False)]
        variants += [(torch.channels_last, False)] if batch <= 2 else []
        for fmt, winograd in variants:
            g = generators[winograd].to(memory_format=fmt)
            x = torch.randn(batch, 3, 256, 256).contiguous(memory_format=fmt)

            def forward(g=g, x=x) -> None:
                with torch.no_grad():
                    g(x)

            def forward_backward(g=g, x=x) -> None:
                g(x).mean().backward()

            def frozen(g=g, x=x) -> None:
                g.requires_grad_(False)
                g(x.clone().requires_grad_()).mean().backward()
                g.requires_grad_(True)

            name = "channels_last" if fmt == torch.channels_last else "default"
            conv = "Winograd layers" if winograd else "direct"
            times = [median_time(fn, repeats) for fn in (forward, forward_backward, frozen)]
            print(
                f"| {batch} | {name} | {conv} | {times[0]:.2f} | {times[1]:.2f} | {times[2]:.2f} |",
                flush=True,
            )


def layer_table(threads: int, cases: list[tuple], candidate, repeats: int = 5) -> None:
    """Markdown rows: forward and forward + backward time of ``F.conv2d`` (the reference) and ``candidate``
    on single layers. ``cases`` holds ``(C_in, C_out, size, input_size, reference)``: ``size`` labels the
    row, the input is ``input_size`` x ``input_size``."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    print(
        "| C_in -> C_out | size | forward: direct / candidate (ms) | ratio | forward + backward (ms) | ratio |"
    )
    print("|---|---|---|---|---|---|")
    for cin, cout, size, input_size, reference in cases:
        x = torch.randn(1, cin, input_size, input_size, requires_grad=True)
        w = (torch.randn(cout, cin, 3, 3) * 0.02).requires_grad_()
        grad = torch.randn_like(reference(x, w).detach())
        row = []
        for conv in (reference, candidate):

            def forward(conv=conv, x=x, w=w) -> None:
                with torch.no_grad():
                    conv(x, w)

            def forward_backward(conv=conv, x=x, w=w, grad=grad) -> None:
                conv(x, w).backward(grad)

            row.append([1e3 * median_time(fn, repeats) for fn in (forward, forward_backward)])
        (fd, bd), (fc, bc) = row
        print(f"| {cin} -> {cout} | {size} | {fd:.1f} / {fc:.1f} | {fd / fc:.2f} | {bd:.1f} / {bc:.1f} | {bd / bc:.2f} |",
              flush=True)  # fmt: skip


def winograd_layers(threads: int) -> None:
    """Direct vs Winograd 3x3 convolutions (output size x size): the measurement behind
    :attr:`eid.models.winograd.WinogradConv2d.min_channels`."""
    import torch.nn.functional as F

    from eid.models.winograd import winograd_conv3x3

    shapes = ((64, 64, 64), (64, 64, 256), (128, 64, 256), (128, 128, 64), (128, 128, 128), (256, 256, 32),
              (256, 256, 64), (256, 256, 128), (256, 128, 128))  # fmt: skip
    layer_table(
        threads,
        [(cin, cout, size, size + 2, F.conv2d) for cin, cout, size in shapes],
        winograd_conv3x3,
    )


def upsample_layers(threads: int) -> None:
    """The ``paper`` generator's two up-sampling layers (nearest 2x resize + 3x3 conv, ``size`` is the input
    before the resize) against :func:`eid.models.upsample.upsample_conv3x3`, which computes the same at the
    input's resolution."""
    import torch.nn.functional as F

    from eid.models.upsample import upsample_conv3x3

    def resize_conv(x, w):
        return F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), w, padding=1)

    layer_table(
        threads,
        [(256, 128, 64, 64, resize_conv), (128, 64, 128, 128, resize_conv)],
        upsample_conv3x3,
    )


def conv_throughput(threads: int, repeats: int = 5) -> float:
    """Best GFLOP/s of a 3x3 256->256 convolution at 64x64 (forward + both backward products)."""
    import torch

    torch.set_num_threads(threads)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1)
    x = torch.randn(1, 256, 64, 64, requires_grad=True)
    flops = 3 * 2 * 256 * 256 * 9 * 64 * 64  # forward, grad input, grad weight
    best = float("inf")
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        conv(x).sum().backward()
        best = min(best, time.perf_counter() - t0)
    return flops / best / 1e9


def gemm_throughput(threads: int, n: int = 1536, repeats: int = 5) -> float:
    """Best GFLOP/s of a large square float32 matrix product: the practical ceiling of this CPU."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = min(median_time(lambda: a @ b, 1) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def roofline(threads: int) -> None:
    winograd_step = worker({"steps": 1, "warmup": 0, "threads": threads, "flops": True})[
        "step_gflop"
    ]
    step = worker({"steps": 1, "warmup": 0, "threads": threads, "flops": True, "winograd": False})[
        "step_gflop"
    ]
    parts = component_flops()
    gflops, ceiling = conv_throughput(threads), gemm_throughput(threads)
    print("| quantity | value |\n|---|---|")
    print(f"| FLOPs per training step (G + D update), direct convolution | {step:.0f} GFLOP |")
    print(
        f"| the same with the Winograd layers (matrix products and transforms as executed) | {winograd_step:.0f} GFLOP |"
    )
    print(
        f"| FLOPs of one generator forward (up-sampling by 2x2 phase kernels) | {parts['generator']:.1f} GFLOP |"
    )
    print(
        f"| the same with up-sampling as resize + 3x3 conv | {parts['generator_resize_conv']:.1f} GFLOP |"
    )
    print(
        f"| the same with transposed-conv up-sampling | {parts['generator_transposed']:.1f} GFLOP |"
    )
    print(f"| one discriminator forward + backward | {parts['discriminator_fwd_bwd']:.1f} GFLOP |")
    print(
        f"| best measured direct conv throughput (3x3, 256 ch, 64x64, fwd + bwd), {threads} threads | {gflops:.0f} GFLOP/s |"
    )
    print(f"| best measured 1536^3 matrix product, {threads} threads | {ceiling:.0f} GFLOP/s |")
    print(f"| lower bound on the step time, direct convolution | {step / gflops:.1f} s |")
    print(
        f"| lower bound with the Winograd layers at the matrix-product ceiling | {winograd_step / ceiling:.1f} s |"
    )
    print(f"| throughput a 5.8 s step needs, direct convolution | {step / 5.8:.0f} GFLOP/s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="measured steps per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="steps not measured")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--only", nargs="*", default=None, help="configurations to run")
    parser.add_argument(
        "--roofline", action="store_true", help="FLOPs per step and the CPU's conv throughput"
    )
    parser.add_argument(
        "--generator", action="store_true", help="time one generator: batch 1/2/4, Winograd on/off"
    )
    parser.add_argument(
        "--winograd-layers", action="store_true", help="direct vs Winograd 3x3 convolutions"
    )
    parser.add_argument(
        "--upsample-layers", action="store_true", help="resize + conv vs the phase-kernel form"
    )
    parser.add_argument(
        "--upstream", type=Path, help="also time PyTorch-GAN's cyclegan.py from this checkout"
    )
    parser.add_argument("--batch", type=int, default=1, help="images per domain per step")
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat the configurations, alternating them"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generator:
        generator_timings(args.threads)
        return
    if args.winograd_layers:
        winograd_layers(args.threads)
        return
    if args.upsample_layers:
        upsample_layers(args.threads)
        return
    if args.roofline:
        roofline(args.threads)
        return
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    script = upstream_script(args.upstream) if args.upstream else None
    rows = []
    for _ in range(args.rounds):
        for name, extra in CONFIGS.items():
            if args.only and name not in args.only:
                continue
            spec = {
                "steps": args.steps,
                "warmup": args.warmup,
                "threads": args.threads,
                "batch": args.batch,
                **extra,
            }
            done = subprocess.run(
                [sys.executable, __file__, "--worker", json.dumps(spec)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append((name, spec["threads"], result))
            print(f"{name}: {result}", file=sys.stderr, flush=True)
        if script:
            result = upstream(script, args.steps, args.warmup, args.threads, args.batch)
            rows.append(("upstream cyclegan.py", args.threads, result))
            print(f"upstream: {result}", file=sys.stderr, flush=True)
    print(
        "| configuration | batch | threads | median s/step (wall) | min s/step | median CPU s/step | peak RSS (GiB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, threads, r in rows:
        cpu = "–" if r["cpu_s"] is None else f"{r['cpu_s']:.2f}"
        print(
            f"| {name} | {args.batch} | {threads} | {r['median_s']:.2f} | {r['min_s']:.2f} | {cpu} | {r['peak_rss_gib']:.2f} |"
        )


if __name__ == "__main__":
    main()
