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
#include "kernels/common/partial_states.cuh"
#include "kernels/common/vector_load.cuh"
#include "math/stats_sink.hpp"

namespace normkit::kernels {

struct SegmentShape {
  std::int64_t a, c, b;  // sub-rows per segment, segments, elements per sub-row
  std::int64_t splits;   // work items per segment
  int lanes;             // segment_warp: lanes per work item (a power of two <= 32)
};

// Accumulates p[t], p[t + G], ... of a contiguous range of n elements into s.
template <typename Acc, int VEC, bool EXTREMES, typename T>
__device__ __forceinline__ void accumulate_range(const T* __restrict__ p, std::int64_t n, int t, int group_size,
                                                 math::LocalMoments<Acc>& s) {
  if constexpr (VEC == 1) {
    for (std::int64_t i = t; i < n; i += group_size) s.push(load_one<Acc>(p + i));
  } else {
    const std::int64_t head = min(elements_to_alignment<T, VEC>(p), n);
    for (std::int64_t i = t; i < head; i += group_size) s.push(load_one<Acc>(p + i));  // head < VEC: may exceed a small group
    const T* body = p + head;
    const std::int64_t packs = (n - head) / VEC;
    std::int64_t i = t;
    // float32/float64 packs (4 and 2 elements): two loads in flight per thread before the math that
    // consumes them. 16-bit and 8-bit packs already hold 8-16 values; a second one would spill.
    if constexpr (VEC <= 4) {
      for (; i + group_size < packs; i += 2 * group_size) {
      Acc v0[VEC], v1[VEC];
      load_pack<Acc, T, VEC>(body + i * VEC, v0);
      load_pack<Acc, T, VEC>(body + (i + group_size) * VEC, v1);
      s.template push_pack<EXTREMES>(v0);
      s.template push_pack<EXTREMES>(v1);
      }
    }
    for (; i < packs; i += group_size) {
      Acc v0[VEC];
      load_pack<Acc, T, VEC>(body + i * VEC, v0);
      s.template push_pack<EXTREMES>(v0);
    }
    for (std::int64_t j = head + packs * VEC + t; j < n; j += group_size) s.push(load_one<Acc>(p + j));
  }
}

// Accumulates the part [lo, hi) of segment `segment`'s A*B elements.
template <typename Acc, int VEC, bool EXTREMES, typename T>
__device__ __forceinline__ void accumulate_segment_part(const T* __restrict__ input, const SegmentShape& shape,
                                                        std::int64_t segment, std::int64_t lo, std::int64_t hi, int t,
                                                        int group_size, math::LocalMoments<Acc>& s) {
  for (std::int64_t a = lo / shape.b; a * shape.b < hi; ++a) {
    const std::int64_t begin = lo > a * shape.b ? lo - a * shape.b : 0;
    const std::int64_t end = hi - a * shape.b < shape.b ? hi - a * shape.b : shape.b;
    const T* row = input + (a * shape.c + segment) * shape.b;
    accumulate_range<Acc, VEC, EXTREMES>(row + begin, end - begin, t, group_size, s);
  }
}

// A group of shape.lanes lanes of a warp per work item (BLOCK_GROUP = false: rows up to 4096 elements,
// several per warp when short) or one block per work item (true). Grid-stride over work
// items; blockDim.x must be a multiple of 32 and at most 1024.
// (256, 1): without a minimum-blocks hint ptxas for sm_90 caps the uint8 warp instantiation at 64 registers
// and spills; with it, 92-140 registers and no local memory.
// EXTREMES = false: a request without min, max, l0, l1 and linf (math::LocalMoments::push_pack).
template <typename T, typename Acc, int VEC, bool BLOCK_GROUP, bool EXTREMES>
__global__ void __launch_bounds__(256, 1) segment_stats_kernel(const T* __restrict__ input, SegmentShape shape,
                                                            math::StatsSink sink, PartialStates<Acc> partials) {
  __shared__ math::LocalMoments<Acc> scratch[32];
  // Block groups: one work item per block at a time. Lane groups: blockDim.x / lanes items per block.
  const int group_size = BLOCK_GROUP ? static_cast<int>(blockDim.x) : shape.lanes;
  const int t = BLOCK_GROUP ? static_cast<int>(threadIdx.x) : static_cast<int>(threadIdx.x) % group_size;
  const std::int64_t groups_per_block = BLOCK_GROUP ? 1 : blockDim.x / group_size;
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * groups_per_block + (BLOCK_GROUP ? 0 : threadIdx.x / group_size);
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * groups_per_block;
  const std::int64_t work_items = shape.c * shape.splits;
  const std::int64_t total = shape.a * shape.b;
  const std::int64_t chunk = (total + shape.splits - 1) / shape.splits;
  // The groups of a warp run the same rounds: their merges are collective (a block's item is uniform).
  const std::int64_t rounds = BLOCK_GROUP ? 0 : (work_items + stride - 1) / stride;
  for (std::int64_t round = 0, item = first; BLOCK_GROUP ? item < work_items : round < rounds; ++round, item += stride) {
    const bool active = BLOCK_GROUP || item < work_items;
    const std::int64_t segment = active ? item / shape.splits : 0;
    const std::int64_t split = active ? item - segment * shape.splits : 0;
    const std::int64_t lo = split * chunk;
    const std::int64_t hi = lo + chunk < total ? lo + chunk : total;
    math::LocalMoments<Acc> s = math::LocalMoments<Acc>::empty();
    if (active) accumulate_segment_part<Acc, VEC, EXTREMES>(input, shape, segment, lo, hi, t, group_size, s);
    if constexpr (BLOCK_GROUP) block_merge(s, scratch);
    else warp_merge(s, group_size);
    if (active && t == 0) {
      if (shape.splits == 1) math::write_slice(sink, segment, math::to_summary(s.widen()));
      else partials.store(split * shape.c + segment, s);  // [split][segment]: coalesced merge reads
    }
  }
}

}  // namespace normkit::kernels
