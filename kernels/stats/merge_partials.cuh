// Second pass of split or folded reductions: the partial states of each kept slice are merged by a
// group of `lanes` lanes of one warp (a power of two <= 32, chosen by the plan so that each lane has a few
// partials): lane l takes partials l, l + lanes, ... (fold column by fold column) in a fixed order, loading
// kMergeBatch of them before merging any (loads in flight), then the group merges its lanes in a fixed
// tree, the first lane folds in the input rows a folded view left over and writes the slice. The order depends only on the plan, so the
// result is deterministic. With no partials it writes empty slices. Also the kernels behind
// merge_summaries(), finalize_stats() and their integer forms.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/common/moment_reduce.cuh"
#include "kernels/common/partial_states.cuh"
#include "kernels/common/vector_load.cuh"
#include "math/stats_sink.hpp"

namespace normkit::kernels {

// Kept slice kk = o * inner + c merges the partials p * (outer * wide_inner) + o * wide_inner + j * inner + c
// for j < fold, p < splits (item j * splits + p); then input rows [folded_rows, rows) of column c of outer
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
  int lanes;  // lanes per kept slice: 1, 2, 4, 8, 16 or 32 of a warp, or 64, 128 or 256 (a block)
  bool lane_local;   // a lane's partials together fit LocalMoments' float counts
  bool slice_local;  // a whole slice does (the tree across lanes stays local too)
};

// Partials a lane loads before it merges them: 8 states (24 16-byte loads) in flight per lane, one round
// trip for up to 256 partials per slice.
constexpr int kMergeBatch = 8;

template <typename T, typename Acc>
__global__ void __launch_bounds__(256) merge_partials_kernel(PartialStates<typename math::KernelState<T, Acc>::local> partials,
                                                             MergeShape m, const T* __restrict__ input, math::StatsSink sink) {
  using Kernel = math::KernelState<T, Acc>;
  using Local = typename Kernel::local;
  using Wide = typename Kernel::wide;
  // Exact integer states are their own wide form: always the local path.
  constexpr bool kIntegerStates = std::is_same_v<Local, Wide>;
  // lanes > 32: the whole block (blockDim.x == lanes) merges one slice, its warps through shared memory.
  __shared__ Local local_scratch[32];
  __shared__ Wide wide_scratch[kIntegerStates ? 1 : 32];
  const int lanes = m.lanes;
  const bool block_group = lanes > 32;
  const int lane = block_group ? static_cast<int>(threadIdx.x) : static_cast<int>(threadIdx.x % 32) % lanes;
  const std::int64_t groups = block_group ? gridDim.x : static_cast<std::int64_t>(gridDim.x) * blockDim.x / lanes;
  const std::int64_t first = block_group ? blockIdx.x : (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / lanes;
  const std::int64_t outer = m.kept_numel / m.inner;
  // Every lane of a warp runs the same number of rounds (the segment merge shuffles across the warp).
  const std::int64_t rounds = (m.kept_numel + groups - 1) / groups;
  for (std::int64_t round = 0; round < rounds; ++round) {
    const std::int64_t k = first + round * groups;
    const bool active = k < m.kept_numel;
    const std::int64_t o = active ? k / m.inner : 0, c = active ? k - o * m.inner : 0;
    const std::int64_t base = o * m.wide_inner + c;
    // Each lane folds its partials in LocalMoments when the plan allows (its values fit the float
    // counts), else widens each partial first; the tree across lanes likewise.
    Local local = Local::empty();
    Wide s = Kernel::empty_wide();
    const bool lane_local = kIntegerStates || m.lane_local;
    const std::int64_t items = m.splits * m.fold;  // 0 for the empty plan
    if (active && items > 0) {
      // Item i = j * splits + p (fold column j, split p) sits at p * split_stride + j * inner + base; lane
      // l takes items l, l + lanes, ..., its (p, j) and record address advanced without division or
      // multiplication (a record index times 48 bytes cost a 64-bit multiply per item).
      const std::int64_t split_stride = outer * m.wide_inner;
      std::int64_t p = lane;
      int j = 0;  // (fold <= 16)
      while (p >= m.splits) p -= m.splits, ++j;
      constexpr std::int64_t kRecord = static_cast<std::int64_t>(decltype(partials)::bytes_per_state);
      const char* record = static_cast<const char*>(partials.base) + (p * split_stride + j * m.inner + base) * kRecord;
      const std::int64_t lane_step = lanes * split_stride * kRecord, wrap = (m.splits * split_stride - m.inner) * kRecord;
      for (std::int64_t i0 = lane; i0 < items; i0 += static_cast<std::int64_t>(kMergeBatch) * lanes) {
        // The items of a short last batch past the slice's end load the batch's first record again and are
        // not merged (an empty state selected field by field cost ~30 issue cycles a slot).
        const std::int64_t left = (items - i0 + lanes - 1) >> (__ffs(lanes) - 1);  // (lanes: a power of two)
        const int valid = left < kMergeBatch ? static_cast<int>(left) : kMergeBatch;
        const char* first_record = record;
        Local batch[kMergeBatch];
        NORMKIT_UNROLL
        for (int b = 0; b < kMergeBatch; ++b) {
          batch[b] = decltype(partials)::load_record(b < valid ? record : first_record);
          p += lanes;
          record += lane_step;
          while (j + 1 < m.fold && p >= m.splits) p -= m.splits, ++j, record -= wrap;
        }
        NORMKIT_UNROLL
        for (int b = 0; b < kMergeBatch; ++b) {
          if (b < valid) {
            if (lane_local) local.merge(batch[b]);
            else math::merge(s, batch[b].widen());
          }
        }
      }
    }
    const T* leftover = input + o * m.outer_stride + c;  // rows a folded view left over
    if (kIntegerStates || m.slice_local) {
      if (block_group) block_merge(local, local_scratch);
      else warp_merge(local, lanes);
      if (active && lane == 0) {
        for (std::int64_t r = m.folded_rows; r < m.rows; ++r) local.push(load_one<Acc>(leftover + r * m.inner));
        math::write_local_slice(sink, k, local);
      }
    } else if constexpr (!kIntegerStates) {
      if (m.lane_local) s = local.widen();
      if (block_group) block_merge(s, wide_scratch);
      else warp_merge(s, lanes);
      if (active && lane == 0) {
        for (std::int64_t r = m.folded_rows; r < m.rows; ++r) math::push(s, load_one<Acc>(leftover + r * m.inner));
        math::write_wide_slice(sink, k, s);
      }
    }
  }
}

// merge_summaries / merge_integer_summaries: into[k] = merge(into[k], from[k]).
template <typename Summary>
__global__ void merge_summaries_kernel(Summary* into, const Summary* from, std::int64_t n) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += stride) {
    if constexpr (std::is_same_v<Summary, IntegerSummary>) math::merge_integer_summary(into[k], from[k]);
    else math::merge_summary(into[k], from[k]);
  }
}

// finalize_stats / finalize_integer_stats.
template <typename Summary>
__global__ void finalize_summaries_kernel(const Summary* summaries, std::int64_t n, math::StatsSink sink) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += stride) {
    if constexpr (std::is_same_v<Summary, IntegerSummary>) math::write_integer_slice(sink, k, summaries[k]);
    else math::write_slice(sink, k, summaries[k]);
  }
}

}  // namespace normkit::kernels
