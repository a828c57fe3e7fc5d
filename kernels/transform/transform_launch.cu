// Launchers of the transform kernels and their explicit instantiations: 5 input x 4 output dtypes for the
// rows and columns walks (16-byte vectors) and the generic walk (scalar); the spans walk for the 5 pairs of
// one element size (float32, float16 and bfloat16 in and out).
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/common/cuda_check.hpp"
#include "kernels/transform/apply_kernels.cuh"
#include "kernels/transform/lp_kernels.cuh"
#include "kernels/transform/transform_launch.hpp"
#include "math/dtype_dispatch.hpp"
#include "math/lp.hpp"

namespace normkit::kernels {
namespace {

constexpr const char* kOp = "apply_affine";

unsigned grid_dim(std::int64_t blocks) { return static_cast<unsigned>(std::clamp<std::int64_t>(blocks, 1, 0x7fffffff)); }

// log2 of a power of two (the rows kernel shifts by its lane groups' width rather than dividing).
int log2_of(int power_of_two) {
  int shift = 0;
  while ((1 << shift) < power_of_two) ++shift;
  return shift;
}

DeviceAffine device_affine(const AffineCoefficients& c) {
  return DeviceAffine{c.center, c.scale, c.offset, c.fill, c.clip, c.clip_min, c.clip_max};
}

template <typename In, typename Out>
Status launch_typed(const In* in, Out* out, const plan::CanonicalGeometry& g, const plan::ApplyPlan& p,
                    const AffineCoefficients& c, cudaStream_t stream) {
  constexpr int kVec = static_cast<int>(16 / (sizeof(In) > sizeof(Out) ? sizeof(In) : sizeof(Out)));
  switch (p.kernel) {
    case plan::ApplyKernel::rows:
      // Scalar plans run the same kernel: rows whose phases differ take its scalar loop.
      apply_rows_kernel<In, Out, kVec><<<grid_dim(p.grid_x), p.block_x, 0, stream>>>(
          in, out, RowsShape{p.rows, p.row_length, p.period, p.repeat, p.chunks, p.packs_per_chunk, log2_of(p.group_lanes),
                             p.aligned_short_rows}, device_affine(c));
      return cuda::check_launch(kOp, "apply_rows_kernel");
    case plan::ApplyKernel::spans:
      // (the plan picks spans for one element size in and out, float16, bfloat16 or float32 input)
      if constexpr (sizeof(In) == sizeof(Out) && sizeof(In) != 8 && sizeof(In) != 1) {
        apply_spans_kernel<In, Out, kVec><<<grid_dim(p.grid_x), p.block_x, 0, stream>>>(
            in, out, SpansShape{p.rows, p.row_length, p.period, p.span_rows, p.span_packs, p.span_tiles}, device_affine(c));
        return cuda::check_launch(kOp, "apply_spans_kernel");
      }
      break;
    case plan::ApplyKernel::columns:
      if (p.vector_elems == kVec) {
        apply_columns_kernel<In, Out, kVec><<<dim3(grid_dim(p.grid_x), static_cast<unsigned>(p.grid_y)),
                                              dim3(static_cast<unsigned>(p.block_x), static_cast<unsigned>(p.block_y)), 0,
                                              stream>>>(in, out, ColumnsShape{p.outer, p.rows_per_outer, p.inner, p.fold, p.rows_per_block, p.kept_outer},
                                                        device_affine(c));
        return cuda::check_launch(kOp, "apply_columns_kernel");
      }
      break;  // misaligned columns: the generic walk
    case plan::ApplyKernel::generic:
      break;
  }
  apply_generic_kernel<In, Out><<<grid_dim((g.numel + 1023) / 1024), 256, 0, stream>>>(in, out, g.kept, g.numel, device_affine(c));
  return cuda::check_launch(kOp, "apply_generic_kernel");
}

__global__ void lp_coefficients_kernel(const StatsSummary* s, std::int64_t n, LpNorm p, AffineCoefficients out) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += stride) {
    out.center[k] = 0.0;
    out.scale[k] = math::lp_scale(math::lp_norm(p, math::finalize_summary(s[k], 0, false)));
    out.offset[k] = 0.0;
  }
}

}  // namespace

