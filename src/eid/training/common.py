"""Old home of the shared training plumbing, kept for the benchmarks until they import the new modules.

It is now split by concern: :mod:`eid.training.trainer` (``build_trainer``, ``build_logger``, ``fit``),
:mod:`eid.training.checkpoints`, :mod:`eid.training.callbacks`, :mod:`eid.training.data` and
:mod:`eid.training.run_folder`. A name imported from here is looked up there when first used.
"""

from __future__ import annotations

from eid.utils import moved_names

__getattr__ = moved_names(__name__, {
    "eid.training.trainer": ("LOGGERS", "build_logger", "build_trainer", "fit"),
    "eid.training.checkpoints": ("AtomicCheckpointIO", "RunCheckpoint", "load_checkpoint"),
    "eid.training.callbacks": ("EpochEndThrottle", "LearningRates", "NonFiniteGuard", "NonFiniteLossError",
                               "SampleGrid", "ensure_finite", "is_last_epoch"),
    "eid.training.data": ("ImageDataModule", "ResumableLoader", "SeededSampler", "make_loader", "seed_worker"),
    "eid.training.run_folder": ("CHECKPOINT_DIR", "LAST_CHECKPOINT", "Inputs", "RunFolder", "is_ddp_worker",
                                "prepare_run_dir"),
})  # fmt: skip
