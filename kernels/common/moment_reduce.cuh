// Merging MomentState across the lanes of a warp and the warps of a block, in a fixed order, so the
// result does not depend on timing.
#pragma once

#include "math/moments.hpp"

namespace normkit::kernels {

template <typename Acc>
__device__ __forceinline__ math::MomentState<Acc> shuffle_down(const math::MomentState<Acc>& s, int offset) {
  math::MomentState<Acc> r;
  const unsigned all = 0xffffffffu;
  r.count = __shfl_down_sync(all, s.count, offset);
  r.nan_count = __shfl_down_sync(all, s.nan_count, offset);
  r.posinf_count = __shfl_down_sync(all, s.posinf_count, offset);
  r.neginf_count = __shfl_down_sync(all, s.neginf_count, offset);
  r.nonzero_count = __shfl_down_sync(all, s.nonzero_count, offset);
  r.shift = __shfl_down_sync(all, s.shift, offset);
  r.mean = __shfl_down_sync(all, s.mean, offset);
  r.m2 = __shfl_down_sync(all, s.m2, offset);
  r.min = __shfl_down_sync(all, s.min, offset);
  r.max = __shfl_down_sync(all, s.max, offset);
  r.abs_sum = __shfl_down_sync(all, s.abs_sum, offset);
  return r;
}

// Tree merge over a full warp; lane 0 ends with the warp's state. All 32 lanes must call it.
template <typename Acc>
__device__ __forceinline__ void warp_merge(math::MomentState<Acc>& s) {
NORMKIT_UNROLL
  for (int offset = 16; offset > 0; offset /= 2) {
    const math::MomentState<Acc> other = shuffle_down(s, offset);
    math::merge(s, other);
  }
}

// Merge over a 1-D block of up to 32 warps; thread 0 ends with the block's state. `scratch` holds one
// state per warp. Every thread of the block must call it (it synchronizes twice).
template <typename Acc>
__device__ __forceinline__ void block_merge(math::MomentState<Acc>& s, math::MomentState<Acc>* scratch) {
  warp_merge(s);
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
