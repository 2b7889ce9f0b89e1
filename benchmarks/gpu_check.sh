#!/usr/bin/env bash
# The GPU check (issue 13): the speed benchmark of the specs in docs/performance.md, gancr
# against the same step written by hand, eager, compiled and with CUDA graphs, each against
# the hand-written step compiled the same way, in one run. Run from anywhere:
#
#   benchmarks/gpu_check.sh                    # eager and compiled: about 6 minutes (estimate)
#   benchmarks/gpu_check.sh eager              # one part again (eager, compiled, tests)
#   benchmarks/gpu_check.sh eager compiled tests
#
# It writes one JSON file per run into $OUT/<card>/ (default OUT: docs/benchmarks, so
# docs/benchmarks/nvidia-h200/...) and prints one table; then, in the checkout,
#   python -m gancr.bench.figures --write
# regenerates docs/performance.md from every JSON file under docs/benchmarks/.
# Each run has a time limit; with the limits below the parts take at most 3 (eager) and
# 5 (compiled) minutes, so the whole check and a rerun of one part fit one 15-minute session.
# The compiled runs compile both sides: that is most of their time (the H100 took about a
# minute per compiled gancr step). A rerun in the same session reuses the compile cache.
#
# On a machine without a package index, kornia and pydantic come from benchmarks/wheels/,
# which benchmarks/fetch_wheels.sh fills beforehand (git-ignored; never commit wheels).
#
# DRY=1 prints every command instead of running it (a test parses them on the CPU, so that a
# session with a GPU finds a script that works).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}  # the interpreter with gancr's needs
PARTS=${*:-eager compiled}
t0=$(date +%s)
elapsed() { echo "[$(( $(date +%s) - t0 )) s] $*"; }

if ! "$PYTHON" -c "import kornia, pydantic" 2>/dev/null; then
  if ! ls benchmarks/wheels/*.whl >/dev/null 2>&1; then
    echo "kornia or pydantic is missing and benchmarks/wheels/ is empty: run benchmarks/fetch_wheels.sh first" >&2
    exit 1
  fi
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/gancr-site \
    benchmarks/wheels/*.whl || exit 1
  export PYTHONPATH=/tmp/gancr-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1

run() {  # a command, or with DRY=1 its words on one line
  if [ "${DRY:-0}" = 1 ]; then printf '%q ' "$@"; echo; else "$@"; fi
}
S=256 B16=16 B1=1
if [ "${DRY:-0}" = 1 ]; then
  CARD=dry-run
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  CARD=$("$PYTHON" -c "import re, torch; print(re.sub('[^a-z0-9]+', '-', torch.cuda.get_device_name().lower()).strip('-'))") || exit 1
fi
run "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
DEST=${OUT:-docs/benchmarks}/$CARD
run mkdir -p "$DEST"
echo "figures into $DEST"

bench() {  # name time-limit args...: one run of the speed benchmark, its JSON into $DEST
  local name=$1 limit=$2; shift 2
  elapsed "speed: $name"
  run timeout "$limit" "$PYTHON" -m gancr.bench.speed --json "$DEST/$name.json" --device cuda \
    --warmup 3 --repeats 5 --steps 5 "$@" 2>&1 | grep -v "Warning\|warn(" | tail -n 14
}
CG=examples/cyclegan_like.yaml
QS=examples/quickstart.yaml
for part in $PARTS; do
  case $part in
  tests)
    elapsed "tests marked cuda"
    run timeout 110 "$PYTHON" -m pytest -q -m cuda tests/test_cuda.py -k "not compiled" -p no:cacheprovider 2>&1 | tail -n 8
    ;;
  eager)  # plain and same-settings hand-written steps; the quality specs (quickstart, painting)
    bench cyclegan_b16 75 --spec $CG --batch $B16 --size $S --latency-sizes 512,1024 --latency-modes fp32,bf16
    bench cyclegan_b1 35 --spec $CG --batch $B1 --size $S --latency-sizes ""
    bench quickstart_b16 35 --spec $QS --batch $B16 --size $S --latency-sizes ""
    if [ -f examples/painting.yaml ]; then
      bench painting_b16 35 --spec examples/painting.yaml --batch $B16 --size $S --latency-sizes ""
    fi
    ;;
  compiled)  # against the hand-written step compiled in the same mode
    bench cyclegan_b1_graphs 130 --spec $CG --batch $B1 --size $S --set training.compile=reduce-overhead \
      --reference-modes matched --latency-sizes ""
    bench cyclegan_b16_compiled 170 --spec $CG --batch $B16 --size $S --set training.compile=true \
      --reference-modes matched --latency-sizes 1024 --latency-modes compiled
    ;;
  *) echo "unknown part: $part (eager, compiled, tests)" >&2; exit 2 ;;
  esac
done

elapsed "summary"
run "$PYTHON" -m gancr.bench.figures --summary "$DEST"/*.json
elapsed "done; now: python -m gancr.bench.figures --write (with $DEST under docs/benchmarks/)"
