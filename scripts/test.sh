#!/usr/bin/env bash
# The test command: installs what is missing, configures (scripts/configure.sh: tests on, CUDA on where
# nvcc exists, ptxas strict for 80 and 90), builds and runs every test. Fails when no test ran. Device
# tests skip without a GPU (and are counted); .ci/run also runs them under ../shared/ptxemu.
#   BUILD_DIR (default build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

scripts/install-deps.sh
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="$PATH:/usr/local/cuda/bin"
scripts/configure.sh
set -o pipefail
cmake --build "$BUILD_DIR" -j "$(nproc)" 2>&1 | tee "$BUILD_DIR/build.log"
ctest --test-dir "$BUILD_DIR" --output-on-failure --no-tests=error
