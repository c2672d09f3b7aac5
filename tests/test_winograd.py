"""Winograd F(4x4, 3x3) convolution: equal to direct convolution, gradients, memory, when it is used."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from eid.models import ResnetGenerator
from eid.models.winograd import WinogradConv2d, winograd_conv3x3
from eid.physics import LearnedHaze
from eid.training.cyclegan import HazeOperatorModule
from eid.training.eid_config import EIDConfig
from eid.training.eid_operator import build_operator
from eid.training.operator_config import OperatorConfig


@pytest.mark.parametrize("shape", [(2, 3, 10, 14), (1, 5, 7, 9), (1, 2, 3, 3), (3, 4, 6, 18)])
def test_equals_direct_convolution_in_float64(shape: tuple[int, ...], rng: torch.Generator) -> None:
    x = torch.randn(*shape, dtype=torch.float64, generator=rng)
    w = torch.randn(4, shape[1], 3, 3, dtype=torch.float64, generator=rng)
    b = torch.randn(4, dtype=torch.float64, generator=rng)
    assert torch.allclose(winograd_conv3x3(x, w, b), F.conv2d(x, w, b), rtol=0, atol=1e-11)
    assert torch.allclose(winograd_conv3x3(x, w), F.conv2d(x, w), rtol=0, atol=1e-11)
    padded = winograd_conv3x3(x, w, b, padding=(1, 2))
    assert torch.allclose(padded, F.conv2d(x, w, b, padding=(1, 2)), rtol=0, atol=1e-11)


def test_gradients_are_exact(rng: torch.Generator) -> None:
    x = torch.randn(2, 3, 7, 10, dtype=torch.float64, generator=rng, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, generator=rng, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, generator=rng, requires_grad=True)
    assert torch.autograd.gradcheck(winograd_conv3x3, (x, w, b))
    assert torch.autograd.gradcheck(lambda *a: winograd_conv3x3(*a, padding=(1, 1)), (x, w, b))
    frozen = w.detach()  # a frozen operator's weights: gradient to the input only
    (grad_x,) = torch.autograd.grad(winograd_conv3x3(x, frozen).square().sum(), x)
    (ref_x,) = torch.autograd.grad(F.conv2d(x, frozen).square().sum(), x)
    assert torch.allclose(grad_x, ref_x, atol=1e-10)


def test_float32_error_is_at_rounding_level(rng: torch.Generator) -> None:
    x = torch.randn(1, 128, 18, 18, generator=rng)
    w = torch.randn(128, 128, 3, 3, generator=rng) * 0.03
    ref = F.conv2d(x, w)
    assert (winograd_conv3x3(x, w) - ref).abs().max() / ref.abs().max() < 1e-5


def test_saves_only_the_input_and_the_weights(rng: torch.Generator) -> None:
    """The transforms (2.25x the input, 4x the weights) are recomputed in backward, not kept."""
    x = torch.randn(1, 16, 34, 34, generator=rng, requires_grad=True)
    w = torch.randn(16, 16, 3, 3, generator=rng, requires_grad=True)
    saved: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        winograd_conv3x3(x, w)
    assert sorted(saved) == sorted([x.numel(), w.numel()])


def _runs_winograd(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    return type(conv(x).grad_fn).__name__ == "_WinogradConvBackward"


def test_layer_uses_winograd_only_where_it_pays(rng: torch.Generator) -> None:
    x = torch.randn(1, 128, 12, 12, generator=rng, requires_grad=True)
    wide = WinogradConv2d(128, 128, 3, padding=1)
    assert _runs_winograd(wide, x)
    assert not _runs_winograd(WinogradConv2d(128, 64, 3, padding=1), x)  # below min_channels
    assert not _runs_winograd(WinogradConv2d(128, 128, 3, stride=2, padding=1), x)
    assert not _runs_winograd(WinogradConv2d(128, 128, 3, padding=1, padding_mode="reflect"), x)
    assert not _runs_winograd(WinogradConv2d(128, 128, 3, padding=1).double(), x.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not _runs_winograd(wide, x)
    direct = F.conv2d(x, wide.weight, wide.bias, padding=1)
    assert torch.allclose(wide(x), direct, atol=1e-4)


def test_layer_is_a_conv2d_for_state_dicts_and_initialisation() -> None:
    layer, plain = WinogradConv2d(4, 8, 3), nn.Conv2d(4, 8, 3)
    assert isinstance(layer, nn.Conv2d)
    assert layer.state_dict().keys() == plain.state_dict().keys()
    layer.load_state_dict(plain.state_dict())


def test_paper_generator_agrees_with_direct_convolution(rng: torch.Generator) -> None:
    """The ``paper`` generator's residual blocks (256 channels) run Winograd; output and gradients match."""
    torch.manual_seed(0)
    g = ResnetGenerator(3, 3, width=64, blocks=2, winograd=True)
    direct = ResnetGenerator(3, 3, width=64, blocks=2)
    direct.load_state_dict(g.state_dict())
    eligible = [m for m in g.modules() if isinstance(m, WinogradConv2d) and m.stride == (1, 1)]
    assert sum(min(m.in_channels, m.out_channels) >= 128 for m in eligible) == 4  # the 2 blocks
    x = (torch.rand(1, 3, 40, 56, generator=rng) * 2 - 1).requires_grad_()
    out, ref = g(x), direct(x)
    (grad,) = torch.autograd.grad(out.square().sum(), x)
    (ref_grad,) = torch.autograd.grad(ref.square().sum(), x)
    assert not torch.equal(out, ref)  # another algorithm ran: its rounding differs
    assert (out - ref).abs().max() < 1e-4
    assert (grad - ref_grad).abs().max() / ref_grad.abs().max() < 1e-4


