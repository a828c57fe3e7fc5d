#!/usr/bin/env bash
# The main job: installs what is missing (Fashion-MNIST included: Debian's dataset-fashion-mnist), builds
# normkit, runs `normkit demo` (Fashion-MNIST's data-set statistics and three normalizations of its training
# and test images), then `normkit stats` on a generated NCHW example (per-channel statistics, a per-channel
# z-score and its statistics) and on every .npy or IDX file given as an argument.
#   scripts/run-example.sh [FILE.npy|FILE.idx[.gz] ...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
scripts/install-deps.sh
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="$PATH:/usr/local/cuda/bin"
# The same configuration as scripts/test.sh (tests stay on): whichever command runs second reuses the build.
scripts/configure.sh > /dev/null
cmake --build "$BUILD_DIR" --target normkit_cli -j "$(nproc)"
echo "== normkit demo   (Fashion-MNIST from /usr/share/datasets/fashion-mnist)"
"$BUILD_DIR/normkit" demo
example="$BUILD_DIR/example.npy"
python3 scripts/make_example_npy.py "$example"
echo "== normkit stats $example --axis 0,2,3 --stats count,mean,std,min,max   (per-channel, NCHW)"
"$BUILD_DIR/normkit" stats "$example" --axis 0,2,3 --stats count,mean,std,min,max --out "$BUILD_DIR/example_stats.safetensors"
echo "== normkit stats $example   (all statistics over the whole tensor)"
"$BUILD_DIR/normkit" stats "$example"
echo "== normkit normalize $example --method zscore --axis 0,2,3   (per-channel z-score), then its statistics"
"$BUILD_DIR/normkit" normalize "$example" --method zscore --axis 0,2,3 --out "$BUILD_DIR/example_normalized.npy"
"$BUILD_DIR/normkit" stats "$BUILD_DIR/example_normalized.npy" --axis 0,2,3 --stats mean,std
for f in "$@"; do
  echo "== normkit stats $f"
  "$BUILD_DIR/normkit" stats "$f"
done
