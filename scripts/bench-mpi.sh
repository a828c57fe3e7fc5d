#!/usr/bin/env bash
# The distributed merges' cost on this machine: bench_mpi (bench/bench_mpi.cpp) on 1, 2, 4 and 8 ranks
# (oversubscribed where the machine has fewer cores), one JSON object per case and rank count, into
# docs/measured/mpi_merge.jsonl (or $OUT). Needs a build with MPI: scripts/configure.sh && cmake --build build.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
OUT=${OUT:-docs/measured/mpi_merge.jsonl}
[ -x "$BUILD_DIR/bench/bench_mpi" ] || { echo "bench-mpi: $BUILD_DIR/bench/bench_mpi not built (MPI not found?)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$(dirname "$OUT")"
: > "$OUT.tmp"
for ranks in 1 2 4 8; do
  mpiexec -np "$ranks" --oversubscribe "$BUILD_DIR/bench/bench_mpi" --reps "${REPS:-9}" | tee -a "$OUT.tmp"
done
mv "$OUT.tmp" "$OUT"
echo "bench-mpi: $(nproc) cores; written to $OUT"
