// Independent float64 reference of BatchNorm (textbook formulas, two-pass statistics) for x laid out as
// [outer, C, inner] with values already rounded to their storage dtype.
#pragma once

#include <cstdint>
#include <vector>

#include "normkit/batch_norm_types.hpp"

namespace normkit::testing {

struct ChannelShape {
  std::int64_t outer = 1, channels = 1, inner = 1;
  std::int64_t n() const { return outer * inner; }
  std::int64_t numel() const { return outer * channels * inner; }
  std::int64_t channel_of(std::int64_t i) const { return (i / inner) % channels; }
};

struct BatchNormReference {
  std::vector<double> y, mean, var, rstd;  // var biased; rstd with eps rounded to float32
};

// Training forward (gamma/beta empty when absent).
BatchNormReference batch_norm_reference(const std::vector<double>& x, const ChannelShape& s, const std::vector<double>& gamma,
                                        const std::vector<double>& beta, double eps);

// Inference: (x - running_mean) * gamma / sqrt(running_var + eps) + beta.
std::vector<double> batch_norm_inference_reference(const std::vector<double>& x, const ChannelShape& s,
                                                   const std::vector<double>& gamma, const std::vector<double>& beta,
                                                   const std::vector<double>& running_mean,
                                                   const std::vector<double>& running_var, double eps);

// One training step's update of running statistics (in place) under the options' convention.
void running_stats_reference(std::vector<double>* running_mean, std::vector<double>* running_var,
                             const std::vector<double>& batch_mean, const std::vector<double>& batch_var_biased,
                             std::int64_t n, const BatchNormOptions& options);

struct BatchNormGradReference {
  std::vector<double> dx, dgamma, dbeta;
  // Error scales: per dx element rstd |gamma| (|dy| + mean|dy| + (|x̂| + e) mean|dy x̂|); per channel
  // Σ|dy| (|x̂| + e) and Σ|dy|, e = (|x| + |mean|) rstd.
  std::vector<double> dx_scale, dgamma_scale, dbeta_scale;
};

// From the reference's own statistics of x.
BatchNormGradReference batch_norm_grad_reference(const std::vector<double>& dy, const std::vector<double>& x,
                                                 const ChannelShape& s, const std::vector<double>& gamma, double eps);

}  // namespace normkit::testing
