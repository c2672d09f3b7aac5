"""The shipped starter models on the test crops of the quality benchmark (``bench_quality_cli.py``), with no training.

Writes the benchmark's data of each task (``bench_quality_cli.microscopy_data`` / ``natural_data``; an existing
``OUT/TASK/data`` is reused, so ``--out`` may point at a ``bench_quality_cli.py --out`` folder), then scores with
``eid dehaze`` + ``eid evaluate`` on ``test-hazy`` against ``test-clear``: the hazy input, DCP and the starter of the
same name (``eid dehaze --model TASK``). A model trained from scratch on the benchmark's own training set is
``bench_quality_cli.py --task TASK``'s EID row.

Disjointness: the microscopy test grid is columns 384-511 of the nuclei image, the ``microscopy`` starter trained on
crops of columns 0-383 (``scripts/build_models.py``); the natural test crops are of ``stereo_motorcycle``, which the
``natural`` starter never saw.

Run: .venv/bin/python benchmarks/bench_starters.py --out OUT [--tasks microscopy,natural] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality_cli import eid, microscopy_data, natural_data, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tasks", default="microscopy,natural")
    parser.add_argument("--threads", default="1")
    args = parser.parse_args()
    results: dict[str, dict[str, dict[str, float]]] = {}
    print("| task | method | PSNR (dB) | SSIM |\n|---|---|---|---|")
    for task in args.tasks.split(","):
        out = args.out / task
        data = out / "data"
        if not (data / "test-hazy").is_dir():
            (microscopy_data if task == "microscopy" else natural_data)(data)
        rows = results.setdefault(task, {})
        rows["hazy input"] = scores(data / "test-hazy", data / "test-clear", out / "hazy.json")
        for name, method in (
            ("DCP", ["--method", "dcp"]),
            (f"starter `{task}`", ["--model", task]),
        ):
            pred = out / name.split()[0]
            eid(
                "dehaze",
                *method,
                str(data / "test-hazy"),
                "--out",
                str(pred),
                "--threads",
                args.threads,
            )
            rows[name] = scores(pred, data / "test-clear", out / f"{pred.name}.json")
        for name, row in rows.items():
            print(f"| {task} | {name} | {row['psnr']:.2f} | {row['ssim']:.3f} |")
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
