"""A cache of ONNX exports, so that ``eid dehaze`` on ONNX Runtime exports a run once, not at every start (~1 s).

The file of a run is ``<cache>/onnx/<key>.onnx`` (:func:`cached_onnx_path`), ``<cache>`` being :func:`cache_dir`.
The key hashes what the graph is made of: the run's ``dehazer.{safetensors,yaml}`` (and ``operator.*``, which a
``pinv`` export embeds, when the run holds them), the versions of eid, torch, onnx and onnxruntime, and the names
of the metadata the export writes. A retrained run or an upgrade gets a new key; the old files stay until the cache
is cleared (``rm -r <cache>/onnx``).

Files are written atomically (:func:`export_onnx`). A cached file that ONNX Runtime cannot read is deleted and
exported again; a cache folder that cannot be written gives a temporary export, as without a cache. No network.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from eid.errors import EIDError
from eid.export.to_onnx import METADATA_KEYS, export_onnx, package_version
from eid.inference.backends import onnx_method
from eid.inference.methods import Method
from eid.zoo import resolve_model

__all__ = ["CACHE_ENV", "cache_dir", "cache_key", "cached_onnx_method", "cached_onnx_path"]

CACHE_ENV = "EID_CACHE_DIR"
"""The environment variable naming eid's cache folder (before ``$XDG_CACHE_HOME/eid`` and ``~/.cache/eid``)."""
_RUN_FILES = ("dehazer.safetensors", "dehazer.yaml", "operator.safetensors", "operator.yaml")
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """eid's cache folder: ``$EID_CACHE_DIR``, else ``$XDG_CACHE_HOME/eid``, else ``~/.cache/eid``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "eid"


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "none"


def cache_key(folder: str | Path) -> str:
    """sha256 of the run ``folder``'s dehazer (and operator) files, of the versions the export depends on and of
    the ``eid.*`` metadata keys it writes (a key added since, e.g. ``working_scale``, re-exports)."""
    digest = hashlib.sha256()
    for part in (
        package_version(),
        torch.__version__,
        _version("onnx"),
        _version("onnxruntime"),
        *METADATA_KEYS,
    ):
        digest.update(f"{part}\0".encode())
    for name in _RUN_FILES:
        path = Path(folder) / name
        # only the operator's files are optional; the export names a missing dehazer file
        if not path.is_file():
            continue
        digest.update(f"{name}\0".encode())
        with path.open("rb") as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def cached_onnx_path(run: str | Path) -> Path:
    """Where the export of ``run`` (a run folder or a shipped model's name) is cached."""
    return cache_dir() / "onnx" / f"{cache_key(resolve_model(run))}.onnx"


def cached_onnx_method(run: str | Path, device: torch.device | None = None) -> Method:
    """The ONNX Runtime :class:`Method` of ``run``'s dehazer, exported at its first use and then read from the cache.

    A cached file that does not load (truncated, corrupt, unreadable) is deleted and exported again; where the
    cache cannot be written, the export goes to a temporary file, which the session no longer needs once loaded.
    """
    path: Path | None
    try:
        path = cached_onnx_path(run)
        cached = path.is_file()
    # an unreadable run file (the export below names it) or cache folder: a temporary export
    except OSError:
        path, cached = None, False
    if path is not None and cached:
        try:
            return onnx_method(path, device)
        except EIDError:  # not loadable: replaced by a new export
            with contextlib.suppress(OSError):
                path.unlink()
    if path is not None:
        with contextlib.suppress(OSError):  # e.g. a read-only cache: a temporary export below
            return onnx_method(export_onnx(run, path).path, device)
    with tempfile.TemporaryDirectory(prefix="eid-onnx-") as tmp:
        return onnx_method(export_onnx(run, Path(tmp) / "dehazer.onnx").path, device)
