// Statistics over segments: rows (per-sample), the whole tensor (global) and the middle axis kept
// (NCHW per-channel). Kept index c owns A sub-rows of B contiguous elements at offset (a*C + c)*B; a
// group of threads (a warp, or the whole block) reduces one (segment, split) work item.
//
// Phases: load 16-byte packs (scalar head until aligned, scalar tail) -> Welford per thread ->
// warp/block merge in fixed order -> the leader writes the slice's statistics, or a partial state when
// the segment is split across several groups (merge_partials_kernel finishes it).
#pragma once

#include <cstdint>

#include "kernels/common/moment_reduce.cuh"
#include "kernels/common/packed_extremes.cuh"
#include "kernels/common/partial_states.cuh"
#include "kernels/common/vector_load.cuh"
#include "math/stats_sink.hpp"
#include "plan/stats_plan.hpp"

namespace normkit::kernels {

struct SegmentShape {
  std::int64_t a, c, b;  // sub-rows per segment, segments, elements per sub-row
  std::int64_t splits;   // work items per segment
  int lanes;             // segment_warp: lanes per work item (a power of two <= 32)
  std::int64_t outer = 1;  // kept outer slices of A*C*B elements (generic [O, A, C, B]); segment o*C + c
  int sub_lanes = 1 << 30;  // A > 1: lanes per sub-row (a power of two; the group's sub-groups take
                            // every (group / sub_lanes)-th sub-row), so short sub-rows keep lanes busy
  std::int64_t chunk = 0;   // elements per work item: plan::segment_chunk(a, b, splits), computed on the
                            // host (its 64-bit divisions cost a one-wave grid 6% of its issue cycles)
  bool short_rows = false;  // plan::StatsPlan::segment_short_rows: a == 1, one lane per 16-byte aligned row of
                            // at most short_row_vectors packs, no splits, at most 2^30 rows
};

// Vector packs a thread loads and folds together in float: 64 bytes of input in flight per thread (4
// packs), at most 32 values in registers, at most 64 bytes of Acc values for double. (uint8 vectors take
// the integer batches of accumulate_range instead.)
template <typename Acc, typename T, int VEC>
constexpr int segment_batch_packs() {
  constexpr int by_registers = static_cast<int>((sizeof(Acc) == 8 ? 8 : 32) / VEC);
  constexpr int packs = by_registers < 4 ? by_registers : 4;
  return packs < 1 ? 1 : packs;
}

// The 16 bytes of a uint8 pack into exact integer sums (non-zeros counted in half lanes).
template <bool EXTREMES>
__device__ __forceinline__ void add_words(math::ByteSums& sums, const uint4& w) {
  sums.add_word<EXTREMES, true>(w.x);
  sums.add_word<EXTREMES, true>(w.y);
  sums.add_word<EXTREMES, true>(w.z);
  sums.add_word<EXTREMES, true>(w.w);
}

// 16-bit inputs with extremes keep min, max and non-zero counts as packed pairs of the raw words.
template <typename T, bool EXTREMES>
constexpr bool kSegmentPairs = EXTREMES && sizeof(T) == 2;
template <typename T, bool EXTREMES>
using SegmentPairs = std::conditional_t<kSegmentPairs<T, EXTREMES>, PairExtremes<T>, NoPairExtremes>;

// N raw packs into s as one pack of N * VEC values (one Chan step). With packed pairs, the extremes go to
// `pairs` (folded by the caller) and the non-zeros are counted before the conversion, so the raw words die
// with it (no spills), and added when the pack took the finite fast path (the per-value path counts its own).
template <int N, typename Acc, int VEC, bool EXTREMES, typename T, typename State>
__device__ __forceinline__ void push_raw_packs(const RawPack<T, VEC>* raw, SegmentPairs<T, EXTREMES>& pairs, State& s) {
  constexpr bool kPairs = kSegmentPairs<T, EXTREMES>;
  std::conditional_t<kPairs, PairNonzeros, NoPairNonzeros> nonzeros;
  if constexpr (kPairs) {
    NORMKIT_UNROLL
    for (int b = 0; b < N; ++b) {
      pairs.add_words(raw[b]);
      nonzeros.add_words(raw[b]);
    }
  }
  Acc v[N * VEC];
  NORMKIT_UNROLL
  for (int b = 0; b < N; ++b) convert_raw_pack<Acc, T, VEC>(raw[b], v + b * VEC);
  const bool finite = s.template push_pack<EXTREMES, !kPairs, !kPairs>(v);
  if constexpr (kPairs) {
    if (finite) s.nonzero += nonzeros.total();
  }
}

// Packs t, t + G, ... of `packs` 16-byte packs from body into s.
template <typename Acc, int VEC, bool EXTREMES, typename T, typename State>
__device__ __forceinline__ void accumulate_packs(const Pack<T, VEC>* __restrict__ body, int packs, int t, int group_size,
                                                 State& s) {
  int i = t;
  if constexpr (std::is_same_v<T, std::uint8_t> && VEC == 16) {
    // uint8: exact integer sums of 4 packs (64 values) at a time, one Chan step per batch
    // (math::ByteSums: ~5 issue cycles per value with extremes instead of ~17 in float).
    // The sums of up to kByteSumsMaxValues values are widened into s at once (per batch, the 64-bit
    // additions cost ~0.3 issue cycles per value).
    constexpr int kBytePacks = 4;
    constexpr int kFlushBatches = math::kByteSumsMaxValues / (kBytePacks * 16);
    if (i + (kBytePacks - 1) * group_size < packs) {  // (rows of one pack skip the batches in one test)
      math::ByteSums sums = math::ByteSums::empty();
      int batches = 0;
      for (; i + (kBytePacks - 1) * group_size < packs; i += kBytePacks * group_size) {
        uint4 raw[kBytePacks];
        NORMKIT_UNROLL
        for (int b = 0; b < kBytePacks; ++b) raw[b] = *reinterpret_cast<const uint4*>(body[i + b * group_size].v);
        NORMKIT_UNROLL
        for (int b = 0; b < kBytePacks; ++b) add_words<EXTREMES>(sums, raw[b]);
        if (++batches == kFlushBatches) {
          s.template push_bytes<EXTREMES, kFlushBatches * kBytePacks * 16, true>(sums);
          sums = math::ByteSums::empty();
          batches = 0;
        }
      }
      if (batches > 0) s.template push_bytes<EXTREMES, true>(sums, static_cast<std::uint32_t>(batches * kBytePacks * 16));
    }
    if (i < packs) {  // the last 1-3 packs of this lane: loaded together (one round trip, not one each)
      uint4 raw[kBytePacks - 1];
      NORMKIT_UNROLL
      for (int b = 0; b < kBytePacks - 1; ++b) {
        raw[b] = i + b * group_size < packs ? *reinterpret_cast<const uint4*>(body[i + b * group_size].v) : uint4{};
      }
      math::ByteSums sums = math::ByteSums::empty();
      std::uint32_t values = 0;
      NORMKIT_UNROLL
      for (int b = 0; b < kBytePacks - 1; ++b) {
        if (i + b * group_size < packs) {
          add_words<EXTREMES>(sums, raw[b]);
          values += 16;
        }
      }
      s.template push_bytes<EXTREMES, true>(sums, values);
    }
    return;
  }
  // segment_batch_packs packs are all in flight before the math, and fold as one pack: one Chan step
  // (one reciprocal) per 16-32 values instead of per 4 (float32) or 8 (16-bit).
  constexpr int kPacks = segment_batch_packs<Acc, T, VEC>();
  if constexpr (kPacks > 1) {
    SegmentPairs<T, EXTREMES> pairs;
    const int first_batch = i;
    for (; i + (kPacks - 1) * group_size < packs; i += kPacks * group_size) {
      RawPack<T, VEC> raw[kPacks];
      NORMKIT_UNROLL
      for (int b = 0; b < kPacks; ++b) raw[b] = load_raw_pack<T, VEC>(body[i + b * group_size].v);
      push_raw_packs<kPacks, Acc, VEC, EXTREMES, T>(raw, pairs, s);
    }
    if constexpr (kSegmentPairs<T, EXTREMES>) {
      if (i != first_batch) pairs.fold(s);  // (short rows never fill a batch: no fold to pay per row)
    }
  }
  if constexpr (kPacks > 1 && sizeof(T) == 2) {
    // The last packs of this lane (fewer than a batch): loaded together, folded each (16-bit rows of 16
    // are 2 packs: two round trips per row before). (float32 block groups spilled with 3 more packs.)
    if (i < packs) {
      RawPack<T, VEC> raw[kPacks - 1];
      NORMKIT_UNROLL
      for (int b = 0; b < kPacks - 1; ++b) {
        if (i + b * group_size < packs) raw[b] = load_raw_pack<T, VEC>(body[i + b * group_size].v);
      }
      // Two packs fold as one batch of 2 * VEC values (one Chan step: rows of 16 float16 are two packs),
      // their extremes and non-zeros as packed pairs like the batches' (rows of 16 with every statistic:
      // float min/max and compares were ~1/5 of a row's issue cycles).
      int b = 0;
      if (i + group_size < packs) {
        SegmentPairs<T, EXTREMES> pairs;
        push_raw_packs<2, Acc, VEC, EXTREMES, T>(raw, pairs, s);
        if constexpr (kSegmentPairs<T, EXTREMES>) pairs.fold(s);
        b = 2;
      }
      NORMKIT_UNROLL
      for (int k = 0; k < kPacks - 1; ++k) {
        if (k >= b && i + k * group_size < packs) {
          Acc v[VEC];
          convert_raw_pack<Acc, T, VEC>(raw[k], v);
          s.template push_pack<EXTREMES>(v);
        }
      }
    }
  } else {
    for (; i < packs; i += group_size) {
      Acc v0[VEC];
      load_pack<Acc, T, VEC>(body[i].v, v0);
      s.template push_pack<EXTREMES>(v0);
    }
  }
}

// Accumulates p[t], p[t + G], ... of a contiguous range of n elements into s. n fits 32 bits: a work item
// summarises at most kLocalMomentsMaxValues values (the plan splits longer ones), so the indices are
// 32-bit (64-bit compares and adds cost twice the issue slots).
template <typename Acc, int VEC, bool EXTREMES, typename T, typename State>
__device__ __forceinline__ void accumulate_range(const T* __restrict__ p, std::int64_t n64, int t, int group_size,
                                                 State& s) {
  const int n = static_cast<int>(n64);
  if constexpr (VEC == 1) {
    for (int i = t; i < n; i += group_size) s.push(load_one<Acc>(p + i));
  } else {
    const int head = min(static_cast<int>(elements_to_alignment<T, VEC>(p)), n);
    for (int i = t; i < head; i += group_size) s.push(load_one<Acc>(p + i));  // head < VEC: may exceed a small group
    const int packs = (n - head) / VEC;
    accumulate_packs<Acc, VEC, EXTREMES>(reinterpret_cast<const Pack<T, VEC>*>(p + head), packs, t, group_size, s);
    for (int j = head + packs * VEC + t; j < n; j += group_size) s.push(load_one<Acc>(p + j));
  }
}

// Accumulates the part [lo, hi) of segment `segment`'s A*B elements (segment = o * C + c).
template <typename Acc, int VEC, bool EXTREMES, typename T, typename State>
__device__ __forceinline__ void accumulate_segment_part(const T* __restrict__ input, const SegmentShape& shape,
                                                        std::int64_t segment, std::int64_t lo, std::int64_t hi, int t,
                                                        int group_size, State& s) {
  if (shape.a == 1) {  // rows and global: one contiguous range, no division
    accumulate_range<Acc, VEC, EXTREMES>(input + segment * shape.b + lo, hi - lo, t, group_size, s);
    return;
  }
  std::int64_t c = segment;
  if (shape.outer > 1) {
    const std::int64_t o = segment / shape.c;
    c = segment - o * shape.c;
    input += o * shape.a * shape.c * shape.b;
  }
  // Sub-group g of `lanes` lanes takes sub-rows first + g, first + g + sub_groups, ...
  const int lanes = shape.sub_lanes < group_size ? shape.sub_lanes : group_size;
  const int lane_shift = __ffs(lanes) - 1;
  const int sub_groups = group_size >> lane_shift;
  for (std::int64_t a = lo / shape.b + (t >> lane_shift); a * shape.b < hi; a += sub_groups) {
    const std::int64_t begin = lo > a * shape.b ? lo - a * shape.b : 0;
    const std::int64_t end = hi - a * shape.b < shape.b ? hi - a * shape.b : shape.b;
    const T* row = input + (a * shape.c + c) * shape.b;
    accumulate_range<Acc, VEC, EXTREMES>(row + begin, end - begin, t & (lanes - 1), lanes, s);
  }
}

// A group of shape.lanes lanes of a warp per work item (BLOCK_GROUP = false: rows of up to 4096 elements,
// or of up to 2048 vectors when there are many, several per warp when short) or one block per work item (true). Grid-stride over work
// items; blockDim.x must be a multiple of 32 and at most 1024.
// Launch bounds: the residency the plan fills whole waves with (StatsPolicy::segment_residency). (Without
// a minimum-blocks hint ptxas for sm_90 capped the uint8 warp instantiation at 64 registers and spilled.)
// EXTREMES = false: a request without min, max, l0, l1 and linf (math::LocalMoments::push_pack).
template <typename T, typename Acc, int VEC, bool BLOCK_GROUP, bool EXTREMES>
__global__ void __launch_bounds__(256, plan::StatsPolicy::segment_residency(BLOCK_GROUP, VEC > 1, sizeof(T), sizeof(Acc) == 8))
segment_stats_kernel(const T* __restrict__ input, SegmentShape shape, math::StatsSink sink,
                     PartialStates<typename math::KernelState<T, Acc>::local> partials) {
  using State = typename math::KernelState<T, Acc>::local;
  __shared__ State scratch[32];
  // Block groups: one work item per block at a time. Lane groups: blockDim.x / lanes items per block.
  const int group_size = BLOCK_GROUP ? static_cast<int>(blockDim.x) : shape.lanes;
  const int lane_shift = __ffs(group_size) - 1;  // lanes: a power of two (shifts, not 32-bit divisions)
  const int t = BLOCK_GROUP ? static_cast<int>(threadIdx.x) : static_cast<int>(threadIdx.x) & (group_size - 1);
  const std::int64_t groups_per_block = BLOCK_GROUP ? 1 : blockDim.x >> lane_shift;
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * groups_per_block + (BLOCK_GROUP ? 0 : threadIdx.x >> lane_shift);
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * groups_per_block;
  const std::int64_t segments = shape.outer * shape.c;
  const std::int64_t work_items = segments * shape.splits;
  const std::int64_t total = shape.a * shape.b;
  const std::int64_t chunk = shape.chunk;
  if constexpr (!BLOCK_GROUP && VEC > 1) {
    if (shape.short_rows) {
      // Rows counted in 32 bits (the plan bounds them by 2^30) and walked by pointer: the outputs' addresses
      // and the row's cost no 64-bit multiplies. No collectives: lanes leave the loop independently.
      const int row_packs = static_cast<int>(shape.b / VEC);
      const int rows = static_cast<int>(segments), row_stride = static_cast<int>(stride);
      const auto* row_input = reinterpret_cast<const Pack<T, VEC>*>(input + first * shape.b);
      const std::int64_t pointer_stride = stride * row_packs;
      if constexpr (std::is_same_v<T, std::uint8_t>) {
        // uint8 with float32 outputs (no summaries): 32-bit sums and the exact 32-bit finalize straight
        // from them, no 64-bit IntegerMoments or IntegerSummary a row (rows of 16 with moments only:
        // 71.8 -> 92.5%, all statistics 89.6 -> 100%, modelled). The plan bounds row_packs by kPacks.
        if (sink.float32_outputs) {
          constexpr int kPacks = static_cast<int>(plan::StatsPolicy::short_row_vectors);
          static_assert(VEC == 16 && kPacks * VEC <= math::kIntegerFloat32Count, "whole words of bytes, exact in 32-bit sums");
          const bool roots = math::wants_roots(sink);
          const std::uint32_t values = static_cast<std::uint32_t>(row_packs * VEC);
          for (int row = static_cast<int>(first); row < rows; row += row_stride, row_input += pointer_stride) {
            uint4 raw[kPacks];
            NORMKIT_UNROLL
            for (int b = 0; b < kPacks; ++b) {
              if (b < row_packs) raw[b] = *reinterpret_cast<const uint4*>(row_input[b].v);
            }
            math::ByteSums sums = math::ByteSums::empty();
            NORMKIT_UNROLL
            for (int b = 0; b < kPacks; ++b) {
              if (b < row_packs) add_words<EXTREMES>(sums, raw[b]);
            }
            const math::ShortIntegerSummary summary{values, sums.sum, sums.sum_sq,
                                                    EXTREMES ? sums.template nonzero<true>() : 0u,
                                                    EXTREMES ? sums.min_value() : 0u, EXTREMES ? sums.max_value() : 0u};
            math::store_stat_values<EXTREMES>(sink, row, math::finalize_integer_float_in<std::uint32_t>(summary, sink.ddof, roots));
          }
          return;
        }
      }
      for (int row = static_cast<int>(first); row < rows; row += row_stride, row_input += pointer_stride) {
        State s = State::empty();
        accumulate_packs<Acc, VEC, EXTREMES>(row_input, row_packs, 0, 1, s);
        math::write_local_slice<EXTREMES>(sink, row, s);
      }
      return;
    }
  }
  // The groups of a warp run the same rounds: their merges are collective (a block's item is uniform).
  const std::int64_t rounds = BLOCK_GROUP ? 0 : (work_items + stride - 1) / stride;
  for (std::int64_t round = 0, item = first; BLOCK_GROUP ? item < work_items : round < rounds; ++round, item += stride) {
    const bool active = BLOCK_GROUP || item < work_items;
    // (64-bit divisions cost ~150 issue cycles: none when the segments are not split)
    const std::int64_t segment = !active ? 0 : shape.splits == 1 ? item : item / shape.splits;
    const std::int64_t split = active ? item - segment * shape.splits : 0;
    std::int64_t lo = 0, hi = total;
    if (shape.splits > 1) {  // (uniform: rows of 16 paid ~1% for 64-bit minima they do not need)
      lo = split * chunk < total ? split * chunk : total;  // trailing items may be empty
      hi = lo + chunk < total ? lo + chunk : total;
    }
    State s = State::empty();
    if (active) accumulate_segment_part<Acc, VEC, EXTREMES>(input, shape, segment, lo, hi, t, group_size, s);
    // uint8 (exact integer states): every value of the item counts, so the merges leave the counts out
    // and the item's count is set after them (rows of 65536 uint8: 84.6% -> 87.1% modelled).
    constexpr bool kKnownCount = std::is_same_v<State, math::IntegerMoments>;
    if constexpr (BLOCK_GROUP) block_merge<kKnownCount>(s, scratch);
    else if (group_size > 1) warp_merge<kKnownCount>(s, group_size);  // (one-lane groups: ~25 instructions a row saved)
    if constexpr (kKnownCount) s.count = active ? static_cast<std::uint64_t>(hi - lo) : 0u;
    if (active && t == 0) {
      if (shape.splits == 1) math::write_local_slice<EXTREMES>(sink, segment, s);
      else partials.store(split * segments + segment, s);  // [split][segment]: coalesced merge reads
    }
  }
}

}  // namespace normkit::kernels
