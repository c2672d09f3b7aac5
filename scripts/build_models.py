"""Rebuild the models shipped in ``eid.zoo`` from scratch, deterministically, through the CLI.

For each model: write its data (bundled or shared images, freely licensed), haze them with ``eid synth`` (``--seed``),
train both stages with ``eid train-operator`` / ``eid train`` (the modality preset, ``--seed``, ``--threads``),
score the held-out crops with ``eid dehaze`` + ``eid evaluate``, then copy the run folder's exports into
``src/eid/zoo/models/NAME`` (``--models``) with its model card (``MODEL.md``: data, licences, the commit that built
it, the scores). The build's folders recorded in the exports' YAMLs and card are written as
``<build_models.py --work>/...``: informational, never a folder a user's run resolves.

* ``microscopy``: the nuclei image of ``../shared/data/nuclei`` (StarDist BSD-3, DSB 2018 / BBBC038 CC0), scaled by
  its maximum, cut into 64x64 crops as the microscopy benchmark does: 128 random crops of rows 0-255 clear (unpaired),
  128 of rows 256-511 hazed with the veil model for training (both in columns 0-383), the grid of columns 384-511
  held out (hazed with another seed) for the scores. The crops are hazed on the image's one scale (``eid.synth``'s
  veil, the benchmark's 6 px blur), not by ``eid synth``, which reads each file at its own maximum (``white=max``):
  on crops of one image that scales each crop's veil by the crop's brightness, a faint haze that stage 1 could not
  tell from the clear crops (see docs/models.md).
* ``natural``: scikit-image's bundled public-domain / CC0 photos, the demo's roles (``eid.demo_data``: astronaut, Hubble
  deep field, immunohistochemistry clear; coffee, rocket, retina, chelsea hazed with a random smooth depth and the
  ASM, left two thirds for training, right third held out).

Run: .venv/bin/python scripts/build_models.py [--only microscopy] [--work /tmp/eid-models] [--threads 1] [--models DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from eid.data.io import read_image, write_image
from eid.demo_data import CLEAR_SET, TRAIN_SET, bundled_image
from eid.physics.generators import image_seed
from eid.synth import SynthConfig, synthesize
from eid.zoo import MODELS_DIR

ROOT = Path(__file__).resolve().parents[1]
EID = [str(Path(sys.executable).parent / "eid")]
NUCLEI = ROOT.parent / "shared" / "data" / "nuclei" / "img2d.tif"
SEED = 0
MODELS = ("microscopy", "natural")
HAZE = {
    "natural": ["--model", "asm", "--depth", "random", "--depth-range", "0.3,1.5", "--beta-range", "0.4,0.9",
                "--airlight-range", "0.7,0.9"],
}  # fmt: skip
"""``eid synth`` options of the natural model's haze."""
STAGE2 = {"natural": {"model": {"dcp_set_weight": 0.0}}}
"""Stage-2 config changes to a model's preset. A shipped model meets other photos than its training set's, so the
natural starter reads each image's own airlight: pooled with its synthetic training set's (``dcp_set_weight`` 0.5, the
preset's), its held-out score rose from 19.05 to 19.72 dB but the benchmark's motorcycle crops fell from 21.60 to
18.80 (``bench_starters.py``). Fine-tuning with ``--init-from natural`` pools with the user's own set again."""
VEIL = SynthConfig(model="veil", veil_sigma=0.09375)
"""The microscopy haze (:func:`haze_crops`): the veil's default ranges, a 6 px blur on 64x64 as the benchmark's."""
WORK_MARK = "<build_models.py --work>"
"""What the build's work folder reads as in the shipped YAMLs and card (those folders are not shipped)."""
FACTS = Path(__file__).with_name("model_facts.json")
"""Per model: summary, training-data licence, weights licence, intended use and limits (the card's prose)."""


