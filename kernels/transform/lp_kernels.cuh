// Per-sample Lp normalization in one read: a lane group (a warp, fewer lanes for short rows) holds a whole
// row (up to kLpMaxRow elements) in registers, reduces its norm with shuffles in a fixed order, then
// writes the scaled row. Longer or unaligned rows take the two-pass path (statistics, then the apply).
#pragma once

#include <cstdint>

#include "kernels/transform/apply_kernels.cuh"
#include "math/lp.hpp"
#include "plan/apply_plan.hpp"

namespace normkit::kernels {

// 32 lanes x 32 values: a row of up to 1024 elements stays in registers.
constexpr int kLpValuesPerLane = 32;
constexpr std::int64_t kLpMaxRow = 32 * kLpValuesPerLane;
static_assert(kLpMaxRow == plan::kLpOneReadMaxRow, "the plan sends longer rows to the two-read path");

struct LpRowsShape {
  std::int64_t rows, length;
  LpNorm p;
  int group_shift;  // log2 of the lanes per row (plan::lp_group_lanes)
};

// A lane group's butterfly over the stages [0, stages) (xor 2^(stages-1), ..., 2, 1): every lane ends
// with the same value, combined in a fixed order. Unrolled, the norm kind chosen once by the caller (a loop
// over the stages with the kind tested in each cost ~10 issue cycles a stage).
template <typename Combine>
__device__ __forceinline__ double lp_butterfly(double acc, int stages, Combine combine) {
  NORMKIT_UNROLL
  for (int stage = 4; stage >= 0; --stage) {
    if (stage < stages) acc = combine(acc, __shfl_xor_sync(0xffffffffu, acc, 1 << stage));
  }
  return acc;
}

__device__ __forceinline__ double lp_sum(double a, double b) { return math::lp_combine(LpNorm::l1, a, b); }
__device__ __forceinline__ double lp_max(double a, double b) { return math::lp_combine(LpNorm::linf, a, b); }

template <typename Compute, typename In, int VEC>
__device__ __forceinline__ double lp_accumulate_pack(LpNorm p, double acc, const RawPack<In, VEC>& raw, Compute* v) {
  convert_raw_pack<Compute, In, VEC>(raw, v);
  NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) acc = math::lp_accumulate(p, acc, static_cast<double>(v[i]));
  return acc;
}

// (the factor pre only for rows whose 1 / norm is outside float's range: a branch, not a multiply a value)
template <typename Out, int VEC, typename Compute>
__device__ __forceinline__ void lp_store_scaled(Out* y, const Compute* v, math::ScaleSplit<Compute> scale) {
  Compute scaled[VEC];
  NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) scaled[i] = v[i];
  if (scale.pre != Compute(1)) {
    NORMKIT_UNROLL
    for (int i = 0; i < VEC; ++i) scaled[i] *= scale.pre;
  }
  NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) scaled[i] *= scale.rest;
  store_converted<Out, VEC>(y, scaled);
}

// Rows start 16-byte aligned for input and output and their lengths are whole 16-byte vectors of both
// types (plan::lp_one_read_applies), so a row is length / VEC whole packs: each lane of a row's group owns
// packs lane, lane + G, ... Offsets within a row are 32-bit (rows <= kLpMaxRow); row pointers step by a
// 64-bit stride instead of a multiply a row.
// The groups of a warp run the same number of rounds (an idle group joins the shuffles), so that the
// butterfly's full-warp shuffles always see every lane.
template <typename In, typename Out, int VEC>
__global__ void __launch_bounds__(256, 2) lp_rows_kernel(const In* __restrict__ in, Out* __restrict__ out, LpRowsShape s) {
  using Compute = math::compute_type_t<In, Out>;
  constexpr int K = kLpValuesPerLane / VEC;  // packs per lane of a full warp
  const int lanes = 1 << s.group_shift;
  const int lane = static_cast<int>(threadIdx.x) & (lanes - 1);
  const int packs = static_cast<int>(s.length) / VEC;
  const std::int64_t groups_per_block = blockDim.x >> s.group_shift;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * groups_per_block;
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * groups_per_block + (threadIdx.x >> s.group_shift);
  // (a warp's groups take consecutive rows: the same rounds for all of them within one of the last)
  const std::int64_t warp_first = first - ((threadIdx.x & 31) >> s.group_shift);
  const std::int64_t step = stride * s.length;
  // (the lane's first pack in its group's row; stepped, never read, past the last row)
  const In* x = in + first * s.length + lane * VEC;
  Out* y = out + first * s.length + lane * VEC;
  for (std::int64_t r = first, base_r = warp_first; base_r < s.rows; r += stride, base_r += stride, x += step, y += step) {
    const bool active = r < s.rows;
    // Float computations load every pack of the lane before the first is used (one round trip a row, not
    // one a pack: rows of 512 float32 83% -> 100% modelled); float64 ones hold twice the registers and
    // spill that way, so they convert each pack as it comes.
    constexpr bool kLoadsFirst = sizeof(Compute) == 4;
    RawPack<In, VEC> raw[K];
    if constexpr (kLoadsFirst) {
      NORMKIT_UNROLL
      for (int j = 0; j < K; ++j) {
        if (!active || lane + lanes * j >= packs) break;
        raw[j] = load_raw_pack<In, VEC>(x + lanes * j * VEC);
      }
    }
    Compute v[K][VEC];
    double acc = 0.0;
    NORMKIT_UNROLL
    for (int j = 0; j < K; ++j) {
      if (!active || lane + lanes * j >= packs) break;
      if constexpr (!kLoadsFirst) raw[j] = load_raw_pack<In, VEC>(x + lanes * j * VEC);
      acc = lp_accumulate_pack<Compute, In, VEC>(s.p, acc, raw[j], v[j]);
    }
    acc = s.p == LpNorm::linf ? lp_butterfly(acc, s.group_shift, lp_max) : lp_butterfly(acc, s.group_shift, lp_sum);
    const math::ScaleSplit<Compute> scale = math::lp_row_scale<Compute>(s.p, acc);
    NORMKIT_UNROLL
    for (int j = 0; j < K; ++j) {
      if (!active || lane + lanes * j >= packs) break;
      lp_store_scaled<Out, VEC>(y + lanes * j * VEC, v[j], scale);
    }
  }
}

