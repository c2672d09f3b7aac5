"""Dark Channel Prior: filters against direct loops, and the properties of the estimates."""

from __future__ import annotations

import pytest
import torch

from eid.baselines import DarkChannelPrior
from eid.baselines.dcp import box_filter, guided_filter, min_filter
from eid.errors import EIDError
from eid.physics import ASMHaze


def _window(x: torch.Tensor, i: int, j: int, lo: int, hi: int) -> torch.Tensor:
    """The pixels of ``x`` (...,H,W) in rows i-lo..i+hi and columns j-lo..j+hi, clipped to the image."""
    return x[..., max(0, i - lo) : i + hi + 1, max(0, j - lo) : j + hi + 1]


def _loop_min_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    out = torch.empty_like(x)
    for i in range(x.shape[-2]):
        for j in range(x.shape[-1]):
            out[..., i, j] = _window(x, i, j, (size - 1) // 2, size // 2).amin((-2, -1))
    return out


def _loop_box(x: torch.Tensor, r: int) -> torch.Tensor:
    out = torch.empty_like(x)
    for i in range(x.shape[-2]):
        for j in range(x.shape[-1]):
            out[..., i, j] = _window(x, i, j, r, r).mean((-2, -1))
    return out


def _loop_guided_filter(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """He et al.'s Algorithm 1 with explicit window loops (float64)."""
    g, p = guide.double(), src.double()
    mean_i, mean_p = _loop_box(g, r), _loop_box(p, r)
    a = (_loop_box(g * p, r) - mean_i * mean_p) / (_loop_box(g * g, r) - mean_i**2 + eps)
    b = mean_p - a * mean_i
    return (_loop_box(a, r) * g + _loop_box(b, r)).float()


def _haze_free(rng: torch.Generator, b: int = 1, h: int = 32, w: int = 40) -> torch.Tensor:
    """Saturated colours: every pixel has one zero channel, so the dark channel is exactly 0."""
    x = 0.2 + 0.8 * torch.rand(b, 3, h, w, generator=rng)
    zero = torch.randint(0, 3, (b, 1, h, w), generator=rng)
    return x.scatter(1, zero, 0.0)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 15])
def test_min_filter_matches_loop(rng: torch.Generator, size: int) -> None:
    x = torch.rand(2, 1, 9, 13, generator=rng)
    torch.testing.assert_close(min_filter(x, size), _loop_min_filter(x, size), atol=0, rtol=0)


@pytest.mark.parametrize("r", [0, 1, 3, 20])
def test_box_filter_matches_loop(rng: torch.Generator, r: int) -> None:
    x = torch.rand(1, 2, 11, 14, generator=rng)
    torch.testing.assert_close(box_filter(x, r), _loop_box(x, r), atol=1e-6, rtol=0)


@pytest.mark.parametrize(("r", "eps"), [(1, 1e-3), (3, 1e-2), (30, 1e-3)])
def test_guided_filter_matches_loop(rng: torch.Generator, r: int, eps: float) -> None:
    guide = torch.rand(1, 1, 12, 15, generator=rng)
    src = torch.rand(1, 1, 12, 15, generator=rng)
    torch.testing.assert_close(
        guided_filter(guide, src, r, eps),
        _loop_guided_filter(guide, src, r, eps),
        atol=1e-5,
        rtol=0,
    )


def test_airlight_within_image_range_and_t_bounds(rng: torch.Generator) -> None:
    dcp = DarkChannelPrior()
    y = 0.1 + 0.7 * torch.rand(3, 3, 40, 48, generator=rng)
    j, t, a = dcp.estimate(y)
    flat = y.flatten(2)
    assert torch.all(a[..., 0, 0] >= flat.amin(2)) and torch.all(a[..., 0, 0] <= flat.amax(2))
    # A is the colour of one input pixel
    assert all(torch.isclose(flat[i], a[i, :, 0]).all(0).any() for i in range(3))
    assert t.min() >= dcp.t0 and t.max() <= 1.0
    assert j.min() >= 0 and j.max() <= 1 and j.shape == y.shape


def test_haze_free_image_is_nearly_unchanged(rng: torch.Generator) -> None:
    x = _haze_free(rng, b=2)
    j, t, _ = DarkChannelPrior().estimate(x)
    torch.testing.assert_close(t, torch.ones_like(t), atol=1e-4, rtol=0)
    torch.testing.assert_close(j, x, atol=1e-4, rtol=0)


