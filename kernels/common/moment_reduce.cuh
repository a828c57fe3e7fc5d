// Merging moment states (MomentState, LocalMoments, IntegerMoments) across the lanes of a warp and the warps of a block,
// in a fixed order, so the result does not depend on timing.
#pragma once

#include <cstdint>
#include <type_traits>

#include "math/integer_moments.hpp"
#include "math/moments.hpp"

namespace normkit::kernels {

// The state of the lane `offset` above, within segments of `width` lanes (a power of two <= 32).
template <typename Acc>
__device__ __forceinline__ math::MomentState<Acc> shuffle_down(const math::MomentState<Acc>& s, int offset, int width = 32) {
  math::MomentState<Acc> r;
  const unsigned all = 0xffffffffu;
  r.count = __shfl_down_sync(all, s.count, offset, width);
  r.nan_count = __shfl_down_sync(all, s.nan_count, offset, width);
  r.posinf_count = __shfl_down_sync(all, s.posinf_count, offset, width);
  r.neginf_count = __shfl_down_sync(all, s.neginf_count, offset, width);
  r.nonzero_count = __shfl_down_sync(all, s.nonzero_count, offset, width);
  r.shift = __shfl_down_sync(all, s.shift, offset, width);
  r.mean = __shfl_down_sync(all, s.mean, offset, width);
  r.m2 = __shfl_down_sync(all, s.m2, offset, width);
  r.min = __shfl_down_sync(all, s.min, offset, width);
  r.max = __shfl_down_sync(all, s.max, offset, width);
  r.abs_sum = __shfl_down_sync(all, s.abs_sum, offset, width);
  return r;
}

template <typename Acc>
__device__ __forceinline__ math::LocalMoments<Acc> shuffle_down(const math::LocalMoments<Acc>& s, int offset, int width = 32) {
  math::LocalMoments<Acc> r;
  const unsigned all = 0xffffffffu;
  r.count = __shfl_down_sync(all, s.count, offset, width);
  r.mean = __shfl_down_sync(all, s.mean, offset, width);
  r.m2 = __shfl_down_sync(all, s.m2, offset, width);
  r.shift = __shfl_down_sync(all, s.shift, offset, width);
  r.min = __shfl_down_sync(all, s.min, offset, width);
  r.max = __shfl_down_sync(all, s.max, offset, width);
  r.abs_sum = __shfl_down_sync(all, s.abs_sum, offset, width);
  r.nonzero = __shfl_down_sync(all, s.nonzero, offset, width);
  r.nan_count = __shfl_down_sync(all, s.nan_count, offset, width);
  r.posinf_count = __shfl_down_sync(all, s.posinf_count, offset, width);
  r.neginf_count = __shfl_down_sync(all, s.neginf_count, offset, width);
  return r;
}

// kSkipCount: the count is not moved (0 in the result): for callers that know the merged count (every
// value of a uint8 work item counts), a 64-bit shuffle and addition per step less.
template <bool kSkipCount = false>
__device__ __forceinline__ math::IntegerMoments shuffle_down(const math::IntegerMoments& s, int offset, int width = 32) {
  const unsigned all = 0xffffffffu;
  return math::IntegerMoments{kSkipCount ? std::uint64_t{0} : __shfl_down_sync(all, s.count, offset, width),
                              __shfl_down_sync(all, s.sum, offset, width),
                              __shfl_down_sync(all, s.sum_sq, offset, width), __shfl_down_sync(all, s.nonzero, offset, width),
                              __shfl_down_sync(all, s.min_lanes, offset, width),
                              __shfl_down_sync(all, s.max_lanes, offset, width)};
}

// Tree merge over each segment of `width` lanes (a power of two <= 32; 32: the whole warp); the first
// lane of each segment ends with its segment's state. All 32 lanes must call it. (Lanes past the middle
// of a step merge garbage that never reaches the first lane.)
// kSkipCount (IntegerMoments only): counts are left out of the shuffles, so the merged count is wrong (a
// lane's own, or in block_merge the warp leaders' sum): the caller must overwrite it.
template <bool kSkipCount = false, typename State>
__device__ __forceinline__ void warp_merge(State& s, int width = 32) {
NORMKIT_UNROLL
  for (int offset = 16; offset > 0; offset /= 2) {
    if (offset >= width) continue;
    if constexpr (kSkipCount) {
      static_assert(std::is_same_v<State, math::IntegerMoments>, "only integer states know their counts");
      math::merge(s, shuffle_down<true>(s, offset, width));
    } else {
      const State other = shuffle_down(s, offset, width);
      math::merge(s, other);
    }
  }
}

// Merge over a 1-D block of up to 32 warps; thread 0 ends with the block's state. `scratch` holds one
// state per warp. Every thread of the block must call it (it synchronizes twice).
template <bool kSkipCount = false, typename State>
__device__ __forceinline__ void block_merge(State& s, State* scratch) {
  warp_merge<kSkipCount>(s);
  const int warp = threadIdx.x / 32;
  const int warps = (blockDim.x + 31) / 32;
  if (threadIdx.x % 32 == 0) scratch[warp] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < warps; ++w) math::merge(s, scratch[w]);
  }
  __syncthreads();  // scratch may be reused by the caller's next slice
}

}  // namespace normkit::kernels
