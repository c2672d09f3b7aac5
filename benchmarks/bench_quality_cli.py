"""Quality through the default CLI path: ``eid train-operator`` then ``eid train``, modality preset, no expert flags.

Tasks (the data are fixed; ``--seeds`` reseeds both trainings):

* ``microscopy``: the veil set of ``bench_microscopy_quality.py`` (``../shared/data/nuclei/img2d.tif``,
  the same crops, veils and test grid), so its veil oracle and DCP rows are comparable.
* ``natural``: ``skimage.data.stereo_motorcycle`` hazed with its real depth (metres) by the ASM at two
  densities (``beta`` 0.2 and 0.5 per metre, airlight 0.85: mean ``t`` about 0.57 and 0.25). Columns
  0-479 give the hazy training crops, columns 480-740 the non-overlapping 128x128 test grid; the unpaired
  clear crops come from other bundled photos (astronaut, coffee, chelsea, rocket).

DCP runs once, with its airlight as picked (``--method dcp``) and averaged to grey (``dcp-grey``). For each seed:
stage 1 and stage 2 with ``--preset TASK --seed S`` (plus the step budget), then ``eid dehaze`` with the operator's
``H^dagger`` alone (``--method cyclegan``) and EID, and ``eid evaluate`` against the clear test crops. Prints a markdown table: mean and spread (min-max) over
the seeds, and the wall time of each stage.

Run: .venv/bin/python benchmarks/bench_quality_cli.py --task natural [--seeds 0,1] [--stage1-steps N] [--steps N]
Ablations pass flags through: ``--stage1-args "--operator-model cyclegan"``, ``--stage2-args "--no-prior"``,
``--stage1-args "--config residual.yaml"`` (``model: {residual_bound: 0.05}``). ``--out`` may hold a
``data`` folder (or link) from an earlier run, which is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_microscopy_quality import IMAGE, crops, veil

from eid.data.depth import motorcycle_depth
from eid.data.io import write_image
from eid.demo_data import bundled_image
from eid.physics import ASMHaze, transmission_from_depth

EID = shlex.split(os.environ.get("EID_BIN", str(Path(sys.executable).parent / "eid")))
"""The ``eid`` command (``EID_BIN`` overrides it, e.g. ``"python3 -m eid"`` where the package is not installed)."""
TEST = 128  # natural test crops


def microscopy_data(root: Path) -> None:
    import tifffile

    image = torch.from_numpy(tifffile.imread(IMAGE).astype("float32"))[None]
    image = image / image.max()
    rng = torch.Generator().manual_seed(0)  # the same draws as bench_microscopy_quality.py
    sets = {
        "clear": crops(image, slice(0, 256), slice(0, 384), 128, rng),
        "train": veil(crops(image, slice(256, 512), slice(0, 384), 128, rng), seed=1)[0],
    }
    test_clear = crops(image, slice(0, 512), slice(384, 512), None, rng)
    sets |= {"test-clear": test_clear, "test-hazy": veil(test_clear, seed=2)[0]}
    for folder, stack in sets.items():
        for i, im in enumerate(stack):
            write_image(root / folder / f"{i:04d}.tif", im)


def natural_data(root: Path) -> None:
    clear, depth = motorcycle_depth()
    for density, beta in (("light", 0.2), ("dense", 0.5)):
        hazy = ASMHaze(transmission=transmission_from_depth(depth[None], beta), airlight=0.85).A(
            clear[None]
        )[0]
        write_image(root / "train" / f"motorcycle_{density}.png", hazy[:, :, :480])
        h, w = clear.shape[-2:]
        for i in range(0, h - TEST + 1, TEST):
            for j in range(480, w - TEST + 1, TEST):
                name = f"{density}_{i:03d}_{j:03d}.png"
                write_image(root / "test-hazy" / name, hazy[:, i : i + TEST, j : j + TEST])
                write_image(root / "test-clear" / name, clear[:, i : i + TEST, j : j + TEST])
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        photo = bundled_image(name, 256)
        write_image(root / "clear" / f"{name}.png", photo)


def eid(*args: str) -> float:
    """Run one ``eid`` command; return its wall time; stop with its output on failure."""
    t0 = time.perf_counter()
    done = subprocess.run([*EID, *args], check=False, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"eid {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def scores(pred: Path, ref: Path, out: Path) -> dict[str, float]:
    eid(
        "evaluate",
        "--pred",
        str(pred),
        "--ref",
        str(ref),
        "--metrics",
        "psnr,ssim",
        "--json",
        str(out),
    )
    return json.loads(out.read_text())["metrics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("microscopy", "natural"), required=True)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument(
        "--stage1-steps",
        type=int,
        default=None,
        help="stage-1 budget (default: the preset's epochs)",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="stage-2 budget (default: the preset's epochs)"
    )
    parser.add_argument(
        "--stage1-args",
        default="",
        help="extra eid train-operator flags, for ablations (e.g. '--operator-model cyclegan')",
    )
    parser.add_argument(
        "--stage2-args", default="", help="extra eid train flags, for ablations (e.g. '--no-prior')"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    root = args.out / "data"
    if not (root / "test-hazy").is_dir():
        (microscopy_data if args.task == "microscopy" else natural_data)(root)
    threads = ["--threads", str(args.threads)]
    results: dict[str, list[dict[str, float]]] = {}
    times: dict[str, list[float]] = {"stage 1": [], "stage 2": []}
    results["hazy input"] = [
        scores(root / "test-hazy", root / "test-clear", args.out / "hazy.json")
    ]
    for name, method in (("DCP", "dcp"), ("DCP, grey airlight", "dcp-grey")):
        eid(
            "dehaze",
            "--method",
            method,
            str(root / "test-hazy"),
            "--out",
            str(args.out / method),
            *threads,
        )
        results[name] = [
            scores(args.out / method, root / "test-clear", args.out / f"{method}.json")
        ]
    for seed in args.seeds.split(","):
        run = args.out / f"seed{seed}"
        budget1 = ["--max-steps", str(args.stage1_steps)] if args.stage1_steps else []
        budget2 = ["--max-steps", str(args.steps)] if args.steps else []
        times["stage 1"].append(
            eid(
                "train-operator",
                "--clear",
                str(root / "clear"),
                "--hazy",
                str(root / "train"),
                "--out",
                str(run / "op"),
                "--preset",
                args.task,
                "--seed",
                seed,
                *budget1,
                *threads,
                *args.stage1_args.split(),
            )
        )
        times["stage 2"].append(
            eid(
                "train",
                "--hazy",
                str(root / "train"),
                "--operator",
                str(run / "op"),
                "--out",
                str(run / "eid"),
                "--preset",
                args.task,
                "--seed",
                seed,
                *budget2,
                *threads,
                *args.stage2_args.split(),
            )
        )
        for name, method in (
            ("H^dagger only", ["--method", "cyclegan", "--operator", str(run / "op")]),
            ("EID", ["--model", str(run / "eid")]),
        ):
            eid("dehaze", *method, str(root / "test-hazy"), "--out", str(run / name), *threads)
            results.setdefault(name, []).append(
                scores(run / name, root / "test-clear", run / f"{name}.json")
            )
    (args.out / "results.json").write_text(
        json.dumps({"results": results, "times": times}, indent=2)
    )
    print("| method | PSNR (dB), mean (min-max) | SSIM, mean (min-max) |\n|---|---|---|")
    for name, rows in results.items():
        cells = []
        for metric in ("psnr", "ssim"):
            values = [r[metric] for r in rows]
            spread = f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.{2 if metric == 'psnr' else 4}f}{spread}")
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    print(
        f"\nwall time per seed: stage 1 {[round(t) for t in times['stage 1']]} s, stage 2 {[round(t) for t in times['stage 2']]} s"
    )


if __name__ == "__main__":
    main()