Status launch_apply(const void* in, DType in_dtype, void* out, DType out_dtype, const plan::CanonicalGeometry& geometry,
                    const plan::ApplyPlan& plan, const AffineCoefficients& coefficients, Stream stream) {
  return math::visit_input_dtype(in_dtype, kOp, [&](auto in_tag) {
    using In = typename decltype(in_tag)::type;
    return math::visit_output_dtype(out_dtype, kOp, [&](auto out_tag) {
      using Out = typename decltype(out_tag)::type;
      return launch_typed(static_cast<const In*>(in), static_cast<Out*>(out), geometry, plan, coefficients, stream);
    });
  });
}

Status launch_lp_rows(const void* in, DType in_dtype, void* out, DType out_dtype, std::int64_t rows, std::int64_t length,
                      LpNorm p, int sm_count, Stream stream) {
  return math::visit_input_dtype(in_dtype, "normalize_lp", [&](auto in_tag) {
    using In = typename decltype(in_tag)::type;
    return math::visit_output_dtype(out_dtype, "normalize_lp", [&](auto out_tag) {
      using Out = typename decltype(out_tag)::type;
      constexpr int kVec = static_cast<int>(16 / (sizeof(In) > sizeof(Out) ? sizeof(In) : sizeof(Out)));
      const plan::LpRowsPlan lp = plan::choose_lp_rows_plan(rows, length, sizeof(In), sizeof(Out), sm_count);
      if (lp.vector_elems != kVec) return Status(StatusCode::internal, "normalize_lp: the plan and the kernel disagree on the vector width");
      const LpRowsShape shape{rows, length, p, log2_of(lp.group_lanes)};
      if (lp.one_pack_per_lane) {
        lp_short_rows_kernel<In, Out, kVec><<<grid_dim(lp.blocks), 256, 0, stream>>>(static_cast<const In*>(in), static_cast<Out*>(out), shape);
        return cuda::check_launch("normalize_lp", "lp_short_rows_kernel");
      }
      lp_rows_kernel<In, Out, kVec><<<grid_dim(lp.blocks), 256, 0, stream>>>(static_cast<const In*>(in), static_cast<Out*>(out), shape);
      return cuda::check_launch("normalize_lp", "lp_rows_kernel");
    });
  });
}

Status launch_coefficients(const StatsSummary* summaries, std::int64_t n, const NormalizerOptions& options, bool inverse,
                           const AffineCoefficients& coefficients, Stream stream) {
  if (n == 0) return Status::success();
  coefficients_kernel<<<grid_dim((n + 255) / 256), 256, 0, stream>>>(summaries, n, options, inverse, coefficients);
  return cuda::check_launch("compute_coefficients", "coefficients_kernel");
}

Status launch_first_infinite_fit(const StatsSummary* summaries, std::int64_t n, const NormalizerOptions& options,
                                 std::int64_t* first, Stream stream) {
  first_infinite_fit_kernel<<<1, kFirstInfiniteBlock, 0, stream>>>(summaries, n, options, first);
  return cuda::check_launch("Normalizer", "first_infinite_fit_kernel");
}

Status launch_lp_coefficients(const StatsSummary* summaries, std::int64_t n, LpNorm p, const AffineCoefficients& out,
                              Stream stream) {
  if (n == 0) return Status::success();
  lp_coefficients_kernel<<<grid_dim((n + 255) / 256), 256, 0, stream>>>(summaries, n, p, out);
  return cuda::check_launch("normalize_lp", "lp_coefficients_kernel");
}

}  // namespace normkit::kernels
