#!/usr/bin/env bash
# One command for a lent GPU machine: builds for its architecture, runs the whole test suite natively on
# the GPU (device tests must pass without the emulator: NORMKIT_REQUIRE_DEVICE=1 makes a skip a failure),
# runs the device bench cases (each beside a device-to-device copy of the same bytes), records every
# kernel's registers, spills and local memory for the real architecture, and runs the SASS half of the
# emulator reproducers (tests/emulator_repro), and times the PyTorch peers of the bench cases
# (bench/compare_torch.py) and the streamed statistics (bench/stream_rate.py). Results go to $OUT (default
# gpu-check-out), 8 files: summary.txt, machine.txt, log.txt (every step's output, appended under a header as
# each step ends), bench_device.json, bench_layers.json, bench_peers.json, torch.jsonl and (full mode)
# stream_device.jsonl, so that a run cut off still returns what it finished.
#
#   scripts/gpu-deps.sh                      # here, once: packs GoogleTest and Google Benchmark
#   device run: scripts/gpu-check.sh [--quick]   carry: [".gpu-deps"]   timeout_s: 420 (--quick: 240)
#
# Full mode aims at <= 6 minutes on 16 cores and one H200, build included; --quick (<= 3 minutes) runs
# the device tests only and the large bench cases with shorter timing. Exit status: 0 when every step
# passed, 1 when one failed, 2 when there is no GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT"
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
START=$(date +%s)
BUILD_DIR=${BUILD_DIR:-build-gpu}
FAILED=0

summary() {  # step, status
  printf '%-10s %-8s %4d s\n' "$1" "$2" $(( $(date +%s) - START )) >>"$OUT/summary.txt"
  [ "$2" = ok ] || FAILED=1
}
run_step() {  # name, limit_s (times NORMKIT_GPU_CHECK_SLOWDOWN, default 1), output file (LOG: appended), command...
  local name=$1 limit=$(( $2 * ${NORMKIT_GPU_CHECK_SLOWDOWN:-1} )) file=$3
  shift 3
  echo "=== $name (limit ${limit} s, at $(( $(date +%s) - START )) s)"
  # (through bash: the command may be one of the functions below, exported)
  local rc=0
  timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" >"$file.tmp" 2>&1 || rc=$?
  if [ "$file" = "$LOG" ]; then
    { echo "##### $name (rc=$rc)"; cat "$file.tmp"; } >>"$LOG"
  else
    cat "$file.tmp" >"$file"
  fi
  if [ $rc = 0 ]; then
    summary "$name" ok
  else
    summary "$name" "rc=$rc"
    tail -n 40 "$file.tmp"
  fi
  rm -f "$file.tmp"
}

: >"$OUT/summary.txt"
LOG=$OUT/log.txt
: >"$LOG"
echo "gpu-check $( [ $QUICK = 1 ] && echo --quick ) at $(git rev-parse --short HEAD 2>/dev/null || echo '?') $(date -u +%FT%TZ)" >>"$OUT/summary.txt"

# 1. The machine.
{
  nvidia-smi --query-gpu=name,compute_cap,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv 2>&1
  nvcc --version 2>&1 | tail -n 2
  echo "cores: $(nproc)"
} >"$OUT/machine.txt"
CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
# (NORMKIT_GPU_CHECK_ARCH, e.g. 90: go on without a GPU, to check the script's build and steps on a CPU
# machine, with NORMKIT_GPU_CHECK_SLOWDOWN=4 on 2 cores; the device tests then fail, as they should.)
CAP=${CAP:-${NORMKIT_GPU_CHECK_ARCH:-}}
if [ -z "$CAP" ]; then
  summary machine "no-gpu"
  echo "gpu-check: no GPU (nvidia-smi found none); nothing measured" | tee -a "$OUT/summary.txt"
  exit 2
fi
summary machine ok

# 2. Build for this architecture only (the library's default list is 80;90; ptxas stays strict).
export PATH="$PATH:/usr/local/cuda/bin"
if [ -d "$ROOT/.gpu-deps" ]; then
  export CMAKE_PREFIX_PATH="$ROOT/.gpu-deps${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export LD_LIBRARY_PATH="$ROOT/.gpu-deps/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
build() {  # build folder, architecture
  BUILD_DIR=$1 NORMKIT_ARCHS=$2 scripts/configure.sh && cmake --build "$1" -j "$(nproc)"
}
export -f build
run_step build 240 "$LOG" build "$BUILD_DIR" "$CAP"
[ -x "$BUILD_DIR/tests/test_device_stats" ] || { echo "gpu-check: build failed"; exit 1; }

