#!/usr/bin/env bash
# Installs the Debian packages normkit's build and tests need, when they are missing.
# The CUDA toolkit (nvcc) is optional: without it normkit builds host-only.
set -euo pipefail

# clang + libclang-rt-14-dev: the libFuzzer targets and the sanitized host build of .ci/run.
# zlib1g-dev: gzip-compressed IDX files; dataset-fashion-mnist: the real data of `normkit demo` (its
# gzip IDX files under /usr/share/datasets/fashion-mnist/).
# libopenmpi-dev + openmpi-bin: normkit::mpi (statistics across processes) and its 3-rank test. libeigen3-dev:
# the bench's host peer.
packages=(cmake ninja-build g++ make libgtest-dev libbenchmark-dev python3 libzstd1 git clang libclang-rt-14-dev zlib1g-dev
          dataset-fashion-mnist libopenmpi-dev openmpi-bin libeigen3-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# PyPI packages of the Python package (python/) and its tests: nanobind builds the extension, pytest, NumPy and
# scikit-learn test it (against scikit-learn's own estimators).
install_python_packages() {
  local wanted=(nanobind pytest numpy sklearn) pip_names=(nanobind pytest numpy scikit-learn) absent=()
  for i in "${!wanted[@]}"; do
    python3 -c "import ${wanted[$i]}" 2>/dev/null || absent+=("${pip_names[$i]}")
  done
  if [ ${#absent[@]} -gt 0 ]; then
    echo "install-deps: pip installing ${absent[*]}"
    python3 -m pip install -q --disable-pip-version-check "${absent[@]}"
  fi
  # PyTorch: normkit.torch's tests against PyTorch's own layers (tests/python/test_torch.py, CPU tensors here). The
  # wheel and its CUDA libraries take ~5.5 GB and ~1 minute; skipped (the tests skip) with NORMKIT_NO_TORCH=1 or
  # under 12 GB of free disk.
  if ! python3 -c "import torch" 2>/dev/null && [ "${NORMKIT_NO_TORCH:-0}" != 1 ]; then
    local free_kb
    free_kb=$(df -Pk "$(python3 -c 'import site; print(site.getsitepackages()[0])')" | awk 'NR == 2 {print $4}')
    if [ "${free_kb:-0}" -ge $((12 * 1024 * 1024)) ]; then
      echo "install-deps: pip installing torch"
      python3 -m pip install -q --disable-pip-version-check torch || echo "install-deps: torch not installed (normkit.torch's tests will skip)"
    else
      echo "install-deps: under 12 GB free: torch not installed (normkit.torch's tests will skip)"
    fi
  fi
}
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  install_python_packages
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_python_packages
