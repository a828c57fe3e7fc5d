#include "reference_batch_norm.hpp"

#include <cmath>

namespace normkit::testing {
namespace {

// Two-pass per-channel mean and biased variance.
void channel_moments(const std::vector<double>& x, const ChannelShape& s, std::vector<double>* mean, std::vector<double>* var) {
  mean->assign(s.channels, 0.0);
  var->assign(s.channels, 0.0);
  for (std::int64_t i = 0; i < s.numel(); ++i) (*mean)[s.channel_of(i)] += x[i];
  for (auto& m : *mean) m /= static_cast<double>(s.n());
  for (std::int64_t i = 0; i < s.numel(); ++i) {
    const double d = x[i] - (*mean)[s.channel_of(i)];
    (*var)[s.channel_of(i)] += d * d;
  }
  for (auto& v : *var) v /= static_cast<double>(s.n());
}

double at_or(const std::vector<double>& v, std::int64_t c, double fallback) { return v.empty() ? fallback : v[c]; }

}  // namespace

BatchNormReference batch_norm_reference(const std::vector<double>& x, const ChannelShape& s, const std::vector<double>& gamma,
                                        const std::vector<double>& beta, double eps) {
  BatchNormReference r;
  channel_moments(x, s, &r.mean, &r.var);
  const double e = static_cast<float>(eps);
  for (std::int64_t c = 0; c < s.channels; ++c) r.rstd.push_back(r.var[c] + e == 0.0 ? 0.0 : 1.0 / std::sqrt(r.var[c] + e));
  r.y.resize(x.size());
  for (std::int64_t i = 0; i < s.numel(); ++i) {
    const std::int64_t c = s.channel_of(i);
    r.y[i] = (x[i] - r.mean[c]) * r.rstd[c] * at_or(gamma, c, 1.0) + at_or(beta, c, 0.0);
  }
  return r;
}

std::vector<double> batch_norm_inference_reference(const std::vector<double>& x, const ChannelShape& s,
                                                   const std::vector<double>& gamma, const std::vector<double>& beta,
                                                   const std::vector<double>& running_mean,
                                                   const std::vector<double>& running_var, double eps) {
  std::vector<double> y(x.size());
  const double e = static_cast<float>(eps);
  for (std::int64_t i = 0; i < s.numel(); ++i) {
    const std::int64_t c = s.channel_of(i);
    y[i] = (x[i] - running_mean[c]) / std::sqrt(running_var[c] + e) * at_or(gamma, c, 1.0) + at_or(beta, c, 0.0);
  }
  return y;
}

void running_stats_reference(std::vector<double>* running_mean, std::vector<double>* running_var,
                             const std::vector<double>& batch_mean, const std::vector<double>& batch_var_biased,
                             std::int64_t n, const BatchNormOptions& o) {
  for (std::size_t c = 0; c < batch_mean.size(); ++c) {
    double& m = (*running_mean)[c];
    double& v = (*running_var)[c];
    if (o.running_stats == RunningStatsConvention::keras) {
      m = m * o.momentum + batch_mean[c] * (1.0 - o.momentum);
      v = v * o.momentum + batch_var_biased[c] * (1.0 - o.momentum);
    } else {
      const double w = o.cumulative_average ? 1.0 / static_cast<double>(o.batches_tracked) : o.momentum;
      const double unbiased = batch_var_biased[c] * static_cast<double>(n) / static_cast<double>(n - 1);
      m = (1.0 - w) * m + w * batch_mean[c];
      v = (1.0 - w) * v + w * unbiased;
    }
  }
}

BatchNormGradReference batch_norm_grad_reference(const std::vector<double>& dy, const std::vector<double>& x,
                                                 const ChannelShape& s, const std::vector<double>& gamma, double eps) {
  std::vector<double> mean, var;
  channel_moments(x, s, &mean, &var);
  const double e = static_cast<float>(eps);
  const double n = static_cast<double>(s.n());
  std::vector<double> rstd(s.channels), sum_dy(s.channels, 0.0), sum_dy_xhat(s.channels, 0.0), abs_dy(s.channels, 0.0),
      abs_dy_xhat(s.channels, 0.0);
  BatchNormGradReference r;
  r.dgamma_scale.assign(s.channels, 0.0);
  for (std::int64_t c = 0; c < s.channels; ++c) rstd[c] = 1.0 / std::sqrt(var[c] + e);
  for (std::int64_t i = 0; i < s.numel(); ++i) {
    const std::int64_t c = s.channel_of(i);
    const double xhat = (x[i] - mean[c]) * rstd[c];
    const double err = (std::fabs(x[i]) + std::fabs(mean[c])) * rstd[c];
    sum_dy[c] += dy[i];
    sum_dy_xhat[c] += dy[i] * xhat;
    abs_dy[c] += std::fabs(dy[i]);
    abs_dy_xhat[c] += std::fabs(dy[i] * xhat);
    r.dgamma_scale[c] += std::fabs(dy[i]) * (std::fabs(xhat) + err);
  }
  r.dx.resize(x.size());
  r.dx_scale.resize(x.size());
  for (std::int64_t i = 0; i < s.numel(); ++i) {
    const std::int64_t c = s.channel_of(i);
    const double g = at_or(gamma, c, 1.0);
    const double xhat = (x[i] - mean[c]) * rstd[c];
    const double err = (std::fabs(x[i]) + std::fabs(mean[c])) * rstd[c];
    r.dx[i] = rstd[c] * g * (dy[i] - sum_dy[c] / n - xhat * sum_dy_xhat[c] / n);
    r.dx_scale[i] = rstd[c] * std::fabs(g) * (std::fabs(dy[i]) + abs_dy[c] / n + (std::fabs(xhat) + err) * abs_dy_xhat[c] / n);
  }
  r.dgamma = sum_dy_xhat;
  r.dbeta = sum_dy;
  r.dbeta_scale = abs_dy;
  return r;
}

}  // namespace normkit::testing
