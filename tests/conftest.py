"""Shared fixtures: seeded generators, small synthetic images and the optional ../shared/data folder."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

SHARED_DATA = Path(
    os.environ.get(
        "EID_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"
    )
)


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


@pytest.fixture(autouse=True, scope="session")
def _onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``eid dehaze`` caches ONNX exports (``--backend auto``, the default): in a folder of this session, shared by
    its tests (a model is exported once), never in ``~/.cache/eid``."""
    previous = os.environ.get("EID_CACHE_DIR")
    os.environ["EID_CACHE_DIR"] = str(tmp_path_factory.mktemp("eid-cache"))
    yield Path(os.environ["EID_CACHE_DIR"])
    if previous is None:
        os.environ.pop("EID_CACHE_DIR", None)
    else:
        os.environ["EID_CACHE_DIR"] = previous


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    """One thread per test: as fast for the suite's tiny tensors, and immune to a busy machine
    (a second OpenMP thread that gets descheduled stalls every parallel region)."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _auto_precision_is_fp32_on_cpus(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--precision auto`` as on a CPU without native bf16, whatever this machine has: on one with it (avx512_bf16,
    AMX) auto is bf16, and every tolerance against fp32 or ONNX Runtime would depend on the machine CI draws. Tests
    of bf16 ask for it by name (``precision="bf16"``); those of the detection are marked ``machine_precision``."""
    if request.node.get_closest_marker("machine_precision"):
        return
    from eid.inference import precision

    real = precision.native_bf16
    monkeypatch.setattr(
        precision, "native_bf16", lambda device: device.type != "cpu" and real(device)
    )


@dataclass
class CliRun:
    """What one in-process run of the ``eid`` entry point gave: exit code, stdout and stderr (with any traceback)."""

    code: int
    out: str
    err: str

    def error_line(self) -> str:
        """The one ``error:`` line of a refused run; fails when there is a traceback or more than one line."""
        assert "Traceback" not in self.err, self.err
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), self.err
        return lines[0]


@pytest.fixture
def eid_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., CliRun]:
    """Run ``eid ARGS`` through its real entry point (``eid.cli.main``: errors as one line, exit codes) in this
    process, which is ~8 s faster per call than a subprocess. An escaping exception is returned as a traceback."""
    from eid.cli import main

    def run(*args: object) -> CliRun:
        monkeypatch.setattr(sys, "argv", ["eid", *map(str, args)])
        code, trace = 0, ""
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        except BaseException:  # noqa: BLE001 - a traceback is what the tests look for
            code, trace = 1, traceback.format_exc()
        captured = capsys.readouterr()
        return CliRun(code, captured.out, captured.err + trace)

    return run


@pytest.fixture
def make_unreadable(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make a file unreadable: mode 000, and, for root (whom modes do not stop), ``open`` refused on it."""
    import builtins

    blocked: set[str] = set()
    real_open = builtins.open

    def guarded_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) in blocked:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    def block(path: Path) -> None:
        path.chmod(0)
        blocked.add(os.path.abspath(path))
        monkeypatch.setattr(builtins, "open", guarded_open)

    return block


@pytest.fixture
def asm_oracle() -> tuple[str, ...]:
    """``eid train`` flags for the analytic ASM oracle (``t`` 0.6, airlight 0.9) on batches of two 16-px crops:
    a stage-2 run of seconds, with no stage-1 run to make first."""
    return (
        "--operator",
        "asm",
        "--asm-t",
        "0.6",
        "--asm-a",
        "0.9",
        "--batch-size",
        "2",
        "--crop",
        "16",
    )
