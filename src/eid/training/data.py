"""Reproducible data order for both stages: :class:`SeededSampler` + :class:`ResumableLoader` +
:class:`ImageDataModule`.

The order of epoch ``e`` is a permutation seeded by ``seed + e`` (split over DDP ranks like
``DistributedSampler``), every item gets its own seed for its random crop/flip, and the loader records how many
batches of the epoch were consumed, so that a run resumed from a mid-epoch checkpoint sees exactly the batches
an uninterrupted run would have seen.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from eid.data.datasets import item_seed


class SeededSampler(DistributedSampler):
    """``DistributedSampler`` that yields ``(index, item_seed)`` and can skip the first items of an epoch.

    Datasets in :mod:`eid.data.datasets` accept such keys and draw their crop/flip from ``item_seed``, so the
    data stream is a pure function of ``(seed, epoch, position)``: independent of worker count and order.
    Being a ``DistributedSampler``, Lightning keeps it as it is under DDP (rank and world size are given here).
    """

    def __init__(
        self, length: int, seed: int, shuffle: bool = True, num_replicas: int = 1, rank: int = 0
    ) -> None:
        super().__init__(
            range(length),
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=False,
        )
        self.skip = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())
        start, self.skip = self.skip, 0
        for pos in range(start, len(indices)):
            yield (
                indices[pos],
                item_seed(self.seed, self.epoch, pos * self.num_replicas + self.rank),
            )


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over a :class:`SeededSampler` that Lightning can checkpoint mid-epoch.

    ``state_dict()`` records the epoch and the number of batches yielded; after ``load_state_dict`` the next
    iteration skips those batches (or, if the epoch was complete, starts the next epoch from its beginning).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resume_batches = 0
        self._consumed = 0

    def __iter__(self) -> Iterator[Any]:
        self._consumed, self._resume_batches = self._resume_batches, 0
        self.sampler.skip = self._consumed * self.batch_size
        for batch in super().__iter__():
            self._consumed += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.sampler.epoch), "batches": int(self._consumed)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume_batches = state["batches"] if state["batches"] < len(self) else 0


def seed_worker(worker_id: int) -> None:
    """Seed NumPy and ``random`` in a DataLoader worker from its torch seed (itself derived from the loader's)."""
    base = torch.initial_seed() % 2**32
    np.random.seed(base)
    random.seed(base)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    workers: int = 0,
    shuffle: bool = True,
    num_replicas: int = 1,
    rank: int = 0,
) -> ResumableLoader:
    """A :class:`ResumableLoader` with a :class:`SeededSampler` and seeded workers."""
    sampler = SeededSampler(
        len(dataset), seed=seed, shuffle=shuffle, num_replicas=num_replicas, rank=rank
    )
    return ResumableLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=torch.cuda.is_available(),
    )


class ImageDataModule(L.LightningDataModule):
    """Train (and optional validation) loaders over ``(index, item_seed)``-keyed datasets.

    Loaders are built when Lightning asks for them, i.e. after the process group exists, so each DDP rank
    gets its own shard of every epoch.
    """

    def __init__(
        self,
        train: Dataset,
        batch_size: int,
        seed: int,
        workers: int = 0,
        val: Dataset | None = None,
    ) -> None:
        super().__init__()
        self.train, self.val = train, val
        self.batch_size, self.seed, self.workers = batch_size, seed, workers

    def _loader(self, dataset: Dataset, shuffle: bool) -> ResumableLoader:
        world, rank = (
            (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        )
        return make_loader(dataset, self.batch_size, self.seed, self.workers, shuffle, world, rank)

    def train_dataloader(self) -> ResumableLoader:
        return self._loader(self.train, shuffle=True)

    def val_dataloader(self) -> ResumableLoader | list:
        """The validation loader, or an empty list (Lightning then skips validation)."""
        return self._loader(self.val, shuffle=False) if self.val is not None else []
