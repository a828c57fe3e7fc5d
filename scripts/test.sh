#!/usr/bin/env bash
# The test command: installs what is missing, configures, builds (CUDA on where nvcc exists) and runs
# every test. Device tests skip without a GPU; .ci/run also runs them under ../shared/ptxemu.
#   BUILD_DIR (default build), NORMKIT_TEST_ARCHS (default 80: sm_80 SASS, so ptxas checks spills, + PTX)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

scripts/install-deps.sh

cuda_args=()
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="$PATH:/usr/local/cuda/bin"
  # NORMKIT_PTXAS_STRICT: a spill or local-memory use in a kernel fails the build.
  cuda_args=(-DNORMKIT_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${NORMKIT_TEST_ARCHS:-80}" -DNORMKIT_PTXAS_STRICT=ON)
else
  echo "test.sh: nvcc not found: host-only build"
  cuda_args=(-DNORMKIT_ENABLE_CUDA=OFF)
fi

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release "${cuda_args[@]}"
cmake --build "$BUILD_DIR" -j "$(nproc)" 2>&1 | tee "$BUILD_DIR/build.log"
ctest --test-dir "$BUILD_DIR" --output-on-failure
