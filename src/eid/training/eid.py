"""Stage 2: train the equivariant dehazer ``f_theta`` from hazy images only.

.. math::

    \\mathcal{L}(\\theta) = \\underbrace{\\| H(f_\\theta(y)) - y \\|^2}_{\\text{haze consistency}}
    + \\alpha\\, \\underbrace{\\| f_\\theta(H(T_g f_\\theta(y))) - T_g f_\\theta(y) \\|^2}_{\\text{equivariance}}
    \\;[+\\ \\lambda\\,(D(f_\\theta(y)) - 1)^2]

``H`` is frozen: the learned ``G_AB`` of a stage-1 run, or the analytic ASM with known parameters
(oracle, synthetic data). The optional last term is an adversarial prior between unpaired clear images
and ``f(y)``, on whenever unpaired clear images are known: by default the clear folders stage 1 was
trained on, recorded in its run (:func:`with_prior`). Where the run spends its time (all measured in
``benchmarks/bench_eid_step.py``): the pseudo-inverse of the measured batch is computed without a graph;
the frozen operators never get weight gradients; the equivariance branch keeps the graph through
``H`` and ``H^dagger`` only because the gradient must reach ``T_g f(y)``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L

from eid.config import config_to_dict
from eid.errors import EIDError
from eid.run_layout import DEHAZER
from eid.training.data import ImageDataModule
from eid.training.eid_config import ANALYTIC_OPERATOR, EIDConfig, with_operator_white
from eid.training.eid_data import SameCropEveryEpoch, SynthASMFolder, synth_root, whole_images
from eid.training.eid_module import EIDModule
from eid.training.init_from import load_initial_weights
from eid.training.model_card import training_line, write_model_card
from eid.training.progress import batches_done
from eid.training.run_folder import RunFolder, is_ddp_worker
from eid.training.trainer import build_trainer, fit

__all__ = ["VAL_CROP", "EIDConfig", "EIDModule", "fit_eid"]

VAL_CROP = 256
"""Validation images are compared on one fixed 256x256 window each (a batch needs equal sizes)."""


def fit_eid(
    cfg: EIDConfig,
    hazy: list[str | Path],
    run_dir: str | Path,
    *,
    clear: str | Path | None = None,
    val_hazy: str | Path | None = None,
    val_clear: str | Path | None = None,
    ckpt: Path | None = None,
    workers: int = 0,
    init_from: Path | None = None,
    winograd: bool = True,
    **trainer_kwargs: Any,
) -> tuple[EIDModule, L.Trainer]:
    """Train (or resume from ``ckpt``) a stage-2 run in ``run_dir`` from the hazy images ``hazy``.

    ``clear`` holds unpaired clear images for the adversarial prior (default ``cfg.clear``; needed when
    ``cfg.adversarial_weight > 0``); ``val_hazy``/``val_clear`` a paired validation set scored with
    PSNR/SSIM each epoch. With the ASM oracle and no constant ``t``/``A`` the per-image parameters come
    from the ``eid synth`` folder holding ``hazy``. ``trainer_kwargs`` go to
    :func:`eid.training.trainer.build_trainer` (``devices``, ``num_nodes``, ``precision``...). A new run starts
    from the dehazer of the run folder ``init_from`` when given (:mod:`eid.training.init_from`). ``winograd``
    computes a learned operator's wide 3x3 convolutions by Winograd's algorithm (CPU, float32; same results,
    :mod:`eid.models.winograd`): a machine setting, not part of the recipe.
    """
    from eid.config import save_config
    from eid.data.datasets import HazyFolder, PairedFolder
    from eid.models.dehazer_files import copy_operator
    from eid.models.discriminators import min_side

    run_dir = Path(run_dir)
    cfg = with_operator_white(cfg)
    clear = [clear] if isinstance(clear, (str, Path)) else list(clear or cfg.clear)
    smallest = min_side(cfg.disc_norm)
    if cfg.adversarial_weight > 0 and 0 < cfg.crop < smallest:
        raise EIDError(
            f"crop {cfg.crop} is too small for the adversarial prior's discriminator ({cfg.disc_norm} norm); "
            f"use --crop {smallest} or more, or --no-prior"
        )
    if (
        not is_ddp_worker()
    ):  # rank 0 writes the config the DDP workers read, new or resumed (as fit_operator)
        run_dir.mkdir(parents=True, exist_ok=True)
        # a new run: make the folder self-contained
        if ckpt is None and cfg.operator_run is not None:
            copy_operator(cfg.operator_run, run_dir)
        save_config(cfg, RunFolder(run_dir).config)
    if cfg.uses_clear and not clear:
        raise EIDError(
            "the config enables a prior from clear images; pass --clear DIR with unpaired clear images, or --no-prior"
        )
    if (val_hazy is None) != (val_clear is None):
        raise EIDError("--val-hazy and --val-clear go together; give both or neither")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    crop = cfg.crop or None
    channels = cfg.model.channels
    hazy = [Path(p) for p in hazy]
    if cfg.operator == ANALYTIC_OPERATOR and cfg.asm_transmission is None:
        train_set = SynthASMFolder(
            synth_root(hazy), crop=crop, channels=channels, seed=cfg.seed, white=cfg.white
        )
    else:
        train_set = HazyFolder(
            [str(p) for p in hazy], crop=crop, channels=channels, seed=cfg.seed, white=cfg.white
        )
    clear_set = (
        HazyFolder(
            [str(c) for c in clear],
            crop=crop,
            channels=channels,
            seed=cfg.seed + 1,
            white=cfg.white,
        )
        if clear
        else None
    )
    val_set = None
    if val_hazy is not None:
        pairs = PairedFolder(
            str(val_hazy),
            str(val_clear),
            crop=VAL_CROP,
            channels=channels,
            flip=False,
            white=cfg.white,
        )
        val_set = SameCropEveryEpoch(pairs)
    module = EIDModule(cfg, clear=clear_set, run_dir=run_dir, winograd=winograd)
    if init_from is not None and ckpt is None:
        load_initial_weights(
            module.dehazer, Path(init_from), DEHAZER, config_to_dict(cfg)["model"], "dehazer"
        )
    if cfg.model.dcp_set_weight:  # the set's airlight, from this run's hazy images (not a source's)
        module.dehazer.dcp.fit_set_airlight(whole_images(hazy, channels, cfg.white))
    trainer = build_trainer(
        run_dir,
        max_steps=cfg.max_steps,
        epochs=cfg.epochs,
        steps_per_batch=2 if module.adversarial else 1,
        checkpoint_every_n_batches=cfg.checkpoint_every_n_batches,
        checkpoint_every_n_epochs=cfg.checkpoint_every_n_epochs,
        **trainer_kwargs,
    )
    start = time.monotonic()
    fit(
        trainer,
        module,
        ImageDataModule(train_set, cfg.batch_size, cfg.seed, workers, val=val_set),
        ckpt,
    )
    if trainer.is_global_zero:
        write_model_card(
            run_dir, training=training_line(batches_done(trainer), time.monotonic() - start)
        )
    return module, trainer
