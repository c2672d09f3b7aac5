"""Tiled inference of a large RGB image: time and peak RSS, tiled vs untiled, and the cost of TTA.

Each configuration runs in a fresh subprocess (so peak RSS is that configuration's own), on
``--threads`` CPU threads, with the stage-2 dehazer architecture of a preset (``fast``, ``paper``)
and random weights (seeded); the input is uniform noise (time does not depend on content). The
``paper`` preset's pseudo-inverse input (``G_BA``) is replaced by the hazy input: only the UNet is
timed. A second table compares tiled and untiled outputs of the same network (max abs difference and
PSNR between them), because the presets' group/instance norms use per-image statistics, which tiles
only approximate; a norm-free model with zero padding (``--config`` with ``model: {norm: none,
circular_padding: false}``) is tiled exactly at the runner's default overlap (twice its receptive
radius). ``--run RUN`` uses that trained stage-2 run's dehazer instead of the presets.

    .venv/bin/python benchmarks/bench_tiled_inference.py                 # full set (paper at 4096^2 is slow)
    .venv/bin/python benchmarks/bench_tiled_inference.py --quick         # smaller sizes, minutes
    .venv/bin/python benchmarks/bench_tiled_inference.py --quick --presets fast --config candidate.yaml
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_net(cfg: dict):
    """The trained dehazer of ``cfg["run"]``, or the preset's (plus ``cfg["config"]``) with random weights,
    taking the hazy image as input (UNet only)."""
    import torch

    from eid.config import load_config
    from eid.models.dehazer import DehazerNet
    from eid.models.dehazer_files import load_dehazer
    from eid.training.eid import EIDConfig

    if cfg.get("run"):
        return load_dehazer(cfg["run"])[0]
    config = load_config(EIDConfig, "dehazer", preset=cfg["preset"], path=cfg.get("config"))
    torch.manual_seed(0)
    return DehazerNet(config.model, input="hazy").eval()


def worker(cfg: dict) -> dict:
    """Run one configuration in this process; return timings and peak RSS."""
    import torch

    from eid.inference import Dehazer as Runner

    torch.set_num_threads(cfg["threads"])
    net = build_net(cfg)
    channels = net.config.channels
    x = torch.rand(
        1, channels, cfg["size"], cfg["size"], generator=torch.Generator().manual_seed(0)
    )
    runner = Runner.from_module(
        net,
        device="cpu",
        tile=cfg["tile"] or None,
        overlap=cfg["overlap"],
        batch_size=cfg["batch"],
        tta=cfg["tta"],
        channels_last=cfg["channels_last"],
        tile_norm="auto" if cfg["tta"] else cfg.get("tile_norm", "auto"),  # exact refuses TTA
    )
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    times = []
    for _ in range(cfg["repeats"]):
        start = time.perf_counter()
        runner.run(x)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"seconds": statistics.median(times), "rss_before_gib": rss_before, "peak_rss_gib": peak}


def compare(cfg: dict) -> dict:
    """Tiled vs untiled output of the same network on the same (smooth random) image."""
    import torch
    import torch.nn.functional as F

    from eid.inference import Dehazer as Runner

    torch.set_num_threads(cfg["threads"])
    net = build_net(cfg)
    g = torch.Generator().manual_seed(0)
    x = F.interpolate(
        torch.rand(1, net.config.channels, cfg["size"] // 16, cfg["size"] // 16, generator=g),
        size=cfg["size"],
        mode="bicubic",
    ).clamp(0, 1)
    out = {}
    for name, tile in (("tiled", cfg["tile"]), ("untiled", None)):
        runner = Runner.from_module(
            net,
            device="cpu",
            tile=tile,
            overlap=cfg["overlap"],
            tile_norm=cfg.get("tile_norm", "auto"),
        )
        start = time.perf_counter()
        out[name] = runner.run(x)
        out[f"{name}_seconds"] = time.perf_counter() - start
    diff = (out["tiled"] - out["untiled"]).abs()
    mse = float((diff**2).mean())
    return {
        "tiled_seconds": out["tiled_seconds"],
        "untiled_seconds": out["untiled_seconds"],
        "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()),
        "psnr_db": 10 * math.log10(1 / max(mse, 1e-20)),
    }


def spawn(mode: str, cfg: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, f"--{mode}", json.dumps(cfg)],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--compare", help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-compare", action="store_true", help="skip the tiled-vs-untiled accuracy table"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1024^2 instead of --size, untiled up to 1024^2"
    )
    parser.add_argument("--presets", default="fast,paper", help="comma-separated dehazer presets")
    parser.add_argument("--size", type=int, default=4096, help="image side for the main table")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument(
        "--overlap", type=int, default=None, help="default: the runner's (64, or 2R if local)"
    )
    parser.add_argument(
        "--tile-norm", default="auto", help="auto, exact, global or tile (eid.inference.tile_plan)"
    )
    parser.add_argument("--config", help="YAML of config fields applied on top of each preset")
    parser.add_argument("--run", help="a trained stage-2 run folder (replaces the presets)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--untiled-max", type=int, default=2048, help="largest side run untiled (memory)"
    )
    parser.add_argument(
        "--compare-size", type=int, default=2048, help="image side of the tiled-vs-untiled table"
    )
    args = parser.parse_args()
    if args.worker or args.compare:
        print(
            json.dumps(
                worker(json.loads(args.worker))
                if args.worker
                else compare(json.loads(args.compare))
            )
        )
        return
    size = 1024 if args.quick else args.size
    overlap = "auto" if args.overlap is None else args.overlap
    args.untiled_max = min(args.untiled_max, size)
    base = {
        "threads": args.threads,
        "overlap": args.overlap,
        "batch": 1,
        "tta": False,
        "channels_last": False,
        "repeats": 1,
        "config": args.config,
        "run": args.run,
        "tile_norm": args.tile_norm,
    }
    if args.run:
        args.presets = Path(args.run).name
    rows = []
    for preset in args.presets.split(","):
        configs = [dict(base, preset=preset, size=size, tile=args.tile)]
        side = min(size, args.untiled_max)
        configs += [
            dict(base, preset=preset, size=side, tile=args.tile),
            dict(base, preset=preset, size=side, tile=0),
        ]
        one_tile = dict(base, preset=preset, size=args.tile, tile=args.tile)
        configs += [one_tile, dict(one_tile, channels_last=True), dict(one_tile, tta=True)]
        seen = set()
        for cfg in configs:
            key = json.dumps(cfg, sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            print(f"running {cfg}", file=sys.stderr, flush=True)
            rows.append((cfg, spawn("worker", cfg)))
    print(
        f"\n{args.threads} CPU threads; tile {args.tile}, overlap {overlap}, batch 1; {'trained run' if args.run else 'random weights'}, fp32\n"
    )
    print(
        "| preset | image | tiling | TTA | channels_last | time (s) | s / MP | peak RSS (GiB) | RSS before run (GiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for cfg, res in rows:
        tiling = f"{cfg['tile']}/{overlap}" if cfg["tile"] and cfg["size"] > cfg["tile"] else "none"
        if "error" in res:
            print(
                f"| {cfg['preset']} | {cfg['size']}² | {tiling} | {cfg['tta']} | {cfg['channels_last']} | error: {res['error']} | | | |"
            )
            continue
        mp = cfg["size"] ** 2 / 1e6
        print(
            f"| {cfg['preset']} | {cfg['size']}² | {tiling} | {'rot90*flip (8)' if cfg['tta'] else 'off'} | "
            f"{cfg['channels_last']} | {res['seconds']:.2f} | {res['seconds'] / mp:.2f} | {res['peak_rss_gib']:.2f} | "
            f"{res['rss_before_gib']:.2f} |"
        )
    print(
        "\n| preset | image | tile/overlap | tile norm | max abs diff | mean abs diff | PSNR tiled vs untiled (dB) "
        "| tiled / untiled time (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    side = args.compare_size
    for preset in [] if args.no_compare else args.presets.split(","):
        cfg = dict(base, preset=preset, size=side, tile=args.tile)
        res = spawn("compare", cfg)
        row = f"| {preset} | {side}² | {args.tile}/{overlap} | {args.tile_norm} |"
        if "error" in res:
            print(f"{row} error: {res['error']} | | | |")
        else:
            print(
                f"{row} {res['max_abs']:.2e} | {res['mean_abs']:.2e} | {res['psnr_db']:.1f} | "
                f"{res['tiled_seconds']:.1f} / {res['untiled_seconds']:.1f} |"
            )


if __name__ == "__main__":
    main()
