"""Output names: one planner that gives every input a distinct output name, for ``eid synth`` and ``eid dehaze``.

Outputs mirror the inputs' paths relative to the folder they were found in. Two inputs can then claim one
name: ``a/x.png`` and ``b/x.png`` given as two folders, or ``x.png``, ``x.jpg`` and ``x.tif`` whose derived
outputs (a depth map ``x.tiff``) share the stem. Writing both would silently keep only the last, so
:func:`plan_outputs` detects every such collision (case-insensitively, since macOS and Windows file systems
are) and gives the later input a distinct name, which the caller reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eid.data.listing import iter_inputs
from eid.errors import EIDError


@dataclass
class OutputPlan:
    """Planned output names, in input order, and the inputs that had to be renamed.

    :param names: one relative output path per input.
    :param renamed: ``(input, wanted name, given name)`` for each input whose wanted name was taken.
    """

    names: list[Path] = field(default_factory=list)
    renamed: list[tuple[Path, Path, Path]] = field(default_factory=list)

    def notices(self) -> list[str]:
        """One line per renamed input, for the command's log."""
        return [
            f"{source}: {wanted.as_posix()} is already the output of another input; written as {given.as_posix()}"
            for source, wanted, given in self.renamed
        ]


def _key(path: Path) -> str:
    """Collision key: the path as a case-folded POSIX string (case-insensitive file systems)."""
    return path.as_posix().casefold()


def _candidates(relative: Path, suffix: str | None) -> Iterable[Path]:
    """Names to try for ``relative``: the wanted one, then (for a new suffix) the full input name plus the
    suffix, which keeps the input's own suffix visible (``x.jpg.tiff``), then numbered ones (``x-2.png``)."""
    wanted = relative.with_suffix(suffix) if suffix else relative
    yield wanted
    if suffix and relative.suffix:
        yield relative.with_name(relative.name + suffix)
    number = 2
    while True:
        yield wanted.with_name(f"{wanted.stem}-{number}{wanted.suffix}")
        number += 1


def plan_outputs(
    sources: Sequence[Path],
    relatives: Sequence[Path],
    suffix: str | None = None,
    reserved: Iterable[Path] = (),
) -> OutputPlan:
    """Distinct relative output names for inputs found at ``relatives`` (the same order as ``sources``).

    :param sources: the input files (named in the notices).
    :param relatives: each input's path relative to its folder (:func:`eid.data.listing.iter_inputs`).
    :param suffix: a new suffix for every output (``".tiff"`` for depth maps), or ``None`` to keep the input's.
    :param reserved: names already taken (e.g. by other outputs in the same folder).

    >>> plan = plan_outputs([Path("a/x.png"), Path("b/x.png")], [Path("x.png"), Path("x.png")])
    >>> [p.as_posix() for p in plan.names]
    ['x.png', 'x-2.png']
    >>> [p.as_posix() for p in plan_outputs([Path("x.jpg"), Path("x.png")], [Path("x.jpg"), Path("x.png")], ".tiff").names]
    ['x.tiff', 'x.png.tiff']
    """
    taken = {_key(Path(p)) for p in reserved}
    wanted = [next(iter(_candidates(Path(r), suffix))) for r in relatives]
    first: dict[str, int] = {}
    for index, name in enumerate(
        wanted
    ):  # the first input to want a free name gets it, before any renaming
        if _key(name) not in taken:
            first.setdefault(_key(name), index)
    taken |= set(first)
    plan = OutputPlan()
    for index, (source, relative) in enumerate(zip(sources, relatives)):
        name = wanted[index]
        if first.get(_key(name)) != index:
            name = next(c for c in _candidates(Path(relative), suffix) if _key(c) not in taken)
            taken.add(_key(name))
            plan.renamed.append((Path(source), wanted[index], name))
        plan.names.append(name)
    return plan


def output_paths(
    inputs: Sequence[str | Path], out_dir: Path, recursive: bool = True
) -> tuple[list[Path], list[Path]]:
    """The image files of ``inputs`` and the output path each gets in ``out_dir`` (``eid dehaze``'s names)."""
    pairs = iter_inputs(list(inputs), recursive=recursive)
    sources = [path for path, _ in pairs]
    return sources, [
        out_dir / name for name in plan_outputs(sources, [rel for _, rel in pairs]).names
    ]


def check_existing(
    targets: Iterable[Path], inputs: Iterable[Path], overwrite: bool, skip_existing: bool | None
) -> None:
    """Refuse to replace existing outputs unless the user said so: ``overwrite`` replaces them, ``skip_existing``
    keeps them (``None``: the command has no such option). Targets that are inputs are left to the commands'
    own refusal (inputs are never overwritten, even with ``overwrite``).

    :raises EIDError: both options given, or an output exists and neither was given; the line names the file.
    """
    if overwrite and skip_existing:
        raise EIDError("--overwrite and --skip-existing contradict each other; give one of them")
    if overwrite or skip_existing:
        return
    sources = {Path(p).resolve() for p in inputs}
    existing = [t for t in targets if t.exists() and t.resolve() not in sources]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        keep = "" if skip_existing is None else ", --skip-existing to keep them and do the rest"
        raise EIDError(
            f"{existing[0]} already exists{more}; pass --overwrite to replace{keep} or choose another --out"
        )
