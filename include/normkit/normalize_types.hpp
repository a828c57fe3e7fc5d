// Value types of the transforms API (normalize.hpp documents their semantics): methods, options and
// the coefficients of the fused apply. Host-only C++, no CUDA headers; the math, plan, kernel and host
// layers include this header, never the API or the Normalizer class.
#pragma once

#include <cstdint>
#include <string>

#include "normkit/stats_types.hpp"

namespace normkit {

enum class Method : std::uint8_t { zscore, minmax, maxabs, rescale, decimal, impute_mean };
enum class ZeroVariance : std::uint8_t { sklearn, keras };
enum class LpNorm : std::uint8_t { l1, l2, linf };

// "zscore", "minmax", "maxabs", "rescale", "decimal", "impute-mean".
const char* method_name(Method method) noexcept;
bool parse_method(const std::string& name, Method* method) noexcept;

struct NormalizerOptions {
  Method method = Method::zscore;
  ReduceAxes axes = ReduceAxes::of({0});  // reduced axes: per feature by default
  // zscore
  bool with_mean = true;
  bool with_std = true;
  ZeroVariance zero_variance = ZeroVariance::sklearn;
  double epsilon = 1e-7;  // ZeroVariance::keras
  // minmax
  double range_min = 0.0;
  double range_max = 1.0;
  bool clip = false;
  // rescale first (every method); scale must be finite and non-zero
  double scale = 1.0;
  double offset = 0.0;
  // fill NaN with the feature mean before the method
  bool impute_nan = false;
  // Fitting accumulates in float64 by default, as scikit-learn does for float32 data (statistics to ~1e-15).
  // Accumulation::automatic (float32 for 8/16/32-bit inputs, ~1e-6 relative) fits about 1.4x faster on
  // the host and much faster on GPUs with slow float64.
  Accumulation accumulation = Accumulation::float64;
  // The dtype of the fitted data. It decides scikit-learn's near-zero floor of min-max ranges and max|x|
  // (normalize.hpp). Normalizer::adapt sets it from its batches (the widest of them); callers of
  // compute_coefficients set it themselves.
  DType fitted_dtype = DType::float64;
};

// Per kept index coefficients of the apply (float64 arrays of n elements, in `space`).
struct AffineCoefficients {
  double* center = nullptr;
  double* scale = nullptr;
  double* offset = nullptr;
  double* fill = nullptr;  // NaN fill values; null: NaN stays NaN
  bool clip = false;       // clip y to [clip_min, clip_max]
  double clip_min = 0.0;
  double clip_max = 0.0;
};

}  // namespace normkit
