"""``eid demo``: the whole pipeline on data built from images that ship with the dependencies."""

from __future__ import annotations

from pathlib import Path

import typer

from eid.cli import app, console, set_threads


@app.command("demo")
def demo(
    out: Path = typer.Option(
        Path("demo-output"), "--out", help="Output folder (a previous demo there is replaced)."
    ),
    operator_steps: int | None = typer.Option(
        None,
        "--operator-steps",
        help="Stage-1 (haze operator) training batches [default: the natural preset's budget, 300].",
    ),
    dehazer_steps: int | None = typer.Option(
        None,
        "--dehazer-steps",
        help="Stage-2 (EID) training batches [default: the natural preset's budget, 300].",
    ),
    size: int = typer.Option(192, "--size", help="Shorter side of the demo images in pixels."),
    seed: int = typer.Option(0, "--seed", help="Seed of the haze synthesis and of both trainings."),
    threads: int = typer.Option(
        1,
        "--threads",
        help="CPU threads for torch (0 = torch's default). One is as fast for the demo's small crops and immune to a busy machine.",
    ),
    no_prior: bool = typer.Option(
        False,
        "--no-prior",
        help="Stage 2 without the priors from clear images (as eid train --no-prior; the natural preset has none already).",
    ),
) -> None:
    """Run EID end to end on bundled images: haze, stage 1, stage 2, compare with DCP and the operator alone.

    Synthesises haze on images bundled with scikit-image and matplotlib, trains both stages (natural
    presets, the defaults of eid train-operator and eid train), dehazes held-out images with EID, the
    operator's pseudo-inverse alone and DCP, prints the comparison table and writes the images,
    metrics.json and a labelled comparison.png to --out.
    """
    from eid.demo import run_demo

    set_threads(threads)
    run_demo(
        out,
        operator_steps=operator_steps,
        dehazer_steps=dehazer_steps,
        seed=seed,
        short_side=size,
        prior=not no_prior,
        console=console,
    )
