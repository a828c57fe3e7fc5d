// Launchers of GroupNorm's own kernels: 2 instantiations.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "kernels/common/cuda_check.hpp"
#include "kernels/group_norm/group_norm_kernels.cuh"
#include "kernels/group_norm/group_norm_launch.hpp"

namespace normkit::kernels {
namespace {

unsigned grid_dim(std::int64_t blocks) { return static_cast<unsigned>(std::clamp<std::int64_t>(blocks, 1, 0x7fffffff)); }

// A warp a (sample, group) or channel, 8 a block: more than a grid holds is an error, not a clamp.
Status check_warps(std::int64_t warps, const char* op) {
  if ((warps + 7) / 8 <= 0x7fffffff) return Status::success();
  return Status(StatusCode::invalid_argument, std::string("normkit::") + op + ": argument 'x.shape': " + std::to_string(warps) +
                                                  " (sample, group) warps exceed a grid of 2^31 - 1 blocks");
}

}  // namespace

Status launch_group_norm_finalize(const StatsSummary* summaries, std::int64_t summaries_per_group, const math::GroupShape& shape,
                                  float eps, const float* gamma, const float* beta, float* saved_mean, float* saved_rstd,
                                  const AffineCoefficients& affine, Stream stream) {
  const std::int64_t warps = shape.samples * shape.groups();
  if (shape.channels == 0 || warps == 0) return Status::success();
  NORMKIT_RETURN_IF_ERROR(check_warps(warps, "group_norm_forward"));
  const GroupFinalizeArgs a{summaries, summaries_per_group, shape, eps, gamma, beta, saved_mean, saved_rstd,
                            affine.center, affine.scale, affine.offset};
  group_norm_finalize_kernel<<<grid_dim((warps + 7) / 8), 256, 0, stream>>>(a);
  return cuda::check_launch("group_norm_forward", "group_norm_finalize_kernel");
}

Status launch_group_norm_grad_coefficients(const math::GroupShape& shape, const float* mean, const float* rstd, const float* gamma,
                                           const float* sum_dy, const float* sum_dy_xmu, double count,
                                           math::ChannelGradCoefficients* coefficients, float* dgamma, float* dbeta,
                                           Stream stream) {
  const math::GroupShape& s = shape;
  const std::int64_t warps = shape.samples * s.groups() + shape.channels;
  if (shape.channels == 0) return Status::success();
  NORMKIT_RETURN_IF_ERROR(check_warps(warps, "group_norm_backward"));
  const GroupGradArgs a{s, mean, rstd, gamma, sum_dy, sum_dy_xmu, count, coefficients, dgamma, dbeta};
  group_norm_grad_coefficients_kernel<<<grid_dim((warps + 7) / 8), 256, 0, stream>>>(a);
  return cuda::check_launch("group_norm_backward", "group_norm_grad_coefficients_kernel");
}

}  // namespace normkit::kernels
