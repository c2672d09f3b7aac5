"""Rebuild the paper's datasets from their public sources: Cholec80-Haze, Cell97-Haze and RESIDE.

The cleaned sets used by the EID authors were never released; these functions build comparable
ones, deterministically (seeded) and resumably where the job is long. Output layouts match the
training datasets of :mod:`eid.data.datasets`: ``<out>/{train,test}/{clear,hazy}/`` plus a
``manifest.csv`` saying where every file came from. See ``docs/datasets.md`` for the commands.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import random
import re
import shutil
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import UnidentifiedImageError
from scipy import ndimage
from torch import Tensor
from torch.utils.data import Dataset

from eid.baselines.dcp import min_filter
from eid.data.io import IMAGE_SUFFIXES, open_pillow, read_image, write_image
from eid.data.video import VIDEO_SUFFIXES, VideoReader
from eid.errors import EIDError, VideoReadError
from eid.progress import progress_bar
from eid.utils import atomic_write

SPLITS = ("train", "test")

# --------------------------------------------------------------------------------------------------
# Shared helpers: manifests, output folders


class Manifest:
    """An append-only CSV of prepared files; each row is one ``write`` of a complete line.

    Rows are appended after their image file is in place, so a recorded row always has its file. A
    crash can at worst leave a partial last line, which is dropped (atomically) when reopened.
    """

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path, self.columns = path, list(columns)
        self.rows: list[dict[str, str]] = []
        if path.is_file():
            text = path.read_text()
            complete = text[: text.rfind("\n") + 1]
            if complete != text:
                with atomic_write(path) as tmp:
                    tmp.write_text(complete)
            reader = csv.DictReader(io.StringIO(complete))
            if reader.fieldnames is not None and list(reader.fieldnames) != self.columns:
                raise EIDError(f"{path}: manifest columns {reader.fieldnames} differ from {self.columns}; use a new --out")
            self.rows = list(reader)
        if not self.rows and not (path.is_file() and path.stat().st_size):
            with atomic_write(path) as tmp:
                tmp.write_text(",".join(self.columns) + "\n")

    def append(self, row: dict[str, object]) -> None:
        line = io.StringIO()
        csv.writer(line).writerow([row[c] for c in self.columns])
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line.getvalue())
        self.rows.append({c: str(row[c]) for c in self.columns})


def _write_state(path: Path, state: dict) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))


def _load_state(path: Path, settings: dict) -> dict:
    """The resume state in ``path``, checking that it was made with the same ``settings``."""
    if not path.is_file():
        return {"settings": settings, "items": {}}
    state = json.loads(path.read_text())
    if state.get("settings") != settings:
        changed = sorted(k for k in settings if state.get("settings", {}).get(k) != settings[k])
        raise EIDError(
            f"{path.parent} was prepared with other settings ({', '.join(changed)}); "
            "rerun with the same options to resume, or choose a new --out"
        )
    return state


def _check_out(out_dir: Path, source: Path) -> Path:
    out_dir, source = Path(out_dir).resolve(), Path(source).resolve()
    if out_dir == source or source in out_dir.parents:
        raise EIDError(f"output folder {out_dir} is inside the input folder {source}; choose an --out outside it")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def _resize(image: Tensor, size: int) -> Tensor:
    """Antialiased bilinear resize of ``(C,H,W)`` to ``size x size``."""
    return F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


# --------------------------------------------------------------------------------------------------
# Cholec80-Haze


@dataclass(frozen=True)
class FieldOfView:
    """The circular field of view of an endoscope: centre ``(cx, cy)`` and ``radius`` in pixels."""

    cx: float
    cy: float
    radius: float

    def square(self, width: int, height: int, side: int | None = None) -> tuple[int, int, int]:
        """``(top, left, side)`` of the square crop centred on the disc, clamped inside the frame.

        ``side`` defaults to the disc diameter, limited by the frame (480 on 854x480 Cholec80 frames,
        whose disc is cut at the top and bottom).
        """
        side = min(round(2 * self.radius) if side is None else side, width, height)
        top = round(min(max(self.cy - side / 2, 0), height - side))
        left = round(min(max(self.cx - side / 2, 0), width - side))
        return top, left, side


def detect_fov(frames: Tensor, threshold: float = 0.06, min_fraction: float = 0.05) -> FieldOfView | None:
    """Find the bright disc on black in ``frames`` ``(T,3,H,W)`` or ``(3,H,W)``.

    Mask = ``max over frames and channels > threshold`` (a max projection, so a dark or smoky frame
    cannot shrink the disc), holes filled, largest connected component kept. The disc's centre is the
    centre of the component's bounding box and its radius half the box's larger side: a disc clipped
    by the frame on two opposite sides keeps its full diameter in the other direction. ``None`` when
    the component covers less than ``min_fraction`` of the frame (no visible field of view).
    """
    stack = frames if frames.dim() == 4 else frames[None]
    bright = (stack.amax(dim=(0, 1)) > threshold).numpy()
    labels, count = ndimage.label(ndimage.binary_fill_holes(bright))
    if count == 0:
        return None
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, count + 1))
    if sizes.max() < min_fraction * bright.size:
        return None
    ys, xs = np.nonzero(labels == int(sizes.argmax()) + 1)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return FieldOfView((x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2)


def disc_mask(size: int, radius: float, erode: float = 0.0) -> Tensor:
    """Boolean ``(1, size, size)`` disc of ``radius - erode`` pixels centred in a ``size`` square."""
    centre = (size - 1) / 2
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (((yy - centre) ** 2 + (xx - centre) ** 2) <= (radius - erode) ** 2)[None]


def dark_channel_score(image: Tensor, mask: Tensor, patch: int | None = None) -> float:
    r"""Haze/smoke score: median over the field of view of the dark channel :math:`\min_\Omega \min_c x^c`.

    Clear laparoscopic tissue is saturated red, so its dark channel is near 0; smoke adds a grey
    veil that lifts every channel. The median ignores specular highlights. The patch is about 1/32
    of the image side (15 px at 480 px, He et al.'s size), and ``mask`` should be eroded by half a
    patch so that the black border does not pull the score down. On the 11 shared Cholec80 frames
    (256 px): clear 0.03, smoky 0.35-0.66.
    """
    patch = patch or (max(3, round(image.shape[-1] / 32)) | 1)
    dark = min_filter(image[None].amin(1, keepdim=True), patch)[0]
    values = dark[mask]
    return float(values.median()) if values.numel() else float("nan")


def _fade_score(image: Tensor, mask: Tensor) -> float:
    # the registry fills itself when the metrics modules are imported
    from eid.metrics import METRICS

    if "fade" not in METRICS:
        raise EIDError("the FADE metric is not available in this installation; use --score dark-channel")
    return float(METRICS["fade"].fn(image[None], mask=mask[None]))


SCORERS = {"dark-channel": dark_channel_score, "fade": _fade_score}
#: Default thresholds per scorer: clear if score < t_clear, hazy if score > t_hazy, else discarded.
#: Both calibrated on the 11 shared Cholec80 frames at 256 px inside the disc: dark channel clear 0.03,
#: smoky 0.35-0.66; FADE clear 0.72, smoky 1.91-3.14.
DEFAULT_THRESHOLDS = {"dark-channel": (0.15, 0.30), "fade": (1.2, 1.8)}


def _video_number(video: str) -> int | None:
    found = re.findall(r"\d+", video)
    return int(found[-1]) if found else None


def cholec80_split(video: str, test_videos: Iterable[str | int] | None = None) -> str:
    """``train`` or ``test`` for a video id.

    With ``test_videos`` (ids like ``video41`` or numbers), exactly those are test. Otherwise the
    usual Cholec80 split applies: videos 1-40 train, 41-80 test; ids without a number are split by
    the parity of their SHA-1 (stable across runs and machines).
    """
    number = _video_number(video)
    if test_videos is not None:
        wanted = {str(v) for v in test_videos}
        return "test" if video in wanted or (number is not None and str(number) in wanted) else "train"
    if number is not None:
        return "test" if number > 40 else "train"
    return "test" if int(hashlib.sha1(video.encode()).hexdigest(), 16) % 2 else "train"


OnSkip = Callable[[str], None]
"""Called with one line naming an input file that was left out and why."""


@dataclass
class PrepareSummary:
    """What a preparation run did (this run only): files written per folder, items already done (``skipped``)
    and one line per input file left out because it could not be read (``failed``)."""

    out_dir: Path
    written: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    failed: list[str] = field(default_factory=list)

    def add(self, key: str, n: int = 1) -> None:
        self.written[key] = self.written.get(key, 0) + n

    def fail(self, message: str, on_skip: OnSkip) -> None:
        """Record an input left out and report it."""
        self.failed.append(message)
        on_skip(message)


CHOLEC80_COLUMNS = ("video", "frame", "time", "score", "label", "split", "path")


def prepare_cholec80(
    videos_dir: str | Path,
    out_dir: str | Path,
    fps: float = 1.0,
    size: int = 256,
    crop: int | None = None,
    t_clear: float | None = None,
    t_hazy: float | None = None,
    score: str = "dark-channel",
    test_videos: Iterable[str | int] | None = None,
    fov_threshold: float = 0.06,
    fov_frames: int = 16,
    progress: bool = True,
    on_skip: OnSkip | None = None,
) -> PrepareSummary:
    """Build Cholec80-Haze: sampled, field-of-view-cropped frames sorted into clear and hazy.

    For each video in ``videos_dir`` (``video01.mp4`` ...): sample ``fps`` frames per second, find
    the circular field of view on the max projection of the first ``fov_frames`` samples
    (:func:`detect_fov`), crop the square around it (``crop`` pixels, default the disc diameter
    within the frame), resize to ``size``, score the haze inside the disc (:data:`SCORERS`) and
    write ``<out>/<split>/<clear|hazy>/<video>_<frame:06d>.png`` (frame = index at the native rate);
    frames scoring between the thresholds are recorded as ``discard`` and not written. The split is
    by video (:func:`cholec80_split`), so no scene is in both train and test.

    Resumable: ``<out>/prepare.json`` holds the settings, each video's field of view and whether it
    is finished; frames already in ``manifest.csv`` are not redone. Rerunning with other settings on
    the same ``out_dir`` is refused.

    A video that cannot be opened or decoded raises :class:`~eid.errors.VideoReadError`; with ``on_skip`` it is
    left out instead, ``on_skip(line)`` says so and the other videos go on (frames of a video that fails midway
    stay recorded, and a rerun retries the rest).
    """
    videos_dir = Path(videos_dir)
    if not videos_dir.is_dir():
        raise EIDError(f"{videos_dir}: videos folder not found; pass the folder holding video01.mp4 ...")
    videos = sorted(p for p in videos_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise EIDError(f"{videos_dir}: no video files ({', '.join(VIDEO_SUFFIXES)}); pass the Cholec80 videos folder")
    if score not in SCORERS:
        raise EIDError(f"unknown haze score {score!r}; use one of {', '.join(SCORERS)}")
    defaults = DEFAULT_THRESHOLDS.get(score)
    if (t_clear is None or t_hazy is None) and defaults is None:
        raise EIDError(f"the {score} score has no default thresholds; pass --t-clear and --t-hazy")
    t_clear = defaults[0] if t_clear is None else t_clear
    t_hazy = defaults[1] if t_hazy is None else t_hazy
    if not t_clear <= t_hazy:
        raise EIDError(f"--t-clear ({t_clear}) must not exceed --t-hazy ({t_hazy})")
    out_dir = _check_out(Path(out_dir), videos_dir)
    tests = None if test_videos is None else sorted(str(v) for v in test_videos)
    settings = {"fps": fps, "size": size, "crop": crop, "t_clear": t_clear, "t_hazy": t_hazy, "score": score,
                "test_videos": tests, "fov_threshold": fov_threshold, "fov_frames": fov_frames}  # fmt: skip
    state_path = out_dir / "prepare.json"
    state = _load_state(state_path, settings)
    manifest = Manifest(out_dir / "manifest.csv", CHOLEC80_COLUMNS)
    done = {(r["video"], int(r["frame"])) for r in manifest.rows}
    summary = PrepareSummary(out_dir)
    scorer = SCORERS[score]
    with progress_bar("frames", progress) as bar:
        for path in videos:
            video = path.stem
            record = state["items"].setdefault(video, {"done": False})
            if record["done"]:
                continue
            split = cholec80_split(video, tests)
            before = sum(summary.written.values())
            try:
                with VideoReader(path) as reader:
                    info = reader.info
                    task = bar.add_task(f"{video} ({split})", total=max(1, math.ceil(info.duration * fps)))
                    frames = reader.frames(rate=fps)
                    head = list(itertools.islice(frames, fov_frames))
                    if "fov" not in record:
                        fov = detect_fov(torch.stack([f.image for f in head]), fov_threshold) if head else None
                        fov = fov or FieldOfView(info.width / 2, info.height / 2, min(info.width, info.height) / 2)
                        record["fov"] = asdict(fov)
                        _write_state(state_path, state)
                    fov = FieldOfView(**record["fov"])
                    top, left, side = fov.square(info.width, info.height, crop)
                    radius = fov.radius * size / side
                    patch = max(3, round(size / 32)) | 1
                    mask = disc_mask(size, radius, erode=patch / 2)
                    for frame in itertools.chain(head, frames):
                        bar.advance(task)
                        if (video, frame.index) in done:
                            summary.skipped += 1
                            continue
                        image = _resize(frame.image[:, top : top + side, left : left + side], size)
                        value = scorer(image, mask)
                        label = "clear" if value < t_clear else "hazy" if value > t_hazy else "discard"
                        target = ""
                        if label != "discard":
                            target = f"{split}/{label}/{video}_{frame.index:06d}.png"
                            write_image(out_dir / target, image)
                        manifest.append({"video": video, "frame": frame.index, "time": f"{frame.time:.3f}",
                                         "score": f"{value:.5f}", "label": label, "split": split, "path": target})  # fmt: skip
                        summary.add(f"{split}/{label}")
            except VideoReadError as exc:
                if on_skip is None:
                    raise
                kept = sum(summary.written.values()) - before
                summary.fail(f"{exc} (after {kept} frames, which are kept; a rerun retries the rest)" if kept else str(exc), on_skip)
                continue
            record["done"] = True
            _write_state(state_path, state)
    return summary


# --------------------------------------------------------------------------------------------------
# RESIDE


@dataclass(frozen=True)
class RESIDEName:
    """What a RESIDE hazy file name says: scene id, haze variant ``k``, airlight ``A`` and ``beta``."""

    scene: str
    variant: str = ""
    airlight: float | None = None
    beta: float | None = None


_NUMBER = r"(\d+(?:\.\d+)?)"
NAMINGS = {
    "id_k_A": re.compile(rf"^(\w+?)_(\d+)_{_NUMBER}$"),  # ITS: 1_1_0.90179
    "id_A_beta": re.compile(rf"^(\w+?)_{_NUMBER}_{_NUMBER}$"),  # OTS / SOTS-outdoor: 0005_0.8_0.04
    "id_k": re.compile(r"^(\w+?)_(\d+)$"),  # SOTS-indoor: 1400_3
    "id": re.compile(r"^(.+)$"),  # HSTS / RTTS: the whole stem names the image
}


def parse_reside_name(stem: str, naming: str) -> RESIDEName | None:
    """Parse a hazy file stem with one of :data:`NAMINGS`; ``None`` when it does not match.

    >>> parse_reside_name("1_1_0.90179", "id_k_A")
    RESIDEName(scene='1', variant='1', airlight=0.90179, beta=None)
    >>> parse_reside_name("0005_0.8_0.04", "id_A_beta")
    RESIDEName(scene='0005', variant='', airlight=0.8, beta=0.04)
    """
    match = NAMINGS[naming].match(stem)
    if match is None:
        return None
    g = match.groups()
    if naming == "id_k_A":
        return RESIDEName(g[0], g[1], float(g[2]))
    if naming == "id_A_beta":
        return RESIDEName(g[0], airlight=float(g[1]), beta=float(g[2]))
    if naming == "id_k":
        return RESIDEName(g[0], g[1])
    return RESIDEName(g[0])


@dataclass(frozen=True)
class RESIDESubset:
    """Where a RESIDE subset keeps its files (first existing candidate under ``--root``) and how it is used."""

    hazy: tuple[str, ...]
    clear: tuple[str, ...]
    naming: str
    role: str  # "train": unpaired train + paired held-out test; "test": paired test; "hazy-only"


RESIDE_SUBSETS = {
    "its": RESIDESubset(("hazy",), ("clear", "gt", "GT"), "id_k_A", "train"),
    "ots": RESIDESubset(("hazy",), ("clear", "gt", "GT"), "id_A_beta", "train"),
    "sots-indoor": RESIDESubset(("hazy", "indoor/hazy"), ("gt", "GT", "clear", "indoor/gt", "indoor/clear"), "id_k", "test"),
    "sots-outdoor": RESIDESubset(("hazy", "outdoor/hazy"), ("gt", "GT", "clear", "outdoor/gt", "outdoor/clear"), "id_A_beta", "test"),
    "hsts": RESIDESubset(("synthetic/synthetic", "hazy"), ("synthetic/original", "gt", "GT", "clear"), "id", "test"),
    "rtts": RESIDESubset(("JPEGImages", "hazy", "."), (), "id", "hazy-only"),
}  # fmt: skip


def _first_dir(root: Path, candidates: Sequence[str]) -> Path | None:
    return next((root / c for c in candidates if (root / c).is_dir()), None)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def crop_to(clear: Tensor, height: int, width: int, name: str = "") -> Tensor:
    """Centre-crop ``clear`` ``(C,H,W)`` to ``height x width`` when it is larger by an even margin.

    This removes the white 10-px NYU border of SOTS-indoor ground truths (640x480 -> 620x460,
    i.e. ``[10:470, 10:630]``) when the hazy images were distributed cropped.
    """
    dh, dw = clear.shape[-2] - height, clear.shape[-1] - width
    if (dh, dw) == (0, 0):
        return clear
    if dh < 0 or dw < 0 or dh % 2 or dw % 2:
        raise EIDError(
            f"{name}: clear image is {clear.shape[-1]}x{clear.shape[-2]} but its hazy image is {width}x{height}; "
            "only a centred border can be cropped: check that the pair belongs together"
        )
    return clear[..., dh // 2 : dh // 2 + height, dw // 2 : dw // 2 + width]


@dataclass(frozen=True)
class RESIDEItem:
    """One hazy image, its parsed name and its clear image (``None`` for hazy-only subsets)."""

    hazy: Path
    clear: Path | None
    name: RESIDEName


def scan_reside(root: str | Path, subset: str, allow_missing: bool = False) -> list[RESIDEItem]:
    """List the hazy images of a RESIDE subset with their clear images.

    The clear image of hazy ``<scene>_...`` is, in order: the clear file with the hazy file's own stem,
    ``<scene>.<ext>`` (the official naming), or a clear file of the same scene under a hazy-style name
    (e.g. ``1400_10.png``, as in copies renamed by some repositories). Many hazy per clear.
    :raises EIDError: unknown subset, missing folders, names that do not follow the subset's naming,
        hazy images without a clear image (unless ``allow_missing``: then they are left out).
    """
    if subset not in RESIDE_SUBSETS:
        raise EIDError(f"unknown RESIDE subset {subset!r}; use one of {', '.join(RESIDE_SUBSETS)}")
    root, layout = Path(root), RESIDE_SUBSETS[subset]
    if not root.is_dir():
        raise EIDError(f"{root}: RESIDE folder not found; pass the folder of the {subset} subset with --root")
    hazy_dir = _first_dir(root, layout.hazy)
    if hazy_dir is None:
        raise EIDError(f"{root}: no hazy folder ({' or '.join(layout.hazy)}) for {subset}; see docs/datasets.md for layouts")
    clear_dir = _first_dir(root, layout.clear) if layout.clear else None
    if layout.clear and clear_dir is None:
        raise EIDError(f"{root}: no clear folder ({' or '.join(layout.clear)}) for {subset}; see docs/datasets.md for layouts")
    clear_by_stem = {p.stem: p for p in _images_in(clear_dir)} if clear_dir else {}
    clear_by_scene: dict[str, Path] = {}
    for stem, path in sorted(clear_by_stem.items()):
        parsed = parse_reside_name(stem, layout.naming)
        clear_by_scene.setdefault(parsed.scene if parsed else stem, path)
    items, missing = [], []
    for path in _images_in(hazy_dir):
        name = parse_reside_name(path.stem, layout.naming)
        if name is None:
            raise EIDError(f"{path}: name does not follow the {subset} naming {layout.naming}; check --subset")
        clear = clear_by_stem.get(path.stem) or clear_by_stem.get(name.scene) or clear_by_scene.get(name.scene)
        if layout.clear and clear is None:
            missing.append(path)
            continue
        items.append(RESIDEItem(path, clear, name))
    if missing and not allow_missing:
        raise EIDError(
            f"{len(missing)} hazy image(s) in {hazy_dir} have no clear image in {clear_dir} "
            f"(e.g. {missing[0].name} needs {parse_reside_name(missing[0].stem, layout.naming).scene}.png); "
            "add them or pass --allow-missing"
        )
    if not items:
        raise EIDError(f"{hazy_dir}: no usable hazy images for {subset}; see docs/datasets.md for layouts")
    return items


class RESIDEPairs(Dataset):
    """RESIDE hazy images with their clear images, many hazy per clear.

    Items are dicts ``{"hazy": (C,H,W), "clear": (C,H,W), "name": str}`` in ``[0,1]``; the clear
    image is border-cropped to the hazy size when needed (:func:`crop_to`). Hazy-only subsets
    (RTTS) give ``{"hazy", "name"}``.
    """

    def __init__(self, root: str | Path, subset: str, allow_missing: bool = False, max_pixels: int | None = None) -> None:
        self.items = scan_reside(root, subset, allow_missing)
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Tensor | str]:
        item = self.items[index]
        hazy, _ = read_image(item.hazy, max_pixels=self.max_pixels)
        sample: dict[str, Tensor | str] = {"hazy": hazy, "name": item.hazy.stem}
        if item.clear is not None:
            clear, _ = read_image(item.clear, max_pixels=self.max_pixels)
            sample["clear"] = crop_to(clear, hazy.shape[-2], hazy.shape[-1], item.clear.name)
        return sample


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
        raise EIDError(f"{path}: cannot read image ({getattr(exc, 'strerror', None) or exc}); re-download it") from None


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
    return lambda: write_image(folder / f"{stem}.png", cropped, replace(meta, format="PNG", alpha=None))


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
    out_dir = _check_out(Path(out_dir), root)
    rng = random.Random(seed)
    by_scene: dict[str, list[RESIDEItem]] = {}
    for item in items:
        by_scene.setdefault(item.name.scene, []).append(item)
    if max_hazy_per_scene is not None:
        by_scene = {s: sorted(rng.sample(v, min(len(v), max_hazy_per_scene)), key=lambda i: i.hazy.name) for s, v in by_scene.items()}
    jobs: list[tuple[RESIDEItem, str, tuple[str, ...]]] = []  # (item, split, kinds written together)
    role = RESIDE_SUBSETS[subset].role
    if role == "train":
        scenes = sorted(by_scene)
        rng.shuffle(scenes)
        n_test = round(test_fraction * len(scenes))
        test, rest = scenes[:n_test], scenes[n_test:]
        if len(rest) < 2:
            raise EIDError(f"{root}: {len(rest)} training scene(s) for {subset}; an unpaired split needs at least 2")
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
            stems = {k: item.name.scene if (split, k) == ("train", "clear") else item.hazy.stem for k in kinds}
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


# --------------------------------------------------------------------------------------------------
# Cell97-Haze

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
        paths = (p for p in src_dir.rglob("*") if not any(w in part.lower() for part in p.relative_to(src_dir).parts for w in ANNOTATION_WORDS))
    return sorted(p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


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
    :func:`eid.data.synth.synthesize` (``model="veil"``: ``y = c x + v G_sigma x / max + b F``, with
    ``c``, ``v``, ``b`` uniform in the given ranges and ``sigma = veil_sigma * min(H, W)``), seeded per
    image from ``seed`` and its name. A seeded ``test_fraction`` of the images goes to ``test``.
    Writes ``<out>/<split>/{clear,hazy}/<name>`` (same format and bit depth; sub-folders are folded
    into the name, ``gnf/dna-1.png`` -> ``gnf_dna-1.png``) and ``manifest.csv`` with the drawn
    parameters. Unreadable files (e.g. multi-page TIFF stacks) are skipped: ``on_skip(line)`` names each (default:
    a warning) and ``failed`` lists them. Rerunning skips images already in the manifest.
    """
    from eid.data.synth import SynthConfig, image_seed, synthesize

    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise EIDError(f"{src_dir}: source folder not found; pass the unpacked Murphy-lab nuclei folder with --src")
    if not 0.0 <= test_fraction < 1.0:
        raise EIDError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    paths = find_cell97_images(src_dir, include)
    if not paths:
        raise EIDError(f"{src_dir}: no images (TIFF/PNG) found; pass the folder holding the 97 nuclear images")
    out_dir = _check_out(Path(out_dir), src_dir)
    config = SynthConfig(model="veil", contrast=contrast, veil=veil, background=background, veil_sigma=veil_sigma, seed=seed)
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
                summary.fail(str(exc) if str(path) in str(exc) else f"{path}: {exc}", on_skip or _warn)
                summary.add("unreadable")
                continue
            image_key = image_seed(seed, name)
            hazy, record, _ = synthesize(clear, config, image_key)
            write_image(out_dir / split / "clear" / name, clear, meta)
            write_image(out_dir / split / "hazy" / name, hazy, meta)
            manifest.append({"name": name, "source": path.relative_to(src_dir).as_posix(), "split": split, **record})
            summary.add(f"{split}/pairs")
    return summary
