// The elementwise apply y = (fill(x) - center[k]) * scale[k] + offset[k] (+ clip), one read and one write,
// converting dtypes on the way. Three walks over the tensor, chosen by plan::choose_apply_plan:
//   apply_rows_kernel     rows sharing one coefficient (per-sample, NCHW per-channel, global): a warp or a
//                         block per row, 16-byte accesses after a scalar head, scalar tail
//   apply_columns_kernel  a coefficient per column (per-feature, NHWC): each thread owns VEC columns and
//                         keeps their coefficients in registers while it walks rows; narrow rows are
//                         folded so that loads stay 16 bytes wide
//   apply_generic_kernel  any other axis set, and misaligned columns: per element index arithmetic
#pragma once

#include <cstdint>

#include "kernels/common/vector_load.cuh"
#include "math/dtype_dispatch.hpp"
#include "math/moments.hpp"
#include "math/transform.hpp"
#include "plan/apply_plan.hpp"

namespace normkit::kernels {

// At least 4 resident blocks of 256 threads (<= 64 registers): without a minimum, ptxas squeezes some of
// these kernels into 32 registers and spills (seen with nvcc 13 for sm_80). The columns kernel keeps up
// to 8 columns' coefficients in registers: 2 blocks (<= 128 registers).
constexpr int kApplyMinBlocksPerSm = 4;
constexpr int kApplyColumnsMinBlocksPerSm = 2;

// Coefficient arrays in device memory (kept-numel float64 each; fill may be null).
struct DeviceAffine {
  const double* center;
  const double* scale;
  const double* offset;
  const double* fill;
  bool clip;
  double clip_min, clip_max;
};

template <typename Compute>
__device__ __forceinline__ math::AffineColumn<Compute> load_affine(const DeviceAffine& c, std::int64_t k) {
  return math::prepare_column<Compute>(math::Affine{c.center[k], c.scale[k], c.offset[k], c.fill ? c.fill[k] : NAN});
}

template <typename Compute>
__device__ __forceinline__ math::AffineFlags<Compute> affine_flags(const DeviceAffine& c) {
  return math::prepare_flags<Compute>(c.fill != nullptr, c.clip, c.clip_min, c.clip_max);
}

template <typename Compute, typename In, typename Out, int VEC>
__device__ __forceinline__ void apply_pack(const In* __restrict__ x, Out* __restrict__ y, const math::AffineColumn<Compute>& a,
                                           const math::AffineFlags<Compute>& f) {
  const Pack<In, VEC> in = *reinterpret_cast<const Pack<In, VEC>*>(x);
  Pack<Out, VEC> out;
  NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) math::store_as(&out.v[i], math::apply_affine_value(math::to_acc<Compute>(in.v[i]), a, f));
  *reinterpret_cast<Pack<Out, VEC>*>(y) = out;
}

struct RowsShape {
  std::int64_t rows, length, period;  // row r uses kept index r % period
};

// Rows of up to 1024 elements take a warp each, longer rows the whole block. Grid-stride over rows.
template <typename In, typename Out, int VEC>
__global__ void __launch_bounds__(256, kApplyMinBlocksPerSm) apply_rows_kernel(const In* __restrict__ in, Out* __restrict__ out, RowsShape shape,
                                                         DeviceAffine coefficients) {
  using Compute = math::compute_type_t<In, Out>;
  const auto flags = affine_flags<Compute>(coefficients);
  const bool warp_rows = shape.length <= 1024;
  const int group = warp_rows ? 32 : static_cast<int>(blockDim.x);
  const int t = warp_rows ? static_cast<int>(threadIdx.x % 32) : static_cast<int>(threadIdx.x);
  const std::int64_t groups_per_block = blockDim.x / group;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * groups_per_block;
  for (std::int64_t r = blockIdx.x * groups_per_block + threadIdx.x / group; r < shape.rows; r += stride) {
    const auto a = load_affine<Compute>(coefficients, r % shape.period);
    const In* x = in + r * shape.length;
    Out* y = out + r * shape.length;
    const std::int64_t n = shape.length;
    // Vector body only when input and output reach 16-byte boundaries at the same element.
    const std::int64_t head_in = elements_to_alignment<In, VEC>(x);
    const bool vector = VEC > 1 && head_in == elements_to_alignment<Out, VEC>(y) && n >= head_in + VEC;
    const std::int64_t head = vector ? head_in : n;
    for (std::int64_t i = t; i < head; i += group) math::store_as(y + i, math::apply_affine_value(load_one<Compute>(x + i), a, flags));
    if (!vector) continue;
    const std::int64_t packs = (n - head) / VEC;
    for (std::int64_t i = t; i < packs; i += group) apply_pack<Compute, In, Out, VEC>(x + head + i * VEC, y + head + i * VEC, a, flags);
    for (std::int64_t i = head + packs * VEC + t; i < n; i += group) {
      math::store_as(y + i, math::apply_affine_value(load_one<Compute>(x + i), a, flags));
    }
  }
}

