"""TIFF stacks: ``eid dehaze`` on one stack against the same planes as separate files.

Builds a ``planes x size x size`` uint16 stack of random 12-bit values and writes its planes as separate
TIFFs, then runs ``eid dehaze --method dcp DIR --out OUT --white 4095`` on each input, alternating, each run
in its own process under ``/usr/bin/time -v`` (wall time and peak RSS of that process). Checks that both give
the same output, plane for plane.

Run: ``.venv/bin/python benchmarks/bench_stacks.py [--planes 32] [--size 1024] [--rounds 2]``. Prints markdown.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

EID = Path(sys.executable).parent / "eid"


def timed_dehaze(src: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (GiB) of one ``eid dehaze --method dcp`` process."""
    cmd = [
        "/usr/bin/time",
        "-v",
        str(EID),
        "dehaze",
        "--method",
        "dcp",
        str(src),
        "--out",
        str(out),
        "--white",
        "4095",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if wall is None or rss is None:
        sys.exit(f"could not read /usr/bin/time's report:\n{done.stderr[-2000:]}")
    hours, minutes, seconds = wall.groups()
    return 3600 * int(hours or 0) + 60 * int(minutes) + float(seconds), int(rss.group(1)) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, default=32)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eid-bench-stacks-") as tmp:
        run(args.planes, args.size, args.rounds, Path(tmp))


def run(planes: int, size: int, rounds: int, work: Path) -> None:
    """Build the inputs in ``work``, time the alternated runs, print the table."""
    samples = np.random.default_rng(0).integers(0, 4096, (planes, size, size), dtype=np.uint16)
    (work / "stack").mkdir()
    (work / "files").mkdir()
    tifffile.imwrite(
        work / "stack" / "z.tif", samples, photometric="minisblack", metadata={"axes": "ZYX"}
    )
    for index, plane in enumerate(samples):
        tifffile.imwrite(work / "files" / f"{index:04d}.tif", plane)
    rows = []
    for round_ in range(1, rounds + 1):
        for kind in ("stack", "files"):
            wall, rss = timed_dehaze(work / kind, work / f"out-{kind}-{round_}")
            rows.append(f"| {round_} | {kind} | {wall:.1f} | {rss:.2f} |")
            print(rows[-1], file=sys.stderr, flush=True)
    stacked = tifffile.imread(work / "out-stack-1" / "z.tif")
    same = all(
        np.array_equal(stacked[i], tifffile.imread(work / "out-files-1" / f"{i:04d}.tif"))
        for i in range(planes)
    )
    print(
        f"{planes} x {size} x {size} uint16, `eid dehaze --method dcp --white 4095`; outputs "
        f"identical plane for plane: {same}\n"
    )
    print("| round | input | wall time (s) | peak RSS (GiB) |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
