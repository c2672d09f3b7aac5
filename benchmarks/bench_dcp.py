"""Dark Channel Prior benchmark: CPU time per megapixel (1 MP, 12 MP) and PSNR/SSIM on the SOTS-indoor sample.

Run: ``.venv/bin/python benchmarks/bench_dcp.py [--threads 2] [--repeats 5] [--data ../shared/data]``.
Prints markdown tables. Timing: median wall time of ``--repeats`` runs (after one warm-up) of
``DarkChannelPrior()`` with its defaults, on the bundled motorcycle image resized to the target size.
Quality: RGB in [0,1], no border crop, SSIM Gaussian 11x11 sigma 1.5 (``eid.metrics.paired``); a hazy
``<scene>_<k>.png`` is paired with ``clear/<scene>_<k>.png``, else with the scene's other clear copy
(SOTS has one ground truth per scene).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from eid.baselines import DarkChannelPrior
from eid.data.depth import motorcycle_depth
from eid.data.io import read_image
from eid.data.listing import list_images
from eid.metrics.paired import psnr, ssim

SIZES = {"1 MP": (1000, 1000), "12 MP": (3000, 4000)}
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def time_per_megapixel(
    dcp: DarkChannelPrior, repeats: int
) -> list[tuple[str, float, float, float]]:
    """``(label, median wall s, wall s per MP, CPU s per MP)`` for each size in :data:`SIZES`.

    CPU time (all threads of this process) is less sensitive than wall time to other jobs on a shared machine.
    """
    image, _ = motorcycle_depth()
    rows = []
    for label, (h, w) in SIZES.items():
        y = F.interpolate(image[None], size=(h, w), mode="bilinear", align_corners=False).clamp(
            0, 1
        )
        dcp(y)  # warm-up
        wall, cpu = [], []
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            dcp(y)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        megapixels = h * w / 1e6
        median = statistics.median(wall)
        rows.append((label, median, median / megapixels, statistics.median(cpu) / megapixels))
    return rows


def clear_for(hazy: Path, clear_dir: Path) -> Path | None:
    """``clear/<name>`` if present, else a clear image of the same scene (``<scene>_*``)."""
    exact = clear_dir / hazy.name
    if exact.is_file():
        return exact
    scene = hazy.stem.split("_")[0]
    same_scene = sorted(clear_dir.glob(f"{scene}_*{hazy.suffix}"))
    return same_scene[0] if same_scene else None


def sots_quality(dcp: DarkChannelPrior, folder: Path) -> list[tuple[str, str, float, float]]:
    """``(hazy name, clear name, PSNR, SSIM)`` per pair of the SOTS-indoor sample."""
    rows = []
    for hazy_path in list_images([folder / "hazy"]):
        clear_path = clear_for(hazy_path, folder / "clear")
        if clear_path is None:
            continue
        hazy, _ = read_image(hazy_path)
        clear, _ = read_image(clear_path)
        out = dcp(hazy[None])
        rows.append(
            (
                hazy_path.name,
                clear_path.name,
                float(psnr(out, clear[None])),
                float(ssim(out, clear[None])),
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs per size (median reported)"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared/data folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dcp = DarkChannelPrior()

    print(
        f"## DCP on CPU ({args.threads} threads, median of {args.repeats} runs, torch {torch.__version__})\n"
    )
    print("| size | median wall time (s) | wall s / MP | CPU s / MP |\n|---|---|---|---|")
    for label, median, per_mp, cpu_per_mp in time_per_megapixel(dcp, args.repeats):
        print(f"| {label} | {median:.3f} | {per_mp:.3f} | {cpu_per_mp:.3f} |")

    folder = args.data / "sots-indoor-sample"
    if not folder.is_dir():
        print(f"\n(SOTS-indoor sample not found at {folder}; quality skipped)")
        return
    rows = sots_quality(dcp, folder)
    print(
        "\n## DCP on the SOTS-indoor sample (RGB, [0,1], no crop, SSIM Gaussian 11x11 sigma 1.5)\n"
    )
    print("| hazy | clear | PSNR (dB) | SSIM |\n|---|---|---|---|")
    for hazy, clear, p, s in rows:
        print(f"| {hazy} | {clear} | {p:.2f} | {s:.4f} |")
    mean_p = statistics.mean(r[2] for r in rows)
    mean_s = statistics.mean(r[3] for r in rows)
    print(f"| **mean ({len(rows)})** | | **{mean_p:.2f}** | **{mean_s:.4f}** |")
    print(
        "\nPublished DCP on the full SOTS-indoor (500 images): 16.62 dB / 0.818 (FFA-Net, gUNet tables)."
    )


if __name__ == "__main__":
    main()
