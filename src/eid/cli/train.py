"""``eid train``: stage 2, the equivariant dehazer, from hazy images only."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from eid.cli import app, console


VAL_CROP = 256
"""Validation images are compared on one fixed 256x256 window each (a batch needs equal sizes)."""


class SameCropEveryEpoch:
    """Serve item ``i`` with the crop of seed 0 whatever the epoch, so validation scores are comparable."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        return self.dataset[(key[0], 0)]


def _overrides(**flags: Any) -> dict[str, Any]:
    """Config overrides from the flags that were given (``None`` = not given)."""
    return {k: v for k, v in flags.items() if v is not None}


@app.command("train")
def train(
    hazy: list[Path] = typer.Option(..., "--hazy", help="Folder(s) or glob(s) of hazy training images (no clear images needed)."),
    operator: Optional[str] = typer.Option(None, "--operator", help="Stage-1 run folder (learned H = G_AB, H^dagger = G_BA) or 'asm' (analytic oracle). Required for a new run."),
    out: Path = typer.Option(..., "--out", help="Run folder to create (or to continue with --resume)."),
    preset: str = typer.Option("fast", "--preset", help="Recipe: fast (CPU-friendly default), paper (authors' settings), microscopy, endoscopy, natural."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file of config fields applied on top of the preset."),
    group: Optional[str] = typer.Option(None, "--group", help="Transformation group, e.g. rot90, rotate, hflip, flip, shift, scale, rot90*flip, microscopy."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Weight of the equivariance loss."),
    clear: Optional[Path] = typer.Option(None, "--clear", help="Unpaired clear images for the adversarial prior (enables it with weight 0.01 unless the config sets one)."),
    val_hazy: Optional[Path] = typer.Option(None, "--val-hazy", help="Hazy validation images (with --val-clear: PSNR/SSIM each epoch)."),
    val_clear: Optional[Path] = typer.Option(None, "--val-clear", help="Clear references of --val-hazy, matched by file name."),
    asm_t: Optional[float] = typer.Option(None, "--asm-t", help="Constant transmission of the ASM oracle (--operator asm); without it the per-image t and A come from the `eid synth` folder of --hazy (params.json + depth/, made with --save-depth)."),
    asm_a: Optional[float] = typer.Option(None, "--asm-a", help="Constant airlight of the ASM oracle (--operator asm)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Training batches to run (overrides epochs)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs to run."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Images per batch."),
    crop: Optional[int] = typer.Option(None, "--crop", help="Random square crop side in pixels."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate."),
    devices: int = typer.Option(1, "--devices", help="Processes per node (DDP when > 1)."),
    num_nodes: int = typer.Option(1, "--num-nodes", help="Nodes (DDP)."),
    precision: str = typer.Option("32-true", "--precision", help="Lightning precision: 32-true, bf16-mixed, 16-mixed (GPU)."),
    accelerator: str = typer.Option("auto", "--accelerator", help="auto, cpu or gpu."),
    workers: int = typer.Option(0, "--workers", help="Data-loading worker processes."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint (its saved config is used)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of data order, crops and transformations."),
) -> None:
    """Train the EID dehazer: haze consistency ||H(f(y)) - y||^2 + alpha * equivariance loss.

    Exports OUT/dehazer.safetensors + OUT/dehazer.yaml at every epoch, with a copy of the stage-1
    operator files so that the run folder is self-contained; a CSV log in OUT/logs, sample grids in
    OUT/samples, checkpoints in OUT/checkpoints (for --resume).
    """
    from eid.config import config_from_dict, config_to_dict, load_config, save_config
    from eid.data.datasets import HazyFolder, PairedFolder
    from eid.data.io import list_images, read_image
    from eid.errors import EIDError
    from eid.models.dehazer import copy_operator
    from eid.training.common import ImageDataModule, build_trainer, fit, load_checkpoint, prepare_run_dir
    from eid.training.eid import EIDConfig, EIDModule, SynthASMFolder

    ckpt = prepare_run_dir(out, resume)
    if ckpt is not None:
        saved = load_checkpoint(ckpt)["hyper_parameters"]["config"]
        cfg = config_from_dict(EIDConfig, {**saved, **_overrides(max_steps=max_steps, epochs=epochs)}, where="eid config")
    else:
        if operator is None:
            raise EIDError("--operator is required for a new run; give a stage-1 run folder or 'asm'")
        paths = list_images([str(p) for p in hazy])
        if not paths:
            raise EIDError(f"no images found in {', '.join(map(str, hazy))}; check --hazy")
        channels = read_image(paths[0])[0].shape[0]
        overrides = _overrides(
            operator=operator if operator == "asm" else str(Path(operator).resolve()),
            group=group, alpha=alpha, asm_transmission=asm_t, asm_airlight=asm_a, max_steps=max_steps,
            epochs=epochs, batch_size=batch_size, crop=crop, lr=lr, seed=seed,
        )
        base = load_config(EIDConfig, "dehazer", preset=preset, path=config)
        data = config_to_dict(base)
        data = {**data, **overrides, "model": {**data["model"], "channels": channels}}
        if clear is not None and not data["adversarial_weight"]:
            data["adversarial_weight"] = 0.01
        cfg = config_from_dict(EIDConfig, data, where="eid config")
        if cfg.operator != "asm":
            copy_operator(cfg.operator, out)
        save_config(cfg, out / "config.yaml")
    if cfg.adversarial_weight > 0 and clear is None:
        raise EIDError("the config enables the adversarial prior; pass --clear DIR with unpaired clear images")
    crop_size = cfg.crop or None
    if cfg.operator == "asm" and cfg.asm_transmission is None:
        # ASM oracle without constants: per-image t and A from the `eid synth` folder holding --hazy
        root = hazy[0].parent if len(hazy) == 1 and hazy[0].name == "hazy" else hazy[0]
        train_set = SynthASMFolder(root, crop=crop_size, channels=cfg.model.channels, seed=cfg.seed)
    else:
        train_set = HazyFolder([str(p) for p in hazy], crop=crop_size, channels=cfg.model.channels, seed=cfg.seed)
    clear_set = HazyFolder(str(clear), crop=crop_size, channels=cfg.model.channels, seed=cfg.seed + 1) if clear else None
    val_set = None
    if (val_hazy is None) != (val_clear is None):
        raise EIDError("--val-hazy and --val-clear go together; give both or neither")
    if val_hazy is not None:
        pairs = PairedFolder(str(val_hazy), str(val_clear), crop=VAL_CROP, channels=cfg.model.channels, flip=False)
        val_set = SameCropEveryEpoch(pairs)
    module = EIDModule(cfg, clear=clear_set, run_dir=out)
    trainer = build_trainer(
        out, max_steps=cfg.max_steps, epochs=cfg.epochs, devices=devices, num_nodes=num_nodes,
        precision=precision, accelerator=accelerator, steps_per_batch=2 if module.adversarial else 1,
    )
    console.print(f"stage 2: {len(train_set)} hazy images, operator {cfg.operator}, group {cfg.group}, alpha {cfg.alpha} -> {out}")
    fit(trainer, module, ImageDataModule(train_set, cfg.batch_size, cfg.seed, workers, val=val_set), ckpt)
    console.print(f"dehazer written to {out / 'dehazer.safetensors'}")
