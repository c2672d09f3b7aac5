"""Shared fixtures: seeded generators, small synthetic images and the optional ../shared/data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(os.environ.get("EID_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture
def rng() -> torch.Generator:
    """A CPU generator with a fixed seed."""
    return torch.Generator().manual_seed(0)


@pytest.fixture
def shared_data() -> Path:
    """The ``../shared/data`` folder of real test images; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    """One thread per test: as fast for the suite's tiny tensors, and immune to a busy machine
    (a second OpenMP thread that gets descheduled stalls every parallel region)."""
    torch.set_num_threads(1)
