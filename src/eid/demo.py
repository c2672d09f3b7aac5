"""The end-to-end demo on data built from images that ship with scikit-image.

1. **Data** (:mod:`eid.demo_data`). Colour photographs bundled with scikit-image, hazed by the atmospheric
   scattering model, in three disjoint groups: *clear* images (the unpaired clear set of stage 1), *train*
   images (only their hazy versions are used for training) and *test* images (their clear versions are kept
   for PSNR/SSIM).
2. **Stage 1** (``natural`` preset, as ``eid train-operator``): the physically structured haze operator
   ``H(x) = t(x) x + (1 - t(x)) a(x)`` and its inverse ``H^dagger`` from unpaired clear/hazy images.
3. **Stage 2** (``natural`` preset, as ``eid train``): the equivariant dehazer from the hazy training
   images, starting at the dark channel prior's estimate and trained through each image's own haze as DCP reads it
   (``haze: observed``); the preset's prior weight is 0 (it cost quality on outdoor scenes), so the clear images
   stage 1 recorded serve stage 1 only.
4. **Comparison** on the held-out test images: hazy input, dark channel prior, the operator's ``H^dagger``
   alone and EID, scored with PSNR/SSIM (and NIQE/BRISQUE when available); images, ``metrics.json``,
   a labelled ``comparison.png`` and the HTML report ``report/index.html`` (:mod:`eid.report.page`) are written
   to the output folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from rich.console import Console

from eid.data.io import read_image
from eid.demo_data import DemoData, build_demo_data
from eid.errors import EIDError
from eid.progress import stderr_console
from eid.report.tables import metrics_table, print_table
from eid.utils import atomic_write

DEMO_MARKER = ".eid-demo"
METHODS = ("dcp", "cyclegan", "eid")
#: Column names of the comparison (``cyclegan`` is the operator's pseudo-inverse alone, whatever its kind).
LABELS = {"dcp": "DCP", "cyclegan": "H† only", "eid": "EID"}
METRICS = ("psnr", "ssim", "niqe", "brisque")


def prepare_output(out: Path) -> None:
    """Create ``out``, or clear a previous demo there; refuse a non-empty folder the demo did not make."""
    if out.exists() and any(out.iterdir()):
        if not (out / DEMO_MARKER).is_file():
            raise EIDError(f"{out} exists and was not made by `eid demo`; choose another --out")
        for child in out.iterdir():
            if child.name != DEMO_MARKER:
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARKER).write_text("made by eid demo\n")


def comparison_grid(
    data: DemoData, out: Path, scores: dict[str, dict[str, dict[str, float]]]
) -> Path:
    """``comparison.png``: one row per test image, hazy | DCP | H^dagger only | EID | clear, labelled with
    the method names and each tile's PSNR/SSIM (``scores[method][image]``)."""
    from eid.report.figures import Tile, comparison_figure

    rows = {}
    for path in sorted(data.test_hazy.iterdir()):

        def tile(image: torch.Tensor, method: str, path: Path = path) -> Tile:
            found = scores.get(method, {}).get(path.name, {})
            return Tile(image, {k.upper(): found[k] for k in ("psnr", "ssim") if k in found})

        row = {"hazy input": tile(read_image(path)[0], "hazy input")}
        row |= {LABELS[m]: tile(read_image(out / "dehazed" / m / path.name)[0], m) for m in METHODS}
        row["clear (reference)"] = Tile(read_image(data.test_clear / path.name)[0])
        rows[path.name] = row
    return comparison_figure(rows, out / "comparison.png")


def _budget(steps: int | None) -> dict:
    """Config overrides replacing a preset's step budget by ``steps`` (none: the preset's own budget)."""
    return {} if steps is None else {"max_steps": steps, "epochs": None}


