#include "reference_group_norm.hpp"

#include <cmath>

namespace normkit::testing {
namespace {

double at_or(const std::vector<double>& v, std::int64_t c, double fallback) { return v.empty() ? fallback : v[c]; }

// f(channel, flat index) over the values of group g of sample n.
template <typename F>
void for_group(const GroupLayout& l, std::int64_t n, std::int64_t g, F f) {
  for (std::int64_t c = g * l.group_channels(); c < (g + 1) * l.group_channels(); ++c) {
    for (std::int64_t s = 0; s < l.s; ++s) f(c, l.index(n, c, s));
  }
}

}  // namespace

GroupNormReference group_norm_reference(const std::vector<double>& x, const GroupLayout& l, const std::vector<double>& gamma,
                                        const std::vector<double>& beta, double eps) {
  GroupNormReference r;
  r.y.assign(x.size(), 0.0);
  const double e = static_cast<float>(eps), m = static_cast<double>(l.values_per_group());
  for (std::int64_t n = 0; n < l.n; ++n) {
    for (std::int64_t g = 0; g < l.groups; ++g) {
      double sum = 0.0, ss = 0.0;
      for_group(l, n, g, [&](std::int64_t, std::int64_t i) { sum += x[i]; });
      const double mean = sum / m;
      for_group(l, n, g, [&](std::int64_t, std::int64_t i) { ss += (x[i] - mean) * (x[i] - mean); });
      const double var = ss / m, rstd = var + e == 0.0 ? 0.0 : 1.0 / std::sqrt(var + e);
      r.mean.push_back(mean);
      r.var.push_back(var);
      r.rstd.push_back(rstd);
      for_group(l, n, g, [&](std::int64_t c, std::int64_t i) { r.y[i] = (x[i] - mean) * rstd * at_or(gamma, c, 1.0) + at_or(beta, c, 0.0); });
    }
  }
  return r;
}

GroupNormGradReference group_norm_grad_reference(const std::vector<double>& dy, const std::vector<double>& x, const GroupLayout& l,
                                                 const std::vector<double>& gamma, double eps) {
  const GroupNormReference f = group_norm_reference(x, l, gamma, {}, eps);
  GroupNormGradReference r;
  r.dx.assign(x.size(), 0.0);
  r.dx_scale.assign(x.size(), 0.0);
  r.dgamma.assign(l.c, 0.0);
  r.dbeta.assign(l.c, 0.0);
  r.dgamma_scale.assign(l.c, 0.0);
  r.dbeta_scale.assign(l.c, 0.0);
  const double m = static_cast<double>(l.values_per_group());
  for (std::int64_t n = 0; n < l.n; ++n) {
    for (std::int64_t g = 0; g < l.groups; ++g) {
      const double mean = f.mean[n * l.groups + g], rstd = f.rstd[n * l.groups + g];
      // x̂ = (x - mean) rstd, g = gamma dy: dx = rstd (g - mean(g) - x̂ mean(g x̂)).
      double mean_g = 0.0, mean_gx = 0.0, abs_g = 0.0, abs_gx = 0.0;
      for_group(l, n, g, [&](std::int64_t c, std::int64_t i) {
        const double xhat = (x[i] - mean) * rstd, gd = at_or(gamma, c, 1.0) * dy[i];
        const double err = (std::fabs(x[i]) + std::fabs(mean)) * rstd;
        mean_g += gd;
        mean_gx += gd * xhat;
        abs_g += std::fabs(gd);
        abs_gx += std::fabs(gd) * (std::fabs(xhat) + err);
        r.dgamma[c] += dy[i] * xhat;
        r.dbeta[c] += dy[i];
        r.dgamma_scale[c] += std::fabs(dy[i]) * (std::fabs(xhat) + err);
        r.dbeta_scale[c] += std::fabs(dy[i]);
      });
      mean_g /= m;
      mean_gx /= m;
      abs_g /= m;
      abs_gx /= m;
      for_group(l, n, g, [&](std::int64_t c, std::int64_t i) {
        const double xhat = (x[i] - mean) * rstd, gd = at_or(gamma, c, 1.0) * dy[i];
        const double err = (std::fabs(x[i]) + std::fabs(mean)) * rstd;
        r.dx[i] = rstd * (gd - mean_g - xhat * mean_gx);
        r.dx_scale[i] = rstd * (std::fabs(gd) + abs_g + (std::fabs(xhat) + err) * abs_gx);
      });
    }
  }
  return r;
}

}  // namespace normkit::testing
