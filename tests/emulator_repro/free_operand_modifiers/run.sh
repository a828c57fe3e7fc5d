#!/usr/bin/env bash
# Usage: tests/emulator_repro/free_operand_modifiers/run.sh [PTXEMU_DIR (default ../shared/ptxemu)]
# Prints, per kernel, the SASS instructions of its loop body on sm_90 (cuobjdump) and ptxemu's issue
# cycles per loop iteration; sum_abs costs sum_plain's SASS but one more PTX instruction per value.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ptxemu=${1:-$here/../../../../shared/ptxemu}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PATH="$PATH:/usr/local/cuda/bin"
if command -v cuobjdump >/dev/null 2>&1; then  # (not on the CPU-only machines here; the GPU image has it)
  nvcc -O3 -arch=sm_90 -cubin -o "$work/repro.cubin" "$here/repro.cu"
  echo "== SASS instructions per kernel (sm_90, whole kernel)"
  cuobjdump -sass "$work/repro.cubin" | awk '/Function :/ {k=$3} /\/\*[0-9a-f]+\*\// && k != "" {n[k]++} END {for (k in n) printf "%-28s %4d SASS\n", k, n[k]}'
  # (kernels by their mangled names: cuobjdump's -fun matched none of the plain names on the H100 image)
  sass_of() { cuobjdump -sass "$work/repro.cubin" | awk -v want="$1" '/Function :/ {k=$3} k ~ want'; }
  echo "== sum_abs: FADD with an |operand| (abs folded into the add)"
  sass_of sum_abs | grep -c 'FADD.*|R' || true
  echo "== sum_halves: HADD2.F32 reading .H0_H0 / .H1_H1 (no unpacking instruction)"
  sass_of sum_halves | grep -cE 'HADD2.F32.*\.H[01]_H[01]' || true
  echo "== sum_halves SASS"
  sass_of sum_halves | grep -E '/\*[0-9a-f]{4}\*/' | sed 's|^ *||' || true
else
  echo "== cuobjdump not found: SASS side skipped (run this where the CUDA toolkit has it, e.g. the GPU image)"
fi
if [ ! -x "$ptxemu/run.sh" ]; then
  echo "== ptxemu not found at $ptxemu: emulator side skipped"
  exit 0
fi
echo "== ptxemu issue cycles (PTXEMU_PROFILE=1)"
nvcc -O3 -cudart shared -gencode arch=compute_90,code=compute_90 -o "$work/repro" "$here/repro.cu"
PTXEMU_PROFILE=1 "$ptxemu/run.sh" "$work/repro" 2>&1 | grep -E "profile #|issue cycles|issue classes" | sed 's/^\[ptxemu\] *//'
