"""Microscopy quality: EID vs. DCP, CycleGAN-only and a supervised upper bound on synthetic veil haze.

Data: ``../shared/data/nuclei/img2d.tif`` (512x512 fluorescence nuclei), scaled by its maximum.
Disjoint regions: columns 0-383 for training (rows 0-255: unpaired *clear* crops for stage 1 and the
adversarial prior; rows 256-511: the *hazy* training crops), columns 384-511 for the test crops (a
non-overlapping grid). Each crop is hazed with the microscopy veil of :mod:`eid.physics.generators`,
``y = clip(c x + v G_sigma x / max G_sigma x + b F)``, with its own random ``c, v, b, F``.

Methods (all networks: the ``microscopy`` preset's dehazer, hazy input; the group is rot90*flip; the same
number of steps for every trained dehazer; the adversarial prior only where the row says so):
  hazy               the input itself
  DCP                eid.baselines.dcp with default parameters
  CycleGAN-only      G_BA of the stage-1 run (``fast`` operator preset: residual generators)
  EID (learned H)    stage 2 with the stage-1 G_AB as H (hazy input, the fast default)
  EID pinv (...)     the same with the pseudo-inverse input G_BA(y) (the authors' choice)
  EID alpha=0        the same with the equivariance term off (haze consistency only)
  EID + adversarial  the same plus the adversarial prior (weight 0.01) on unpaired clear crops
  EID (veil oracle)  stage 2 with the true veil operator and each crop's true parameters
  supervised         the same UNet trained with MSE to the clear crops (upper bound)

``--tta`` adds, for every trained row, the same model averaged over the training group at test time
(``eid.inference.Dehazer(..., tta=group)``, the user path), and both rows' median inference time per crop.

Run: .venv/bin/python benchmarks/bench_microscopy_quality.py [--steps 300] [--stage1-steps 600] [--seed 0] [--tta] [--out DIR]
Prints a markdown table and writes ``metrics.json`` and a few example images to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import tifffile
import torch
from deepinv.physics import Physics
from torch import Tensor

from eid import inference
from eid.baselines.dcp import DarkChannelPrior
from eid.config import load_config
from eid.data.io import write_image
from eid.metrics.paired import psnr, ssim
from eid.models import DehazerConfig, DehazerNet
from eid.physics import LearnedHaze
from eid.physics.generators import VeilParamGenerator, apply_veil
from eid.training.data import ImageDataModule
from eid.training.eid import EIDConfig, EIDModule
from eid.training.operator import OperatorConfig, fit_operator
from eid.training.trainer import build_trainer, fit

IMAGE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nuclei" / "img2d.tif"
CROP = 64
SIGMA = 6.0  # veil blur in pixels for 64x64 crops


class VeilHaze(Physics):
    """The microscopy veil as an analytic operator with per-image buffers (the oracle's ``H``)."""

    def __init__(self, sigma: float = SIGMA) -> None:
        super().__init__()
        self.sigma = sigma
        for name in ("contrast", "veil", "background", "field"):
            self.register_buffer(name, torch.zeros(1, 1, 1, 1))

    def A(self, x: Tensor, **kwargs: Any) -> Tensor:
        n = len(x)
        flat = [
            getattr(self, k).expand(n, -1, -1, -1).reshape(n)
            for k in ("contrast", "veil", "background")
        ]
        return apply_veil(x, *flat, self.field.expand(n, -1, -1, -1), self.sigma)


def crops(image: Tensor, rows: slice, cols: slice, n: int | None, rng: torch.Generator) -> Tensor:
    """``n`` random 64x64 crops of a region, or its non-overlapping grid when ``n`` is None."""
    region = image[:, rows, cols]
    h, w = region.shape[-2:]
    if n is None:
        return torch.stack(
            [
                region[:, i : i + CROP, j : j + CROP]
                for i in range(0, h - CROP + 1, CROP)
                for j in range(0, w - CROP + 1, CROP)
            ]
        )
    tops = torch.randint(h - CROP + 1, (n,), generator=rng).tolist()
    lefts = torch.randint(w - CROP + 1, (n,), generator=rng).tolist()
    return torch.stack([region[:, t : t + CROP, s : s + CROP] for t, s in zip(tops, lefts)])


def veil(clear: Tensor, seed: int) -> tuple[Tensor, dict[str, Tensor]]:
    params = VeilParamGenerator(
        img_size=(CROP, CROP), rng=torch.Generator().manual_seed(seed)
    ).step(len(clear), seed=seed)
    hazy = apply_veil(
        clear, params["contrast"], params["veil"], params["background"], params["field"], SIGMA
    )
    buffers = {k: params[k].view(-1, 1, 1, 1) for k in ("contrast", "veil", "background")} | {
        "field": params["field"]
    }
    return hazy, buffers


class Items(torch.utils.data.Dataset):
    """In-memory items keyed by ``(index, seed)`` (the stage-2 loader's keys); a random flip pair."""

    def __init__(self, **tensors: Tensor) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Tensor]:
        index, _ = key
        return {k: v[index] for k, v in self.tensors.items()}


