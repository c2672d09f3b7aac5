"""Input listing: files, folders and glob patterns expanded into image files (symbolic link loops skipped),
and the checks that keep outputs away from inputs."""

from __future__ import annotations

import errno
import glob
import os
import stat
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from eid.errors import EIDError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


def list_images(inputs: Sequence[str | Path] | str | Path, recursive: bool = False) -> list[Path]:
    """Expand files, folders and glob patterns into a sorted, de-duplicated list of image files.

    Folders contribute files with an image suffix (recursively when ``recursive``); files named
    explicitly are kept whatever their suffix, so that a bad file is reported rather than ignored.
    An input that matches nothing raises :class:`EIDError`.
    """
    return [path for path, _ in iter_inputs(inputs, recursive)]


def iter_inputs(
    inputs: Sequence[str | Path] | str | Path, recursive: bool = False
) -> list[tuple[Path, Path]]:
    """Like :func:`list_images`, with each file's path relative to the folder it was found in.

    The relative path is the name an output should get, so nested folders are mirrored.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    found: dict[Path, Path] = {}
    for item in inputs:
        item_path = Path(item)
        if item_path.is_dir():
            for p, rel in _folder_images(item_path, Path(), recursive, _identities(item_path)):
                found.setdefault(p.resolve(), rel)
        elif item_path.is_file():
            found.setdefault(item_path.resolve(), Path(item_path.name))
        else:
            matches = sorted(Path(p) for p in glob.glob(str(item), recursive=recursive))
            files = [p for p in matches if p.is_file()]
            if not files:
                raise EIDError(f"{item}: no such file, folder or matching pattern; check the path")
            for p in files:
                found.setdefault(p.resolve(), Path(p.name))
    pairs = sorted(found.items(), key=lambda kv: str(kv[1]))
    return [(path, rel) for path, rel in pairs]


def _identities(folder: Path) -> frozenset[tuple[int, int]]:
    """``folder`` and every folder above it, as (device, inode): a link to one of them is a loop."""
    real = folder.resolve()
    return frozenset(
        (info.st_dev, info.st_ino) for info in (p.stat() for p in (real, *real.parents))
    )


def _folder_images(
    folder: Path, relative: Path, recursive: bool, above: frozenset[tuple[int, int]]
) -> Iterator[tuple[Path, Path]]:
    """Image files in ``folder`` with their path under the listed folder (``relative``), subfolders too when
    ``recursive``, linked ones included.

    A symbolic link that loops (to itself, or to a folder ``above`` it, up to ``/``) is skipped with a one-line
    warning: followed, it would never end (``glob`` follows links to a depth of 40, per link: exponential time) or
    would list the folders around the input, outputs included.
    """
    try:
        with os.scandir(folder) as entries:
            names = sorted(entry.name for entry in entries)
    except OSError as exc:  # an unreadable subfolder must not end the listing of the others
        warnings.warn(f"{folder}: skipped, cannot list it ({exc.strerror or exc})", stacklevel=2)
        return
    for name in names:
        path = folder / name
        try:
            info = path.stat()
        except OSError as exc:  # a dangling link stays silently ignored, as before; a loop is named
            if exc.errno == errno.ELOOP:
                warnings.warn(f"{path}: skipped, a symbolic link loop", stacklevel=2)
            continue
        if stat.S_ISDIR(info.st_mode) and recursive:
            if (info.st_dev, info.st_ino) in above:
                warnings.warn(
                    f"{path}: skipped, a symbolic link loop (to a folder above it)", stacklevel=2
                )
                continue
            yield from _folder_images(
                path, relative / name, True, above | {(info.st_dev, info.st_ino)}
            )
        elif stat.S_ISREG(info.st_mode) and path.suffix.lower() in IMAGE_SUFFIXES:
            yield path, relative / name


def no_images_error(inputs: Sequence[str | Path]) -> EIDError:
    """The one-line error for inputs that hold no image eid reads, naming what the folders hold instead
    (an empty folder, only GIFs...): a run that would do nothing must not report success."""
    suffixes = Counter(
        p.suffix.lower() or "no-suffix"
        for item in map(Path, inputs)
        if item.is_dir()
        for p in item.rglob("*")
        if p.is_file()
    )
    found = ", ".join(f"{count} {suffix}" for suffix, count in suffixes.most_common(3))
    held = f"only other files ({found})" if found else "no files"
    names = ", ".join(map(str, inputs))
    return EIDError(
        f"{names}: {held}, no image to process; eid reads {', '.join(IMAGE_SUFFIXES)}: check the path or convert the files"
    )


def check_output_dir(out_dir: str | Path, inputs: Iterable[str | Path]) -> Path:
    """Refuse an output folder that is one of the input folders (or holds an input file directly).

    Returns the output folder. Writing results next to the originals would overwrite them.
    """
    out = Path(out_dir).resolve()
    for item in inputs:
        p = Path(item)
        folder = p.resolve() if p.is_dir() else p.resolve().parent
        if out == folder:
            raise EIDError(
                f"output folder {out_dir} is an input folder; choose a different --out so inputs are kept"
            )
    return Path(out_dir)


def check_not_input(out_path: str | Path, inputs: Iterable[str | Path]) -> None:
    """Refuse to write ``out_path`` when it is one of the input files."""
    target = Path(out_path).resolve()
    for item in inputs:
        if Path(item).resolve() == target:
            raise EIDError(
                f"{out_path} would overwrite an input file; choose a different output path"
            )