struct ColumnsShape {
  std::int64_t outer, rows_per_outer, inner, fold;  // fold rows per wide row; rows_per_outer % fold == 0
};

// blockDim.x threads over (wide) columns, VEC each; blockDim.y and gridDim.y stride the wide rows.
template <typename In, typename Out, int VEC>
__global__ void __launch_bounds__(256, kApplyColumnsMinBlocksPerSm) apply_columns_kernel(const In* __restrict__ in, Out* __restrict__ out,
                                                            ColumnsShape shape, DeviceAffine coefficients) {
  using Compute = math::compute_type_t<In, Out>;
  const std::int64_t wide_inner = shape.inner * shape.fold;
  const std::int64_t col0 = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * VEC;
  if (col0 >= wide_inner) return;  // no barriers below
  const std::int64_t wide_rows = shape.outer * shape.rows_per_outer / shape.fold;
  const std::int64_t wide_rows_per_outer = shape.rows_per_outer / shape.fold;
  const auto flags = affine_flags<Compute>(coefficients);
  math::AffineColumn<Compute> a[VEC];
  std::int64_t loaded_outer = -1;
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.y) * blockDim.y + threadIdx.y; r < wide_rows;
       r += static_cast<std::int64_t>(gridDim.y) * blockDim.y) {
    const std::int64_t o = r / wide_rows_per_outer;
    if (o != loaded_outer) {
      NORMKIT_UNROLL
      for (int j = 0; j < VEC; ++j) a[j] = load_affine<Compute>(coefficients, o * shape.inner + (col0 + j) % shape.inner);
      loaded_outer = o;
    }
    const std::int64_t offset = r * wide_inner + col0;
    const Pack<In, VEC> x = *reinterpret_cast<const Pack<In, VEC>*>(in + offset);
    Pack<Out, VEC> y;
    NORMKIT_UNROLL
    for (int j = 0; j < VEC; ++j) math::store_as(&y.v[j], math::apply_affine_value(math::to_acc<Compute>(x.v[j]), a[j], flags));
    *reinterpret_cast<Pack<Out, VEC>*>(out + offset) = y;
  }
}

template <typename In, typename Out>
__global__ void __launch_bounds__(256, kApplyMinBlocksPerSm) apply_generic_kernel(const In* __restrict__ in, Out* __restrict__ out,
                                                            plan::StridedDims kept, std::int64_t numel,
                                                            DeviceAffine coefficients) {
  using Compute = math::compute_type_t<In, Out>;
  const auto flags = affine_flags<Compute>(coefficients);
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < numel; i += stride) {
    const auto a = load_affine<Compute>(coefficients, plan::kept_index_of(kept, i));
    math::store_as(out + i, math::apply_affine_value(load_one<Compute>(in + i), a, flags));
  }
}

// Coefficients from summaries, one thread per kept slice (float64).
__global__ void coefficients_kernel(const StatsSummary* summaries, std::int64_t n, NormalizerOptions options, bool inverse,
                                    AffineCoefficients out) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += stride) {
    math::Affine a = math::fit_affine(summaries[k], options);
    if (inverse) a = math::invert_affine(a);
    out.center[k] = a.center;
    out.scale[k] = a.scale;
    out.offset[k] = a.offset;
    if (out.fill) out.fill[k] = a.fill;
  }
}

}  // namespace normkit::kernels
