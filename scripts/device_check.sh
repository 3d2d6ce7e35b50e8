#!/usr/bin/env bash
# The GPU checks of issue 15 in one command, under 5 minutes on a lent GPU:
#   1. HDRNet's Triton kernel against the PyTorch reference on CUDA tensors (tests/test_triton.py);
#   2. python -m benchmark.speed for HDRNet at 1080p and 4K (CPU rows and CUDA rows: Triton
#      fullres, grid_sample fullres, total), written to $OUT (default outputs/device_check).
# Usage: scripts/device_check.sh            on a machine with a CUDA GPU
#        scripts/device_check.sh --dry-run  anywhere: Triton's interpreter on CPU tensors, tiny sizes
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-outputs/device_check}
if [[ "${1:-}" == "--dry-run" ]]; then
    export TRITON_INTERPRET=1
    "$PY" -m pytest -q -p no:cacheprovider tests/test_triton.py
    "$PY" -m benchmark.speed model=hdrnet "sizes=[96x64]" warmup=0 repeats=1 train_crop=64 memory_size=96x64 \
        device=cpu "out=$OUT"
else
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: use --dry-run')"
    export TRITON_INTERPRET=0  # tests/test_triton.py then runs the compiled kernel on CUDA tensors
    "$PY" -m pytest -q -p no:cacheprovider tests/test_triton.py
    "$PY" -m benchmark.speed model=hdrnet "sizes=[1080p,4K]" device=cuda "out=$OUT"
fi
echo "device check: $OUT/speed.json"
