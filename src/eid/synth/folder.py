"""Haze a folder of images and TIFF stacks into ``hazy/``, ``clear/``, ``depth/`` and ``params.json``."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from torch import Tensor

from eid.config import config_to_dict
from eid.data.depth import DEPTH_SUFFIXES, DisparityCalibration, read_depth
from eid.data.io import write_image
from eid.data.listing import check_output_dir, iter_inputs, no_images_error
from eid.data.naming import plan_outputs
from eid.data.planes import ImageFile, read_planes
from eid.errors import EIDError
from eid.physics.generators import (
    image_seed,
)
from eid.synth.image import SynthConfig, synthesize
from eid.utils import atomic_write, remove_stale_temps


@dataclass
class SynthReport:
    """What :func:`synthesize_folder` did: records written and files skipped with the reason."""

    out_dir: Path
    images: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _depth_for(config: SynthConfig, source: Path, relative: Path) -> tuple[Tensor | None, str]:
    """Depth tensor (or None for synthetic) and its description for params.json."""
    if config.model != "asm" or config.depth in ("ramp", "random"):
        return None, config.depth if config.model == "asm" else "none"
    calibration = DisparityCalibration(*config.disparity) if config.disparity else None
    if source.is_file():
        return read_depth(source, calibration, config.depth_scale), str(source)
    stem = source / relative.with_suffix("")
    named = [
        source / f"{relative.as_posix()}{s}" for s in DEPTH_SUFFIXES
    ]  # x.jpg.tiff: written for a shared stem
    matches = [p for p in (*named, *(stem.with_suffix(s) for s in DEPTH_SUFFIXES)) if p.is_file()]
    if not matches:
        raise EIDError(
            f"no depth map {stem}.* ({'/'.join(DEPTH_SUFFIXES)}) for this image; add one or use --depth random"
        )
    return read_depth(matches[0], calibration, config.depth_scale), str(matches[0])


def _write_depth(path: Path, depth: Tensor) -> None:
    """Depth ``(1,H,W)`` as a float32 TIFF (metres or the synthetic unit), written atomically."""
    with atomic_write(path) as tmp:
        tifffile.imwrite(tmp, depth[0].cpu().numpy().astype(np.float32), compression="zlib")


def _synthesize_stack(
    clear: ImageFile, relative: Path, out: Path, config: SynthConfig
) -> list[dict[str, Any]]:
    """Haze every plane of the TIFF stack ``clear`` (its own seed each); write the hazy and clear stacks.

    Planes are read on one scale for the whole stack. Depth maps are per 2-D image, so a stack takes the ASM
    only with a generated depth (``ramp`` or ``random``) and without ``save_depth``. Returns the planes'
    records, named ``relative[plane]``.
    """
    if config.model == "asm" and (config.depth not in ("ramp", "random") or config.save_depth):
        raise EIDError(
            "a TIFF stack takes the ASM only with --depth ramp or random and without --save-depth"
        )
    hazy = clear.writer()
    records = []
    for index, plane in clear:
        name = clear.name(relative.as_posix(), index)
        image, record, _ = synthesize(plane, config, image_seed(config.seed, name), None)
        hazy[index] = image
        depth_note = {"depth_source": config.depth} if config.model == "asm" else {}
        records.append({"name": name, **record, **depth_note})
    hazy.write(out / "hazy" / relative)
    clear.write(out / "clear" / relative)
    return records


def synthesize_folder(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    config: SynthConfig | None = None,
    *,
    max_pixels: int | None = None,
    progress: Callable[[Path], None] | None = None,
    on_skip: Callable[[Path, str], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    **overrides: Any,
) -> SynthReport:
    """Haze every image of ``inputs`` into ``out_dir/hazy``, copy it to ``out_dir/clear``, write ``params.json``.

    ``config`` fields can also be given as keyword ``overrides`` (``model="veil"``, ``seed=3``...).
    With ``save_depth`` (ASM only) the depth used goes to ``out_dir/depth/<stem>.tiff`` (float32; recorded as
    ``depth_file``). Output names mirror the inputs' names (and sub-folders); inputs that would share an output
    name (the same name in two input folders, or one stem for the depth maps of ``x.png`` and ``x.jpg``) get
    distinct names from :func:`eid.data.naming.plan_outputs`, and ``on_notice(line)`` says so (default: a
    warning). Images keep their format, bit depth, channels and alpha; a TIFF stack is hazed plane by plane,
    each plane with its own seed (records ``name[plane]``). Unreadable images or missing/mismatched depth maps
    are skipped: ``on_skip(path, message)`` is called (default: a warning; the message names the file) and the
    file is listed in the report and in ``params.json``.
    ``params.json`` = ``{"config": {...}, "images": [{"name", "model", "seed", "depth_source", ...}],
    "skipped": [{"name", "reason"}]}``; a re-run into the same folder keeps the records of the images it did
    not redo, and one that hazed nothing leaves ``params.json`` as it was. An output folder that is an input
    folder is refused; temporary files left there by a killed run are removed first.
    """
    config = dataclasses.replace(config or SynthConfig(), **overrides)
    out = Path(out_dir)
    items = iter_inputs(inputs)
    if not items:
        raise no_images_error(inputs)
    for folder in (out, out / "hazy", out / "clear", out / "depth"):
        check_output_dir(folder, inputs)
    remove_stale_temps(out)
    sources = [p for p, _ in items]
    names = plan_outputs(sources, [r for _, r in items])
    depth_names = plan_outputs(sources, names.names, suffix=".tiff")
    notice = on_notice or (lambda line: warnings.warn(line, stacklevel=3))
    for line in names.notices():
        notice(line)
    depth_source = Path(config.depth) if config.depth not in ("ramp", "random") else None
    report = SynthReport(out)
    input_files = set(sources)

    def skip(path: Path, reason: str) -> None:
        message = reason if str(path) in reason else f"{path}: {reason}"
        report.skipped.append((path, message))
        (on_skip or (lambda p, m: warnings.warn(f"skipped {m}", stacklevel=3)))(path, message)

    for path, relative, name, depth_name in zip(
        sources, [r for _, r in items], names.names, depth_names.names
    ):
        try:
            if any((out / sub / name).resolve() in input_files for sub in ("hazy", "clear")):
                raise EIDError("its output would overwrite an input file; choose a different --out")
            source = read_planes(path, max_pixels=max_pixels, white=config.read_white)
            if source.is_stack:
                report.images += _synthesize_stack(source, name, out, config)
                if progress:
                    progress(path)
                continue
            x, meta = source.image, source.meta
            depth, described = (
                _depth_for(config, depth_source, relative) if depth_source else (None, config.depth)
            )
            if depth is not None and depth.shape[-2:] != x.shape[-2:]:
                raise EIDError(
                    f"depth map is {depth.shape[-1]}x{depth.shape[-2]} but the image is {x.shape[-1]}x{x.shape[-2]}"
                )
            seed = image_seed(config.seed, name.as_posix())
            hazy, record, used_depth = synthesize(x, config, seed, depth)
        except EIDError as exc:
            skip(path, str(exc))
        else:
            write_image(out / "hazy" / name, hazy, meta)
            write_image(out / "clear" / name, x, meta)
            notes: dict[str, Any] = {"depth_source": described} if config.model == "asm" else {}
            if config.save_depth and used_depth is not None:
                _write_depth(out / "depth" / depth_name, used_depth)
                notes["depth_file"] = f"depth/{depth_name.as_posix()}"
            if name != relative:
                notes["source"] = str(path)
            report.images.append({"name": name.as_posix(), **record, **notes})
        if progress:
            progress(path)
    _write_params(out, config, report)
    return report


def _write_params(out: Path, config: SynthConfig, report: SynthReport) -> None:
    """Write ``params.json``, keeping the records of images a previous run with the same config wrote and this
    one did not redo; a run that hazed nothing leaves an existing file untouched (its images are still there)."""
    path = out / "params.json"
    previous: dict[str, Any] = {}
    if path.is_file():
        if not report.images:
            return
        with contextlib.suppress(OSError, ValueError):
            previous = json.loads(path.read_text())
    settings = json.loads(
        json.dumps(config_to_dict(config))
    )  # tuples as JSON lists, to compare with the file
    done = {record["name"] for record in report.images}
    kept = (
        [r for r in previous.get("images", []) if r.get("name") not in done]
        if previous.get("config") == settings
        else []
    )
    document = {
        "config": settings,
        "images": sorted(kept + report.images, key=lambda r: r["name"]),
        "skipped": [{"name": str(p), "reason": r} for p, r in report.skipped],
    }
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")
