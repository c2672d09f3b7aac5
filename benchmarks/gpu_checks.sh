#!/usr/bin/env bash
# Issue 18's GPU figures, prepared for a session with a GPU (in this order, the first being the one a CPU cannot give):
#
# 1. the `paper` preset tiled (512) against untiled at 4096x4096, on a checkpoint trained through the CLI path (20 + 20
#    steps on the natural benchmark's data). On two CPU cores this takes hours and the untiled reference needs about
#    41 GiB (docs/benchmarks/inference.md); a GPU with 48 GiB or more runs it in minutes;
# 2. every other shipped preset through `bench_inference.py --device cuda`: time per MP at 1 MP (default path, torch
#    fp32 and bf16), the convolution throughput of the GPU, peak GPU memory at 1 MP and 4096².
#
#   bash benchmarks/gpu_checks.sh [OUT]        PYTHON and EID override the interpreter and the command, e.g.
#                                              PYTHON=python3 EID="python3 -m eid" with PYTHONPATH=src
set -euo pipefail
OUT=${1:-/tmp/gpu-checks}
PYTHON=${PYTHON:-.venv/bin/python}
read -r -a EID <<< "${EID:-.venv/bin/eid}"
"$PYTHON" - "$OUT/data" <<'PY'
import sys
from pathlib import Path

sys.path.insert(0, "benchmarks")
from bench_quality_cli import natural_data  # the natural benchmark's hazy and clear sets

natural_data(Path(sys.argv[1]))
PY
"${EID[@]}" train-operator --hazy "$OUT/data/train" --clear "$OUT/data/clear" --preset paper --max-steps 20 --seed 0 \
    --out "$OUT/op"
"${EID[@]}" train --hazy "$OUT/data/train" --operator "$OUT/op" --preset paper --max-steps 20 --seed 0 --out "$OUT/eid"
"$PYTHON" benchmarks/bench_stage_tiles.py --model "$OUT/eid" --size 4096 --modes none,512 --precision fp32 \
    --device cuda | tee "$OUT/paper-tiles.md"
"$PYTHON" benchmarks/bench_inference.py --device cuda --presets fast,microscopy,natural,endoscopy --no-onnx \
    | tee "$OUT/inference.md"
