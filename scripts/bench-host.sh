#!/usr/bin/env bash
# The host bench suite in one command, results and charts in one folder:
#   bench_host.json/.txt  bench_normkit's host cases (statistics, apply, Lp, layers, image normalize, and the
#                         statistics' naive two-pass and Eigen peers), each beside a memcpy of its bytes
#   numpy.txt, sklearn.txt, python.jsonl   numpy, scikit-learn and the Python package on the same shapes
#   stream_host.jsonl/.txt                 streamed data-set statistics against the raw file read rate
#   plots/*.png, plots/fractions.md        bench/plot.py's charts (normkit beside its peers) and table
# Needs a GPU for nothing. Environment: OUT (default bench-host-out), BUILD_DIR (default build), QUICK=1 (small
# cases, short timings: about a minute), FILTER (a regular expression of case names, e.g. '^host/per_feature/').
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-host-out}
BUILD_DIR=${BUILD_DIR:-build}
QUICK=${QUICK:-0}
mkdir -p "$OUT"
if [ ! -x "$BUILD_DIR/bench/bench_normkit" ]; then
  scripts/install-deps.sh
  [ -x /usr/local/cuda/bin/nvcc ] && export PATH="$PATH:/usr/local/cuda/bin"
  scripts/configure.sh
  cmake --build "$BUILD_DIR" --target bench_normkit normkit_cli -j "$(nproc)"
fi
filter="${FILTER:-^host/}"
min_time=0.2
if [ "$QUICK" = 1 ]; then
  quick_filter='^host/(.*/small|copy/[0-9]{1,7}B)'
  filter="${FILTER:-$quick_filter}"
  min_time=0.02
fi
"$BUILD_DIR/bench/bench_normkit" --benchmark_filter="$filter" --benchmark_min_time="$min_time" \
  --benchmark_out="$OUT/bench_host.json" --benchmark_out_format=json | tee "$OUT/bench_host.txt"
if [ "$QUICK" != 1 ]; then
  python3 bench/compare_numpy.py "$BUILD_DIR" > "$OUT/numpy.txt" 2>&1 || echo "bench-host: compare_numpy.py failed (see $OUT/numpy.txt)"
  python3 bench/compare_sklearn.py "$BUILD_DIR" > "$OUT/sklearn.txt" 2>&1 || echo "bench-host: compare_sklearn.py failed (see $OUT/sklearn.txt)"
  python3 bench/stream_rate.py "$BUILD_DIR" --json > "$OUT/stream_host.jsonl" 2> "$OUT/stream_host.txt" ||
    echo "bench-host: stream_rate.py failed (see $OUT/stream_host.txt)"
fi
if [ -d "$BUILD_DIR/python/normkit" ]; then
  PYTHONPATH="$BUILD_DIR/python" python3 bench/compare_python.py --json $([ "$QUICK" = 1 ] && echo "--mb 16 --repeat 2") > "$OUT/python.jsonl"
fi
python3 -c "import matplotlib" 2>/dev/null || python3 -m pip install -q --disable-pip-version-check matplotlib
stream_args=()
[ -s "$OUT/stream_host.jsonl" ] && stream_args=(--stream "$OUT/stream_host.jsonl")
python3 bench/plot.py "$OUT/bench_host.json" "$OUT/plots" "${stream_args[@]}" --machine "$(nproc)-core host $(uname -m)"
echo "bench-host: results in $OUT"