@pytest.mark.parametrize(("winograd", "batch"), [(True, 1), (True, 4), (False, 1)])
def test_stage_one_builds_winograd_generators_when_asked(winograd: bool, batch: int) -> None:
    cfg = OperatorConfig()
    cfg.model.width, cfg.model.blocks, cfg.data.batch_size = 4, 1, batch
    module = HazeOperatorModule(cfg, winograd=winograd)
    for generator in (module.g_ab, module.g_ba):
        assert any(isinstance(m, WinogradConv2d) for m in generator.modules()) is winograd
    assert not any(
        isinstance(m, WinogradConv2d) for m in ResnetGenerator(width=4, blocks=1).modules()
    )


@pytest.mark.parametrize(("winograd", "batch"), [(True, 1), (True, 4), (False, 1)])
def test_stage_two_builds_a_winograd_operator_when_asked(
    winograd: bool, batch: int, tmp_path: Path
) -> None:
    config = {"model": {"channels": 1, "width": 4, "blocks": 1, "n_down": 2}}
    LearnedHaze(*[ResnetGenerator(1, 1, width=4, blocks=1) for _ in range(2)], config=config).save(
        tmp_path
    )
    physics = build_operator(EIDConfig(operator=str(tmp_path), batch_size=batch), winograd=winograd)
    for generator in (physics.g_ab, physics.g_ba):
        assert any(isinstance(m, WinogradConv2d) for m in generator.modules()) is winograd


def test_winograd_is_on_by_default_in_both_stages(tmp_path: Path) -> None:
    cfg = OperatorConfig()
    cfg.model.width, cfg.model.blocks = 4, 1
    module = HazeOperatorModule(cfg)
    assert any(isinstance(m, WinogradConv2d) for m in module.g_ab.modules())
    config = {"model": {"channels": 1, "width": 4, "blocks": 1, "n_down": 2}}
    LearnedHaze(*[ResnetGenerator(1, 1, width=4, blocks=1) for _ in range(2)], config=config).save(
        tmp_path
    )
    physics = build_operator(EIDConfig(operator=str(tmp_path)))
    assert any(isinstance(m, WinogradConv2d) for m in physics.g_ab.modules())


def test_frozen_winograd_operator_under_checkpointing_and_inference_mode(
    rng: torch.Generator,
) -> None:
    """Stage 2's uses of a Winograd operator: input gradients through the frozen operator, the same when
    recomputed by activation checkpointing (``checkpoint_operator``), and inference mode."""
    torch.manual_seed(0)
    winograd = [ResnetGenerator(3, 3, width=64, blocks=1, winograd=True) for _ in range(2)]
    direct = [ResnetGenerator(3, 3, width=64, blocks=1) for _ in range(2)]
    for w, d in zip(winograd, direct, strict=True):
        d.load_state_dict(w.state_dict())
    op, reference = (LearnedHaze(*gens).eval().requires_grad_(False) for gens in (winograd, direct))
    x = torch.rand(1, 3, 36, 44, generator=rng)

    def input_grad(run) -> torch.Tensor:
        v = x.clone().requires_grad_()
        run(v).square().sum().backward()
        return v.grad

    grad = input_grad(op.A)
    assert torch.equal(input_grad(lambda v: checkpoint(op.A, v, use_reentrant=False)), grad)
    # Same function as direct convolution; at 9x11 px the untrained network's instance norms amplify the
    # 1e-6 rounding differences of single layers to about 1e-3 (as before the fourth session's changes).
    assert (grad - input_grad(reference.A)).norm() / grad.norm() < 1e-2
    with_graph = op.A(x.clone().requires_grad_()).detach()
    with torch.inference_mode():
        assert torch.equal(op.A(x), with_graph)
        assert (op.A(x) - reference.A(x)).abs().max() < 1e-3
