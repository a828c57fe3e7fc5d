// Per-sample Lp normalization rules (scikit-learn Normalizer, keras.utils.normalize), written once for
// the host engine, the one-read kernel and the two-read path through the statistics engine.
//   * The norm accumulates in float64, so Σx² of float32 data cannot overflow.
//   * NaN propagates into every norm (the Linf max is NaN-aware), so a row holding NaN becomes NaN, as
//     x / norm(x) does in numpy.
//   * A zero norm leaves the row unchanged (its reciprocal counts as 1), as scikit-learn does.
#pragma once

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

}  // namespace normkit::math
