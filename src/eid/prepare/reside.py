"""RESIDE: unpaired train sets (ITS, OTS) and paired or hazy-only test sets, built from the scan of
:mod:`eid.prepare.reside_names`."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PIL import UnidentifiedImageError

from eid.data.codecs import open_pillow
from eid.data.io import read_image, write_image
from eid.errors import EIDError
from eid.prepare.common import (
    Manifest,
    OnSkip,
    PrepareSummary,
    check_out,
)
from eid.prepare.reside_names import RESIDE_SUBSETS, RESIDEItem, crop_to, scan_reside
from eid.progress import progress_bar
from eid.utils import atomic_write

RESIDE_COLUMNS = ("path", "source", "scene", "variant", "airlight", "beta", "split", "kind")


def _copy_file(source: Path, target: Path) -> Path:
    with atomic_write(target) as tmp:
        shutil.copyfile(source, tmp)
    return target


def _image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` from the file header, once the file's structure is checked without decoding (Pillow's
    ``verify``: chunk checksums and truncation for PNG), so that a file copied byte for byte is a sound image.

    :raises EIDError: unreadable, corrupt or truncated file.
    """
    try:
        with open_pillow(path) as image:
            size = image.height, image.width
            image.verify()
        return size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise EIDError(
            f"{path}: cannot read image ({getattr(exc, 'strerror', None) or exc}); re-download it"
        ) from None


def _reside_writer(item: RESIDEItem, kind: str, folder: Path, stem: str) -> Callable[[], Path]:
    """Check what ``item``'s ``kind`` (hazy or clear) output needs, and return what writes it to ``folder/stem.<ext>``.

    The hazy image is copied byte for byte; the clear one too, or, when it is larger than the hazy image, written as
    a PNG border-cropped to the hazy size. Every check (and decoding) happens here, before any write.
    :raises EIDError: an input that cannot be read, or a clear image whose size does not fit its hazy image.
    """
    hazy_size = _image_size(item.hazy)
    if kind == "hazy":
        return lambda: _copy_file(item.hazy, folder / f"{stem}{item.hazy.suffix}")
    assert item.clear is not None
    if _image_size(item.clear) == hazy_size:
        return lambda: _copy_file(item.clear, folder / f"{stem}{item.clear.suffix}")
    clear, meta = read_image(item.clear)
    cropped = crop_to(clear, *hazy_size, name=str(item.clear))
    return lambda: write_image(
        folder / f"{stem}.png", cropped, replace(meta, format="PNG", alpha=None)
    )


def prepare_reside(
    root: str | Path,
    subset: str,
    out_dir: str | Path,
    seed: int = 0,
    test_fraction: float = 0.1,
    max_hazy_per_scene: int | None = None,
    allow_missing: bool = False,
    progress: bool = True,
    on_skip: OnSkip | None = None,
) -> PrepareSummary:
    """Build train/test folders from a RESIDE subset.

    * ``its``/``ots`` (training subsets): scenes are shuffled with ``seed``; ``test_fraction`` of them
      form a paired test set; the rest are halved into scenes that give hazy images
      (``train/hazy``) and disjoint scenes that give clear images (``train/clear``), so the unpaired
      training set never contains both sides of a scene. ``max_hazy_per_scene`` keeps a seeded
      sample of each scene's hazy variants (OTS has 35 per clear).
    * ``sots-indoor``/``sots-outdoor``/``hsts``: paired ``test/hazy`` + ``test/clear``, the clear
      image saved under each hazy image's stem (border-cropped when sizes differ).
    * ``rtts``: hazy-only ``test/hazy``.

    Hazy files are copied byte for byte; ``manifest.csv`` records the source and the parsed ``k``,
    ``A`` and ``beta`` of every output file. Every input is checked before anything of its pair is written, so a
    bad file never leaves half a pair: it raises :class:`EIDError`, or, with ``on_skip``, its pair is left out,
    ``on_skip(line)`` says so once per bad file and the other pairs go on.
    """
    root = Path(root)
    items = scan_reside(root, subset, allow_missing)
    if not 0.0 <= test_fraction < 1.0:
        raise EIDError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    out_dir = check_out(Path(out_dir), root)
    rng = random.Random(seed)
    by_scene: dict[str, list[RESIDEItem]] = {}
    for item in items:
        by_scene.setdefault(item.name.scene, []).append(item)
    if max_hazy_per_scene is not None:
        by_scene = {
            s: sorted(rng.sample(v, min(len(v), max_hazy_per_scene)), key=lambda i: i.hazy.name)
            for s, v in by_scene.items()
        }
    jobs: list[
        tuple[RESIDEItem, str, tuple[str, ...]]
    ] = []  # (item, split, kinds written together)
    role = RESIDE_SUBSETS[subset].role
    if role == "train":
        scenes = sorted(by_scene)
        rng.shuffle(scenes)
        n_test = round(test_fraction * len(scenes))
        test, rest = scenes[:n_test], scenes[n_test:]
        if len(rest) < 2:
            raise EIDError(
                f"{root}: {len(rest)} training scene(s) for {subset}; an unpaired split needs at least 2"
            )
        hazy_scenes, clear_scenes = rest[: len(rest) // 2], rest[len(rest) // 2 :]
        jobs += [(i, "train", ("hazy",)) for s in hazy_scenes for i in by_scene[s]]
        jobs += [(by_scene[s][0], "train", ("clear",)) for s in clear_scenes]
        jobs += [(i, "test", ("hazy", "clear")) for s in test for i in by_scene[s]]
    else:
        kinds = ("hazy",) if role == "hazy-only" else ("hazy", "clear")
        jobs += [(i, "test", kinds) for s in sorted(by_scene) for i in by_scene[s]]
    manifest = Manifest(out_dir / "manifest.csv", RESIDE_COLUMNS)
    recorded = {(r["split"], r["kind"], Path(r["path"]).stem) for r in manifest.rows}
    summary = PrepareSummary(out_dir)
    reported: set[str] = set()  # one line per bad file, however many pairs it spoils
    with progress_bar("files", progress) as bar:
        for item, split, kinds in bar.track(jobs, description=f"RESIDE {subset}"):
            stems = {
                k: item.name.scene if (split, k) == ("train", "clear") else item.hazy.stem
                for k in kinds
            }
            todo = [k for k in kinds if (split, k, stems[k]) not in recorded]
            summary.skipped += len(kinds) - len(todo)
            try:
                writers = {k: _reside_writer(item, k, out_dir / split / k, stems[k]) for k in todo}
            except EIDError as exc:
                if on_skip is None:
                    raise
                if str(exc) not in reported:
                    reported.add(str(exc))
                    summary.fail(str(exc), on_skip)
                continue
            for kind, write in writers.items():
                target, n = write(), item.name
                manifest.append({"path": target.relative_to(out_dir).as_posix(), "source": str(item.hazy if kind == "hazy" else item.clear),
                                 "scene": n.scene, "variant": n.variant, "airlight": "" if n.airlight is None else n.airlight,
                                 "beta": "" if n.beta is None else n.beta, "split": split, "kind": kind})  # fmt: skip
                summary.add(f"{split}/{kind}")
    return summary
