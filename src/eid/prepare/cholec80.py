"""Cholec80-Haze: frames sampled from the Cholec80 videos, cropped to the endoscope's field of view and
sorted into clear and hazy (surgical smoke) by a haze score (:mod:`eid.metrics.haze_score`)."""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from eid.data.io import write_image
from eid.data.video import VIDEO_SUFFIXES, VideoReader
from eid.errors import EIDError, VideoReadError
from eid.metrics.haze_score import SCORERS
from eid.prepare.common import (
    Manifest,
    OnSkip,
    PrepareSummary,
    check_out,
    load_state,
    resize_square,
    write_state,
)
from eid.progress import progress_bar


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


def detect_fov(
    frames: Tensor, threshold: float = 0.06, min_fraction: float = 0.05
) -> FieldOfView | None:
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
        return (
            "test" if video in wanted or (number is not None and str(number) in wanted) else "train"
        )
    if number is not None:
        return "test" if number > 40 else "train"
    return "test" if int(hashlib.sha1(video.encode()).hexdigest(), 16) % 2 else "train"


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
        raise EIDError(
            f"{videos_dir}: videos folder not found; pass the folder holding video01.mp4 ..."
        )
    videos = sorted(p for p in videos_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise EIDError(
            f"{videos_dir}: no video files ({', '.join(VIDEO_SUFFIXES)}); pass the Cholec80 videos folder"
        )
    if score not in SCORERS:
        raise EIDError(f"unknown haze score {score!r}; use one of {', '.join(SCORERS)}")
    defaults = DEFAULT_THRESHOLDS.get(score)
    if (t_clear is None or t_hazy is None) and defaults is None:
        raise EIDError(f"the {score} score has no default thresholds; pass --t-clear and --t-hazy")
    t_clear = defaults[0] if t_clear is None else t_clear
    t_hazy = defaults[1] if t_hazy is None else t_hazy
    if not t_clear <= t_hazy:
        raise EIDError(f"--t-clear ({t_clear}) must not exceed --t-hazy ({t_hazy})")
    out_dir = check_out(Path(out_dir), videos_dir)
    tests = None if test_videos is None else sorted(str(v) for v in test_videos)
    settings = {"fps": fps, "size": size, "crop": crop, "t_clear": t_clear, "t_hazy": t_hazy, "score": score,
                "test_videos": tests, "fov_threshold": fov_threshold, "fov_frames": fov_frames}  # fmt: skip
    state_path = out_dir / "prepare.json"
    state = load_state(state_path, settings)
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
                    task = bar.add_task(
                        f"{video} ({split})", total=max(1, math.ceil(info.duration * fps))
                    )
                    frames = reader.frames(rate=fps)
                    head = list(itertools.islice(frames, fov_frames))
                    if "fov" not in record:
                        fov = (
                            detect_fov(torch.stack([f.image for f in head]), fov_threshold)
                            if head
                            else None
                        )
                        fov = fov or FieldOfView(
                            info.width / 2, info.height / 2, min(info.width, info.height) / 2
                        )
                        record["fov"] = asdict(fov)
                        write_state(state_path, state)
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
                        image = resize_square(
                            frame.image[:, top : top + side, left : left + side], size
                        )
                        value = scorer(image, mask)
                        label = (
                            "clear" if value < t_clear else "hazy" if value > t_hazy else "discard"
                        )
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
                summary.fail(
                    f"{exc} (after {kept} frames, which are kept; a rerun retries the rest)"
                    if kept
                    else str(exc),
                    on_skip,
                )
                continue
            record["done"] = True
            write_state(state_path, state)
    return summary
