"""Fine-tuning from the shipped ``microscopy`` starter against training from scratch, at the same stage-2 budgets.

Data: ``../shared/data/nuclei/img2d.tif`` scaled by its maximum, 64x64 crops written as 8-bit PNG and hazed as
``scripts/build_models.py`` hazes the starter's data (``eid.synth``'s veil, 6 px blur, on the image's one scale):

* ``train``: 128 random crops of rows 0-255, columns 384-511, hazed (seed 10): image content the starter never saw
  (it trained on columns 0-383);
* ``clear``: the unpaired clear crops of the adversarial prior, 128 random crops of rows 0-255, columns 0-383;
* ``test``: the grid of rows 256-511, columns 384-511 (8 crops), hazed (seed 11): disjoint from ``train``,
  ``clear`` and every crop the starter trained on (all in columns 0-383).

For each budget N (``--steps``) and seed: ``eid train --operator microscopy --clear CLEAR --preset microscopy
--max-steps N --seed S``, from scratch and with ``--init-from microscopy``; the same operator (the starter's
stage 1) for both. Then ``eid dehaze`` + ``eid evaluate`` on the test crops, also for the hazy input, DCP and the
starter as shipped (0 steps). Prints a markdown table (mean and min-max over the seeds, wall time of the
training) and writes ``results.json``.

Run: .venv/bin/python benchmarks/bench_finetune.py --out OUT [--steps 20,50,160] [--seeds 0,1] [--threads 1]
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

from eid.data.io import write_image
from eid.physics.generators import image_seed
from eid.synth import SynthConfig, synthesize

IMAGE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nuclei" / "img2d.tif"
EID = shlex.split(os.environ.get("EID_BIN", str(Path(sys.executable).parent / "eid")))
"""The ``eid`` command (``EID_BIN`` overrides it, e.g. ``"python3 -m eid"``)."""
VEIL = SynthConfig(model="veil", veil_sigma=0.09375)
"""The starter's haze (``scripts/build_models.py``): the veil's default ranges, a 6 px blur on 64x64."""
CROP = 64


def random_crops(region: torch.Tensor, n: int, rng: torch.Generator) -> list[torch.Tensor]:
    """``n`` seeded random ``CROP`` x ``CROP`` crops of ``region``."""
    h, w = region.shape[-2:]
    tops = torch.randint(h - CROP + 1, (n,), generator=rng).tolist()
    lefts = torch.randint(w - CROP + 1, (n,), generator=rng).tolist()
    return [region[:, t : t + CROP, s : s + CROP] for t, s in zip(tops, lefts)]


def write_data(root: Path) -> None:
    """Write ``root/{clear,train,test-hazy,test-clear}`` (see the module docstring)."""
    import tifffile

    image = torch.from_numpy(tifffile.imread(IMAGE).astype("float32"))[None]
    image = (image / image.max() * 255).round() / 255  # the 8-bit PNG values, hazed as read back
    rng = torch.Generator().manual_seed(0)
    test = [
        image[:, i : i + CROP, j : j + CROP]
        for i in range(256, 512, CROP)
        for j in range(384, 512, CROP)
    ]
    sets = {
        "clear": random_crops(image[:, :256, :384], 128, rng),
        "train": random_crops(image[:, :256, 384:], 128, rng),
    }
    for i, crop in enumerate(sets["clear"]):
        write_image(root / "clear" / f"{i:03d}.png", crop)
    for folder, crops, seed in (("train", sets["train"], 10), ("test-hazy", test, 11)):
        for i, crop in enumerate(crops):
            write_image(
                root / folder / f"{i:03d}.png",
                synthesize(crop, VEIL, image_seed(seed, f"{i:03d}.png"))[0],
            )
    for i, crop in enumerate(test):
        write_image(root / "test-clear" / f"{i:03d}.png", crop)


def eid(*args: str) -> float:
    """Run one ``eid`` command; return its wall time; stop with its output on failure."""
    start = time.perf_counter()
    done = subprocess.run([*EID, *args], check=False, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"eid {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def score(method: list[str], data: Path, out: Path, threads: str) -> dict[str, float]:
    """PSNR / SSIM of ``eid dehaze METHOD`` (the hazy input itself when ``method`` is empty) on the test crops."""
    pred = data / "test-hazy"
    if method:
        pred = out / "pred"
        eid("dehaze", *method, str(data / "test-hazy"), "--out", str(pred), "--threads", threads)
    eid(
        "evaluate",
        "--pred",
        str(pred),
        "--ref",
        str(data / "test-clear"),
        "--metrics",
        "psnr,ssim",
        "--json",
        str(out / "scores.json"),
    )
    return json.loads((out / "scores.json").read_text())["metrics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", default="20,50,160", help="stage-2 budgets N (--max-steps)")
    parser.add_argument("--seeds", default="0", help="training seeds")
    parser.add_argument("--threads", default="1")
    args = parser.parse_args()
    data, threads = args.out / "data", args.threads
    if not (data / "test-clear").is_dir():
        write_data(data)
    rows: dict[str, list[dict[str, float]]] = {}
    for name, method in (
        ("hazy input", []),
        ("DCP", ["--method", "dcp"]),
        ("starter as shipped (0 steps)", ["--model", "microscopy"]),
    ):
        rows[name] = [score(method, data, args.out / name.split()[0], threads)]
    for steps in args.steps.split(","):
        for start, init in (("scratch", []), ("from the starter", ["--init-from", "microscopy"])):
            for seed in args.seeds.split(","):
                run = args.out / f"{start.split()[-1]}-{steps}-seed{seed}"
                wall = eid("train", "--hazy", str(data / "train"), "--operator", "microscopy", "--clear", str(data / "clear"),
                           "--out", str(run), "--preset", "microscopy", "--max-steps", steps, "--seed", seed,
                           "--threads", threads, *init)  # fmt: skip
                result = score(["--model", str(run)], data, run, threads) | {"wall_s": wall}
                rows.setdefault(f"{start}, N = {steps}", []).append(result)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("| stage 2 | PSNR (dB) | SSIM | training wall time (s) | seeds |\n|---|---|---|---|---|")
    for name, results in rows.items():
        cells = []
        for key, digits in (("psnr", 2), ("ssim", 3), ("wall_s", 0)):
            values = [r[key] for r in results if key in r]
            spread = (
                f" ({min(values):.{digits}f}-{max(values):.{digits}f})" if len(values) > 1 else ""
            )
            cells.append(f"{statistics.mean(values):.{digits}f}{spread}" if values else "")
        print(
            f"| {name} | {' | '.join(cells)} | {len(results) if 'wall_s' in results[0] else ''} |"
        )


if __name__ == "__main__":
    main()
