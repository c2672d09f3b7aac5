"""``eid train-operator``: stage 1, learn the haze physics (G_AB, G_BA) from unpaired clear and hazy images."""

from __future__ import annotations

from pathlib import Path

import typer

from eid.cli import app, console, set_threads, training_budget, warn_if_dim
from eid.cli import training_options as opt
from eid.cli.init_from import init_weights_from


@app.command("train-operator")
@opt.machine_options(devices_help="Processes per node (DDP when > 1; gloo on CPU).")
def train_operator(
    clear: list[Path] = typer.Option(
        ...,
        "--clear",
        help="Folder(s) or glob(s) of clear images (domain A); need not match the hazy ones.",
    ),
    hazy: list[Path] = typer.Option(
        ..., "--hazy", help="Folder(s) or glob(s) of hazy images (domain B)."
    ),
    out: Path = opt.OUT,
    preset: str | None = typer.Option(
        None,
        "--preset",
        help="Recipe: fast (default: small scattering operator), microscopy (veil airlight), natural, endoscopy, or paper (the authors' CycleGAN sizes).",
    ),
    operator_model: str | None = typer.Option(
        None,
        "--operator-model",
        help="scattering (physically structured H, the default of every preset but paper) or cyclegan (the authors' G_AB/G_BA).",
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML file of OperatorConfig fields applied on top of the preset."
    ),
    max_steps: int | None = opt.max_steps_option("Training batches to run (instead of epochs)."),
    epochs: int | None = opt.EPOCHS,
    batch_size: int | None = opt.batch_size_option("Image pairs per batch (per process)."),
    crop: int | None = opt.CROP,
    lr: float | None = opt.lr_option(
        "Adam learning rate of G and D (with --resume: replaces the run's from then on)."
    ),
    white: str | None = opt.white_option("Stage 2 and eid dehaze use the same scale."),
    machine: opt.Machine = opt.MACHINE,
    seed: int | None = opt.seed_option(
        "Seed of initialisation, data order, crops and replay buffers."
    ),
    init_from: str | None = opt.INIT_FROM,
    resume: bool = opt.resume_option(
        "Continue the run in --out from checkpoints/last.ckpt (its saved config is used; --max-steps/--epochs may extend it, --lr replaces its learning rate; other options, if given, must repeat the run's values)."
    ),
) -> None:
    """Train the pseudo-hazing operator H (clear -> hazy) and its pseudo-inverse H^dagger (hazy -> clear).

    The default operator is physically structured, H(x) = t(x) x + (1 - t(x)) a(x), with learned
    transmission and airlight maps; --operator-model cyclegan trains the authors' CycleGAN instead.
    The clear folders are recorded in the run: `eid train` uses them for its adversarial prior.

    Writes OUT/config.yaml, OUT/operator.safetensors + OUT/operator.yaml (every epoch), OUT/checkpoints/
    (last.ckpt + periodic), a CSV log in OUT/logs and sample grids in OUT/samples. A start that fails before
    the first checkpoint leaves no OUT behind.
    """
    from eid.config import (
        config_from_dict,
        config_to_dict,
        load_config,
        merge_dicts,
        read_yaml,
        saved_config,
    )
    from eid.data.datasets import data_channels
    from eid.run_layout import OPERATOR
    from eid.training.callbacks import LearningRates
    from eid.training.init_from import check_model
    from eid.training.limits import OPERATOR_LIMITS, check_limits
    from eid.training.operator import OperatorConfig, fit_operator
    from eid.training.run_folder import RunFolder, is_ddp_worker

    set_threads(machine.threads)
    folder, inputs = RunFolder(out), {"--clear": clear, "--hazy": hazy}
    start_from = init_weights_from(init_from, resume)
    changes: dict = training_budget(max_steps, epochs)
    if lr is not None:
        changes["optim"] = {"lr": lr}
    if (
        is_ddp_worker()
    ):  # a DDP worker re-running this command: rank 0 set the run up and saved its config
        ckpt = folder.last if resume else None
        cfg = saved_config(OperatorConfig, read_yaml(folder.config))
    elif resume:
        ckpt = folder.check_resume(inputs, preset)
        saved = read_yaml(folder.config)
        fixed = [("--batch-size", batch_size, {"data": {"batch_size": batch_size}}), ("--crop", crop, {"data": {"crop": crop}}),
                 ("--white", white, {"data": {"white": white}}), ("--seed", seed, {"seed": seed}),
                 ("--operator-model", operator_model, {"model": {"kind": operator_model}})]  # fmt: skip
        given = {
            f"{option} {value}": fields for option, value, fields in fixed if value is not None
        }
        if config:
            given[f"--config {config}"] = read_yaml(config)
        folder.check_unchanged(OperatorConfig, saved, given)
        cfg = saved_config(OperatorConfig, merge_dicts(saved, changes), where="operator config")
    else:
        folder.check_new(inputs)
        ckpt = None
        data = {
            k: v
            for k, v in {"batch_size": batch_size, "crop": crop, "white": white}.items()
            if v is not None
        }
        data["clear"] = [
            str(Path(p).resolve()) for p in clear
        ]  # stage 2's adversarial prior reads them
        model = {"channels": data_channels(inputs)}  # grey data: grey generators
        if operator_model is not None:
            model["kind"] = operator_model
        cfg = load_config(
            OperatorConfig,
            "operator",
            preset=preset or "fast",
            path=config,
            overrides={"seed": seed, "data": data, "model": model},
        )
        cfg = config_from_dict(OperatorConfig, merge_dicts(config_to_dict(cfg), changes))
        for images in (clear, hazy):
            warn_if_dim(images, cfg.data.white)
    check_limits(cfg, OPERATOR_LIMITS, "operator config")
    if start_from is not None:
        check_model(start_from, OPERATOR, config_to_dict(cfg)["model"], "operator")

    if not is_ddp_worker():
        console.print(
            f"stage 1: {'resuming ' + str(ckpt) if ckpt else 'new run'} in {out}, precision "
            f"{machine.resolved_precision}",
            highlight=False,
        )
    with folder.starting(resume):
        if not is_ddp_worker() and ckpt is None:
            folder.record_inputs({**inputs, "--init-from": start_from}, preset or "fast")
        _, trainer = fit_operator(
            cfg, clear, hazy, out, ckpt=ckpt, workers=machine.workers, init_from=start_from, **machine.trainer_kwargs(),
            callbacks=[LearningRates({0: lr, 1: lr})] if resume and lr is not None else [],
        )  # fmt: skip
    if trainer.is_global_zero:
        console.print(f"operator written to {folder.operator_weights}", highlight=False)
