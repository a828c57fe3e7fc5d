// BatchNorm formulas, written once for the kernels and the host engine: the per-channel finalize
// (saved statistics, running statistics), the apply coefficients of training and inference, and the
// backward's per-channel coefficients and dx. Per-channel values are computed in float64 and rounded once;
// dx is float32 with every operation rounded as written (the *_rn helpers), so host and device agree bitwise
// for the same sums.
#pragma once

#include <cmath>
#include <cstdint>

#include "math/host_device.hpp"
#include "math/layer_norm.hpp"
#include "math/moments.hpp"
#include "math/transform.hpp"
#include "normkit/batch_norm_types.hpp"

namespace normkit::math {

// rstd = 1 / sqrt(var + eps), 0 when var + eps == 0 (PyTorch's training rule: var = eps = 0 gives 0, not Inf).
NORMKIT_HD float batch_norm_rstd(double var, float eps) {
  const double d = var + static_cast<double>(eps);
  return d == 0.0 ? 0.0f : static_cast<float>(1.0 / sqrt(d));
}

// new = keep * running + take * batch; the variance taken is the biased one times unbiased_factor.
struct RunningUpdate {
  double keep, take;
  bool unbiased;
};

NORMKIT_HD RunningUpdate running_update_of(const BatchNormOptions& o) {
  if (o.running_stats == RunningStatsConvention::keras) return RunningUpdate{o.momentum, 1.0 - o.momentum, false};
  const double take = o.cumulative_average ? 1.0 / static_cast<double>(o.batches_tracked) : o.momentum;
  return RunningUpdate{1.0 - take, take, true};
}

struct ChannelFinalize {
  float mean, rstd;         // saved for the backward
  double running_var_take;  // the variance the running statistics take (biased or unbiased)
  double batch_mean;
  std::int64_t count;       // values in the channel (NaN and ±Inf included)
};

// A channel's summary -> its saved statistics. NaN anywhere in the channel -> NaN mean/rstd; ±Inf -> NaN
// (finalize_summary's rules with ddof 0).
NORMKIT_HD ChannelFinalize batch_norm_finalize_channel(const StatsSummary& s, float eps, bool unbiased) {
  const StatValues v = finalize_summary(s, 0, false, false);
  const double nan = NAN;
  const bool finite = v.count == s.count;  // no NaN or ±Inf
  const double mean = finite ? v.mean : nan;
  const double var = finite ? v.var : nan;
  ChannelFinalize f;
  f.mean = static_cast<float>(mean);
  f.rstd = batch_norm_rstd(var, eps);
  f.batch_mean = mean;
  f.count = v.count;
  const double n = static_cast<double>(v.count);
  f.running_var_take = unbiased ? var * n / (n - 1.0) : var;  // n == 1: 0 * 1 / 0 = NaN
  return f;
}

// A channel without values (every rank's batch empty) leaves its running statistics as they are (PyTorch's
// empty batch is a no-op); its saved mean and rstd are NaN.
NORMKIT_HD float running_updated(float running, double batch, const RunningUpdate& u, std::int64_t count) {
  return count == 0 ? running : static_cast<float>(u.keep * static_cast<double>(running) + u.take * batch);
}

// The fused apply's coefficients of one channel: center = mean, scale = rstd * gamma, offset = beta.
NORMKIT_HD Affine batch_norm_affine(float mean, double rstd, float gamma, float beta) {
  return Affine{static_cast<double>(mean), rstd * static_cast<double>(gamma), static_cast<double>(beta), static_cast<double>(NAN)};
}

// Inference's inverse standard deviation: 1 / sqrt(running_var + eps), Inf at 0 (as PyTorch's eval mode).
NORMKIT_HD double batch_norm_inference_rstd(float running_var, float eps) {
  return 1.0 / sqrt(static_cast<double>(running_var) + static_cast<double>(eps));
}

// Per-channel coefficients of dx = dy * scale - (x - mean) * proj - shift: BatchNorm's and GroupNorm's
// (math/group_norm.hpp) backward in one form, so that the same dx kernels serve both.
struct ChannelGradCoefficients {
  float mean, scale, proj, shift;
};

// BatchNorm: dx = (dy - sum_dy / n - (x - mean) * rstd² * sum_dy_xmu / n) * rstd * gamma, each term
// scaled by rstd * gamma in float64 before rounding (no division by gamma, which may be 0).
NORMKIT_HD ChannelGradCoefficients batch_norm_grad_coefficients(float mean, float rstd, float gamma, float sum_dy,
                                                                float sum_dy_xmu, double count) {
  const double r = static_cast<double>(rstd);
  const double scale = r * static_cast<double>(gamma);
  ChannelGradCoefficients c;
  c.mean = mean;
  c.scale = static_cast<float>(scale);
  c.proj = static_cast<float>(static_cast<double>(sum_dy_xmu) / count * r * r * scale);
  c.shift = static_cast<float>(static_cast<double>(sum_dy) / count * scale);
  return c;
}

NORMKIT_HD float channel_dx(float dy, float x, const ChannelGradCoefficients& c) {
  return sub_rn(sub_rn(mul_rn(dy, c.scale), mul_rn(sub_rn(x, c.mean), c.proj)), c.shift);
}

// Eval-mode backward (the running statistics normalize, as PyTorch's model.eval() with gradients):
// dgamma = Σ dy (x - running_mean) / sqrt(running_var + eps) (dbeta = Σ dy, dx = dy * gamma / sqrt(...)).
NORMKIT_HD float batch_norm_eval_dgamma(float sum_dy_xmu, float running_var, float eps) {
  return static_cast<float>(static_cast<double>(sum_dy_xmu) * batch_norm_inference_rstd(running_var, eps));
}

// dgamma = sum_dy_xmu * rstd (dbeta = sum_dy as it is).
NORMKIT_HD float batch_norm_dgamma(float sum_dy_xmu, float rstd) { return mul_rn(sum_dy_xmu, rstd); }

}  // namespace normkit::math
