// LayerNorm / RMSNorm formulas, written once for the kernels and the host engine.
//
// Every operation is rounded as written: the *_rn helpers are single IEEE float32 operations on both
// sides (the device intrinsics are never contracted into FMAs; the host file is compiled with
// -ffp-contract=off), so that the host engine reproduces the kernels' bits when it sums in their order
// (layer_norm_lane_order).
#pragma once

#include <cmath>
#include <cstdint>

#include "math/element_types.hpp"
#include "math/host_device.hpp"
#include "math/rounded_ops.hpp"
#include "normkit/layer_norm_types.hpp"

namespace normkit::math {

// A value rounded to storage type T and widened back (CastMode::input_dtype; exact for float).
template <typename T>
NORMKIT_HD float round_to(float v) {
  if constexpr (sizeof(T) == 4) {
    return v;
  } else {
    T stored;
    store_as(&stored, v);
    return to_acc<float>(stored);
  }
}

// The pre-norm block's residual stream: h = x + residual added in float32, rounded to the stream's dtype T
// (x's), as a float.
template <typename T>
NORMKIT_HD float row_norm_residual_sum(float x, float residual) { return round_to<T>(add_rn(x, residual)); }

// The effective weight of a column: gamma (+ 1 with the Gemma offset), 1 without gamma.
NORMKIT_HD float row_norm_weight(bool has_gamma, float gamma, bool gamma_offset) {
  if (!has_gamma) return 1.0f;
  return gamma_offset ? add_rn(1.0f, gamma) : gamma;
}

// 1 / sqrt(second moment + eps), correctly rounded at each step.
NORMKIT_HD float row_norm_rstd(float second_moment, float eps) { return div_rn(1.0f, sqrt_rn(add_rn(second_moment, eps))); }

// x̂ of one value. RMSNorm passes mean = 0: x - 0 is x exactly (signed zeros, NaN and Inf included), so
// both kinds share one formula without a branch a value.
NORMKIT_HD float row_norm_xhat(float x, float mean, float rstd) { return mul_rn(sub_rn(x, mean), rstd); }

// x̂ as it meets gamma: rounded to x's storage type T first with CastMode::input_dtype (kRound).
template <typename T, bool kRound>
NORMKIT_HD float row_norm_cast_xhat(float xhat) {
  if constexpr (kRound) {
    return round_to<T>(xhat);
  } else {
    return xhat;
  }
}

// y before its final rounding: x̂ * w + beta, beta = 0 when absent (adding 0 changes nothing but a -0 result,
// which becomes +0: the price of no branch a value).
NORMKIT_HD float row_norm_output(float xhat, float weight, float beta) { return add_rn(mul_rn(xhat, weight), beta); }

// 1 / n rounded to float: a row's means are its sums times it (a multiplication, not a division a row).
NORMKIT_HD float row_norm_inverse_count(std::int64_t n) { return div_rn(1.0f, static_cast<float>(n)); }

// The mean of a row from the sum of x - shift (shift: the row's first value): a constant row's mean is its
// value exactly, so its variance is exactly 0 (Σx times fl(1/n) was not: 7 x 1.875 gave 1.8750001).
NORMKIT_HD float row_norm_shifted_mean(float shift, float shifted_sum, float inv_n) { return add_rn(shift, mul_rn(shifted_sum, inv_n)); }

// Mean and variance of a row from the shifted sums of the long-row path (s1 = Σ(x - shift),
// s2 = Σ(x - shift)²; shift is the row's first value, so the cancellation is that of the data's spread).
NORMKIT_HD void row_norm_shifted_moments(float shift, float s1, float s2, float inv_n, float* mean, float* var) {
  const float d = mul_rn(s1, inv_n);
  *mean = add_rn(shift, d);
  const float v = mul_rn(sub_rn(s2, mul_rn(s1, d)), inv_n);
  *var = v > 0.0f ? v : (v == v ? 0.0f : v);  // (rounding may leave a tiny negative; NaN stays)
}

// dx of a row: rstd * (g - mean(g) - x̂ * mean(g x̂)), g = w * dy, as rstd * g - a - x̂ * b with the row's
// a = rstd * mean(g) (0 for RMSNorm) and b = rstd * mean(g x̂): four operations a value instead of five.
struct RowNormDxCoefficients {
  float a, b;
};
NORMKIT_HD RowNormDxCoefficients row_norm_dx_coefficients(float mean_g, float mean_gx, float rstd) {
  return RowNormDxCoefficients{mul_rn(rstd, mean_g), mul_rn(rstd, mean_gx)};
}
NORMKIT_HD float row_norm_dx(float g, float xhat, RowNormDxCoefficients c, float rstd) {
  return sub_rn(sub_rn(mul_rn(rstd, g), c.a), mul_rn(xhat, c.b));
}

// The order in which the kernels combine the per-thread sums of a row, for the host to reproduce: `threads`
// per-thread values (a power of two) are combined by the warp butterfly (lane l adds lane l ^ s for
// s = min(threads, 32) / 2, ..., 1; every lane ends with lane 0's bits, the addition being commutative),
// then the warps' results in warp order. `lanes` is overwritten.
inline float layer_norm_lane_order(float* lanes, int threads) {
  const int width = threads < 32 ? threads : 32;
  float total = 0.0f;
  for (int warp = 0; warp * width < threads; ++warp) {
    float* w = lanes + warp * width;
    for (int s = width / 2; s > 0; s /= 2) {
      for (int l = 0; l < s; ++l) w[l] = add_rn(w[l], w[l + s]);
    }
    total = warp == 0 ? w[0] : add_rn(total, w[0]);
  }
  return total;
}

}  // namespace normkit::math
