"""BRISQUE: both models reproduce the shared reference table; SVR reader, masks, batching, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_niqe import load_reference, reference_rows

from eid.errors import EIDError
from eid.metrics import METRICS
from eid.metrics.brisque import BRISQUE, _read_libsvm, brisque


def _check(shared: Path, quick: bool) -> None:
    for row in reference_rows(shared, quick):
        x = load_reference(shared, row["image"])
        assert float(brisque(x)) == pytest.approx(float(row["brisque_live"]), abs=0.1), row["image"]
        assert float(brisque(x, model="brisque-pkg")) == pytest.approx(float(row["brisque_pypi"]), abs=0.1), row["image"]


def test_reference_subset(shared_data: Path) -> None:
    _check(shared_data, quick=True)


@pytest.mark.slow
def test_reference_all(shared_data: Path) -> None:
    _check(shared_data, quick=False)


def test_batch_equals_single_and_names(rng: torch.Generator) -> None:
    x = torch.rand(2, 3, 48, 40, generator=rng)
    x[1] = torch.nn.functional.avg_pool2d(x[1:2], 3, 1, 1)[0]
    for name in ("brisque-live", "brisque-pkg"):
        batch = brisque(x, model=name)
        assert batch.shape == (2,)
        assert torch.allclose(batch, torch.stack([brisque(x[0], model=name), brisque(x[1], model=name)]))
    assert torch.equal(METRICS["brisque"].fn(x), brisque(x))
    assert torch.equal(METRICS["brisque-pkg"].fn(x), brisque(x, model="brisque-pkg"))


def test_mask_ignores_outside(rng: torch.Generator) -> None:
    x = torch.rand(1, 3, 64, 64, generator=rng)
    mask = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    mask[..., :, :32] = True
    changed = x.clone()
    changed[..., 48:] = 0.2
    for name in ("brisque-live", "brisque-pkg"):
        assert float(brisque(changed, mask, name)) == pytest.approx(float(brisque(x, mask, name)), abs=1e-9)
        assert float(brisque(changed, model=name)) != pytest.approx(float(brisque(x, model=name)), abs=1e-3)


def test_libsvm_reader_dense_with_missing_indices() -> None:
    text = "svm_type epsilon_svr\nkernel_type rbf\ngamma 0.05\nrho -1.5\nSV\n2 1:0.5 3:-1\n-2 2:0.25\n"
    model = _read_libsvm(text)
    assert model["sv"].shape == (2, 36)
    assert model["sv"][0, :3].tolist() == [0.5, 0.0, -1.0] and model["sv"][1, 1] == 0.25
    assert model["coef"].tolist() == [2.0, -2.0] and float(model["rho"]) == -1.5


def test_far_from_support_vectors_scores_minus_rho() -> None:
    model = BRISQUE("brisque-pkg")
    far = torch.full((1, 36), 1e3, dtype=torch.float64)
    dist = torch.cdist(far, model.sv) ** 2
    assert float(torch.exp(-model.gamma * dist) @ model.coef - model.rho) == pytest.approx(155.845)


def test_errors() -> None:
    with pytest.raises(EIDError, match="unknown BRISQUE model"):
        BRISQUE("piq")
    with pytest.raises(EIDError, match="at least 16x16"):
        brisque(torch.rand(1, 3, 8, 64))
