"""Diagnose a ``microscopy`` build (``scripts/build_models.py --work WORK``): how strong its haze is, what its operator
``H`` learned and what its dehazer does, on the held-out crops as written and as ``eid.synth`` hazes them in memory.

Prints, from the files of ``WORK/microscopy`` (read at ``white=dtype``, as ``eid train`` and ``eid dehaze`` read them):

* mean and standard deviation of each set: the unpaired clear crops (stage 1's ``--clear``), the training crops clear
  and hazed (stage 1's and 2's ``--hazy``), the held-out crops clear and hazed;
* per held-out crop: its maximum, its mean, the hazy file's mean, ``H``'s output mean on the clear crop, and the PSNR
  of the hazy file and of the dehazed file (``eid dehaze`` with the run's dehazer, in memory); the same crop hazed
  by ``eid.synth.synthesize`` at the image's scale (the crop's seed, ``--veil-sigma`` as given) and dehazed; and
  how far the hazy file is from ``max * synthesize(crop / max)``, i.e. the veil read at the crop's own maximum
  (``white=max``, what ``eid synth --model veil`` does to each file).

Run: .venv/bin/python benchmarks/bench_veil_scale.py --work WORK [--veil-sigma 0.05] [--seed 1]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

from eid.data.io import read_image
from eid.inference import Dehazer
from eid.metrics.paired import psnr
from eid.physics import load_operator
from eid.physics.generators import image_seed
from eid.synth import SynthConfig, synthesize


def read_set(folder: Path) -> dict[str, torch.Tensor]:
    """The images of ``folder`` by name, read at ``white=dtype``."""
    return {p.name: read_image(p, white="dtype")[0] for p in sorted(folder.iterdir())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a build_models.py --work folder")
    parser.add_argument(
        "--veil-sigma",
        type=float,
        default=0.05,
        help="the in-memory veil's blur (fraction of the side)",
    )
    parser.add_argument("--seed", type=int, default=1, help="the held-out crops' synth seed")
    args = parser.parse_args()
    root = args.work / "microscopy"
    data = root / "data"
    print("| set | mean | std |\n|---|---|---|")
    for sub in (
        "clear",
        "train-synth/clear",
        "train-synth/hazy",
        "test-synth/clear",
        "test-synth/hazy",
    ):
        stack = torch.stack(list(read_set(data / sub).values()))
        print(f"| {sub} | {stack.mean():.4f} | {stack.std():.4f} |")
    operator, dehazer = load_operator(root / "eid"), Dehazer.load(root / "eid", device="cpu")
    config = SynthConfig(model="veil", veil_sigma=args.veil_sigma)
    clear, hazy = read_set(data / "test-synth" / "clear"), read_set(data / "test-synth" / "hazy")
    rows = []
    for name, x in clear.items():
        peak, seed = float(x.max()), image_seed(args.seed, name)
        memory = synthesize(x, config, seed)[0]
        with torch.no_grad():
            h_x = operator.A(x[None])[0]
        at_max = synthesize(x / peak, config, seed)[0] * peak
        scores = [
            psnr(y[None].clamp(0, 1), x[None]).item()
            for y in (hazy[name], dehazer(hazy[name]), memory, dehazer(memory))
        ]
        rows.append([peak, x.mean().item(), hazy[name].mean().item(), h_x.mean().item(), *scores,
                     (hazy[name] - at_max).abs().max().item()])  # fmt: skip
    print("\n| crop | max | mean clear | mean hazy file | mean H(clear) | PSNR file hazy -> EID | PSNR in-memory hazy -> EID |"
          " max abs(file - max * synth(crop / max)) |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    for name, r in zip(clear, rows):
        print(
            f"| {name} | {r[0]:.2f} | {r[1]:.3f} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.2f} -> {r[5]:.2f} | {r[6]:.2f} -> {r[7]:.2f} | {r[8]:.4f} |"
        )
    mean = [statistics.mean(r[i] for r in rows) for i in range(9)]
    print(f"| mean | {mean[0]:.2f} | {mean[1]:.3f} | {mean[2]:.3f} | {mean[3]:.3f} | {mean[4]:.2f} -> {mean[5]:.2f} |"
          f" {mean[6]:.2f} -> {mean[7]:.2f} | {max(r[8] for r in rows):.4f} |")  # fmt: skip


if __name__ == "__main__":
    main()
