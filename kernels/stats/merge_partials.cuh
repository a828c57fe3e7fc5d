// Second pass of split or folded reductions: the partial states of each kept slice are merged by a
// group of `lanes` lanes of one warp (a power of two <= 32, chosen by the plan so that each lane has a few
// partials): lane l takes partials l, l + lanes, ... in a fixed order, loading kMergeBatch of them before
// merging any (loads in flight), then the group merges its lanes in a fixed tree, the first lane folds in
// the input rows a folded view left over and writes the slice. The order depends only on the plan, so the
// result is deterministic. With no partials it writes empty slices. Also the kernels behind
// merge_summaries() and finalize_stats().
#pragma once

#include <cstdint>

#include "kernels/common/moment_reduce.cuh"
#include "kernels/common/partial_states.cuh"
#include "kernels/common/vector_load.cuh"
#include "math/stats_sink.hpp"

namespace normkit::kernels {

// Kept slice kk = o * inner + c merges the partials p * (outer * wide_inner) + o * wide_inner + j * inner + c
// for p < splits, j < fold (item i = p * fold + j); then input rows [folded_rows, rows) of column c of outer
// slice o. Segments use fold = 1, inner = wide_inner = kept slices, rows = folded_rows = 0.
struct MergeShape {
  std::int64_t kept_numel;
  std::int64_t splits;
  std::int64_t fold;
  std::int64_t inner;
  std::int64_t wide_inner;
  std::int64_t rows;
  std::int64_t folded_rows;
  std::int64_t outer_stride;
  int lanes;  // lanes per kept slice: 1, 2, 4, 8, 16 or 32
};

// Partials a lane loads before it merges them: 4 states (44 loads) in flight per lane.
constexpr int kMergeBatch = 4;

template <typename T, typename Acc>
__global__ void __launch_bounds__(256) merge_partials_kernel(PartialStates<Acc> partials, MergeShape m,
                                                             const T* __restrict__ input, math::StatsSink sink) {
  const int lanes = m.lanes;
  const int lane = static_cast<int>(threadIdx.x % 32) % lanes;
  const std::int64_t groups = static_cast<std::int64_t>(gridDim.x) * blockDim.x / lanes;
  const std::int64_t first = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / lanes;
  const std::int64_t outer = m.kept_numel / m.inner;
  const std::int64_t items = m.splits * m.fold;
  // Every lane of a warp runs the same number of rounds (the segment merge shuffles across the warp).
  const std::int64_t rounds = (m.kept_numel + groups - 1) / groups;
  for (std::int64_t round = 0; round < rounds; ++round) {
    const std::int64_t k = first + round * groups;
    const bool active = k < m.kept_numel;
    const std::int64_t o = active ? k / m.inner : 0, c = active ? k % m.inner : 0;
    const std::int64_t base = o * m.wide_inner + c;
    math::MomentState<Acc> s = math::empty_state<Acc>();
    if (active) {
      for (std::int64_t i0 = lane; i0 < items; i0 += static_cast<std::int64_t>(kMergeBatch) * lanes) {
        math::MomentState<Acc> batch[kMergeBatch];
        NORMKIT_UNROLL
        for (int b = 0; b < kMergeBatch; ++b) {
          const std::int64_t i = i0 + static_cast<std::int64_t>(b) * lanes;
          const std::int64_t p = i / m.fold, j = i % m.fold;
          batch[b] = i < items ? partials.load(p * outer * m.wide_inner + base + j * m.inner) : math::empty_state<Acc>();
        }
        NORMKIT_UNROLL
        for (int b = 0; b < kMergeBatch; ++b) math::merge(s, batch[b]);
      }
    }
    warp_merge(s, lanes);
    if (active && lane == 0) {
      for (std::int64_t r = m.folded_rows; r < m.rows; ++r) math::push(s, load_one<Acc>(input + o * m.outer_stride + r * m.inner + c));
      math::write_slice(sink, k, math::to_summary(s));
    }
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
