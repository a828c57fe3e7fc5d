// GroupNorm's own kernels, the two per-(sample, group) steps between the shared ones: its statistics come
// from the statistics engine, its apply is the fused apply, its backward sums and dx are BatchNorm's channel
// kernels (kernels/batch_norm) over a sample axis.
//   group_norm_finalize_kernel           thread per (sample, channel): the group's saved mean and rstd
//                                        (by the group's first channel) and the fused apply's coefficients
//   group_norm_grad_coefficients_kernel  warp per (sample, group): dx's coefficients of its channels from
//                                        the per-(sample, channel) sums; then warp per channel: dgamma, dbeta
#pragma once

#include <cstdint>

#include "math/group_norm.hpp"
#include "math/host_device.hpp"
#include "normkit/stats_types.hpp"

namespace normkit::kernels {

struct GroupFinalizeArgs {
  const StatsSummary* summaries;  // samples * groups
  math::GroupShape shape;
  float eps;
  const float* gamma;  // may be null (1)
  const float* beta;   // may be null (0)
  float* saved_mean;   // may be null
  float* saved_rstd;   // may be null
  double* center;
  double* scale;
  double* offset;
};

__global__ void __launch_bounds__(256) group_norm_finalize_kernel(GroupFinalizeArgs a) {
  const std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= a.shape.samples * a.shape.channels) return;
  const std::int64_t n = k / a.shape.channels, c = k - n * a.shape.channels;
  const std::int64_t group = n * a.shape.groups() + c / a.shape.group_channels;
  // Every load before the first store (the arrays may alias as far as the compiler knows).
  const StatsSummary summary = a.summaries[group];
  const float gamma = a.gamma ? a.gamma[c] : 1.0f;
  const float beta = a.beta ? a.beta[c] : 0.0f;
  const math::ChannelFinalize f = math::batch_norm_finalize_channel(summary, a.eps, false);
  if (c % a.shape.group_channels == 0) {
    if (a.saved_mean) a.saved_mean[group] = f.mean;
    if (a.saved_rstd) a.saved_rstd[group] = f.rstd;
  }
  const math::Affine q = math::batch_norm_affine(f.mean, static_cast<double>(f.rstd), gamma, beta);
  a.center[k] = q.center;
  a.scale[k] = q.scale;
  a.offset[k] = q.offset;
}

struct GroupGradArgs {
  math::GroupShape shape;
  const float* mean;  // samples * groups
  const float* rstd;
  const float* gamma;  // channels; may be null (1)
  const float* sum_dy;      // samples * channels
  const float* sum_dy_xmu;
  double count;  // values a group: group_channels * spatial
  math::ChannelGradCoefficients* coefficients;  // samples * channels
  float* dgamma;  // may be null
  float* dbeta;   // may be null
};

// Warps [0, samples * groups): a (sample, group) each; the next `channels` warps: a channel each. A lane
// sums its strided share, the shares are summed in lane order (math/group_norm.hpp) by every lane alike.
__global__ void __launch_bounds__(256) group_norm_grad_coefficients_kernel(GroupGradArgs a) {
  __shared__ double lane_sums[8][2][math::kGroupGradLanes];
  const int warp_in_block = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t warp = static_cast<std::int64_t>(blockIdx.x) * 8 + warp_in_block;
  const math::GroupShape& s = a.shape;
  const std::int64_t group_warps = s.samples * s.groups();
  if (warp >= group_warps + s.channels) return;  // (whole warps: the __syncwarp below sees all 32 lanes)
  const bool group_role = warp < group_warps;
  std::int64_t first = 0, c = 0;  // the group's first flat channel; the channel
  double x = 0.0, y = 0.0;
  if (group_role) {
    const std::int64_t g = warp % s.groups();
    first = warp * s.group_channels;  // (n * groups + g) * group_channels == n * channels + g * group_channels
    math::group_grad_lane_sums(lane, a.gamma ? a.gamma + g * s.group_channels : nullptr, a.sum_dy + first, a.sum_dy_xmu + first,
                               s.group_channels, &x, &y);
  } else {
    c = warp - group_warps;
    math::group_param_lane_sums(lane, c, s.samples, s.channels, s.group_channels, a.rstd, a.sum_dy, a.sum_dy_xmu, &x, &y);
  }
  lane_sums[warp_in_block][0][lane] = x;
  lane_sums[warp_in_block][1][lane] = y;
  __syncwarp();
  double total_x = 0.0, total_y = 0.0;
  for (int l = 0; l < math::kGroupGradLanes; ++l) {
    total_x += lane_sums[warp_in_block][0][l];
    total_y += lane_sums[warp_in_block][1][l];
  }
  if (group_role) {
    const std::int64_t g = warp % s.groups();
    const math::GroupGradTerms t = math::group_grad_terms(a.mean[warp], a.rstd[warp], total_x, total_y, a.count);
    for (std::int64_t j = lane; j < s.group_channels; j += 32) {
      const float gamma = a.gamma ? a.gamma[g * s.group_channels + j] : 1.0f;
      a.coefficients[first + j] = math::group_channel_coefficients(t, gamma);
    }
  } else if (lane == 0) {
    if (a.dgamma) a.dgamma[c] = static_cast<float>(total_x);
    if (a.dbeta) a.dbeta[c] = static_cast<float>(total_y);
  }
}

}  // namespace normkit::kernels