def _asm_scene(
    rng: torch.Generator, t_true: float, a_true: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Haze-free scene with an airlight-coloured "sky" band (rows 0-7), hazed with constant t."""
    clear = _haze_free(rng, h=48, w=48)
    clear[..., :8, :] = a_true
    return clear, ASMHaze(transmission=t_true, airlight=a_true).A(clear)


def test_recovery_is_exact_on_constant_t_asm_without_refinement(rng: torch.Generator) -> None:
    """omega = 1, no guided filter: A, t and J exact (atol 1e-5) away from the sky band (+ half a patch)."""
    clear, hazy = _asm_scene(rng, t_true=0.6, a_true=0.8)
    j, t, a = DarkChannelPrior(omega=1.0, gf_radius=0).estimate(hazy)
    torch.testing.assert_close(a, torch.full((1, 3, 1, 1), 0.8), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        t[..., 16:, :], torch.full_like(t[..., 16:, :], 0.6), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(j[..., 16:, :], clear[..., 16:, :], atol=1e-5, rtol=0)


def test_recovery_is_close_with_default_settings(rng: torch.Generator) -> None:
    """Defaults (omega 0.95 keeps 5 % haze, guided filter): A exact, median |t - t*| < 0.03, median |J - J*| < 0.03."""
    clear, hazy = _asm_scene(rng, t_true=0.6, a_true=0.8)
    j, t, a = DarkChannelPrior().estimate(hazy)
    torch.testing.assert_close(a, torch.full((1, 3, 1, 1), 0.8), atol=1e-6, rtol=0)
    assert (t[..., 16:, :] - 0.6).abs().median() < 0.03
    assert (j[..., 16:, :] - clear[..., 16:, :]).abs().median() < 0.03


def test_batch_equals_per_image(rng: torch.Generator) -> None:
    dcp = DarkChannelPrior(gf_radius=8)
    y = torch.rand(3, 3, 24, 30, generator=rng)
    batched = dcp.estimate(y)
    for i in range(3):
        single = dcp.estimate(y[i : i + 1])
        for got, want in zip(batched, single):
            torch.testing.assert_close(got[i : i + 1], want, atol=1e-6, rtol=0)


def test_single_channel(rng: torch.Generator) -> None:
    y = 0.3 + 0.5 * torch.rand(2, 1, 20, 20, generator=rng)
    j, t, a = DarkChannelPrior().estimate(y)
    assert j.shape == y.shape and t.shape == (2, 1, 20, 20) and a.shape == (2, 1, 1, 1)
    assert torch.all(
        (a[:, 0, 0, 0] >= y.flatten(1).amin(1)) & (a[:, 0, 0, 0] <= y.flatten(1).amax(1))
    )


def test_forward_is_dehazed_image_and_bad_shape_raises(rng: torch.Generator) -> None:
    dcp = DarkChannelPrior()
    y = torch.rand(1, 3, 16, 16, generator=rng)
    torch.testing.assert_close(dcp(y), dcp.estimate(y)[0])
    with pytest.raises(EIDError, match="B,1\\|3,H,W"):
        dcp(torch.rand(1, 4, 16, 16))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_gpu(rng: torch.Generator) -> None:
    y = torch.rand(2, 3, 32, 32, generator=rng)
    torch.testing.assert_close(
        DarkChannelPrior()(y.cuda()).cpu(), DarkChannelPrior()(y), atol=1e-4, rtol=0
    )


def test_tiles_with_the_whole_images_airlight_give_the_whole_image_estimate(
    rng: torch.Generator,
) -> None:
    """With the airlight fixed DCP is local (radius patch // 2 + 2 r), so tiles that discard R px reproduce it."""
    from eid.inference.dcp_tiles import tiled_dcp
    from eid.inference.tiling import tiled_apply

    dcp = DarkChannelPrior(gf_radius=12)
    assert dcp.radius == 7 + 24
    depth = torch.linspace(0.2, 0.9, 260).expand(1, 1, 190, 260)
    y = ASMHaze()(torch.rand(2, 3, 190, 260, generator=rng), transmission=depth, airlight=0.8)
    whole = dcp(y)
    seen: list[tuple[int, ...]] = []
    recover = dcp.recover
    dcp.recover = lambda tiles, a: seen.append(tuple(tiles.shape[-2:])) or recover(tiles, a)
    tiled = tiled_dcp(dcp, y, 64)
    assert seen and max(max(shape) for shape in seen) == 4 * dcp.radius  # never the whole image
    assert float((tiled - whole).abs().max()) < 1e-5
    # the test can fail: tiles with their own airlight are not the whole image's estimate
    own = tiled_apply(dcp, y[:1], 4 * dcp.radius, 2 * dcp.radius, margin=dcp.radius)
    assert float((own - whole[:1]).abs().max()) > 1e-2
