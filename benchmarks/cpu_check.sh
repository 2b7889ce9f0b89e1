#!/usr/bin/env bash
# The CPU check (issue 13): on this machine's CPU, quickstart and cyclegan_like at batch 1 and
# 4, gancr's training step against the same step written by hand with the same settings
# (and the plain one), 5 interleaved repeats or more; prints, per run, the median ratio
# gancr / hand-written with the smallest and largest of the repeats. The quality specs
# (quickstart, and painting when examples/painting.yaml exists) get a row each.
#
#   benchmarks/cpu_check.sh                 # JSON into docs/benchmarks/cpu/, then one table
#   REPEATS=9 OUT=/tmp/figures benchmarks/cpu_check.sh
#
# Take figures only on an idle machine (`uptime`: a load average well below 1): another
# process on the same cores slows whichever side it overlaps, and the spread shows it.
# Then `python -m gancr.bench.figures --write` regenerates docs/performance.md.
# DRY=1 prints every command instead of running it (a test parses them).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}  # the interpreter with gancr's needs
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
REPEATS=${REPEATS:-5}
if [ "$REPEATS" -lt 5 ]; then echo "REPEATS must be 5 or more" >&2; exit 2; fi
# steps per timing: a quickstart step is 0.1-0.25 s, so 10 of them per repeat; a cyclegan_like one
# is 1-3 s, so 3
QS_SIZE=64 CG_SIZE=128 TIMING=(--warmup 2 --repeats "$REPEATS")
run() {  # a command, or with DRY=1 its words on one line
  if [ "${DRY:-0}" = 1 ]; then printf '%q ' "$@"; echo; else "$@"; fi
}
DEST=${OUT:-docs/benchmarks}/cpu
run mkdir -p "$DEST"
uptime
bench() {  # name args...
  echo "== $1"
  run "$PYTHON" -m gancr.bench.speed --json "$DEST/$1.json" --device cpu --latency-sizes "" "${TIMING[@]}" "${@:2}" \
    2>&1 | grep -v "Warning\|warn(" | tail -n 4
}
for batch in 1 4; do
  bench "quickstart_b$batch" --spec examples/quickstart.yaml --batch $batch --size $QS_SIZE --steps 10
  bench "cyclegan_b$batch" --spec examples/cyclegan_like.yaml --batch $batch --size $CG_SIZE --steps 3
done
if [ -f examples/painting.yaml ]; then
  bench painting_b4 --spec examples/painting.yaml --batch 4 --size $QS_SIZE --steps 10
fi
uptime
run "$PYTHON" -m gancr.bench.figures --summary "$DEST"/*.json
