// Second pass of split or folded reductions: each thread owns one kept slice and merges its partial
// states in a fixed order (split by split, fold by fold), then the rows a folded view left over, and
// writes the slice. With no partials it writes empty slices. Also the kernels behind
// merge_summaries() and finalize_stats().
#pragma once

#include <cstdint>

#include "kernels/common/partial_states.cuh"
#include "kernels/common/vector_load.cuh"
#include "math/stats_sink.hpp"

namespace normkit::kernels {

// Kept slice kk = o * inner + c merges partials p * (outer * wide_inner) + o * wide_inner + j * inner + c
// for p < splits, j < fold; then input rows [folded_rows, rows) of column c of outer slice o.
// Segments use fold = 1, inner = wide_inner = kept slices, rows = folded_rows = 0.
struct MergeShape {
  std::int64_t kept_numel;
  std::int64_t splits;
  std::int64_t fold;
  std::int64_t inner;
  std::int64_t wide_inner;
  std::int64_t rows;
  std::int64_t folded_rows;
  std::int64_t outer_stride;
};

template <typename T, typename Acc>
__global__ void merge_partials_kernel(PartialStates<Acc> partials, MergeShape m, const T* __restrict__ input,
                                      math::StatsSink sink) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  const std::int64_t outer = m.kept_numel / m.inner;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < m.kept_numel; k += stride) {
    const std::int64_t o = k / m.inner, c = k % m.inner;
    math::MomentState<Acc> s = math::empty_state<Acc>();
    for (std::int64_t p = 0; p < m.splits; ++p) {
      for (std::int64_t j = 0; j < m.fold; ++j) {
        math::merge(s, partials.load(p * outer * m.wide_inner + o * m.wide_inner + j * m.inner + c));
      }
    }
    for (std::int64_t r = m.folded_rows; r < m.rows; ++r) math::push(s, load_one<Acc>(input + o * m.outer_stride + r * m.inner + c));
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