// Rows of at most 32 packs (plan::LpRowsPlan::one_pack_per_lane): one pack a lane, two rows a group per
// trip (r and r + stride). The group's first butterfly stage is a reduce-scatter: its lower half keeps row
// a's partial sums and sends row b's, the upper half the reverse, so that the remaining stages and the
// norm's sqrt and reciprocal (two thirds of a trip's issue cycles on rows of 16 float32) serve both rows
// at once; one more shuffle hands each half the other row's scale. One-lane groups (rows of one pack)
// take both norms themselves. (Rows of 16 float32: 75% -> 92% modelled.)
template <typename In, typename Out, int VEC>
__global__ void __launch_bounds__(256, 2) lp_short_rows_kernel(const In* __restrict__ in, Out* __restrict__ out, LpRowsShape s) {
  using Compute = math::compute_type_t<In, Out>;
  const int lanes = 1 << s.group_shift;
  const int lane = static_cast<int>(threadIdx.x) & (lanes - 1);
  const bool has_pack = lane < static_cast<int>(s.length) / VEC;
  const bool upper = s.group_shift > 0 && (lane & (lanes >> 1)) != 0;
  const std::int64_t groups_per_block = blockDim.x >> s.group_shift;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * groups_per_block;
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * groups_per_block + (threadIdx.x >> s.group_shift);
  const std::int64_t warp_first = first - ((threadIdx.x & 31) >> s.group_shift);
  const std::int64_t step = 2 * stride * s.length;
  const In* x = in + first * s.length + lane * VEC;
  Out* y = out + first * s.length + lane * VEC;
  const std::int64_t b_offset = stride * s.length;  // row b of a trip, from row a
  for (std::int64_t r = first, base_r = warp_first; base_r < s.rows; r += 2 * stride, base_r += 2 * stride, x += step, y += step) {
    const bool load_a = has_pack && r < s.rows;
    const bool load_b = has_pack && r + stride < s.rows;
    RawPack<In, VEC> raw_a, raw_b;
    if (load_a) raw_a = load_raw_pack<In, VEC>(x);
    if (load_b) raw_b = load_raw_pack<In, VEC>(x + b_offset);
    Compute a[VEC], b[VEC];
    const double acc_a = load_a ? lp_accumulate_pack<Compute, In, VEC>(s.p, 0.0, raw_a, a) : 0.0;
    const double acc_b = load_b ? lp_accumulate_pack<Compute, In, VEC>(s.p, 0.0, raw_b, b) : 0.0;
    math::ScaleSplit<Compute> scale_a, scale_b;
    if (s.group_shift == 0) {
      scale_a = math::lp_row_scale<Compute>(s.p, acc_a);
      scale_b = math::lp_row_scale<Compute>(s.p, acc_b);
    } else {
      const int top = lanes >> 1;
      const double sent = __shfl_xor_sync(0xffffffffu, upper ? acc_a : acc_b, top);
      const double kept = upper ? acc_b : acc_a;
      const bool linf = s.p == LpNorm::linf;
      double acc = linf ? lp_max(kept, sent) : lp_sum(kept, sent);
      acc = linf ? lp_butterfly(acc, s.group_shift - 1, lp_max) : lp_butterfly(acc, s.group_shift - 1, lp_sum);
      const math::ScaleSplit<Compute> mine = math::lp_row_scale<Compute>(s.p, acc);
      math::ScaleSplit<Compute> other{Compute(1), __shfl_xor_sync(0xffffffffu, mine.rest, top)};
      // (a vote, not a second shuffle a trip: pre is 1 but for rows whose 1 / norm is outside float's range)
      if (__any_sync(0xffffffffu, mine.pre != Compute(1))) other.pre = __shfl_xor_sync(0xffffffffu, mine.pre, top);
      scale_a = upper ? other : mine;
      scale_b = upper ? mine : other;
    }
    if (load_a) lp_store_scaled<Out, VEC>(y, a, scale_a);
    if (load_b) lp_store_scaled<Out, VEC>(y + b_offset, b, scale_b);
  }
}

}  // namespace normkit::kernels