# 3. Tests, natively: every test in full mode, the device tests and NCCL's in quick mode.
labels=()
[ $QUICK = 1 ] && labels=(-L "device|nccl")
run_step tests 150 "$LOG" env NORMKIT_REQUIRE_DEVICE=1 \
  ctest --test-dir "$BUILD_DIR" --output-on-failure --no-tests=error -j 4 "${labels[@]}"

# normkit.torch's custom ops on CUDA tensors against PyTorch's layers (tests/python/test_torch.py's cuda cases;
# skipped where PyTorch is absent).
run_step torch_ops 90 "$LOG" env PYTHONPATH="$BUILD_DIR/python:$ROOT/tests/python" \
  python3 -m pytest -q -p no:cacheprovider -k cuda "$ROOT/tests/python/test_torch.py"

# 4. Kernel resources on this architecture (registers, spills, local and shared memory per kernel), then
#    the model-versus-SASS reproducers (tests/emulator_repro/*/run.sh; their SASS half needs cuobjdump).
library=$(find "$BUILD_DIR" -name 'libnormkit*' -type f | head -n 1)
sass_report() {
  cuobjdump --dump-resource-usage "$1" || return 1
  for repro in tests/emulator_repro/*/run.sh; do
    echo "##### $repro"
    "$repro" || echo "(failed: $?)"
  done
}
export -f sass_report
run_step sass 90 "$LOG" sass_report "$library"

# 5. Device bench cases, each group after its device-to-device copy of the same bytes (of_copy counter).
#    The layers (LayerNorm/RMSNorm, BatchNorm, GroupNorm) run as a step of their own, so that a timeout of one
#    keeps the other's results.
#    (Google Benchmark's filters are POSIX extended regular expressions: no lookahead, so the families
#    are listed.)
LAYERS='(layer_norm|rms_norm|batch_norm|group_norm)/'
OTHERS='(copy|per_feature|per_sample[0-9]*|global|nhwc_c3|nchw_c3|apply|lp|image)/'
bench_args=(--benchmark_filter="^device/$OTHERS" --benchmark_min_time=0.1)
[ $QUICK = 1 ] && bench_args=(--benchmark_filter="^device/(copy/|$OTHERS.*/large)" --benchmark_min_time=0.03)
run_step bench 150 "$LOG" "$BUILD_DIR/bench/bench_normkit" "${bench_args[@]}" \
  --benchmark_out="$OUT/bench_device.json" --benchmark_out_format=json
layer_args=(--benchmark_filter="^device/(copy/|$LAYERS.*/large)" --benchmark_min_time=0.05)
[ $QUICK = 1 ] && layer_args=(--benchmark_filter="^device/(copy/|$LAYERS.*bf16.*/large)" --benchmark_min_time=0.02)
run_step layers 100 "$LOG" "$BUILD_DIR/bench/bench_normkit" "${layer_args[@]}" \
  --benchmark_out="$OUT/bench_layers.json" --benchmark_out_format=json

# Device peers in the same binary (two-pass kernels, CUB, cuDNN's batch norm; bench_device_peers.cu), each group
# after its copy.
peer_args=(--benchmark_filter="^device/(copy/|peers/.*/large)" --benchmark_min_time=0.05)
[ $QUICK = 1 ] && peer_args=(--benchmark_filter="^device/(copy/|peers/(cub/(global|per_sample)/|cudnn/.*f32/).*large)" --benchmark_min_time=0.02)
run_step peers 90 "$LOG" "$BUILD_DIR/bench/bench_normkit" "${peer_args[@]}" \
  --benchmark_out="$OUT/bench_peers.json" --benchmark_out_format=json

# 6. PyTorch peers on the same shapes (bench/compare_torch.py: var_mean and the broadcast apply, each beside
#    a copy of its bytes timed in the same process), one JSON object per line.
torch_args=()
[ $QUICK = 1 ] && torch_args=(--iters 5 --only float32)
run_step torch 120 "$OUT/torch.jsonl" python3 bench/compare_torch.py "${torch_args[@]}"

# 7. Streamed data-set statistics on the GPU (pinned double-buffered uploads overlapping the reductions),
#    against the raw read rate of the same files in the same run (bench/stream_rate.py), full mode only.
if [ $QUICK = 0 ]; then
  run_step stream 60 "$OUT/stream_device.jsonl" python3 bench/stream_rate.py "$BUILD_DIR" --device cuda --mb 256 --repeat 3 --json --quiet
fi

echo "=== done in $(( $(date +%s) - START )) s"
cat "$OUT/summary.txt"
exit $FAILED
