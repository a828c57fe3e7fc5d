// GroupNorm formulas, written once for the kernels and the host engine. A group's statistics are those of
// BatchNorm's finalize (math/batch_norm.hpp, biased variance); its backward has BatchNorm's dx form
// (ChannelGradCoefficients) with coefficients that mix the group's channels:
//   A = Σ_c gamma_c * sum_dy_c,   B = Σ_c gamma_c * sum_dy_xmu_c       (c over the group, M values)
//   dx = dy * rstd * gamma_c - (x - mean) * rstd³ * B / M - rstd * A / M
// Sums over a group's channels (and dgamma's over samples) run in a fixed order of kGroupGradLanes strided
// partials combined in lane order, which the kernels (a warp a group) and the host share.
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
// lane, lane + kGroupGradLanes, ... (Chan), then the lanes' states merge in lane order. One summary gives its
// own bits back.
// `first` is summary `lane` (read by the caller, which may load it early; unused when lane >= count), load(j)
// returns summary j.
template <typename Load>
NORMKIT_HD MomentState<double> group_summary_lane_state(int lane, std::int64_t count, const StatsSummary& first, Load load) {
  MomentState<double> s = empty_state<double>();
  if (lane < count) merge(s, from_summary(first));
  for (std::int64_t j = lane + kGroupGradLanes; j < count; j += kGroupGradLanes) merge(s, from_summary(load(j)));
  return s;
}

// Lane `lane`'s share of A and B: channels lane, lane + kGroupGradLanes, ... of the group, in float64.
NORMKIT_HD void group_grad_lane_sums(int lane, const float* gamma, const float* sum_dy, const float* sum_dy_xmu,
                                     std::int64_t group_channels, double* a, double* b) {
  double sa = 0.0, sb = 0.0;
  for (std::int64_t c = lane; c < group_channels; c += kGroupGradLanes) {
    const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
    sa += g * static_cast<double>(sum_dy[c]);
    sb += g * static_cast<double>(sum_dy_xmu[c]);
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
  for (std::int64_t n = lane; n < samples; n += kGroupGradLanes) {
    sg += static_cast<double>(rstd[n * groups + g]) * static_cast<double>(sum_dy_xmu[n * channels + c]);
    sb += static_cast<double>(sum_dy[n * channels + c]);
  }
  *dgamma = sg;
  *dbeta = sb;
}

}  // namespace normkit::math
