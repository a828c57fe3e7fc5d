// Per-sample Lp normalization rules (scikit-learn Normalizer, keras.utils.normalize), written once for
// the host engine, the one-read kernel and the two-read path through the statistics engine.
//   * The norm accumulates in float64, so Σx² of float32 data cannot overflow.
//   * NaN propagates into every norm (the Linf max is NaN-aware), so a row holding NaN becomes NaN, as
//     x / norm(x) does in numpy.
//   * A zero norm leaves the row unchanged (its reciprocal counts as 1), as scikit-learn does.
//   * Rows of subnormal float32 or bfloat16 values (norm below 1 / FLT_MAX) are scaled exactly as others:
//     their 1 / norm is applied as two float factors (lp_row_scale).
#pragma once

#include "math/element_types.hpp"
#include "math/host_device.hpp"
#include "math/moments.hpp"
#include "normkit/normalize_types.hpp"

namespace normkit::math {

// max(acc, a) in which a NaN on either side wins.
NORMKIT_HD double nan_aware_max(double acc, double a) { return (a > acc || a != a) ? a : acc; }

// Folds one value into a running norm accumulator (start at 0).
NORMKIT_HD double lp_accumulate(LpNorm p, double acc, double v) {
  const double a = v < 0.0 ? -v : v;
  if (p == LpNorm::l1) return acc + a;
  if (p == LpNorm::l2) return acc + v * v;
  return nan_aware_max(acc, a);
}

// Combines two partial accumulators (lanes of a warp).
NORMKIT_HD double lp_combine(LpNorm p, double a, double b) { return p == LpNorm::linf ? nan_aware_max(a, b) : a + b; }

// The norm of a finished accumulator.
NORMKIT_HD double lp_norm(LpNorm p, double acc) { return p == LpNorm::l2 ? sqrt(acc) : acc; }

// The norm from a row's statistics (the two-read path).
NORMKIT_HD double lp_norm(LpNorm p, const StatValues& v) { return p == LpNorm::l1 ? v.l1 : (p == LpNorm::l2 ? v.l2 : v.linf); }

// The scale a row is multiplied by: 1 / norm, 1 for a zero norm (the row stays zero), NaN for a NaN norm.
NORMKIT_HD double lp_scale(double norm) { return norm > 0.0 ? 1.0 / norm : (norm == 0.0 ? 1.0 : norm); }

// 1 / sqrt(a) for a normal positive a: CUDA's rsqrt on the device (within 1 ulp of double; modelled ~40
// issue cycles against 66 for sqrt.rn then rcp.rn), a division on the host. The float scale rounded from
// it may differ by one ulp between the engines (and from the two-read path) in rare cases.
NORMKIT_HD double inverse_sqrt(double a) {
#if defined(__CUDA_ARCH__)
  return rsqrt(a);
#else
  return 1.0 / sqrt(a);
#endif
}

// A finished accumulator's scale as Compute factors: y = (x * pre) * rest, pre = 1 unless 1 / norm is
// outside Compute's range. Float computations test the accumulator once for the common case (1 / norm a
// normal float: not zero, NaN, subnormal or huge); everything else takes lp_scale and split_scale.
template <typename Compute>
NORMKIT_HD ScaleSplit<Compute> lp_row_scale(LpNorm p, double acc) {
  if constexpr (sizeof(Compute) == 4) {
    const bool l2 = p == LpNorm::l2;
    // (1 / norm in [2^-126, 2^126]: norm in [2^-126, 2^126], Σx² in [2^-252, 2^252])
    const double lo = l2 ? 0x1p-252 : 0x1p-126, hi = l2 ? 0x1p252 : 0x1p126;
    if (acc >= lo && acc <= hi) return ScaleSplit<Compute>{Compute(1), static_cast<Compute>(l2 ? inverse_sqrt(acc) : 1.0 / acc)};
  }
  return split_scale<Compute>(lp_scale(lp_norm(p, acc)));
}

}  // namespace normkit::math
