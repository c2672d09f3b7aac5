"""Video dehazing throughput and flicker.

1. Frames/s of :func:`eid.inference.video.dehaze_video` at 480x480 on ``--threads`` CPU threads for the
   ``fast`` and ``paper`` dehazer presets and the space-to-depth candidates of
   ``bench_inference_speed.py`` (random weights: speed does not depend on the weights), through the
   runner ``eid.Dehazer.run`` on torch; the ``fast`` preset also as ``eid dehaze`` runs it (``--backend auto``:
   ONNX Runtime where the export gives torch's result, ``bench_inference.default_runner``). The network ``f`` is timed on the hazy
   frame: the ``paper`` preset's pseudo-inverse input adds one G_BA pass per frame, which belongs to
   the stage-1 operator and is not counted here. Variants alternate run by run (the machine is shared).
2. Flicker (mean |y_t - y_{t-1}| in the input's static regions, 8-bit levels) of a synthetic hazy
   clip with sensor noise, dehazed by the dark channel prior (whose per-frame airlight estimate is a
   real flicker source), without and with temporal smoothing.

Run: ``.venv/bin/python benchmarks/bench_video.py [--frames 12] [--paper-frames 4] [--threads 2]``. Prints markdown.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_inference import default_runner, preset_run
from bench_inference_speed import machine

from eid.baselines.dcp import DarkChannelPrior
from eid.config import preset_dict
from eid.data.video import VideoWriter
from eid.inference import Dehazer as Runner
from eid.inference.video import dehaze_video
from eid.models.dehazer import DehazerConfig, DehazerNet, count_parameters

LOCAL = {"norm": "none", "circular_padding": False}
CANDIDATES = {
    "the default before 2026-12-04 (UNet 3x16, residual)": {
        "unshuffle": 1,
        "width": 16,
        "head": "residual",
    },
    "space-to-depth 2, UNet 3x16, norm-free": {
        **LOCAL,
        "unshuffle": 2,
        "width": 16,
        "head": "residual",
    },
    "space-to-depth 2, UNet 3x32, norm-free": {
        **LOCAL,
        "unshuffle": 2,
        "width": 32,
        "head": "residual",
    },
    "space-to-depth 2, UNet 3x32, affine head (the fast default until 2026-12-05; natural)": {
        "unshuffle": 2
    },
}


def hazy_clip(frames: int, size: int = 480, noise: float = 0.01, seed: int = 0) -> torch.Tensor:
    """A textured scene with a panning bright object under haze, plus Gaussian sensor noise: ``(T,3,S,S)``."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    scene = torch.stack([0.6 * xx + 0.2, 0.3 + 0.4 * torch.sin(6 * yy) ** 2, 0.2 + 0.3 * xx * yy])
    clip = scene.expand(frames, 3, size, size).clone()
    for t in range(frames):
        x0 = 40 + 8 * t
        clip[t, :, 200:280, x0 : x0 + 80] = torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1)
    depth = 0.3 + 1.5 * yy
    trans = torch.exp(-1.2 * depth)
    hazy = clip * trans + 0.85 * (1 - trans)
    return (hazy + noise * torch.randn(hazy.shape, generator=g)).clamp(0, 1)


def write(path: Path, clip: torch.Tensor, fps: int = 25) -> Path:
    with VideoWriter(path, fps=fps, width=clip.shape[-1], height=clip.shape[-2]) as writer:
        writer.write(clip)
    return path


def preset_model(name: str, **overrides: object) -> DehazerNet:
    model = {**preset_dict("dehazer", name).get("model", {}), **overrides, "input": "hazy"}
    return DehazerNet(DehazerConfig(**model)).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--frames", type=int, default=12, help="frames for the fast preset and the flicker clip"
    )
    parser.add_argument("--paper-frames", type=int, default=4, help="frames for the paper preset")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs per preset (median reported)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-paper", action="store_true", help="skip the (slow) paper preset")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="bench_video_"))

    nets = {"fast (default)": (preset_model("fast"), args.frames)}
    nets.update(
        {name: (preset_model("fast", **kw), args.frames) for name, kw in CANDIDATES.items()}
    )
    if not args.no_paper:
        nets["paper"] = (preset_model("paper"), args.paper_frames)
    clips = {
        frames: write(work / f"clip{frames}.mp4", hazy_clip(frames))
        for frames in {f for _, f in nets.values()}
    }
    runners = {
        name: Runner.from_module(net, device="cpu", tile=None, batch_size=2)
        for name, (net, _) in nets.items()
    }
    default = "fast (default), eid dehaze's backend (auto)"
    runners[default] = default_runner(preset_run("fast", work / "fast"), batch_size=2)
    nets[default] = nets["fast (default)"]
    rates: dict[str, list[float]] = {name: [] for name in nets}
    for r in range(args.repeats):
        for name, (_, frames) in nets.items():
            report = dehaze_video(
                clips[frames], work / f"out{r}.mp4", runners[name].run, batch_size=2, progress=False
            )
            rates[name].append(report.frames_per_second)
    print(f"{machine()}; 480x480, batch 2\n")  # date, CPU model and flags, threads
    print("| variant | params | frames | frames/s (median) | s/frame | runs |")
    print("|---|---|---|---|---|---|")
    for name, (net, frames) in nets.items():
        fps = statistics.median(rates[name])
        print(f"| {name} | {count_parameters(net):,} | {frames} | {fps:.2f} | {1 / fps:.2f} | "
              f"{', '.join(f'{v:.2f}' for v in rates[name])} |")  # fmt: skip

    src = write(work / "flicker.mp4", hazy_clip(args.frames * 2))
    dcp = DarkChannelPrior()
    print()
    print(
        "| method | smoothing s | flicker input | flicker output raw | flicker output smoothed | frames/s |"
    )
    print("|---|---|---|---|---|---|")
    for strength in (0.0, 0.5, 0.8):
        start = time.perf_counter()
        report = dehaze_video(
            src,
            work / f"dcp_{strength}.mp4",
            dcp,
            batch_size=2,
            temporal_smoothing=strength,
            progress=False,
        )
        smoothed = (
            "-" if report.flicker_smoothed is None else f"{255 * report.flicker_smoothed:.3f}"
        )
        print(f"| DCP | {strength} | {255 * report.flicker_input:.3f} | {255 * report.flicker_raw:.3f} | "
              f"{smoothed} | {report.frames / (time.perf_counter() - start):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
