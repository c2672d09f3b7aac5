"""Field-of-view masks: inscribed circle, auto-detected disc, mask files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from eid.errors import EIDError
from eid.metrics.mask import circle_mask, fov_mask


def _endoscope(h: int = 60, w: int = 80, radius: float = 26.0) -> torch.Tensor:
    y = torch.arange(h)[:, None] - 30.0
    x = torch.arange(w)[None, :] - 40.0
    disc = (y**2 + x**2) <= radius**2
    img = torch.zeros(1, 3, h, w)
    img[:, 0] = disc * 0.7
    img[:, 1] = disc * 0.4
    img[..., 28:33, 38:43] = 0.0  # dark tissue inside the view stays inside the mask
    return img


def test_circle() -> None:
    m = circle_mask(10, 20)
    assert m.shape == (1, 1, 10, 20) and m.dtype == torch.bool
    assert m[0, 0, 5, 10] and not m[0, 0, 0, 0] and not m[0, 0, 5, 2]
    assert fov_mask(torch.rand(3, 3, 10, 20), "circle").shape == (3, 1, 10, 20)


def test_auto_detects_disc() -> None:
    img = _endoscope()
    m = fov_mask(torch.cat([img, torch.zeros_like(img)]), "auto")
    assert m.shape == (2, 1, 60, 80)
    assert m[0, 0, 30, 40] and not m[0, 0, 2, 2] and not m[0, 0, 30, 75]
    assert 2100 * 0.6 < int(m[0].sum()) < 2124  # pi 26^2 = 2124, minus the 4-pixel rim
    assert not m[1].any()


def test_auto_on_cholec(shared_data: Path) -> None:
    from iqa_reference import load_reference

    x = load_reference(shared_data, "cholec80-smoke/hazy/video07_003217.png")[None]
    m = fov_mask(x, "auto")
    assert 0.6 < float(m.float().mean()) < 0.85
    assert float(x[:, :, ~m[0, 0]].mean()) < float(x[:, :, m[0, 0]].mean()) / 4


def test_file_and_errors(tmp_path: Path) -> None:
    with pytest.raises(EIDError, match="neither"):
        fov_mask(torch.rand(1, 3, 8, 8), str(tmp_path / "missing.png"))
    io = pytest.importorskip("eid.data.io")
    path = tmp_path / "mask.png"
    mask = torch.zeros(1, 8, 8)
    mask[:, 2:6, 2:6] = 1
    io.write_image(path, mask)
    got = fov_mask(torch.rand(2, 3, 8, 8), str(path))
    assert got.shape == (2, 1, 8, 8) and int(got[0].sum()) == 16
    with pytest.raises(EIDError, match="same size"):
        fov_mask(torch.rand(1, 3, 9, 8), str(path))


def test_mask_from_uses_the_input_of_the_same_name(tmp_path: Path) -> None:
    """`eid evaluate --mask auto --mask-from HAZY`: every output is scored inside its input's field of view."""
    from eid.cli.evaluate import _mask_fn
    from eid.data.io import write_image

    hazy, output = (
        _endoscope(radius=20.0),
        _endoscope(radius=30.0),
    )  # e.g. a method that lit the border up
    write_image(tmp_path / "hazy" / "frame1.png", hazy[0])
    path = tmp_path / "out" / "frame1.png"
    own, from_input = (
        _mask_fn("auto", None)(output, path),
        _mask_fn("auto", tmp_path / "hazy")(output, path),
    )
    assert torch.equal(from_input, fov_mask(hazy, "auto"))
    assert own.sum() > from_input.sum() * 1.5
    with pytest.raises(EIDError, match="no image named frame2"):
        _mask_fn("auto", tmp_path / "hazy")(output, tmp_path / "out" / "frame2.png")
    with pytest.raises(EIDError, match="use circle, auto or an existing mask image file"):
        _mask_fn("oval", None)  # refused before any image is read
