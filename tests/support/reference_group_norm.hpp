// Independent float64 reference of GroupNorm (textbook formulas, two-pass statistics per (sample, group))
// for x as N samples of C channels of S values, channels first ([N, C, S]) or last ([N, S, C]), with
// values already rounded to their storage dtype.
#pragma once

#include <cstdint>
#include <vector>

namespace normkit::testing {

struct GroupLayout {
  std::int64_t n = 1, c = 1, s = 1, groups = 1;
  bool last = false;
  std::int64_t numel() const { return n * c * s; }
  std::int64_t group_channels() const { return c / groups; }
  std::int64_t values_per_group() const { return group_channels() * s; }
  std::int64_t index(std::int64_t sample, std::int64_t channel, std::int64_t spatial) const {
    return last ? (sample * s + spatial) * c + channel : (sample * c + channel) * s + spatial;
  }
};

struct GroupNormReference {
  std::vector<double> y, mean, var, rstd;  // mean, var (biased), rstd: N * G; rstd with eps rounded to float32
};

GroupNormReference group_norm_reference(const std::vector<double>& x, const GroupLayout& l, const std::vector<double>& gamma,
                                        const std::vector<double>& beta, double eps);

struct GroupNormGradReference {
  std::vector<double> dx, dgamma, dbeta;
  // Error scales: per dx element rstd (|gamma dy| + mean_g|gamma dy| + (|x̂| + e) mean_g(|gamma dy| (|x̂| + e)));
  // per channel Σ|dy| (|x̂| + e) and Σ|dy|; e = (|x| + |mean|) rstd.
  std::vector<double> dx_scale, dgamma_scale, dbeta_scale;
};

// From the reference's own statistics of x.
GroupNormGradReference group_norm_grad_reference(const std::vector<double>& dy, const std::vector<double>& x, const GroupLayout& l,
                                                 const std::vector<double>& gamma, double eps);

}  // namespace normkit::testing
