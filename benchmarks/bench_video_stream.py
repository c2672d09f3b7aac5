"""The video pipeline as a stream: its own frame rate, and peak memory against the video's length.

For each length (default 10 s and 60 s of 480x480 at 25 frames/s, with an AAC audio track), one fresh
process runs :func:`eid.inference.video.dehaze_video` with ``--model`` as the image function (``identity``: the
pipeline alone, i.e. decode + flicker meters + encode + audio copy; ``dcp``: the dark channel prior; ``fast``: the
default dehazer, random weights, as ``eid dehaze`` runs it), and reports frames/s and its peak RSS (``VmHWM``;
``ru_maxrss`` would carry the parent's peak through fork and exec). Streaming means the peak RSS does not grow with
the length.

Run: .venv/bin/python benchmarks/bench_video_stream.py [--seconds 10 60] [--model identity] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np


def write_clip(path: Path, seconds: int, size: int = 480, fps: int = 25, rate: int = 44100) -> None:
    """A panning noise texture under grey haze, with a 440 Hz AAC tone."""
    g = np.random.default_rng(0)
    texture = g.integers(0, 255, (size, 2 * size, 3), dtype=np.uint8)
    with av.open(str(path), mode="w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=rate)
        audio.layout = "mono"
        for i in range(seconds * fps):
            frame = (0.6 * texture[:, i % size : i % size + size] + 0.4 * 200).astype(np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(video.encode())
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(seconds * rate) / rate)).astype(
            np.float32
        )[None]
        chunk = 1024
        for start in range(0, tone.shape[1], chunk):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(tone[:, start : start + chunk]), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, start
            out.mux(audio.encode(frame))
        out.mux(audio.encode())


def child(src: Path, model: str, threads: int) -> None:
    """Run one clip and print its figures as JSON (in a fresh process, so its peak RSS is this clip's)."""
    import torch

    from eid.baselines.dcp import DarkChannelPrior
    from eid.inference.video import dehaze_video

    torch.set_num_threads(threads)
    if model == "fast":
        from bench_inference import default_runner, preset_run

        image_fn = default_runner(preset_run("fast", src.with_name("fast-run")), batch_size=4).run
    else:
        image_fn = (lambda x: x) if model == "identity" else DarkChannelPrior()
    report = dehaze_video(
        src, src.with_name(f"out-{src.name}"), image_fn, batch_size=4, progress=False
    )
    from bench_inference import memory_gib

    rss = memory_gib("VmHWM")
    print(
        json.dumps(
            {
                "frames": report.frames,
                "fps": report.frames_per_second,
                "rss_gib": rss,
                "notes": report.notes,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, nargs="+", default=[10, 60])
    parser.add_argument("--model", choices=["identity", "dcp", "fast"], default="identity")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if args.child:
        child(args.child, args.model, args.threads)
        return
    import torch
    from bench_inference_speed import machine

    torch.set_num_threads(args.threads)
    print(f"{machine()}; image function: {args.model}")
    print("| clip | frames | frames/s | peak RSS (GiB) | audio |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for seconds in args.seconds:
            src = Path(folder) / f"clip{seconds}.mp4"
            write_clip(src, seconds)
            done = subprocess.run([sys.executable, __file__, "--child", str(src), "--model", args.model,
                                   "--threads", str(args.threads)], check=True, capture_output=True, text=True)  # fmt: skip
            result = json.loads(done.stdout.strip().splitlines()[-1])
            audio = "copied" if not result["notes"] else "; ".join(result["notes"])
            print(
                f"| {seconds} s, 480x480, 25 frames/s | {result['frames']} | {result['fps']:.1f} | {result['rss_gib']:.2f} | {audio} |"
            )


if __name__ == "__main__":
    main()
