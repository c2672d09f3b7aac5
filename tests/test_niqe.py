"""NIQE: reproduces BasicSR 1.4.2 on the shared reference table; batching, channels and errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from iqa_reference import load_reference, reference_rows

from eid.errors import EIDError
from eid.metrics import METRICS
from eid.metrics.niqe import NIQE, niqe
from eid.metrics.nss import imresize, luma, to_levels


def _check(shared: Path, quick: bool) -> None:
    for row in reference_rows(shared, quick):
        got = float(niqe(load_reference(shared, row["image"])))
        assert got == pytest.approx(float(row["niqe"]), abs=0.01), row["image"]


def test_reference_subset(shared_data: Path) -> None:
    _check(shared_data, quick=True)


@pytest.mark.slow
def test_reference_all(shared_data: Path) -> None:
    _check(shared_data, quick=False)


def test_batch_equals_single(rng: torch.Generator) -> None:
    x = torch.rand(2, 3, 192, 200, generator=rng)
    x[1] = torch.nn.functional.avg_pool2d(x[1:2], 3, 1, 1)[0]
    batch = niqe(x)
    assert batch.shape == (2,)
    assert torch.allclose(batch, torch.stack([niqe(x[0]), niqe(x[1])]))
    assert batch[1] != batch[0]


def test_grey_channel_and_grey_input(rng: torch.Generator) -> None:
    x = torch.round(torch.rand(1, 3, 192, 192, generator=rng) * 255) / 255
    grey = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]
    levels = luma(to_levels(x), "grey")
    assert (levels - to_levels(grey)).abs().max() <= 1  # only float32 ties at .5 may differ
    assert float(NIQE(channel="grey")(x)) == pytest.approx(float(niqe(levels / 255)), abs=1e-9)
    assert float(NIQE(channel="grey")(x)) != pytest.approx(float(niqe(x)), abs=1e-3)


def test_size_errors() -> None:
    with pytest.raises(EIDError, match="at least 96x96"):
        niqe(torch.rand(1, 3, 64, 200))
    with pytest.raises(EIDError, match="at least 2 blocks"):
        niqe(torch.rand(1, 3, 96, 150))


def test_mask_selects_blocks(rng: torch.Generator) -> None:
    x = torch.rand(1, 1, 192, 288, generator=rng)
    mask = torch.zeros(1, 1, 192, 288, dtype=torch.bool)
    mask[..., :, :192] = True
    assert float(niqe(x, torch.ones_like(mask))) == float(niqe(x))
    changed = x.clone()
    changed[..., 220:] = 0.5  # outside the kept blocks and beyond the reach of their filters
    assert float(niqe(changed, mask)) == pytest.approx(float(niqe(x, mask)), abs=1e-12)
    assert float(niqe(changed)) != pytest.approx(float(niqe(x)), abs=1e-3)
    with pytest.raises(EIDError, match="at least 2 blocks"):
        niqe(x, torch.zeros_like(mask))


def test_imresize_matlab_properties() -> None:
    const = torch.full((1, 1, 10, 14), 3.0, dtype=torch.float64)
    assert torch.allclose(imresize(const), torch.full((1, 1, 5, 7), 3.0, dtype=torch.float64))
    ramp = torch.arange(32, dtype=torch.float64).view(1, 32).expand(4, 32)
    # antialiased cubic on a linear ramp, away from the borders, samples the midpoints 2i + 0.5
    mid = torch.arange(3, 13, dtype=torch.float64)
    assert torch.allclose(imresize(ramp)[:, 3:13], (2 * mid + 0.5).expand(2, 10))


def test_registered() -> None:
    spec = METRICS["niqe"]
    assert spec.lower_better and not spec.needs_reference and spec.supports_mask
