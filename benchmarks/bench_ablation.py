"""Ablations and sweeps through the default CLI path: several ``bench_quality_cli.py`` runs, side by side.

Each variant is a task, config fields applied on top of the modality presets (written to a YAML file
given as ``--config``) and extra flags, for stage 1 (``eid train-operator``) and stage 2 (``eid train``).
The variants share one data folder (built once), run ``--jobs`` at a time, and the script prints one
markdown table: PSNR / SSIM mean (min-max) over the seeds for ``H^dagger`` alone and EID, and the wall
time of each stage.

Run: .venv/bin/python benchmarks/bench_ablation.py --set ablation --out OUT [--jobs 2] [--seeds 0,1]
Sets: ``ablation`` (microscopy: operator cyclegan/scattering x prior off/on x residual off/on, the table
issue 16 asks for), ``natural`` (natural haze: the stage-1 dark-channel terms, the stage-2 input, learning
rate and prior weight) and ``microscopy`` (the stage-2 budget and prior weight against the veil oracle).
On a GPU, ``EID_BIN="python3 -m eid"`` runs the package from ``PYTHONPATH=src``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
BENCH = HERE / "bench_quality_cli.py"

# name: (task, stage-1 config fields, stage-1 flags, stage-2 config fields, stage-2 flags)
Variant = tuple[str, dict, str, dict, str]
CYCLEGAN = "--operator-model cyclegan"
RESIDUAL = {"model": {"residual_bound": 0.05}}
SETS: dict[str, dict[str, Variant]] = {
    "ablation": {
        f"{op} / prior {prior} / residual {res}": (
            "microscopy",
            RESIDUAL if res == "on" else {},
            CYCLEGAN if op == "cyclegan" else "",
            {},
            "--no-prior" if prior == "off" else "",
        )
        for op in ("scattering", "cyclegan")
        for prior in ("on", "off")
        for res in ("off", "on")
        if not (op == "cyclegan" and res == "on")  # the residual is a scattering-operator option
    },
    "natural": {
        "preset": ("natural", {}, "", {}, ""),
        "pair 1": ("natural", {"loss": {"lambda_dcp_pair": 1.0}}, "", {}, ""),
        "pair 5": ("natural", {"loss": {"lambda_dcp_pair": 5.0}}, "", {}, ""),
        "pair 20": ("natural", {"loss": {"lambda_dcp_pair": 20.0}}, "", {}, ""),
        "pair 5 + dcp 1": (
            "natural",
            {"loss": {"lambda_dcp_pair": 5.0, "lambda_dcp": 1.0}},
            "",
            {},
            "",
        ),
        "pair 5, no prior": ("natural", {"loss": {"lambda_dcp_pair": 5.0}}, "", {}, "--no-prior"),
        "pair 5, prior 0.2": (
            "natural",
            {"loss": {"lambda_dcp_pair": 5.0}},
            "",
            {"adversarial_weight": 0.2},
            "",
        ),
        "pair 5, hazy input": (
            "natural",
            {"loss": {"lambda_dcp_pair": 5.0}},
            "",
            {"model": {"input": "hazy"}},
            "",
        ),
        "pair 5, density 0": (
            "natural",
            {"loss": {"lambda_dcp_pair": 5.0, "lambda_density": 0.0}},
            "",
            {},
            "",
        ),
        "dcp 1": ("natural", {"loss": {"lambda_dcp": 1.0}}, "", {}, ""),
        "pair 20, lr 2e-4": ("natural", {}, "", {"lr": 2.0e-4}, ""),
        "pair 20, prior 0.2": ("natural", {}, "", {"adversarial_weight": 0.2}, ""),
    },
    "microscopy": {  # the stage-2 budget and prior weight against the veil oracle (31.76 dB)
        "stage 2 240 steps": ("microscopy", {}, "", {"max_steps": 240}, ""),
        "stage 2 320 steps": ("microscopy", {}, "", {"max_steps": 320}, ""),
        "prior 0.02": ("microscopy", {}, "", {"adversarial_weight": 0.02}, ""),
    },
}


def with_config(folder: Path, stem: str, fields: dict, flags: str) -> str:
    """``flags`` plus ``--config FILE`` holding ``fields`` (written into ``folder``) when there are any."""
    if not fields:
        return flags
    path = folder / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(fields))
    return f"{flags} --config {path}".strip()


def run_variant(name: str, variant: Variant, args: argparse.Namespace) -> dict:
    """One ``bench_quality_cli.py`` run into ``OUT/<slug>``, sharing ``OUT/data-<task>``; its results.json."""
    task, s1_fields, s1_flags, s2_fields, s2_flags = variant
    folder = args.out / "".join(c if c.isalnum() else "-" for c in name)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "data").exists():
        (folder / "data").symlink_to((args.out / f"data-{task}").resolve())
    command = [
        sys.executable,
        str(BENCH),
        "--task",
        task,
        "--seeds",
        args.seeds,
        "--threads",
        str(args.threads),
        "--out",
        str(folder),
        f"--stage1-args={with_config(folder, 'stage1', s1_fields, s1_flags)}",
        f"--stage2-args={with_config(folder, 'stage2', s2_fields, s2_flags)}",
    ]  # "=": values may start with --
    command += ["--stage1-steps", str(args.stage1_steps)] if args.stage1_steps else []
    command += ["--steps", str(args.steps)] if args.steps else []
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    (folder / "log.txt").write_text(done.stdout + done.stderr)
    if done.returncode:
        print(f"{name}: failed, see {folder / 'log.txt'}", flush=True)
        return {}
    print(f"{name}: done", flush=True)
    return json.loads((folder / "results.json").read_text())


def cell(rows: list[dict], metric: str) -> str:
    values = [r[metric] for r in rows]
    spread = f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else ""
    return f"{statistics.mean(values):.{2 if metric == 'psnr' else 3}f}{spread}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=sorted(SETS), required=True, action="append", dest="sets")
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all of the set)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--stage1-steps", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    variants = {
        n: v for s in args.sets for n, v in SETS[s].items() if not args.only or n in args.only
    }
    for task in {
        v[0] for v in variants.values()
    }:  # build each task's data once, before the parallel runs
        if not (args.out / f"data-{task}" / "test-hazy").is_dir():
            sys.path.insert(0, str(HERE))
            import bench_quality_cli as bench

            (bench.microscopy_data if task == "microscopy" else bench.natural_data)(
                args.out / f"data-{task}"
            )
    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(
            zip(variants, pool.map(lambda item: run_variant(*item, args), variants.items()))
        )
    (args.out / "ablation.json").write_text(json.dumps(results, indent=2))
    print(
        "| variant | task | H† PSNR | EID PSNR | EID SSIM | stage 1 / 2 (s) |\n|---|---|---|---|---|---|"
    )
    for name, res in results.items():
        if not res:
            print(f"| {name} | {variants[name][0]} | failed | | | |")
            continue
        rows, times = res["results"], res["times"]
        wall = f"{statistics.mean(times['stage 1']):.0f} / {statistics.mean(times['stage 2']):.0f}"
        print(
            f"| {name} | {variants[name][0]} | {cell(rows['H^dagger only'], 'psnr')} | {cell(rows['EID'], 'psnr')} "
            f"| {cell(rows['EID'], 'ssim')} | {wall} |"
        )
    for task in sorted({v[0] for v in variants.values()}):
        first = next((r for n, r in results.items() if r and variants[n][0] == task), None)
        if first:
            print(
                f"\n{task}: hazy {cell(first['results']['hazy input'], 'psnr')} dB, DCP {cell(first['results']['DCP'], 'psnr')} dB"
            )


if __name__ == "__main__":
    main()