def eid(*args: str) -> float:
    """Run one ``eid`` command; return its wall time; stop with its output on failure."""
    start = time.monotonic()
    done = subprocess.run([*EID, *args], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"eid {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.monotonic() - start


def tiles(image: torch.Tensor, rows: slice, cols: slice, side: int = 128) -> list[torch.Tensor]:
    """Non-overlapping ``side`` x ``side`` tiles of ``image[:, rows, cols]``, row by row."""
    part = image[:, rows, cols]
    h, w = part.shape[-2:]
    return [
        part[:, i : i + side, j : j + side]
        for i in range(0, h - side + 1, side)
        for j in range(0, w - side + 1, side)
    ]


def random_tiles(
    region: torch.Tensor, rng: torch.Generator, n: int = 128, side: int = 64
) -> list[torch.Tensor]:
    """``n`` seeded random ``side`` x ``side`` crops of ``region`` (as ``benchmarks/bench_microscopy_quality.py``)."""
    h, w = region.shape[-2:]
    tops = torch.randint(h - side + 1, (n,), generator=rng).tolist()
    lefts = torch.randint(w - side + 1, (n,), generator=rng).tolist()
    return [region[:, t : t + side, s : s + side] for t, s in zip(tops, lefts)]


def clear_sets(name: str) -> dict[str, list[torch.Tensor]]:
    """The clear images of each role: ``clear`` (unpaired), ``train`` (to haze), ``test`` (held out)."""
    if name == "microscopy":
        import tifffile

        image = torch.from_numpy(tifffile.imread(NUCLEI).astype("float32"))[None]
        image = image / image.max()
        rng = torch.Generator().manual_seed(SEED)
        return {"clear": random_tiles(image[:, :256, :384], rng), "train": random_tiles(image[:, 256:, :384], rng),
                "test": tiles(image, slice(0, 512), slice(384, 512), 64)}  # fmt: skip
    photos = {n: bundled_image(n, 192) for n in CLEAR_SET + TRAIN_SET}
    split = {n: photos[n].shape[-1] * 2 // 3 for n in TRAIN_SET}
    return {"clear": [photos[n] for n in CLEAR_SET],
            "train": [photos[n][..., : split[n]] for n in split],
            "test": [t for n in split for t in tiles(photos[n], slice(0, 192), slice(split[n], None), 96)]}  # fmt: skip


def build_data(name: str, root: Path) -> None:
    """Write ``root/{clear,train-clear,test-clear}`` and haze the last two with ``eid synth``."""
    for role, images in clear_sets(name).items():
        for i, image in enumerate(images):
            write_image(
                root / ("clear" if role == "clear" else f"{role}-clear") / f"{name}_{i:03d}.png",
                image,
            )
    for role, seed in (("train", SEED), ("test", SEED + 1)):
        if name == "microscopy":
            haze_crops(root / f"{role}-clear", root / f"{role}-synth", seed)
        else:
            eid(
                "synth",
                str(root / f"{role}-clear"),
                "--out",
                str(root / f"{role}-synth"),
                *HAZE[name],
                "--seed",
                str(seed),
            )


def haze_crops(clear: Path, out: Path, seed: int) -> None:
    """Haze the crops of ``clear`` with :data:`VEIL` as read at ``white=dtype`` (the image's one scale), each with
    the seed ``eid synth --seed`` would give it; write ``out/{hazy,clear}`` and ``out/params.json`` as it does."""
    records = []
    for path in sorted(clear.iterdir()):
        x, meta = read_image(path, white="dtype")
        hazy, record, _ = synthesize(x, VEIL, image_seed(seed, path.name))
        write_image(out / "hazy" / path.name, hazy, meta)
        write_image(out / "clear" / path.name, x, meta)
        records.append({"name": path.name, **record})
    (out / "params.json").write_text(
        json.dumps({"white": "dtype", "images": records}, indent=2) + "\n"
    )


def build(name: str, work: Path, threads: str, models: Path) -> None:
    """Train ``name`` in ``work/name`` and copy it with its card to ``models/name``."""
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], check=True, cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    root = work / name
    shutil.rmtree(root, ignore_errors=True)
    build_data(name, root / "data")
    data, common = root / "data", ["--preset", name, "--seed", str(SEED), "--threads", threads]
    eid("train-operator", "--clear", str(data / "clear"), "--hazy", str(data / "train-synth" / "hazy"),
        "--out", str(root / "operator"), *common)  # fmt: skip
    changes = []
    if name in STAGE2:
        (root / "stage2.yaml").write_text(yaml.safe_dump(STAGE2[name]))
        changes = ["--config", str(root / "stage2.yaml")]
    eid("train", "--hazy", str(data / "train-synth" / "hazy"), "--operator", str(root / "operator"),
        "--out", str(root / "eid"), *common, *changes)  # fmt: skip
    package(name, root, threads, commit, models / name)


def package(name: str, root: Path, threads: str, commit: str, target: Path) -> None:
    """Score ``root/eid`` on the held-out crops; copy it with its card to ``target``, the work folder's paths marked."""
    from eid.training.model_card import write_model_card
    from eid.zoo import ZOO_FILES

    data, scores = root / "data", {}
    for method, args in (
        ("hazy input", None),
        ("DCP", ["--method", "dcp"]),
        ("EID", ["--model", str(root / "eid")]),
    ):
        pred = data / "test-synth" / "hazy" if args is None else root / method
        if args is not None:
            eid(
                "dehaze",
                *args,
                str(data / "test-synth" / "hazy"),
                "--out",
                str(pred),
                "--threads",
                threads,
            )
        eid(
            "evaluate",
            "--pred",
            str(pred),
            "--ref",
            str(data / "test-synth" / "clear"),
            "--json",
            str(root / f"{method}.json"),
        )
        scores[method] = json.loads((root / f"{method}.json").read_text())["metrics"]
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for file in ZOO_FILES:
        shutil.copy2(root / "eid" / file, target / file)
    held_out = {
        f"{method} {metric.upper()}": value
        for method, row in scores.items()
        for metric, value in row.items()
    }
    facts = json.loads(FACTS.read_text())[name]
    write_model_card(target, source=root / "eid", held_out=held_out, commit=commit, **facts)
    for file in target.iterdir():
        if file.suffix in (".yaml", ".md"):
            file.write_text(file.read_text().replace(str(root.parent.resolve()), WORK_MARK))
    print(
        f"{name}: {target} ({sum(f.stat().st_size for f in target.iterdir()) / 1e6:.2f} MB) {held_out}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=MODELS, help="build one model (default: all)")
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/eid-build-models"), help="data and runs"
    )
    parser.add_argument("--threads", default="1", help="torch threads of each command")
    parser.add_argument(
        "--models",
        type=Path,
        default=MODELS_DIR,
        help="where the model folders go (default: the package's)",
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", args.threads)
    for name in [args.only] if args.only else MODELS:
        build(name, args.work, args.threads, args.models)


if __name__ == "__main__":
    main()
