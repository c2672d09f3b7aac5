"""Compute precision: bf16 autocast where the hardware runs bf16 natively, fp32 otherwise.

``auto`` is detected at run time, never assumed: a CPU has native bf16 when it reports ``avx512_bf16``
or ``amx_bf16`` (torch's own probes, else the flags of ``/proc/cpuinfo``); on a CPU without them bf16 is
emulated and slower than fp32. A CUDA GPU has it when ``torch.cuda.is_bf16_supported`` says so without
emulation (Ampere and later). The quality cost is measured in ``docs/benchmarks/inference-speed.md``.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

import torch

from eid.errors import EIDError

__all__ = [
    "BF16_CPU_FLAGS",
    "PRECISIONS",
    "autocast_dtype",
    "cpu_flags",
    "cpu_model",
    "native_bf16",
]

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
_CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_field(name: str) -> str:
    """The first ``name : value`` of ``/proc/cpuinfo``, or ``""`` where there is none (not Linux)."""
    try:
        text = _CPUINFO.read_text(errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return ""


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where unreadable)."""
    return frozenset(_cpuinfo_field("flags").split())


@functools.cache
def cpu_model() -> str:
    """The CPU's model name, for benchmark records."""
    import platform

    return _cpuinfo_field("model name") or platform.processor() or "unknown CPU"


def _torch_cpu_bf16() -> bool:
    """torch's own probes for avx512_bf16 and AMX tiles (private, so absent ones count as no)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (CPU: avx512_bf16/amx_bf16; CUDA: Ampere or later)."""
    if device.type == "cuda":
        check = torch.cuda.is_bf16_supported
        if "including_emulation" in inspect.signature(check).parameters:
            return bool(check(including_emulation=False))
        return bool(check())
    if device.type == "cpu":
        return _torch_cpu_bf16() or any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)
    return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``, or ``None`` for plain fp32.

    ``auto``: bf16 where :func:`native_bf16`, else fp32. ``bf16`` is allowed on CPU and CUDA (emulated,
    hence slow, without native support); ``fp16`` on CUDA only (CPU fp16 autocast is neither fast nor
    tested here).

    >>> autocast_dtype("fp32", torch.device("cpu")) is None
    True
    >>> autocast_dtype("bf16", torch.device("cpu"))
    torch.bfloat16
    """
    if precision not in PRECISIONS:
        raise EIDError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return torch.bfloat16 if native_bf16(device) else None
    if precision == "fp16" and device.type != "cuda":
        raise EIDError(
            f"--precision fp16 needs a CUDA device; use bf16, fp32 or auto on {device.type}"
        )
    if precision == "bf16" and device.type not in ("cpu", "cuda"):
        raise EIDError(
            f"--precision bf16 needs a CPU or CUDA device; use fp32 or auto on {device.type}"
        )
    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
