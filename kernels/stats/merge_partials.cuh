// Second pass of split reductions: each thread merges its slice's partial states in split order (fixed,
// so results are deterministic) and writes the slice. With splits == 0 it writes empty slices.
// Also the kernels behind merge_summaries() and finalize_stats().
#pragma once

#include <cstdint>

#include "math/stats_sink.hpp"

namespace normkit::kernels {

template <typename Acc>
__global__ void merge_partials_kernel(const math::MomentState<Acc>* partials, std::int64_t kept_numel,
                                      std::int64_t splits, math::StatsSink sink) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < kept_numel; k += stride) {
    math::MomentState<Acc> s = math::empty_state<Acc>();
    for (std::int64_t p = 0; p < splits; ++p) math::merge(s, partials[k * splits + p]);
    math::write_slice(sink, k, math::to_summary(s));
  }
}

__global__ void merge_summaries_kernel(StatsSummary* into, const StatsSummary* from, std::int64_t n) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += stride) {
    math::merge_summary(into[k], from[k]);
  }
}

__global__ void finalize_summaries_kernel(const StatsSummary* summaries, std::int64_t n, math::StatsSink sink) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += stride) {
    math::write_slice(sink, k, summaries[k]);
  }
}

}  // namespace normkit::kernels
