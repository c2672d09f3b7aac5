"""Cell97-Haze: the Murphy-lab nuclear images hazed with the microscopy veil model, paired."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

from eid.data.io import read_image, write_image
from eid.data.listing import IMAGE_SUFFIXES
from eid.errors import EIDError
from eid.prepare.common import (
    Manifest,
    OnSkip,
    PrepareSummary,
    check_out,
)
from eid.progress import progress_bar

#: Path parts (lower case) that mark annotation files in the Murphy-lab release, not images to haze.
ANNOTATION_WORDS = ("mask", "label", "segment", "annot", "outline", "ground", "truth")
CELL97_COLUMNS = ("name", "source", "split", "seed", "contrast", "veil", "background", "sigma_px")


def _warn(message: str) -> None:
    warnings.warn(f"skipped {message}", stacklevel=4)


def find_cell97_images(src_dir: Path, include: str | None = None) -> list[Path]:
    """Image files under ``src_dir`` (recursive), without annotation files (:data:`ANNOTATION_WORDS`).

    With ``include`` (a glob relative to ``src_dir``, e.g. ``"*/dna-images/**/*.png"``) exactly the
    matching image files are used instead.
    """
    if include is not None:
        paths = (p for p in src_dir.glob(include))
    else:
        paths = (
            p
            for p in src_dir.rglob("*")
            if not any(
                w in part.lower() for part in p.relative_to(src_dir).parts for w in ANNOTATION_WORDS
            )
        )
    return sorted(
        p
        for p in paths
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def prepare_cell97(
    src_dir: str | Path,
    out_dir: str | Path,
    seed: int = 0,
    test_fraction: float = 0.2,
    contrast: tuple[float, float] = (0.55, 0.75),
    veil: tuple[float, float] = (0.1, 0.2),
    background: tuple[float, float] = (0.02, 0.05),
    veil_sigma: float = 0.05,
    include: str | None = None,
    progress: bool = True,
    on_skip: OnSkip | None = None,
) -> PrepareSummary:
    """Build Cell97-Haze: the Murphy-lab nuclear images hazed with the microscopy veil model, paired.

    Every image under ``src_dir`` (8/16-bit TIFF or PNG, annotation files left out, see
    :func:`find_cell97_images`) is read on its own intensity scale and hazed with
    :func:`eid.synth.synthesize` (``model="veil"``: ``y = c x + v G_sigma x / max + b F``, with
    ``c``, ``v``, ``b`` uniform in the given ranges and ``sigma = veil_sigma * min(H, W)``), seeded per
    image from ``seed`` and its name. A seeded ``test_fraction`` of the images goes to ``test``.
    Writes ``<out>/<split>/{clear,hazy}/<name>`` (same format and bit depth; sub-folders are folded
    into the name, ``gnf/dna-1.png`` -> ``gnf_dna-1.png``) and ``manifest.csv`` with the drawn
    parameters. Unreadable files (e.g. multi-page TIFF stacks) are skipped: ``on_skip(line)`` names each (default:
    a warning) and ``failed`` lists them. Rerunning skips images already in the manifest.
    """
    from eid.physics.generators import image_seed
    from eid.synth import SynthConfig, synthesize

    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise EIDError(
            f"{src_dir}: source folder not found; pass the unpacked Murphy-lab nuclei folder with --src"
        )
    if not 0.0 <= test_fraction < 1.0:
        raise EIDError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    paths = find_cell97_images(src_dir, include)
    if not paths:
        raise EIDError(
            f"{src_dir}: no images (TIFF/PNG) found; pass the folder holding the 97 nuclear images"
        )
    out_dir = check_out(Path(out_dir), src_dir)
    config = SynthConfig(
        model="veil",
        contrast=contrast,
        veil=veil,
        background=background,
        veil_sigma=veil_sigma,
        seed=seed,
    )
    names = {p: "_".join(p.relative_to(src_dir).parts) for p in paths}
    order = sorted(paths, key=lambda p: names[p])
    random.Random(seed).shuffle(order)
    n_test = round(test_fraction * len(order))
    split_of = {p: "test" if i < n_test else "train" for i, p in enumerate(order)}
    manifest = Manifest(out_dir / "manifest.csv", CELL97_COLUMNS)
    recorded = {r["name"] for r in manifest.rows}
    summary = PrepareSummary(out_dir)
    with progress_bar("images", progress) as bar:
        for path in bar.track(paths, description="Cell97 veil"):
            name, split = names[path], split_of[path]
            if name in recorded:
                summary.skipped += 1
                continue
            try:
                clear, meta = read_image(path, white=config.read_white)
            except EIDError as exc:
                summary.fail(
                    str(exc) if str(path) in str(exc) else f"{path}: {exc}", on_skip or _warn
                )
                summary.add("unreadable")
                continue
            image_key = image_seed(seed, name)
            hazy, record, _ = synthesize(clear, config, image_key)
            write_image(out_dir / split / "clear" / name, clear, meta)
            write_image(out_dir / split / "hazy" / name, hazy, meta)
            manifest.append(
                {
                    "name": name,
                    "source": path.relative_to(src_dir).as_posix(),
                    "split": split,
                    **record,
                }
            )
            summary.add(f"{split}/pairs")
    return summary
