#!/usr/bin/env bash
# The GPU check: fits in about 8 minutes on one H100. Run from anywhere:
#   benchmarks/gpu_check.sh            (writes JSON figures to $OUT or /tmp/gancr-gpu-check)
# On a machine without a package index, kornia and pydantic come from benchmarks/wheels/,
# which benchmarks/fetch_wheels.sh fills beforehand (git-ignored; never commit wheels).
# It runs the tests marked `cuda` (bf16, fp16, compile, channels_last, device augmentation
# actually on CUDA), then the speed benchmark of the quickstart and cyclegan_like specs, and
# prints one table. Record the table, the card and the date in docs/performance.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gancr-gpu-check}
mkdir -p "$OUT"
t0=$(date +%s)
elapsed() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

if ! python3 -c "import kornia, pydantic" 2>/dev/null; then
  if ! ls benchmarks/wheels/*.whl >/dev/null 2>&1; then
    echo "kornia or pydantic is missing and benchmarks/wheels/ is empty: run benchmarks/fetch_wheels.sh first" >&2
    exit 1
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/gancr-site \
    benchmarks/wheels/*.whl || exit 1
  export PYTHONPATH=/tmp/gancr-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"

elapsed "tests marked cuda"
timeout 110 python3 -m pytest -q -m cuda tests/test_cuda.py -k "not compiled" -p no:cacheprovider 2>&1 | tail -n 8

bench() {  # name timeout args...
  local name=$1 limit=$2; shift 2
  elapsed "speed: $name"
  timeout "$limit" python3 -m gancr.bench.speed --json "$OUT/$name.json" --warmup 3 --repeats 4 --steps 5 "$@" 2>&1 \
    | grep -v "Warning\|warn(" | tail -n 12
}
S=256
CG=examples/cyclegan_like.yaml
bench cyclegan_b16 80 --spec $CG --device cuda --batch 16 --size $S --latency-sizes 512,1024 --latency-modes fp32,bf16
bench cyclegan_b1 40 --spec $CG --device cuda --batch 1 --size $S --latency-sizes ""
bench cyclegan_b1_graphs 100 --spec $CG --device cuda --batch 1 --size $S --set training.compile=reduce-overhead \
  --reference-modes "" --latency-sizes ""
bench cyclegan_b16_compiled 120 --spec $CG --device cuda --batch 16 --size $S --set training.compile=true \
  --reference-modes "" --latency-sizes 1024 --latency-modes compiled
bench quickstart_b16 45 --spec examples/quickstart.yaml --device cuda --batch 16 --size $S --latency-sizes ""

elapsed "summary"
python3 benchmarks/gpu_summary.py "$OUT"/*.json
elapsed "done"