def train_eid(
    cfg: EIDConfig, physics: Any, train: Items, run_dir: Path, clear: Items | None = None
) -> DehazerNet:
    L.seed_everything(cfg.seed, verbose=False)
    module = EIDModule(cfg, physics=physics, clear=clear, run_dir=run_dir)
    trainer = build_trainer(
        run_dir,
        max_steps=cfg.max_steps,
        progress=False,
        samples=False,
        checkpoint_every_n_epochs=0,
        steps_per_batch=2 if module.adversarial else 1,
        log_every=25,
    )
    fit(trainer, module, ImageDataModule(train, cfg.batch_size, cfg.seed))
    return module.dehazer.eval()


def train_supervised(
    model_cfg: DehazerConfig, hazy: Tensor, clear: Tensor, cfg: EIDConfig
) -> DehazerNet:
    """The same UNet, MSE to the clear targets, same steps/batch/lr/schedule as EID."""
    torch.manual_seed(cfg.seed)
    f = DehazerNet(model_cfg)
    opt = torch.optim.Adam(f.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.max_steps)
    g = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.max_steps):
        idx = torch.randint(len(hazy), (cfg.batch_size,), generator=g)
        loss = torch.nn.functional.mse_loss(f(hazy[idx]), clear[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return f.eval()


def score(pred: Tensor, clear: Tensor) -> dict[str, float]:
    return {"psnr": float(psnr(pred, clear).mean()), "ssim": float(ssim(pred, clear).mean())}


def crop_ms(
    runners: dict[str, inference.Dehazer], hazy: Tensor, repeats: int = 3
) -> dict[str, float]:
    """Median wall time (ms) of each runner on one crop, interleaved crop by crop (same machine load)."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for runner in runners.values():
        runner.run(hazy[:1])  # warm-up
    for _ in range(repeats):
        for crop in hazy.split(1):
            for name, runner in runners.items():
                t0 = time.perf_counter()
                runner.run(crop)
                times[name].append(1000 * (time.perf_counter() - t0))
    return {name: round(statistics.median(t), 2) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=300, help="stage-2 (and supervised) training batches"
    )
    parser.add_argument(
        "--stage1-steps", type=int, default=600, help="stage-1 CycleGAN training batches"
    )
    parser.add_argument(
        "--stage1-config",
        type=Path,
        default=None,
        help="YAML merged over the fast operator preset (e.g. loss: {lambda_id: 0})",
    )
    parser.add_argument(
        "--stage1-run",
        type=Path,
        default=None,
        help="reuse this stage-1 run folder instead of training one",
    )
    parser.add_argument(
        "--n-train", type=int, default=128, help="hazy training crops (and as many clear crops)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of every trained row (stage 1, EID, supervised)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--tta", action="store_true", help="also score trained models with test-time averaging"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated method names to run (default: all)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for metrics.json and example images"
    )
    args = parser.parse_args()
    if not IMAGE.is_file():
        sys.exit(f"{IMAGE} not found")
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="eid-bench-micro-"))
    out = args.out or work / "out"
    start = time.perf_counter()

    image = torch.from_numpy(tifffile.imread(IMAGE).astype("float32"))[None]
    image = image / image.max()
    rng = torch.Generator().manual_seed(0)
    clear_unpaired = crops(image, slice(0, 256), slice(0, 384), args.n_train, rng)
    clear_train = crops(image, slice(256, 512), slice(0, 384), args.n_train, rng)
    clear_test = crops(image, slice(0, 512), slice(384, 512), None, rng)
    hazy_train, buffers_train = veil(clear_train, seed=1)
    hazy_test, _ = veil(clear_test, seed=2)  # stage 1 and EID see only the training hazy crops

    # the prior is off except in the row that names it (the preset has turned it on since)
    cfg = load_config(
        EIDConfig, "dehazer", preset="microscopy",
        overrides={"max_steps": args.steps, "adversarial_weight": 0.0, "seed": args.seed},
    )  # fmt: skip
    cfg.model.channels = 1
    wanted = set(filter(None, args.only.split(",")))
    results: dict[str, dict[str, float]] = {}
    outputs: dict[str, Tensor] = {}

    def record(name: str, pred: Tensor, t0: float) -> None:
        results[name] = score(pred.clamp(0, 1), clear_test) | {
            "seconds": round(time.perf_counter() - t0, 1)
        }
        outputs[name] = pred
        print(f"{name}: {results[name]}", file=sys.stderr, flush=True)

    def record_model(name: str, fn: Callable[[Tensor], Tensor], t0: float) -> None:
        """Score a trained dehazer; with ``--tta`` also its group average, and both times per crop.

        Both timed runs go through ``inference.Dehazer``, the path users run.
        """
        with torch.no_grad():
            record(name, fn(hazy_test), t0)
        if not args.tta:
            return
        tta_name = f"{name}, TTA ({inference.GroupAverage(fn, cfg.group).size})"
        runners = {
            name: inference.Dehazer(fn, device="cpu", tile=None),
            tta_name: inference.Dehazer(fn, device="cpu", tile=None, tta=cfg.group),
        }
        t1 = time.perf_counter()
        record(tta_name, runners[tta_name].run(hazy_test), t1)
        for key, ms in crop_ms(runners, hazy_test).items():
            results[key]["ms_per_crop"] = ms
            print(f"{key}: {ms} ms/crop", file=sys.stderr, flush=True)

    def run(name: str) -> bool:
        return not wanted or name in wanted

    record("hazy input", hazy_test, time.perf_counter())
    if run("DCP"):
        t0 = time.perf_counter()
        with torch.no_grad():
            record("DCP", DarkChannelPrior()(hazy_test), t0)

    needs_stage1 = not wanted or wanted & {
        "CycleGAN-only",
        "EID (learned H)",
        "EID pinv (learned H)",
        "EID alpha=0",
        "EID + adversarial",
    }
    if needs_stage1 and args.stage1_run:
        operator = LearnedHaze.load(args.stage1_run)
        (work / "stage1").mkdir()
        for name in ("operator.safetensors", "operator.yaml"):
            (work / "stage1" / name).write_bytes((args.stage1_run / name).read_bytes())
        record_model("CycleGAN-only", operator.A_dagger, time.perf_counter())
    elif needs_stage1:
        t0 = time.perf_counter()
        for folder, stack in (("clear", clear_unpaired), ("hazy", hazy_train)):
            for i, im in enumerate(stack):
                write_image(work / folder / f"{i:04d}.tif", im)
        op_cfg = load_config(
            OperatorConfig,
            "operator",
            preset="fast",
            path=args.stage1_config,
            overrides={"max_steps": args.stage1_steps, "seed": args.seed},
        )
        op_cfg.model.channels, op_cfg.data.load_size, op_cfg.data.crop = 1, None, CROP
        fit_operator(
            op_cfg, work / "clear", work / "hazy", work / "stage1", progress=False, samples=False
        )
        operator = LearnedHaze.load(work / "stage1")
        record_model("CycleGAN-only", operator.A_dagger, t0)

    train = Items(hazy=hazy_train)
    variants = {
        "EID (learned H)": {},
        "EID pinv (learned H)": {"model": dataclasses.replace(cfg.model, input="pinv")},
        "EID alpha=0": {"alpha": 0.0},
        "EID + adversarial": {"adversarial_weight": 0.01},
    }
    for name, changes in variants.items():
        if not run(name):
            continue
        t0 = time.perf_counter()
        vcfg = dataclasses.replace(cfg, **changes, operator=str(work / "stage1"))
        clear_items = Items(clear=clear_unpaired) if vcfg.adversarial_weight else None
        f = train_eid(vcfg, operator, train, work / name.replace(" ", "_"), clear=clear_items)
        record_model(name, lambda y, f=f: f(y, operator), t0)

    if run("EID (veil oracle)"):
        t0 = time.perf_counter()
        f = train_eid(cfg, VeilHaze(), Items(hazy=hazy_train, **buffers_train), work / "oracle")
        record_model("EID (veil oracle)", f, t0)

    if run("supervised"):
        t0 = time.perf_counter()
        f = train_supervised(cfg.model, hazy_train, clear_train, cfg)
        record_model("supervised (upper bound)", f, t0)

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    for name, pred in outputs.items():
        write_image(
            out
            / f"{name.replace(' ', '_').replace('(', '').replace(')', '').replace(',', '')}.png",
            torch.cat(list(pred[:4].clamp(0, 1)), dim=-1),
        )
    write_image(out / "clear.png", torch.cat(list(clear_test[:4]), dim=-1))
    print("| method | PSNR (dB) | SSIM | time (s) | inference (ms/crop) |\n|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds']} | {r.get('ms_per_crop', '')} |"
        )
    print(
        f"\n{len(clear_test)} test crops {CROP}x{CROP}; {args.steps} stage-2 steps, {args.stage1_steps} stage-1 steps; "
        f"total {time.perf_counter() - start:.0f} s; outputs in {out}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
