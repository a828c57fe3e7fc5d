// Independent float64 reference of LayerNorm / RMSNorm, forward and backward (textbook formulas, two-pass
// statistics), for rows x n values already rounded to their storage dtype.
#pragma once

#include <cstdint>
#include <vector>

#include "normkit/layer_norm_types.hpp"
#include "normkit/dtype.hpp"

namespace normkit::testing {

struct LayerNormReference {
  std::vector<double> y, mean, rstd;
};

// gamma/beta empty when absent. round_xhat_to: the dtype x̂ is rounded to with CastMode::input_dtype.
LayerNormReference layer_norm_reference(const std::vector<double>& x, std::int64_t rows, std::int64_t n,
                                        const std::vector<double>& gamma, const std::vector<double>& beta,
                                        const LayerNormOptions& options, DType x_dtype);

struct LayerNormGradReference {
  std::vector<double> dx, dgamma, dbeta;
  // Scales for tolerances: per dx element rstd * (|g| + |mean g| + (|x̂| + e) |mean g x̂|), per column
  // Σ|dy| (|x̂| + e) and Σ|dy|, e = (|x| + |mean|) rstd (x̂'s absolute error is e times the epsilon).
  std::vector<double> dx_scale, dgamma_scale, dbeta_scale;
};

// From the reference's own statistics of x (not the engine's saved ones).
LayerNormGradReference layer_norm_grad_reference(const std::vector<double>& dy, const std::vector<double>& x,
                                                 std::int64_t rows, std::int64_t n, const std::vector<double>& gamma,
                                                 const LayerNormOptions& options, DType x_dtype);

}  // namespace normkit::testing
