"""Small shared helpers: atomic writes (and the clean-up of what a killed one leaves), seeding and device selection."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from queue import Empty, Full, Queue
from typing import Any, TypeVar

import torch

from eid.errors import EIDError

T = TypeVar("T")

#: Temp files of :func:`atomic_write`: ``.<stem>.[eid-<host>-<pid>-]<random>.tmp<suffix>`` (the owner part is absent
#: in files written before it was added).
_TEMP_NAME = re.compile(
    r"^\..+?\.(?:eid-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-)?[a-z0-9_]{8}\.tmp(?:\.ome)?(?:\.[^.]+)?$"
)
STALE_TEMP_SECONDS = 3600
"""A temp file of another machine (or of unknown owner) untouched for this long is an orphan: writes are short."""


def _host_tag() -> str:
    """8 hex digits naming this machine in temp file names (hostnames may hold dots and dashes)."""
    return hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (no window for other threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file or folder) to the disk, so that a crash after a rename never leaves an empty file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync folders
        if not path.is_dir():
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block succeeds.

    A crash or kill mid-write leaves the previous file (or nothing) in place, never a partial file: the data
    is flushed to the disk before the rename. The result has the mode a plain ``open`` would give (``0666``
    less the umask), not ``mkstemp``'s ``0600``, so collaborators on shared storage can read it. The
    temporary name keeps the final suffix (both of ``.ome.tif``) so that format-by-suffix writers still work, and names this
    machine and process so that :func:`remove_stale_temps` can tell an orphan from a live write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ome = path.name.lower().endswith(
        (".ome.tif", ".ome.tiff")
    )  # tifffile writes OME-XML by this double suffix
    suffix = "".join(path.suffixes[-2:]) if ome else path.suffix
    prefix = (
        f".{path.name[: -len(suffix)] if suffix else path.name}.eid-{_host_tag()}-{os.getpid()}-"
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=f".tmp{suffix}")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~_umask())
        yield tmp_path
        _fsync(tmp_path)
        os.replace(tmp_path, path)
        _fsync(path.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def _is_orphan(path: Path, match: re.Match[str]) -> bool:
    """Whether the temp file ``path`` was left by a dead process (this machine) or is stale (elsewhere)."""
    if match["host"] == _host_tag():
        try:
            os.kill(int(match["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, OverflowError):
            return False
        return False
    try:
        return time.time() - path.stat().st_mtime > STALE_TEMP_SECONDS
    except OSError:
        return False


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the temp files that :func:`atomic_write` left in ``folder`` (recursively) when its process was
    killed; return them. Files of live writers (a concurrent run into the same folder) are kept."""
    removed = []
    for root, _, files in os.walk(folder):
        for name in files:
            match = _TEMP_NAME.match(name)
            path = Path(root) / name
            if match and _is_orphan(path, match):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    return removed


def recording_warnings(
    function: Callable[..., T], *args: Any, **kwargs: Any
) -> tuple[T, list[str]]:
    """Call ``function`` and return its result with the text of every warning it raised (not shown), for a command
    to report them as its own lines (e.g. the files a folder listing skipped)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = function(*args, **kwargs)
    return result, [str(w.message) for w in caught]


@contextlib.contextmanager
def hiding_warnings(messages: Iterable[str]) -> Iterator[None]:
    """Hide, for the block, the warnings whose text is one of ``messages`` (already reported)."""
    with warnings.catch_warnings():
        for message in messages:
            warnings.filterwarnings("ignore", message=re.escape(message) + "$")
        yield


class _Silence(logging.Filter):
    """Drops a logger's records while at least one :func:`silenced_logger` block (in any thread) is open."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        return self.depth == 0


_SILENCES: dict[str, _Silence] = {}


@contextlib.contextmanager
def silenced_logger(name: str) -> Iterator[None]:
    """Drop the log records of logger ``name`` for the block (nested and concurrent blocks are fine).

    Used around ``tifffile`` reads: on a corrupt file tifffile logs a line of its own (e.g. "contains no pages")
    on top of the exception that eid turns into its one-line message.
    """
    silence = _SILENCES.get(name)
    if silence is None:
        silence = _SILENCES[name] = _Silence()
        logging.getLogger(name).addFilter(silence)
    with silence.lock:
        silence.depth += 1
    try:
        yield
    finally:
        with silence.lock:
            silence.depth -= 1


def resolve_device(device: str = "auto") -> torch.device:
    """Map ``auto|cpu|cuda|cuda:N|mps`` to a device; ``auto`` picks CUDA when available."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EIDError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise EIDError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from exc


def prefetched(items: Iterable[T], depth: int = 8) -> Iterator[T]:
    """Iterate over ``items`` while a background thread produces up to ``depth`` of them ahead.

    Producing (video decoding: FFmpeg releases the GIL) then overlaps the consumer's work. The
    producer's exception is raised in the consumer; when the consumer stops early, the producer stops.
    """
    queue: Queue = Queue(maxsize=depth)
    stop, end = threading.Event(), object()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            with contextlib.suppress(Full):
                queue.put(entry, timeout=0.1)
                return True
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((end, None))
        except Exception as exc:  # noqa: BLE001  (handed to the consumer, which raises it)
            put((end, exc))

    worker = threading.Thread(target=produce, name="eid-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = queue.get()
            if item is end:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        with contextlib.suppress(Empty):
            while True:
                queue.get_nowait()
        worker.join()
