#include "reference_layer_norm.hpp"

#include <cmath>

#include "test_data.hpp"

namespace normkit::testing {
namespace {

// A double rounded to a storage dtype (through float, as the library rounds float results).
double round_to_dtype(double v, DType dtype) { return encode({v}, dtype).stored[0]; }

struct RowStats {
  double mean, rstd;
};

RowStats row_stats(const double* x, std::int64_t n, const LayerNormOptions& o) {
  const double eps = static_cast<float>(o.eps);
  if (o.kind == RowNorm::rms_norm) {
    double sq = 0;
    for (std::int64_t i = 0; i < n; ++i) sq += x[i] * x[i];
    return {0.0, 1.0 / std::sqrt(sq / n + eps)};
  }
  double sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = sum / n;
  double sq = 0;
  for (std::int64_t i = 0; i < n; ++i) sq += (x[i] - mean) * (x[i] - mean);
  return {mean, 1.0 / std::sqrt(sq / n + eps)};
}

double weight(const std::vector<double>& gamma, std::int64_t i, const LayerNormOptions& o) {
  if (gamma.empty()) return 1.0;
  return o.gamma_offset ? 1.0 + gamma[i] : gamma[i];
}

}  // namespace

LayerNormReference layer_norm_reference(const std::vector<double>& x, std::int64_t rows, std::int64_t n,
                                        const std::vector<double>& gamma, const std::vector<double>& beta,
                                        const LayerNormOptions& o, DType x_dtype) {
  LayerNormReference ref;
  ref.y.resize(x.size());
  for (std::int64_t r = 0; r < rows; ++r) {
    const double* xr = x.data() + r * n;
    const RowStats s = row_stats(xr, n, o);
    ref.mean.push_back(s.mean);
    ref.rstd.push_back(s.rstd);
    for (std::int64_t i = 0; i < n; ++i) {
      double xhat = (xr[i] - s.mean) * s.rstd;
      if (o.cast_mode == CastMode::input_dtype) xhat = round_to_dtype(xhat, x_dtype);
      ref.y[r * n + i] = xhat * weight(gamma, i, o) + (beta.empty() ? 0.0 : beta[i]);
    }
  }
  return ref;
}

LayerNormGradReference layer_norm_grad_reference(const std::vector<double>& dy, const std::vector<double>& x,
                                                 std::int64_t rows, std::int64_t n, const std::vector<double>& gamma,
                                                 const LayerNormOptions& o, DType x_dtype) {
  LayerNormGradReference ref;
  ref.dx.resize(x.size());
  ref.dx_scale.resize(x.size());
  ref.dgamma.assign(n, 0.0);
  ref.dbeta.assign(n, 0.0);
  ref.dgamma_scale.assign(n, 0.0);
  ref.dbeta_scale.assign(n, 0.0);
  const bool centered = o.kind == RowNorm::layer_norm;
  for (std::int64_t r = 0; r < rows; ++r) {
    const double* xr = x.data() + r * n;
    const double* dyr = dy.data() + r * n;
    const RowStats s = row_stats(xr, n, o);
    double sum_g = 0, sum_gx = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const double g = weight(gamma, i, o) * dyr[i];
      sum_g += g;
      sum_gx += g * (xr[i] - s.mean) * s.rstd;
    }
    const double mean_g = centered ? sum_g / n : 0.0, mean_gx = sum_gx / n;
    for (std::int64_t i = 0; i < n; ++i) {
      const double xhat = (xr[i] - s.mean) * s.rstd;
      const double g = weight(gamma, i, o) * dyr[i];
      // (x̂ carries an absolute error of about the operands' size, (|x| + |mean|) * rstd, times the float
      // epsilon: near x = mean it is not relative to x̂)
      const double xhat_spread = (std::fabs(xr[i]) + std::fabs(s.mean)) * s.rstd;
      ref.dx[r * n + i] = s.rstd * (g - mean_g - xhat * mean_gx);
      ref.dx_scale[r * n + i] = s.rstd * (std::fabs(g) + std::fabs(mean_g) + (std::fabs(xhat) + xhat_spread) * std::fabs(mean_gx));
      const double xhat_c = o.cast_mode == CastMode::input_dtype ? round_to_dtype(xhat, x_dtype) : xhat;
      ref.dgamma[i] += dyr[i] * xhat_c;
      ref.dgamma_scale[i] += std::fabs(dyr[i]) * (std::fabs(xhat_c) + xhat_spread);
      ref.dbeta[i] += dyr[i];
      ref.dbeta_scale[i] += std::fabs(dyr[i]);
    }
  }
  return ref;
}

}  // namespace normkit::testing