def run_demo(
    out: Path,
    *,
    operator_steps: int | None = None,
    dehazer_steps: int | None = None,
    seed: int = 0,
    short_side: int = 192,
    prior: bool = True,
    console: Console | None = None,
) -> dict:
    """Run the whole demo into ``out``; print the comparison table; return the ``metrics.json`` content.

    Both stages run with the presets and defaults of ``eid train-operator`` and ``eid train``, their step
    budgets included unless ``operator_steps`` / ``dehazer_steps`` replace them; ``prior=False`` is
    ``eid train --no-prior``.
    """
    from eid.config import load_config
    from eid.inference import Dehazer, build_method, dehaze_paths
    from eid.metrics import get_metrics
    from eid.metrics.evaluate import evaluate
    from eid.report.page import build_report
    from eid.training.eid import fit_eid
    from eid.training.eid_config import EIDConfig, with_prior
    from eid.training.operator import OperatorConfig, fit_operator

    console = console or stderr_console()
    prepare_output(out)
    console.rule("1/4 data: hazing bundled images (atmospheric scattering model)")
    data = build_demo_data(out / "data", short_side=short_side, seed=seed)
    operator_run = out / "runs" / "operator"
    op_cfg = load_config(
        OperatorConfig, "operator", preset="natural",
        overrides={"seed": seed, "data": {"clear": [str(data.clear.resolve())]}, **_budget(operator_steps)},
    )  # fmt: skip
    console.rule(
        f"2/4 stage 1: haze physics (scattering operator, natural preset, {op_cfg.max_steps} steps)"
    )
    fit_operator(op_cfg, data.clear, data.train_hazy, operator_run, devices=1, accelerator="cpu")
    eid_run = out / "runs" / "eid"
    eid_cfg = load_config(
        EIDConfig, "dehazer", preset="natural",
        overrides={"operator": str(operator_run), "seed": seed, **_budget(dehazer_steps)},
    )  # fmt: skip
    console.rule(f"3/4 stage 2: equivariant dehazer (natural preset, {eid_cfg.max_steps} steps)")
    fit_eid(
        with_prior(eid_cfg, prior=prior), [data.train_hazy], eid_run, devices=1, accelerator="cpu"
    )
    console.rule("4/4 comparison on held-out images")
    sources = {"dcp": {}, "cyclegan": {"operator": operator_run}, "eid": {"model": eid_run}}
    for method in METHODS:
        runner = Dehazer(build_method(method, device="cpu", **sources[method]), device="cpu")
        dehaze_paths([data.test_hazy], out / "dehazed" / method, runner, console=console)
    no_reference_ok = short_side >= 192  # NIQE needs two 96x96 blocks per image
    specs = get_metrics(
        [m for m in METRICS if m in _registered() and (m in ("psnr", "ssim") or no_reference_ok)]
    )
    results = {"hazy input": evaluate(specs, [data.test_hazy], [data.test_clear])}
    results.update({m: evaluate(specs, [out / "dehazed" / m], [data.test_clear]) for m in METHODS})
    names = [s.name for s in specs]
    rows = [{"method": LABELS.get(name, name), **r.means} for name, r in results.items()]
    print_table(
        console, metrics_table(rows, names, title="held-out test images (mean)", first="method")
    )
    report = {
        "metrics": {name: r.means for name, r in results.items()},
        "images": {name: r.rows for name, r in results.items()},
        "notes": {
            "higher_better": ["psnr", "ssim"], "lower_better": ["niqe", "brisque"],
            "data": "synthetic ASM haze on bundled images; see data/params.json",
        },
    }  # fmt: skip
    with atomic_write(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    scores = {name: {row["name"]: row for row in r.rows} for name, r in results.items()}
    grid = comparison_grid(data, out, scores)
    page = build_report(
        out / "report", {LABELS[m]: out / "dehazed" / m for m in METHODS}, input=data.test_hazy, ref=data.test_clear,
        runs=[operator_run, eid_run], metrics=",".join(names), title="eid demo: held-out test images",
    )  # fmt: skip
    console.print(
        f"images in {out / 'dehazed'}, comparison grid {grid}, metrics {out / 'metrics.json'}, report {page.index}"
    )
    return report


def _registered() -> set[str]:
    from eid.metrics import METRICS as registry

    return set(registry)
