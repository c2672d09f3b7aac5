"""Endoscopic smoke through the default CLI path: no-reference scores inside the field of view and a labelled grid.

Data: ``../shared/data/cholec80-smoke`` (the EID authors' sample: 10 hazy frames and 1 clear frame, 480x480;
CC BY-NC-SA 4.0, benchmarks only, never shipped). For each seed: ``eid train-operator --preset endoscopy``
(the scattering operator) and ``eid train --preset endoscopy`` (prior on: the one clear frame is the prior's
whole clear set), plus a CycleGAN operator with the same preset (``--operator-model cyclegan``) for the
paper's "CycleGAN-only" row. Then ``eid dehaze`` with DCP, each operator's ``H^dagger`` and EID, and
``eid evaluate --metrics fade,niqe,brisque --mask circle --mask-from HAZY`` (every method scored on the
hazy frame's field of view). Lower is better for all three.

Prints a markdown table (mean (min-max) over the seeds) and writes ``OUT/grid.png``: the ten frames as
rows, input | DCP | CycleGAN-only | ``H^dagger`` | EID (the first seed) as columns, each titled with its
FADE inside the field of view. The grid shows Cholec80 frames: keep it out of the repository.

Run: .venv/bin/python benchmarks/bench_endoscopy.py --out OUT [--seeds 0,1]
Variants pass flags through, as in ``bench_quality_cli.py``: ``--stage1-args "--config op.yaml"``,
``--stage2-args "--config dehazer.yaml"``; ``--no-cyclegan`` skips the CycleGAN operator.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality_cli import eid

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cholec80-smoke"
METRICS = ("fade@mask", "niqe@mask", "brisque@mask")


def scores(pred: Path, hazy: Path, out: Path) -> dict[str, dict[str, float]]:
    """Per-image no-reference scores inside the hazy frames' field of view: ``{image: {metric: value}}``."""
    eid(
        "evaluate",
        "--pred",
        str(pred),
        "--metrics",
        "fade,niqe,brisque",
        "--mask",
        "circle",
        "--mask-from",
        str(hazy),
        "--csv",
        str(out),
        "--quiet",
    )
    with out.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["name"] != "mean"]
    return {r["name"]: {m: float(r[m]) for m in METRICS} for r in rows}


def grid(
    columns: dict[str, Path], per_image: dict[str, dict[str, dict[str, float]]], out: Path
) -> None:
    """Rows: the frames; columns: the methods, titled with FADE inside the field of view."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    names = sorted(per_image["input"])
    fig, axes = plt.subplots(
        len(names), len(columns), figsize=(2.2 * len(columns), 2.3 * len(names)), squeeze=False
    )
    for row, name in enumerate(names):
        for col, (label, folder) in enumerate(columns.items()):
            ax = axes[row][col]
            ax.imshow(Image.open(folder / name))
            ax.set_title(f"{label}\nFADE {per_image[label][name]['fade@mask']:.2f}", fontsize=8)
            ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--stage1-args", default="", help="extra eid train-operator flags (the scattering operator)"
    )
    parser.add_argument("--stage2-args", default="", help="extra eid train flags")
    parser.add_argument(
        "--no-cyclegan", action="store_true", help="skip the CycleGAN-only operator"
    )
    args = parser.parse_args()
    if not (args.data / "hazy").is_dir():
        sys.exit(f"{args.data}: no cholec80-smoke sample here; pass --data to its folder")
    hazy, clear, threads = args.data / "hazy", args.data / "clear", ["--threads", str(args.threads)]
    args.out.mkdir(parents=True, exist_ok=True)
    eid("dehaze", "--method", "dcp", str(hazy), "--out", str(args.out / "dcp"), *threads)
    per_seed: dict[str, list[dict[str, dict[str, float]]]] = {
        "input": [scores(hazy, hazy, args.out / "input.csv")], "DCP": [scores(args.out / "dcp", hazy, args.out / "dcp.csv")],
    }  # fmt: skip
    folders: dict[str, Path] = {"input": hazy, "DCP": args.out / "dcp"}
    for seed in args.seeds.split(","):
        run = args.out / f"seed{seed}"
        common = ["--preset", "endoscopy", "--seed", seed, *threads]
        eid(
            "train-operator",
            "--clear",
            str(clear),
            "--hazy",
            str(hazy),
            "--out",
            str(run / "scattering"),
            *common,
            *shlex.split(args.stage1_args),
        )
        eid(
            "train",
            "--hazy",
            str(hazy),
            "--operator",
            str(run / "scattering"),
            "--out",
            str(run / "eid"),
            *common,
            *shlex.split(args.stage2_args),
        )
        methods = {
            "H† (scattering)": ["--method", "cyclegan", "--operator", str(run / "scattering")],
            "EID": ["--model", str(run / "eid")],
        }
        if not args.no_cyclegan:
            eid(
                "train-operator",
                "--clear",
                str(clear),
                "--hazy",
                str(hazy),
                "--out",
                str(run / "cyclegan"),
                "--operator-model",
                "cyclegan",
                *common,
            )
            methods = {
                "CycleGAN-only": ["--method", "cyclegan", "--operator", str(run / "cyclegan")],
                **methods,
            }
        for label, method in methods.items():
            folder = run / "".join(c if c.isalnum() else "-" for c in label)
            eid("dehaze", *method, str(hazy), "--out", str(folder), *threads)
            per_seed.setdefault(label, []).append(scores(folder, hazy, folder.with_suffix(".csv")))
            folders.setdefault(label, folder)  # the grid shows the first seed
    print(f"| method | {' | '.join(METRICS)} |\n|---|{'---|' * len(METRICS)}")
    for label, seeds in per_seed.items():
        means = [[statistics.mean(v[m] for v in s.values()) for s in seeds] for m in METRICS]
        cells = [
            f"{statistics.mean(x):.3f}" + (f" ({min(x):.3f}-{max(x):.3f})" if len(x) > 1 else "")
            for x in means
        ]
        print(f"| {label} | {' | '.join(cells)} |")
    grid(folders, {label: seeds[0] for label, seeds in per_seed.items()}, args.out / "grid.png")
    print(f"\ngrid: {args.out / 'grid.png'}")


if __name__ == "__main__":
    main()
