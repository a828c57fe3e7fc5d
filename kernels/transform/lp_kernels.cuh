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

// Rows start 16-byte aligned for input and output (the plan checks it); each lane of a row's group owns
// packs lane, lane + G, ... of VEC elements; packs past the row's end are masked element by element.
// The groups of a warp run the same number of rounds (an idle group joins the shuffles), so that the
// butterfly's full-warp shuffles always see every lane.
template <typename In, typename Out, int VEC>
__global__ void __launch_bounds__(256, 2) lp_rows_kernel(const In* __restrict__ in, Out* __restrict__ out, LpRowsShape s) {
  using Compute = math::compute_type_t<In, Out>;
  constexpr int K = kLpValuesPerLane / VEC;  // packs per lane of a full warp
  const int lanes = 1 << s.group_shift;
  const int lane = static_cast<int>(threadIdx.x) & (lanes - 1);
  const std::int64_t groups_per_block = blockDim.x >> s.group_shift;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * groups_per_block;
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * groups_per_block + (threadIdx.x >> s.group_shift);
  // (a warp's groups take consecutive rows: the same rounds for all of them within one of the last)
  const std::int64_t warp_first = first - ((threadIdx.x & 31) >> s.group_shift);
  for (std::int64_t r = first, base_r = warp_first; base_r < s.rows; r += stride, base_r += stride) {
    const bool active = r < s.rows;
    const In* x = in + (active ? r : 0) * s.length;
    Out* y = out + (active ? r : 0) * s.length;
    Compute v[K][VEC];
    double acc = 0.0;
    NORMKIT_UNROLL
    for (int j = 0; j < K; ++j) {
      const std::int64_t base = static_cast<std::int64_t>(lane + lanes * j) * VEC;
      if (!active || base >= s.length) break;
      if (base + VEC <= s.length) {
        load_pack<Compute, In, VEC>(x + base, v[j]);
      } else {
        NORMKIT_UNROLL
        for (int i = 0; i < VEC; ++i) v[j][i] = base + i < s.length ? load_one<Compute>(x + base + i) : Compute(0);
      }
      NORMKIT_UNROLL
      for (int i = 0; i < VEC; ++i) acc = math::lp_accumulate(s.p, acc, static_cast<double>(v[j][i]));
    }
    // Butterfly over the group: every lane ends with the same norm, in a fixed order.
    for (int offset = lanes / 2; offset > 0; offset /= 2) {
      const double other = __shfl_xor_sync(0xffffffffu, acc, offset);
      acc = math::lp_combine(s.p, acc, other);
    }
    const Compute scale = static_cast<Compute>(math::lp_scale(math::lp_norm(s.p, acc)));
    NORMKIT_UNROLL
    for (int j = 0; j < K; ++j) {
      const std::int64_t base = static_cast<std::int64_t>(lane + lanes * j) * VEC;
      if (!active || base >= s.length) break;
      if (base + VEC <= s.length) {
        Compute scaled[VEC];
        NORMKIT_UNROLL
        for (int i = 0; i < VEC; ++i) scaled[i] = v[j][i] * scale;
        store_converted<Out, VEC>(y + base, scaled);
      } else {
        NORMKIT_UNROLL
        for (int i = 0; i < VEC; ++i) {
          if (base + i < s.length) math::store_as(y + base + i, v[j][i] * scale);
        }
      }
    }
  }
}

}  // namespace normkit::kernels
