"""``--precision auto``: bf16 autocast only where the hardware has native bf16, detected at run time.

This CI machine may or may not have bf16, so the detection is monkeypatched both ways.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from eid.errors import EIDError
from eid.inference import Dehazer, autocast_dtype, native_bf16
from eid.inference import precision as prec

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
pytestmark = pytest.mark.machine_precision  # the real detection, not conftest's fp32 stand-in


@pytest.fixture
def cpu_with(monkeypatch):
    """Pretend the CPU reports the given flags, and that torch's own probes say no."""

    def pretend(*flags: str) -> None:
        monkeypatch.setattr(prec, "cpu_flags", lambda: frozenset({"sse2", "avx2", *flags}))
        monkeypatch.setattr(prec, "_torch_cpu_bf16", lambda: False)

    return pretend


@pytest.mark.parametrize("flag", prec.BF16_CPU_FLAGS)
def test_auto_is_bf16_on_a_cpu_with_native_bf16(cpu_with, flag):
    cpu_with(flag)
    assert native_bf16(CPU)
    assert autocast_dtype("auto", CPU) is torch.bfloat16


def test_auto_is_fp32_on_a_cpu_without_bf16(cpu_with):
    cpu_with("avx512f", "avx512bw")  # AVX-512 alone emulates bf16: slower than fp32
    assert not native_bf16(CPU)
    assert autocast_dtype("auto", CPU) is None


def test_torch_probe_alone_is_enough(cpu_with, monkeypatch):
    cpu_with()
    monkeypatch.setattr(prec, "_torch_cpu_bf16", lambda: True)
    assert autocast_dtype("auto", CPU) is torch.bfloat16


@pytest.mark.parametrize("supported", [True, False])
def test_auto_on_cuda_follows_native_bf16_support(monkeypatch, supported):
    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return supported and not including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert autocast_dtype("auto", CUDA) is (torch.bfloat16 if supported else None)


def test_explicit_precisions_override_detection(cpu_with):
    cpu_with("avx512_bf16")
    assert autocast_dtype("fp32", CPU) is None
    cpu_with()
    assert autocast_dtype("bf16", CPU) is torch.bfloat16  # emulated, slow, but selectable
    assert autocast_dtype("fp16", CUDA) is torch.float16
    with pytest.raises(EIDError, match="fp16 needs a CUDA device"):
        autocast_dtype("fp16", CPU)
    with pytest.raises(EIDError, match="unknown precision"):
        autocast_dtype("int8", CPU)


def test_cpu_flags_and_model_are_read_from_cpuinfo(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\n"
    )
    monkeypatch.setattr(prec, "_CPUINFO", info)
    prec.cpu_flags.cache_clear()
    prec.cpu_model.cache_clear()
    try:
        assert prec.cpu_flags() == {"fpu", "avx2", "amx_bf16"}
        assert prec.cpu_model() == "Test CPU 9000"
    finally:
        prec.cpu_flags.cache_clear()
        prec.cpu_model.cache_clear()


def test_missing_cpuinfo_means_no_flags(tmp_path, monkeypatch):
    monkeypatch.setattr(prec, "_CPUINFO", tmp_path / "absent")
    prec.cpu_flags.cache_clear()
    try:
        assert prec.cpu_flags() == frozenset()
    finally:
        prec.cpu_flags.cache_clear()


def test_runner_autocasts_to_bf16_where_native(cpu_with):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1), nn.Sigmoid()
    )
    y = torch.rand(1, 3, 24, 24)
    cpu_with()
    fp32 = Dehazer.from_module(net, device="cpu", precision="auto")
    cpu_with("avx512_bf16")
    bf16 = Dehazer.from_module(net, device="cpu", precision="auto")
    assert fp32.amp_dtype is None and bf16.amp_dtype is torch.bfloat16
    a, b = fp32.run(y), bf16.run(y)
    assert b.dtype == torch.float32
    assert 0 < (a - b).abs().max() < 2e-2  # bf16 keeps 8 bits of mantissa


def test_training_auto_is_bf16_mixed_only_where_the_cpu_has_native_bf16(cpu_with, monkeypatch):
    from eid.training.trainer import training_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpu_with("avx512_bf16")
    assert training_precision("auto") == "bf16-mixed"
    assert training_precision("32-true") == "32-true"
    cpu_with("avx512f")
    assert training_precision("auto") == training_precision("auto", "cpu") == "32-true"
    assert training_precision("bf16-mixed") == "bf16-mixed"


def test_a_trainer_built_with_auto_precision_trains_in_what_auto_resolves_to(cpu_with, tmp_path):
    from eid.training.trainer import build_trainer

    options = {"max_steps": 1, "accelerator": "cpu", "progress": False, "samples": False}
    cpu_with("amx_bf16")
    assert build_trainer(tmp_path, precision="auto", **options).precision == "bf16-mixed"
    assert build_trainer(tmp_path, **options).precision == "32-true"  # the default, measured
    cpu_with()
    assert build_trainer(tmp_path, precision="auto", **options).precision == "32-true"
