// Statistics for any axis pattern the dedicated kernels do not cover (e.g. axes 0 and 2 of NCHW): one
// block per kept slice, each element's offset from its index by division over the reduced dims. Correct
// for every pattern; not tuned.
#pragma once

#include <cstdint>

#include "kernels/common/moment_reduce.cuh"
#include "kernels/common/vector_load.cuh"
#include "math/stats_sink.hpp"
#include "plan/geometry.hpp"

namespace normkit::kernels {

template <typename T, typename Acc>
// (256, 1): without a minimum-blocks hint ptxas for sm_90 caps the float64-accumulation instantiations at
// 64 registers and spills; with it they take 66-76 registers and no local memory.
__global__ void __launch_bounds__(256, 1) generic_stats_kernel(const T* __restrict__ input, plan::StridedDims kept,
                                                            plan::StridedDims reduced, std::int64_t kept_numel,
                                                            std::int64_t reduce_numel, math::StatsSink sink) {
  using Kernel = math::KernelState<T, Acc>;
  using State = typename Kernel::wide;
  __shared__ State scratch[32];
  for (std::int64_t k = blockIdx.x; k < kept_numel; k += gridDim.x) {
    const T* slice = input + plan::strided_offset(kept, k);
    State s = Kernel::empty_wide();
    for (std::int64_t j = threadIdx.x; j < reduce_numel; j += blockDim.x) {
      math::push(s, load_one<Acc>(slice + plan::strided_offset(reduced, j)));
    }
    block_merge(s, scratch);
    if (threadIdx.x == 0) math::write_wide_slice(sink, k, s);
  }
}

}  // namespace normkit::kernels
