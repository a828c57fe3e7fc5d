#!/usr/bin/env bash
# normkit-mpi stats on N ranks writes the same --out file, byte for byte, and prints the same table as
# `normkit stats --chunk-bytes B` in one process: float64 data (whose float64 outputs show a merge out of order), float32 files (one empty, one with NaN and a 1e6 offset) in many
# pieces, uint8 files (exact integer summaries), and default pieces (fewer pieces than ranks: idle ranks); a file
# one rank cannot open fails every rank with one message.
# normkit-mpi fit writes the state file of normkit fit over the same files, byte for byte (files dealt whole,
# each adapted whole or in pieces of rows as normkit fit does).
# usage: cli_mpi.sh NORMKIT NORMKIT_MPI MPIEXEC RANKS WORKDIR
set -euo pipefail
normkit=$1 normkit_mpi=$2 mpiexec=$3 ranks=$4 dir=$5
mkdir -p "$dir"
cd "$dir"
python3 - <<'PY'
import numpy as np
r = np.random.default_rng(1)
np.save("a.npy", r.normal(3, 2, (1000, 7)).astype(np.float32))
np.save("b.npy", np.zeros((0, 7), np.float32))
c = (r.normal(0, 1, (333, 7)) + 1e6).astype(np.float32)
c[5, 2] = np.nan
np.save("c.npy", c)
d = r.normal(1e6, 1e-3, (700, 5))  # float64: float64 outputs show the merge order's last bits
d[::7, 1] = r.normal(-3, 50, 100)
np.save("d.npy", d)
np.save("u1.npy", r.integers(0, 256, (500, 3, 4)).astype(np.uint8))
np.save("u2.npy", r.integers(0, 256, (77, 3, 4)).astype(np.uint8))
PY
export NORMKIT_NUM_THREADS=2  # (the host engine's summaries depend on its thread count: the same everywhere)
run_mpi() { "$mpiexec" --oversubscribe -np "$ranks" "$normkit_mpi" stats "$@"; }
check() {  # name, arguments of stats
  local name=$1
  shift
  "$normkit" stats "$@" --quiet --out "one_$name.safetensors" >"one_$name.txt" 2>/dev/null
  run_mpi "$@" --quiet --out "mpi_$name.safetensors" >"mpi_$name.txt" 2>/dev/null
  cmp "one_$name.safetensors" "mpi_$name.safetensors"
  cmp "one_$name.txt" "mpi_$name.txt"
  echo "ok: $name on $ranks ranks"
}
check float_pieces a.npy b.npy c.npy --chunk-bytes 700 --axis 0
check float_ignore_nan a.npy c.npy --chunk-bytes 2000 --axis 0 --ignore-nan --ddof 1
check float64_pieces d.npy --chunk-bytes 200 --axis 0
check float64_all_axes d.npy --chunk-bytes 480
check uint8_pieces u1.npy u2.npy --chunk-bytes 100 --axis 0,1
check default_pieces c.npy b.npy a.npy
check_fit() {  # name, arguments of fit
  local name=$1
  shift
  "$normkit" fit "$@" --state "one_$name.safetensors" 2>/dev/null
  "$mpiexec" --oversubscribe -np "$ranks" "$normkit_mpi" fit "$@" --state "mpi_$name.safetensors" 2>/dev/null
  cmp "one_$name.safetensors" "mpi_$name.safetensors"
  echo "ok: fit $name on $ranks ranks"
}
check_fit zscore d.npy d.npy d.npy --method zscore
check_fit minmax a.npy b.npy c.npy a.npy --method minmax --feature-range -1,1
check_fit uint8 u1.npy u2.npy --method maxabs --axis 0,1
check_fit pieces a.npy b.npy c.npy a.npy --method zscore --chunk-bytes 100  # (files fitted in pieces of whole rows)
if "$mpiexec" --oversubscribe -np "$ranks" "$normkit_mpi" fit a.npy d.npy --method zscore --state bad.safetensors >fit_err.txt 2>&1; then
  echo "FAIL: files of different kept shapes did not fail the fit"
  exit 1
fi
[ ! -e bad.safetensors ] || { echo "FAIL: a failed fit wrote its state"; exit 1; }
grep -q "d.npy" fit_err.txt || { cat fit_err.txt; echo "FAIL: the fit's error does not name the mismatched file"; exit 1; }
echo "ok: a fit over mismatched files fails every rank, nothing written"
# A truncated file: stats (every rank reads its header) and fit (only the file's rank reads it: a failure on one
# rank, whose message every rank returns) fail with the reader's message, said once, and write nothing.
head -c -100 a.npy > t.npy
for verb in stats fit; do
  options=(--chunk-bytes 700 --axis 0 --out trunc.safetensors)
  [ $verb = fit ] && options=(--method zscore --state trunc.safetensors)
  if "$mpiexec" --oversubscribe -np "$ranks" "$normkit_mpi" $verb a.npy t.npy "${options[@]}" >trunc_err.txt 2>&1; then
    echo "FAIL: $verb over a truncated file did not fail the run"
    exit 1
  fi
  [ "$(grep -c "normkit $verb: error" trunc_err.txt)" = 1 ] && grep -q 't.npy.*truncated' trunc_err.txt && [ ! -e trunc.safetensors ] || {
    cat trunc_err.txt
    echo "FAIL: $verb: expected one error naming the truncated t.npy, nothing written"
    exit 1
  }
done
echo "ok: a truncated file fails every rank with its reader's message, said once"
if run_mpi a.npy missing.npy --chunk-bytes 700 >err.txt 2>&1; then
  echo "FAIL: a missing file on every rank did not fail the run"
  exit 1
fi
[ "$(grep -c 'cannot open' err.txt)" = 1 ] || { cat err.txt; echo "FAIL: expected one error message (rank 0's)"; exit 1; }
echo "ok: a missing file fails every rank, one message"
