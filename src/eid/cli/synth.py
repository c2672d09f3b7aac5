"""``eid synth``: make paired clear/hazy data with known haze parameters (ASM or microscopy veil)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from eid.cli import WHITE_HELP, app, console
from eid.data.listing import iter_inputs
from eid.data.naming import check_existing, plan_outputs
from eid.data.scale import parse_white
from eid.errors import EIDError
from eid.progress import LoggedProgress
from eid.synth import SynthConfig, synthesize_folder
from eid.utils import hiding_warnings, recording_warnings


def _floats(text: str | None, option: str, count: int) -> tuple[float, ...] | None:
    """Parse ``"a,b[,c]"`` given to ``option`` into ``count`` floats."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise EIDError(
            f"{option} {text!r}: expected {count} comma-separated numbers, e.g. {','.join(['0.5'] * count)}"
        )
    return values


def _value_or_range(
    value: float | None, range_text: str | None, name: str, default: float
) -> float | tuple[float, ...]:
    if value is not None and range_text is not None:
        raise EIDError(f"give either --{name} or --{name}-range, not both")
    return _floats(range_text, f"--{name}-range", 2) or (default if value is None else value)


@app.command("synth")
def synth_command(
    inputs: list[Path] = typer.Argument(..., help="Clear images: files, folders or globs."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder; receives hazy/, clear/, depth/ and params.json."
    ),
    model: str = typer.Option(
        "asm",
        "--model",
        help="asm (I = J t + A (1-t), natural scenes) or veil (microscopy out-of-focus haze).",
    ),
    depth: str = typer.Option(
        "random",
        "--depth",
        help="ASM depth: ramp, random (smooth field), a depth/disparity FILE for all images, or a FOLDER of maps named like the images.",
    ),
    depth_range: str = typer.Option(
        "0.3,2.0",
        "--depth-range",
        help="NEAR,FAR of synthetic (ramp/random) depth, in 1/beta units.",
    ),
    depth_scale: float = typer.Option(
        1.0, "--depth-scale", help="Multiply depth files by this (e.g. 0.001 for millimetre PNGs)."
    ),
    disparity: str = typer.Option(
        None,
        "--disparity",
        help="Depth files are disparity maps: BASELINE_MM,FOCAL_PX,DOFFS_PX (Middlebury calib).",
    ),
    beta: float = typer.Option(
        None, "--beta", help="Fixed scattering coefficient beta (default 1.0)."
    ),
    beta_range: str = typer.Option(
        None, "--beta-range", help="Draw beta uniformly from LO,HI per image, e.g. 0.6,1.8."
    ),
    airlight: float = typer.Option(
        None, "--airlight", help="Fixed airlight A in [0,1] (default 0.9)."
    ),
    airlight_range: str = typer.Option(
        None, "--airlight-range", help="Draw A uniformly from LO,HI per image, e.g. 0.7,1.0."
    ),
    per_channel_airlight: bool = typer.Option(
        False, "--per-channel-airlight", help="Draw one airlight per colour channel (tinted haze)."
    ),
    contrast_range: str = typer.Option(
        "0.45,0.65", "--contrast-range", help="Veil model: contrast factor c range LO,HI."
    ),
    veil_range: str = typer.Option(
        "0.15,0.3", "--veil-range", help="Veil model: blurred-copy strength v range LO,HI."
    ),
    background_range: str = typer.Option(
        "0.02,0.05", "--background-range", help="Veil model: smooth background b range LO,HI."
    ),
    veil_sigma: float = typer.Option(
        0.05, "--veil-sigma", help="Veil model: blur width as a fraction of min(H, W)."
    ),
    seed: int = typer.Option(
        0, "--seed", help="Global seed; each image's seed derives from it and the image name."
    ),
    save_depth: bool = typer.Option(
        False, "--save-depth", help="ASM: also write the depth used to depth/<name>.tiff (float32)."
    ),
    max_pixels: int = typer.Option(
        None, "--max-pixels", help="Refuse larger images (default 150 MP)."
    ),
    white: str = typer.Option(
        "auto",
        "--white",
        help=WHITE_HELP
        + " Default auto: dtype for asm, max for veil. Crops or tiles of one image need one "
        "scale for all (dtype or a number): max scales each crop's haze by the crop's own brightness.",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace outputs that already exist in --out (by default an existing output is an error).",
    ),
) -> None:
    """Haze clear images with known parameters, for paired training and evaluation.

    Writes OUT/hazy/, OUT/clear/ (the inputs re-encoded in the same format), optional OUT/depth/ and
    OUT/params.json (per image: model, seed, beta, A, depth source). Deterministic for a given --seed.
    Exits with status 1 if any input was skipped (unreadable, or a symbolic link loop). An output
    that already exists is an error unless --overwrite is given; params.json then keeps the other images' records.
    """
    config = SynthConfig(
        model=model,
        depth=depth,
        depth_range=_floats(depth_range, "--depth-range", 2),
        depth_scale=depth_scale,
        disparity=_floats(disparity, "--disparity", 3),
        beta=_value_or_range(beta, beta_range, "beta", 1.0),
        airlight=_value_or_range(airlight, airlight_range, "airlight", 0.9),
        per_channel_airlight=per_channel_airlight,
        contrast=_floats(contrast_range, "--contrast-range", 2),
        veil=_floats(veil_range, "--veil-range", 2),
        background=_floats(background_range, "--background-range", 2),
        veil_sigma=veil_sigma,
        white=white if white == "auto" else parse_white(white),
        seed=seed,
        save_depth=save_depth,
    )
    total, skips = _check_outputs(inputs, out, save_depth, overwrite)
    for line in skips:
        console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)
    columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with (
        LoggedProgress(*columns, unit="images", console=console, transient=True) as progress,
        hiding_warnings(skips),
    ):
        task = progress.add_task("synth", total=total)
        report = synthesize_folder(
            inputs, out, config, max_pixels=max_pixels,
            progress=lambda path: progress.advance(task),
            on_skip=lambda path, message: console.print(f"[yellow]skipped:[/] {escape(message)}", highlight=False),
            on_notice=lambda line: console.print(f"[yellow]note:[/] {escape(line)}", highlight=False),
        )  # fmt: skip
    skipped = len(report.skipped) + len(skips)
    console.print(
        f"{len(report.images)} hazed ({model}), {skipped} skipped -> {out}", highlight=False
    )
    if skipped:
        raise typer.Exit(1)


def _check_outputs(
    inputs: list[Path], out: Path, save_depth: bool, overwrite: bool
) -> tuple[int, list[str]]:
    """Refuse, before any work, existing outputs (without --overwrite) and inputs that hold only what the folder
    listing skips (symbolic link loops...); return the number of images and the listing's skip lines, which the
    run reports once as its own and counts as skipped files."""
    items, skips = recording_warnings(iter_inputs, inputs)
    if skips and not items:
        more = f" (and {len(skips) - 1} more)" if len(skips) > 1 else ""
        raise EIDError(f"{', '.join(map(str, inputs))}: no image to process: {skips[0]}{more}")
    sources = [path for path, _ in items]
    names = plan_outputs(sources, [rel for _, rel in items]).names
    targets = [out / sub / name for name in names for sub in ("hazy", "clear")]
    if save_depth:
        targets += [
            out / "depth" / name for name in plan_outputs(sources, names, suffix=".tiff").names
        ]
    check_existing(targets, sources, overwrite, skip_existing=None)
    return len(items), skips
