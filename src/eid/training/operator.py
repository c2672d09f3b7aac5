"""Stage 1's entry points: :func:`fit_operator` trains a run, :func:`operator_module` picks the module for
``cfg.model.kind`` (:class:`~eid.training.cyclegan.HazeOperatorModule`, the authors' CycleGAN, or
:class:`~eid.training.scattering.ScatteringOperatorModule`); the recipe is in :mod:`eid.training.operator_config`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from torch import nn

from eid.config import config_to_dict, save_config
from eid.run_layout import OPERATOR
from eid.training.cyclegan import STEPS_PER_BATCH, HazeOperatorModule
from eid.training.data import ImageDataModule
from eid.training.init_from import load_initial_weights, operator_networks
from eid.training.model_card import training_line, write_model_card
from eid.training.operator_config import OperatorConfig
from eid.training.progress import batches_done
from eid.training.run_folder import RunFolder, is_ddp_worker
from eid.training.scattering import ScatteringOperatorModule
from eid.training.trainer import build_trainer, fit

__all__ = [
    "STEPS_PER_BATCH",
    "HazeOperatorModule",
    "OperatorConfig",
    "fit_operator",
    "operator_module",
    "parameter_count",
]


def fit_operator(
    cfg: OperatorConfig,
    clear: str | Path | Sequence[str | Path],
    hazy: str | Path | Sequence[str | Path],
    run_dir: str | Path,
    *,
    ckpt: Path | None = None,
    workers: int = 0,
    callbacks: Sequence[L.Callback] = (),
    init_from: Path | None = None,
    winograd: bool = True,
    channels_last: bool = False,
    **trainer_kwargs: Any,
) -> tuple[HazeOperatorModule, L.Trainer]:
    """Train (or resume from ``ckpt``) a stage-1 run in ``run_dir``; ``trainer_kwargs`` go to :func:`build_trainer`
    (``devices``, ``num_nodes``, ``precision``, ``accelerator``, ``progress``...). A new run starts from the
    operator of the run folder ``init_from`` when given (:mod:`eid.training.init_from`). ``winograd`` and
    ``channels_last`` are machine settings, not part of the recipe (:class:`HazeOperatorModule`): they change how
    the step is computed, not what is trained, and a resumed run may change them."""
    from eid.data.datasets import UnpairedFolders

    run_dir = Path(run_dir)
    if (
        not is_ddp_worker()
    ):  # rank 0 writes the config the DDP workers read, new or resumed (as fit_eid)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, RunFolder(run_dir).config)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    dataset = UnpairedFolders(
        clear, hazy, crop=cfg.data.crop, load_size=cfg.data.load_size, channels=cfg.model.channels,
        flip=cfg.data.flip, seed=cfg.seed, white=cfg.data.white,
    )  # fmt: skip
    module = operator_module(cfg, run_dir, winograd=winograd, channels_last=channels_last)
    if init_from is not None and ckpt is None:
        load_initial_weights(
            operator_networks(module),
            Path(init_from),
            OPERATOR,
            config_to_dict(cfg)["model"],
            "operator",
        )
    trainer = build_trainer(
        run_dir, max_steps=cfg.max_steps, epochs=cfg.epochs, log_every=cfg.log_every,
        checkpoint_every_n_batches=cfg.checkpoint_every_n_batches,
        checkpoint_every_n_epochs=cfg.checkpoint_every_n_epochs, steps_per_batch=STEPS_PER_BATCH,
        callbacks=callbacks, **trainer_kwargs,
    )  # fmt: skip
    start = time.monotonic()
    fit(trainer, module, ImageDataModule(dataset, cfg.data.batch_size, cfg.seed, workers), ckpt)
    if trainer.is_global_zero:
        write_model_card(
            run_dir, training=training_line(batches_done(trainer), time.monotonic() - start)
        )
    return module, trainer


def operator_module(
    cfg: OperatorConfig,
    run_dir: str | Path | None = None,
    *,
    winograd: bool = True,
    channels_last: bool = False,
) -> HazeOperatorModule:
    """The stage-1 module for ``cfg.model.kind`` (machine settings ``winograd``, ``channels_last``:
    :class:`HazeOperatorModule`)."""
    cls = ScatteringOperatorModule if cfg.model.kind == "scattering" else HazeOperatorModule
    return cls(cfg, run_dir=run_dir, winograd=winograd, channels_last=channels_last)


def parameter_count(module: nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())
