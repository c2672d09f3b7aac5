"""16-bit RGB PNG: read and write time of :mod:`eid.data.io` and the size of what it writes.

Writes a ``size x size`` 16-bit RGB PNG with libpng (``imagecodecs.png_encode``; a smooth gradient plus noise,
like a photograph), then times ``read_image`` on it and ``write_image`` of the result (best of ``--repeats``,
one thread), checks that the round trip is exact and compares the written file's size with libpng's.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_png_io.py [--size 1024] [--repeats 5]``. Prints markdown.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import imagecodecs
import numpy as np
import torch

from eid.data.io import read_image, write_image


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """The shortest wall time in seconds of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def test_image(size: int) -> np.ndarray:
    """A ``size x size`` uint16 RGB image: gradients with 12-bit noise (compresses like a real photograph)."""
    ramp = np.linspace(0, 50000, size, dtype=np.float64)
    base = np.stack(
        [
            ramp[None, :] + 0 * ramp[:, None],
            ramp[:, None] + 0 * ramp[None, :],
            (ramp[None, :] + ramp[:, None]) / 2,
        ],
        -1,
    )
    noise = np.random.default_rng(0).integers(0, 4096, base.shape)
    return (base + noise).clip(0, 65535).astype(np.uint16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    image = test_image(args.size)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "libpng.png", Path(tmp) / "eid.png"
        src.write_bytes(imagecodecs.png_encode(image))
        x, meta = read_image(src)
        exact = np.array_equal(np.rint(x.permute(1, 2, 0).numpy() * 65535).astype(np.uint16), image)
        read_s = best_of(args.repeats, lambda: read_image(src))
        write_s = best_of(args.repeats, lambda: write_image(dst, x, meta))
        round_trip = torch.equal(read_image(dst)[0], x)
        ratio = dst.stat().st_size / src.stat().st_size
    print(f"| {args.size}x{args.size} 16-bit RGB PNG | seconds |")
    print("|---|---|")
    print(f"| read_image (libpng file) | {read_s:.3f} |")
    print(f"| write_image | {write_s:.3f} |")
    print(
        f"\nexact read: {exact}; exact round trip: {round_trip}; eid's file / libpng's: {ratio:.2f}x"
    )


if __name__ == "__main__":
    main()
