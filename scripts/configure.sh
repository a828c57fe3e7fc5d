#!/usr/bin/env bash
# Configures the build folder both README commands share ($BUILD_DIR, default build), with the same
# options whichever runs first, so the second reuses what the first built. Every option is passed
# explicitly: a value cached by an earlier configure never turns the tests off.
#   NORMKIT_ARCHS   CUDA architectures (default "80;90", the library's default list: ptxas checks both)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

cuda_args=()
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  # NORMKIT_PTXAS_STRICT: a spill or local-memory use in any kernel, on any listed architecture, fails the build.
  cuda_args=(-DNORMKIT_ENABLE_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=${NORMKIT_ARCHS:-80;90}" -DNORMKIT_PTXAS_STRICT=ON)
else
  echo "configure: nvcc not found: host-only build"
  cuda_args=(-DNORMKIT_ENABLE_CUDA=OFF)
fi
# The Python extension (python/, nanobind from PyPI: scripts/install-deps.sh) with the same python3 as pip's.
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DNORMKIT_BUILD_TESTS=ON -DNORMKIT_BUILD_BENCH=ON \
  -DNORMKIT_BUILD_CLI=ON -DNORMKIT_BUILD_PYTHON=ON "-DPython_EXECUTABLE=$(command -v python3)" "${cuda_args[@]}"
