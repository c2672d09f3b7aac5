"""FADE: no reference scores exist, so check its defining properties on real and synthetic fog."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from iqa_reference import load_reference

from eid.errors import EIDError
from eid.metrics import METRICS
from eid.metrics.fade import FADE, _log_kernel, fade, fade_features


def test_fog_free_scores_lower_than_foggy(shared_data: Path) -> None:
    scores = {
        n: float(fade(load_reference(shared_data, f"fade/{n}")))
        for n in ("test_image1.png", "test_image2.JPG", "test_image3.jpg")
    }
    assert scores["test_image1.png"] < 1.5 < scores["test_image2.JPG"] < scores["test_image3.jpg"]


def test_more_haze_more_density(shared_data: Path) -> None:
    x = load_reference(shared_data, "real-hazy/15.png")[:, :128, :128]
    batch = torch.stack([x * (1 - b) + 0.85 * b for b in (0.0, 0.3, 0.6)])
    scores = fade(batch)
    assert scores[0] < scores[1] < scores[2]


def test_synthetic_haze_and_batching(rng: torch.Generator) -> None:
    base = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 66, 66, generator=rng), 3, 1)
    batch = torch.cat([base * (1 - b) + 0.8 * b for b in (0.0, 0.5)])
    scores = fade(batch)
    assert scores.shape == (2,) and scores[0] < scores[1]
    assert torch.allclose(scores[1], fade(batch[1]))
    assert torch.equal(METRICS["fade"].fn(batch), scores)


def test_features_and_map_shapes(rng: torch.Generator) -> None:
    x = torch.rand(2, 1, 35, 50, generator=rng)
    assert fade_features(x).shape == (2, 4 * 6, 12)
    assert FADE().density_map(x).shape == (2, 4, 6)


def test_log_kernel_matches_ce_m() -> None:
    k = _log_kernel().numpy()
    x = torch.arange(-9.75, 9.5, 1.0, dtype=torch.float64).numpy()
    assert len(k) == 20 and abs(k.sum()) < 1e-12 and abs((0.5 * x * x * k).sum() - 1) < 1e-12


def test_mask(rng: torch.Generator) -> None:
    x = torch.rand(1, 3, 64, 64, generator=rng)
    mask = torch.zeros(1, 1, 64, 64, dtype=torch.bool)
    mask[..., :32, :] = True
    changed = x.clone()
    changed[..., 48:, :] = 0.3
    # contrast energy uses the image maximum, so keep the changed area below it
    assert float(fade(changed, mask)) == pytest.approx(float(fade(x, mask)), rel=0.05)
    with pytest.raises(EIDError, match="no 8x8 patch"):
        fade(x, torch.zeros_like(mask))
