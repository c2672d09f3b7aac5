"""``eid train``: stage 2, the equivariant dehazer, from hazy images only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from eid.cli import app, console, in_range, set_threads, training_budget, warn_if_dim
from eid.cli import training_options as opt
from eid.cli.init_from import init_weights_from


def _overrides(**flags: Any) -> dict[str, Any]:
    """Config overrides from the flags that were given (``None`` = not given)."""
    return {k: v for k, v in flags.items() if v is not None}


@app.command("train")
@opt.machine_options(devices_help="Processes per node (DDP when > 1).")
def train(
    hazy: list[Path] = typer.Option(
        ..., "--hazy", help="Folder(s) or glob(s) of hazy training images (no clear images needed)."
    ),
    operator: str | None = typer.Option(
        None,
        "--operator",
        help="Stage-1 run folder (learned H = G_AB, H^dagger = G_BA), a shipped model's name (its operator; eid models) or 'asm' (analytic oracle). Required for a new run, unless the preset hazes through each image's own DCP maps (natural): stage 2 then needs no stage 1 and no clear images.",
    ),
    out: Path = opt.OUT,
    preset: str | None = typer.Option(
        None,
        "--preset",
        help="Recipe: fast (CPU-friendly default), paper (authors' settings), microscopy, endoscopy, natural.",
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML file of config fields applied on top of the preset."
    ),
    group: str | None = typer.Option(
        None,
        "--group",
        help="Transformation group, e.g. rot90, rotate, hflip, flip, shift, scale, rot90*flip, microscopy.",
    ),
    alpha: float | None = typer.Option(
        None, "--alpha", callback=in_range(0), help="Weight of the equivariance loss."
    ),
    clear: list[Path] | None = typer.Option(
        None,
        "--clear",
        help="Unpaired clear images for the priors (adversarial, background; default: the clear folders recorded by stage 1).",
    ),
    no_prior: bool = typer.Option(
        False,
        "--no-prior",
        help="Train without the priors from clear images, adversarial and background (haze consistency and equivariance only).",
    ),
    val_hazy: Path | None = typer.Option(
        None, "--val-hazy", help="Hazy validation images (with --val-clear: PSNR/SSIM each epoch)."
    ),
    val_clear: Path | None = typer.Option(
        None, "--val-clear", help="Clear references of --val-hazy, matched by file name."
    ),
    asm_t: float | None = typer.Option(
        None,
        "--asm-t",
        help="Constant transmission of the ASM oracle (--operator asm); without it the per-image t and A come from the `eid synth` folder of --hazy (params.json + depth/, made with --save-depth).",
    ),
    asm_a: float | None = typer.Option(
        None, "--asm-a", help="Constant airlight of the ASM oracle (--operator asm)."
    ),
    max_steps: int | None = opt.max_steps_option("Training batches to run (overrides epochs)."),
    epochs: int | None = opt.EPOCHS,
    batch_size: int | None = opt.batch_size_option("Images per batch."),
    crop: int | None = opt.CROP,
    lr: float | None = opt.lr_option(
        "Adam learning rate (with --resume: replaces the run's from then on)."
    ),
    white: str | None = opt.white_option("Default: the operator's; eid dehaze uses the same."),
    machine: opt.Machine = opt.MACHINE,
    init_from: str | None = opt.INIT_FROM,
    resume: bool = opt.resume_option(
        "Continue the run in --out from its last checkpoint (its saved config is used; --max-steps/--epochs may extend it, --lr replaces its learning rate; other options, if given, must repeat the run's values)."
    ),
    seed: int | None = opt.seed_option("Seed of data order, crops and transformations."),
) -> None:
    """Train the EID dehazer: haze consistency ||H(f(y)) - y||^2 + alpha * equivariance loss.

    Exports OUT/dehazer.safetensors + OUT/dehazer.yaml at every epoch, with a copy of the stage-1
    operator files so that the run folder is self-contained; a CSV log in OUT/logs, sample grids in
    OUT/samples, checkpoints in OUT/checkpoints (for --resume).
    """
    from eid.config import config_from_dict, config_to_dict, load_config, read_yaml, saved_config
    from eid.data.datasets import data_channels
    from eid.physics.learned import operator_channels, read_operator_config
    from eid.run_layout import DEHAZER
    from eid.training.callbacks import LearningRates
    from eid.training.checkpoints import load_checkpoint
    from eid.training.eid import fit_eid
    from eid.training.eid_config import (
        NAMED_OPERATORS,
        NO_OPERATOR,
        EIDConfig,
        with_operator_white,
        with_prior,
    )
    from eid.training.init_from import RUN_FIELDS, check_model, source_model
    from eid.training.limits import DEHAZER_LIMITS, check_limits
    from eid.training.run_folder import RunFolder, is_ddp_worker
    from eid.zoo import resolve_model

    set_threads(machine.threads)
    folder = RunFolder(out)
    start_from = init_weights_from(init_from, resume)
    inputs = {"--hazy": hazy, "--operator": operator, "--clear": clear}
    changes = {
        **training_budget(max_steps, epochs),
        **_overrides(lr=lr),
    }  # what --resume may change
    if is_ddp_worker():  # rank 0 has set the run up and saved its config
        ckpt = folder.last if resume else None
        cfg = saved_config(EIDConfig, read_yaml(folder.config))
    elif resume:
        ckpt = folder.check_resume(inputs, preset)
        saved = load_checkpoint(ckpt)["hyper_parameters"]["config"]
        fixed = {"--group": ("group", group), "--alpha": ("alpha", alpha), "--asm-t": ("asm_transmission", asm_t),
                 "--asm-a": ("asm_airlight", asm_a), "--batch-size": ("batch_size", batch_size), "--crop": ("crop", crop),
                 "--seed": ("seed", seed), "--white": ("white", white)}  # fmt: skip
        given = {
            f"{option} {value}": {key: value}
            for option, (key, value) in fixed.items()
            if value is not None
        }
        if no_prior:
            given["--no-prior"] = {"adversarial_weight": 0.0, "background_weight": 0.0}
        if config:
            given[f"--config {config}"] = read_yaml(config)
        folder.check_unchanged(EIDConfig, saved, given)
        cfg = saved_config(EIDConfig, {**saved, **changes}, where="eid config")
    else:
        ckpt = None
        # no --operator: EIDConfig refuses it unless the losses need none (haze: observed)
        operator = NO_OPERATOR if operator is None else operator
        if operator not in NAMED_OPERATORS:
            operator = str(resolve_model(operator).resolve())
            inputs["--operator"] = operator
        folder.check_new(inputs)
        if operator in NAMED_OPERATORS:
            channels = data_channels({"--hazy": hazy})
        else:  # the dehazer works in the channels of the operator H it is trained through
            channels = operator_channels(read_operator_config(operator))
        overrides = _overrides(
            operator=operator,
            group=group, alpha=alpha, asm_transmission=asm_t, asm_airlight=asm_a, batch_size=batch_size, crop=crop,
            seed=seed, white=white,
        ) | changes  # fmt: skip
        base = load_config(EIDConfig, "dehazer", preset=preset or "fast", path=config)
        data = config_to_dict(base)
        # fine-tuning takes the source's architecture, the only one its weights fit
        source = data["model"] if start_from is None else source_model(start_from, DEHAZER)
        model = {**source, **{k: data["model"][k] for k in RUN_FIELDS}, "channels": channels}
        data = {**data, **overrides, "model": model}
        cfg = with_operator_white(config_from_dict(EIDConfig, data, where="eid config"))
        cfg = with_prior(cfg, clear, prior=not no_prior)
        data_channels(
            {"--hazy": hazy, **({"--clear": list(cfg.clear)} if cfg.clear else {})}
        )  # no images: one line now
        warn_if_dim(hazy, cfg.white)
    check_limits(cfg, DEHAZER_LIMITS, "eid config")
    if start_from is not None:
        check_model(start_from, DEHAZER, config_to_dict(cfg)["model"], "dehazer")
    if not is_ddp_worker():
        weights = {"adversarial": cfg.adversarial_weight, "background": cfg.background_weight}
        named = " and ".join(f"{name} prior {w}" for name, w in weights.items() if w)
        prior = f"{named} on {', '.join(cfg.clear)}" if named else "no prior"
        haze = f"operator {cfg.operator}"
        if cfg.haze == "observed":
            unused = (
                "no stage-1 operator"
                if cfg.operator == NO_OPERATOR
                else f"{haze} unused by the losses"
            )
            haze = f"each image's own haze (DCP maps; {unused})"
        console.print(
            f"stage 2: {haze}, group {cfg.group}, alpha {cfg.alpha}, {prior}, "
            f"precision {machine.resolved_precision} -> {out}",
            highlight=False,
        )
    with folder.starting(resume):
        if not is_ddp_worker() and ckpt is None:
            folder.path.mkdir(parents=True, exist_ok=True)
            operator_given = None if cfg.operator == NO_OPERATOR else cfg.operator
            folder.record_inputs({"--hazy": hazy, "--operator": operator_given, "--clear": list(cfg.clear) or None,
                                  "--init-from": start_from}, preset or "fast")  # fmt: skip
        fit_eid(
            cfg, hazy, out, val_hazy=val_hazy, val_clear=val_clear, ckpt=ckpt, workers=machine.workers, init_from=start_from,
            **machine.trainer_kwargs(),
            callbacks=[LearningRates({0: lr})] if resume and lr is not None else [],
        )  # fmt: skip
    if not is_ddp_worker():
        console.print(f"dehazer written to {folder.dehazer_weights}", highlight=False)
