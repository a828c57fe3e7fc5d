// GroupNorm formulas, written once for the kernels and the host engine. A group's statistics are those of
// BatchNorm's finalize (math/batch_norm.hpp, biased variance); its backward has BatchNorm's dx form
// (ChannelGradCoefficients) with coefficients that mix the group's channels:
//   A = Σ_c gamma_c * sum_dy_c,   B = Σ_c gamma_c * sum_dy_xmu_c       (c over the group, M values)
//   dx = dy * rstd * gamma_c - (x - mean) * rstd³ * B / M - rstd * A / M
// Sums over a group's channels (and dgamma's over samples) run in a fixed order of kGroupGradLanes strided
// partials combined in lane order, which the kernels (a warp a group) and the host share; a group's
// summaries merge by a fixed xor tree over the lanes (group_tree_merge).
#pragma once

#include <cstdint>

#include "math/batch_norm.hpp"
#include "math/host_device.hpp"
#include "math/moments.hpp"

namespace normkit::math {

constexpr int kGroupGradLanes = 32;

// N samples of C channels in G = C / group_channels groups.
struct GroupShape {
  std::int64_t samples = 0, channels = 0, group_channels = 1;
  NORMKIT_HD std::int64_t groups() const { return channels / group_channels; }
};

// A group's statistics from `count` summaries (1 a group, or one a channel): lane `lane` merges summaries
// lane, lane + kGroupGradLanes, ... (Chan), then the lanes' states merge by group_tree_merge. One summary
// gives its own bits back.
// `first` is summary `lane` (read by the caller, which may load it early; unused when lane >= count), load(j)
// returns summary j.
template <typename Load>
NORMKIT_HD MomentState<double> group_summary_lane_state(int lane, std::int64_t count, const StatsSummary& first, Load load) {
  MomentState<double> s = empty_state<double>();
  if (lane < count) merge(s, from_summary(first));
  for (std::int64_t j = lane + kGroupGradLanes; j < count; j += kGroupGradLanes) merge(s, from_summary(load(j)));
  return s;
}

// The lanes' states merged by an xor tree: at offset 16, 8, 4, 2, 1 lane l merges lane (l ^ offset)'s state
// into its own; the result is lane 0's. (The kernels run it with shuffles; this is the host's replay.)
NORMKIT_HD MomentState<double> group_tree_merge(MomentState<double> (&lanes)[kGroupGradLanes]) {
  for (int offset = kGroupGradLanes / 2; offset > 0; offset /= 2) {
    MomentState<double> before[kGroupGradLanes];
    for (int l = 0; l < kGroupGradLanes; ++l) before[l] = lanes[l];
    for (int l = 0; l < kGroupGradLanes; ++l) merge(lanes[l], before[l ^ offset]);
  }
  return lanes[0];
}

// Loads of the strided sums below come kGroupGradBatch at a time, all issued before the first is added (one
// round trip a batch instead of one an element); the additions keep the element order.
constexpr int kGroupGradBatch = 4;

// Lane `lane`'s share of A and B: channels lane, lane + kGroupGradLanes, ... of the group, in float64.
NORMKIT_HD void group_grad_lane_sums(int lane, const float* gamma, const float* sum_dy, const float* sum_dy_xmu,
                                     std::int64_t group_channels, double* a, double* b) {
  double sa = 0.0, sb = 0.0;
  for (std::int64_t c0 = lane; c0 < group_channels; c0 += kGroupGradBatch * kGroupGradLanes) {
    float g[kGroupGradBatch], d[kGroupGradBatch], x[kGroupGradBatch];
    NORMKIT_UNROLL
    for (int k = 0; k < kGroupGradBatch; ++k) {
      const std::int64_t c = c0 + k * kGroupGradLanes < group_channels ? c0 + k * kGroupGradLanes : c0;  // (clamped: no branch)
      g[k] = gamma ? gamma[c] : 1.0f;
      d[k] = sum_dy[c];
      x[k] = sum_dy_xmu[c];
    }
    NORMKIT_UNROLL
    for (int k = 0; k < kGroupGradBatch; ++k) {
      if (c0 + k * kGroupGradLanes < group_channels) {
        sa += static_cast<double>(g[k]) * static_cast<double>(d[k]);
        sb += static_cast<double>(g[k]) * static_cast<double>(x[k]);
      }
    }
  }
  *a = sa;
  *b = sb;
}

// The group-wide terms of dx from A and B (the lanes' shares summed in lane order) over `count` values.
struct GroupGradTerms {
  float mean;
  double rstd;
  float proj, shift;
};

NORMKIT_HD GroupGradTerms group_grad_terms(float mean, float rstd, double a, double b, double count) {
  const double r = static_cast<double>(rstd);
  return GroupGradTerms{mean, r, static_cast<float>(r * r * r * b / count), static_cast<float>(r * a / count)};
}

NORMKIT_HD ChannelGradCoefficients group_channel_coefficients(const GroupGradTerms& t, float gamma) {
  return ChannelGradCoefficients{t.mean, static_cast<float>(t.rstd * static_cast<double>(gamma)), t.proj, t.shift};
}

// Lane `lane`'s share of channel c's dgamma = Σ_n rstd[n, g] * sum_dy_xmu[n, c] and dbeta = Σ_n sum_dy[n, c]:
// samples lane, lane + kGroupGradLanes, ... (float64).
NORMKIT_HD void group_param_lane_sums(int lane, std::int64_t c, std::int64_t samples, std::int64_t channels,
                                      std::int64_t group_channels, const float* rstd, const float* sum_dy,
                                      const float* sum_dy_xmu, double* dgamma, double* dbeta) {
  const std::int64_t groups = channels / group_channels, g = c / group_channels;
  double sg = 0.0, sb = 0.0;
  for (std::int64_t n0 = lane; n0 < samples; n0 += kGroupGradBatch * kGroupGradLanes) {
    float r[kGroupGradBatch], x[kGroupGradBatch], d[kGroupGradBatch];
    NORMKIT_UNROLL
    for (int k = 0; k < kGroupGradBatch; ++k) {
      const std::int64_t n = n0 + k * kGroupGradLanes < samples ? n0 + k * kGroupGradLanes : n0;  // (clamped: no branch)
      r[k] = rstd[n * groups + g];
      x[k] = sum_dy_xmu[n * channels + c];
      d[k] = sum_dy[n * channels + c];
    }
    NORMKIT_UNROLL
    for (int k = 0; k < kGroupGradBatch; ++k) {
      if (n0 + k * kGroupGradLanes < samples) {
        sg += static_cast<double>(r[k]) * static_cast<double>(x[k]);
        sb += static_cast<double>(d[k]);
      }
    }
  }
  *dgamma = sg;
  *dbeta = sb;
}

}  // namespace normkit::math
