// ptxemu's issue model counts PTX instructions that ptxas folds into operand modifiers or register
// selectors of the instruction that uses them, so they cost no SASS instruction on sm_90:
//   abs.f32 feeding an add           -> FADD R, |R|, R
//   mov.b32 {lo, hi} feeding cvt.f32.f16 -> HADD2.F32 R, -RZ, R.H0_H0 / R.H1_H1
// Each kernel pair below differs only by that instruction; run.sh compares the SASS instruction counts
// (cuobjdump, sm_90) with ptxemu's profiled issue cycles.
#include <cuda_fp16.h>
#include <cstdio>

__global__ void sum_plain(const float* x, float* out, int n) {
  float s = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
  out[threadIdx.x] = s;
}

__global__ void sum_abs(const float* x, float* out, int n) {
  float s = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += fabsf(x[i]);
  out[threadIdx.x] = s;
}

// Both halves of each 32-bit word widened to float and summed.
__global__ void sum_halves(const unsigned* x, float* out, int n) {
  float s = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const __half2 h = *reinterpret_cast<const __half2*>(x + i);
    s += __low2float(h) + __high2float(h);
  }
  out[threadIdx.x] = s;
}

int main() {
  const int n = 1 << 14;
  float *x, *out;
  cudaMalloc(&x, n * sizeof(float));
  cudaMalloc(&out, 256 * sizeof(float));
  cudaMemset(x, 0, n * sizeof(float));
  sum_plain<<<1, 256>>>(x, out, n);
  sum_abs<<<1, 256>>>(x, out, n);
  sum_halves<<<1, 256>>>(reinterpret_cast<const unsigned*>(x), out, n);
  const cudaError_t e = cudaDeviceSynchronize();
  std::printf("%s\n", cudaGetErrorString(e));
  return e == cudaSuccess ? 0 : 1;
}
