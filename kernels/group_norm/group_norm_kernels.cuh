// GroupNorm's own kernels, the two per-(sample, group) steps between the shared ones: its statistics come
// from the statistics engine, its apply is the fused apply, its backward sums and dx are BatchNorm's channel
// kernels (kernels/batch_norm) over a sample axis.
//   group_norm_finalize_kernel           warp per (sample, group): its summaries merged, its saved mean and
//                                        rstd, and the fused apply's coefficients of its channels
//   group_norm_grad_coefficients_kernel  warp per (sample, group): dx's coefficients of its channels from
//                                        the per-(sample, channel) sums; then warp per channel: dgamma, dbeta
#pragma once

#include <cstdint>

#include "math/group_norm.hpp"
#include "math/host_device.hpp"
#include "normkit/stats_types.hpp"

namespace normkit::kernels {

struct GroupFinalizeArgs {
  const StatsSummary* summaries;     // summaries_per_group a (sample, group), in order
  std::int64_t summaries_per_group;  // 1 (a group's own), or group_channels (a channel's each)
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

// What absent parameters read: gamma 1, beta 0.
__device__ const float kUnitAffine[2] = {1.0f, 0.0f};

// A summary loaded field by field with its own types (a 16-byte word load was repacked into the fields
// right after it, a use that waits for it, modelled), and settle(): waits here for a summary (and the
// parameters) loaded just before, in one round trip (the compiler otherwise places each load next to its
// first use in the merge: 11 round trips a warp where 3 do, modelled).
__device__ __forceinline__ StatsSummary load_summary_fields(const StatsSummary* p) {
  StatsSummary s;
  s.count = __ldg(&p->count);
  s.nan_count = __ldg(&p->nan_count);
  s.posinf_count = __ldg(&p->posinf_count);
  s.neginf_count = __ldg(&p->neginf_count);
  s.nonzero_count = __ldg(&p->nonzero_count);
  s.mean = __ldg(&p->mean);
  s.m2 = __ldg(&p->m2);
  s.min = __ldg(&p->min);
  s.max = __ldg(&p->max);
  s.abs_sum = __ldg(&p->abs_sum);
  return s;
}

__device__ __forceinline__ void settle(const StatsSummary& s, float a = 0.0f, float b = 0.0f) {
  asm volatile("" ::"l"(s.count), "l"(s.nan_count), "l"(s.posinf_count), "l"(s.neginf_count), "l"(s.nonzero_count), "d"(s.mean),
               "d"(s.m2), "d"(s.min), "d"(s.max), "d"(s.abs_sum), "f"(a), "f"(b));
}

__device__ __forceinline__ StatsSummary load_summary(const StatsSummary* p) {
  const StatsSummary s = load_summary_fields(p);
  settle(s);
  return s;
}

// A state's fields, each through `shuffle` (a warp shuffle of one value).
template <typename Shuffle>
__device__ __forceinline__ math::MomentState<double> shuffled(const math::MomentState<double>& s, Shuffle shuffle) {
  math::MomentState<double> o;
  o.count = shuffle(s.count);
  o.nan_count = shuffle(s.nan_count);
  o.posinf_count = shuffle(s.posinf_count);
  o.neginf_count = shuffle(s.neginf_count);
  o.nonzero_count = shuffle(s.nonzero_count);
  o.mean = shuffle(s.mean);
  o.m2 = shuffle(s.m2);
  o.shift = shuffle(s.shift);
  o.min = shuffle(s.min);
  o.max = shuffle(s.max);
  o.abs_sum = shuffle(s.abs_sum);
  return o;
}

// Warp per (sample, group): its summaries merged (math::group_summary_lane_state, then
// math::group_tree_merge), finalized, its saved statistics written by lane 0 and its channels' coefficients
// by the lanes.
__global__ void __launch_bounds__(256) group_norm_finalize_kernel(GroupFinalizeArgs a) {
  const int warp_in_block = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t group = static_cast<std::int64_t>(blockIdx.x) * 8 + warp_in_block;  // n * groups + g
  if (group >= a.shape.samples * a.shape.groups()) return;  // (whole warps)
  const std::int64_t cg = a.shape.group_channels, first = group * cg;  // (n * C + g * cg)
  const std::int64_t c0 = first % a.shape.channels;
  // The lane's first summary and channel parameters, loaded without a branch (clamped indices; absent gamma
  // or beta read 1 or 0 from kUnitAffine): one round trip for all, where branches between them made six
  // (4.8 us for 12 x 320 x 64 x 64, modelled).
  const std::int64_t spg = a.summaries_per_group;
  const StatsSummary* summaries = a.summaries + group * spg;
  // (the pointers chosen before the first load: a branch while loads are in flight waits for them)
  const std::int64_t j0 = lane < cg ? lane : 0;
  const float* gamma = a.gamma ? a.gamma + c0 : &kUnitAffine[0];
  const float* beta = a.beta ? a.beta + c0 : &kUnitAffine[1];
  const std::int64_t gamma_stride = a.gamma ? 1 : 0, beta_stride = a.beta ? 1 : 0;
  const StatsSummary own = load_summary_fields(summaries + (lane < spg ? lane : 0));
  const float gamma0 = gamma[j0 * gamma_stride], beta0 = beta[j0 * beta_stride];
  settle(own, gamma0, beta0);
  // One summary a group (channels first): every lane has it (the tree would give it back unchanged).
  // Several: math::group_tree_merge by shuffles, lane 0's result for all (a lane-order merge by every lane
  // was 21 us of issue for 102 x 16 x 16 x 1280, modelled).
  math::MomentState<double> total = math::from_summary(own);  // (spg == 1: every lane loaded summary 0)
  if (spg > 1) {
    total = math::group_summary_lane_state(lane, spg, own, [&](std::int64_t j) { return load_summary(summaries + j); });
    for (int offset = math::kGroupGradLanes / 2; offset > 0; offset /= 2) {
      math::merge(total, shuffled(total, [&](auto v) { return __shfl_xor_sync(0xffffffffu, v, offset); }));
    }
    total = shuffled(total, [](auto v) { return __shfl_sync(0xffffffffu, v, 0); });
  }
  const math::ChannelFinalize f = math::batch_norm_finalize_channel(math::to_summary(total), a.eps, false);
  for (std::int64_t j = lane; j < cg; j += 32) {
    const float gamma_j = j == lane ? gamma0 : gamma[j * gamma_stride];
    const float beta_j = j == lane ? beta0 : beta[j * beta_stride];
    const math::Affine q = math::batch_norm_affine(f.mean, static_cast<double>(f.rstd), gamma_j, beta_j);
    a.center[first + j] = q.center;
    a.scale[first + j] = q.scale;
    a.offset[first + j] = q.offset;
  }
  if (lane == 0) {
    if (a.saved_mean) a.saved_mean[group] = f.mean;
    if (a.saved_rstd) a.saved_rstd[group] = f.rstd;
  }
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
