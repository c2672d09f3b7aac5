"""BRISQUE: both models reproduce the shared reference table; SVR reader, masks, batching, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from iqa_reference import load_reference, reference_rows
from scipy import signal

from eid.errors import EIDError
from eid.metrics import METRICS, brisque_features
from eid.metrics.brisque import BRISQUE, _read_libsvm, brisque
from eid.metrics.brisque_mscn import brisque_mscn
from eid.metrics.nss import imresize


def _check(shared: Path, quick: bool) -> None:
    for row in reference_rows(shared, quick):
        x = load_reference(shared, row["image"])
        assert float(brisque(x)) == pytest.approx(float(row["brisque_live"]), abs=0.1), row["image"]
        assert float(brisque(x, model="brisque-pkg")) == pytest.approx(
            float(row["brisque_pypi"]), abs=0.1
        ), row["image"]


def test_reference_subset(shared_data: Path) -> None:
    _check(shared_data, quick=True)


@pytest.mark.slow
def test_reference_all(shared_data: Path) -> None:
    _check(shared_data, quick=False)


def _mscn_2d(img: torch.Tensor, window: torch.Tensor, c: float) -> np.ndarray:
    """The MSCN map by the definition: ``scipy.signal.convolve2d`` (MATLAB ``filter2``, zero padding), in the
    ``(B, H+2, W+1)`` layout of ``brisque_mscn`` (map at ``[:, 1:-1, 1:]``)."""
    w = window.numpy()
    out = []
    for x in img[:, 0].double().numpy():
        mu = signal.convolve2d(x, w, "same")
        sigma = np.sqrt(np.abs(signal.convolve2d(x * x, w, "same") - mu * mu))
        out.append(np.pad((x - mu) / (sigma + c), ((1, 1), (1, 0))))
    return np.stack(out)


def _flat_bordered(rng: torch.Generator) -> torch.Tensor:
    """Textured centres in wide constant borders of three grey levels (the dark frame of an endoscope image)."""
    x = torch.nn.functional.avg_pool2d(torch.rand(3, 3, 96, 128, generator=rng), 3, 1, 1)
    for k, level in enumerate((7, 30, 200)):
        x[k, :, :24] = x[k, :, -24:] = x[k, :, :, :32] = level / 255
    return x


def test_flat_regions_follow_the_2d_filter(rng: torch.Generator) -> None:
    # On a flat region I - mu is rounding residue whose sign decides left/right in the AGGD fits: the separable
    # filter's residues have other signs than the 2-D sum's, and move the score of such images by more than 0.1.
    x = _flat_bordered(rng)
    window = BRISQUE().window
    for img, c in ((torch.floor(x[:, :1] * 255 + 0.5), 1.0), (x[:, :1].double(), 1 / 255)):
        img = torch.cat(
            [img, imresize(img)[..., :48, :64].repeat(1, 1, 2, 2)]
        )  # non-integer flat values too
        ours, ref = brisque_mscn(img, window, c)[:, 1:-1, 1:], _mscn_2d(img, window, c)[:, 1:-1, 1:]
        assert ((ref != 0) & (np.abs(ref) < 1e-12)).sum() > 1000  # the flat residues are there
        assert np.array_equal(np.sign(ours), np.sign(ref))
        assert np.allclose(ours, ref, rtol=0, atol=1e-11)


def test_flat_bordered_scores_match_the_2d_filter(
    rng: torch.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = _flat_bordered(rng)
    scores = {name: brisque(x, model=name) for name in ("brisque-live", "brisque-pkg")}
    monkeypatch.setattr(brisque_features, "brisque_mscn", _mscn_2d)
    for name, got in scores.items():
        assert torch.allclose(got, brisque(x, model=name), rtol=0, atol=1e-9), name


def test_batch_equals_single_and_names(rng: torch.Generator) -> None:
    x = torch.rand(2, 3, 48, 40, generator=rng)
    x[1] = torch.nn.functional.avg_pool2d(x[1:2], 3, 1, 1)[0]
    for name in ("brisque-live", "brisque-pkg"):
        batch = brisque(x, model=name)
        assert batch.shape == (2,)
        assert torch.allclose(
            batch, torch.stack([brisque(x[0], model=name), brisque(x[1], model=name)])
        )
    assert torch.equal(METRICS["brisque"].fn(x), brisque(x))
    assert torch.equal(METRICS["brisque-pkg"].fn(x), brisque(x, model="brisque-pkg"))


def test_mask_ignores_outside(rng: torch.Generator) -> None:
    x = torch.rand(1, 3, 64, 64, generator=rng)
    mask = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    mask[..., :, :32] = True
    changed = x.clone()
    changed[..., 48:] = 0.2
    for name in ("brisque-live", "brisque-pkg"):
        assert float(brisque(changed, mask, name)) == pytest.approx(
            float(brisque(x, mask, name)), abs=1e-9
        )
        assert float(brisque(changed, model=name)) != pytest.approx(
            float(brisque(x, model=name)), abs=1e-3
        )


def test_libsvm_reader_dense_with_missing_indices() -> None:
    text = (
        "svm_type epsilon_svr\nkernel_type rbf\ngamma 0.05\nrho -1.5\nSV\n2 1:0.5 3:-1\n-2 2:0.25\n"
    )
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
