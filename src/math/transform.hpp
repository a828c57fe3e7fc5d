// The transforms' math, shared by the kernels and the host engine: coefficients from statistics, and the
// one apply formula y = (fill(x) - center) * scale + offset (+ clip).
#pragma once

#include <cmath>
#include <cstdint>

#include "math/element_types.hpp"
#include "math/host_device.hpp"
#include "normkit/normalize_types.hpp"

namespace normkit::math {

struct Affine {
  double center, scale, offset, fill;  // fill: NaN when not imputing
};

NORMKIT_HD double abs_value(double v) { return v < 0 ? -v : v; }

// 10^j for the integer j that decimal scaling uses: smallest j with m / 10^j < 1 (m > 0, finite).
NORMKIT_HD double decimal_divisor(double m) {
  int j = static_cast<int>(floor(log10(m))) + 1;
  // log10 may be off by one ulp around exact powers of ten: settle j by direct comparison.
  while (m / pow(10.0, j) >= 1.0) ++j;
  while (j > -400 && m / pow(10.0, j - 1) < 1.0) --j;
  return pow(10.0, j);
}

// scikit-learn's "near-zero scale" floor (_handle_zeros_in_scale): a min-max range or max|x| below 10 eps of
// the dtype scikit-learn holds the statistic in counts as zero (scale 1). That dtype is the data's for float32
// and float16, float64 for uint8 and float64; bfloat16 counts as float32 (NumPy has none: torch tensors reach
// scikit-learn through .float()).
NORMKIT_HD double near_zero_scale(DType fitted_dtype) {
  switch (fitted_dtype) {
    case DType::float32:
    case DType::bfloat16: return 10.0 * 1.1920928955078125e-07;  // 10 * 2^-23
    case DType::float16: return 10.0 * 9.765625e-04;             // 10 * 2^-10
    default: return 10.0 * 2.220446049250313e-16;                // 10 * 2^-52
  }
}

// scikit-learn's constant-feature test of StandardScaler (_is_constant_feature): the variance is within the
// rounding error of its float64 computation over n values, var <= n eps var + (n eps mean)^2, eps = 2^-52.
NORMKIT_HD bool is_constant_feature(double var, double mean, double n) {
  const double eps = 2.220446049250313e-16;
  const double drift = n * eps * mean;
  return var <= n * eps * var + drift * drift;
}

// A fit over data holding +-Inf has no meaningful statistics (scikit-learn raises "Input contains
// infinity"); only rescale, which fits nothing, accepts it.
NORMKIT_HD bool fit_has_infinity(const StatsSummary& s, const NormalizerOptions& o) {
  return o.method != Method::rescale && s.posinf_count + s.neginf_count > 0;
}

// Coefficients of one kept slice. `s` holds the statistics of the raw (not yet rescaled) values.
NORMKIT_HD Affine fit_affine(const StatsSummary& s, const NormalizerOptions& o) {
  const double nan = NAN;
  if (fit_has_infinity(s, o)) return Affine{nan, nan, nan, nan};  // y = NaN: the fit is rejected
  const std::int64_t n = s.count;  // finite values (no +-Inf past the check above)
  const bool impute = o.impute_nan || o.method == Method::impute_mean;
  Affine a{0.0, 1.0, 0.0, nan};
  const double mean = n > 0 ? s.mean : nan;
  if (impute) a.fill = n > 0 ? mean : 0.0;  // an all-NaN feature is filled with 0
  // Statistics of the rescaled values x' = x * o.scale + o.offset (imputed values count when imputing).
  const double mean_r = n > 0 ? mean * o.scale + o.offset : 0.0;
  const double count_for_var = static_cast<double>(impute ? n + s.nan_count : n);
  const double var_r = count_for_var > 0 ? s.m2 / count_for_var * (o.scale * o.scale) : 0.0;
  const double std_r = sqrt(var_r);
  const double lo = n > 0 ? s.min * o.scale + o.offset : 0.0;
  const double hi = n > 0 ? s.max * o.scale + o.offset : 0.0;
  const double min_r = lo < hi ? lo : hi, max_r = lo < hi ? hi : lo;
  const double maxabs_r = abs_value(min_r) > abs_value(max_r) ? abs_value(min_r) : abs_value(max_r);
  const double zero_scale = near_zero_scale(o.fitted_dtype);
  // y = (x' - c) * k + off, with x' = x * scale + offset  =>  center = (c - offset) / scale, scale = scale * k.
  double c = 0.0, k = 1.0, off = 0.0;
  switch (o.method) {
    case Method::zscore: {
      c = o.with_mean ? mean_r : 0.0;
      double sd = 1.0;
      if (o.with_std) {
        if (o.zero_variance == ZeroVariance::keras) {
          sd = std_r > o.epsilon ? std_r : o.epsilon;
        } else {
          sd = is_constant_feature(var_r, mean_r, count_for_var) ? 1.0 : std_r;
        }
      }
      k = 1.0 / sd;
      break;
    }
    case Method::minmax: {
      const double range = max_r - min_r;
      c = min_r;
      k = (o.range_max - o.range_min) / (range < zero_scale ? 1.0 : range);
      off = o.range_min;
      break;
    }
    case Method::maxabs:
      k = 1.0 / (maxabs_r < zero_scale ? 1.0 : maxabs_r);
      break;
    case Method::decimal:
      k = maxabs_r > 0.0 && maxabs_r - maxabs_r == 0.0 ? 1.0 / decimal_divisor(maxabs_r) : 1.0;
      break;
    case Method::rescale:
    case Method::impute_mean:
      break;
  }
  if (o.method == Method::impute_mean) {
    a.center = 0.0;
    a.scale = 1.0;
    a.offset = 0.0;
    return a;
  }
  a.center = (c - o.offset) / o.scale;
  a.scale = o.scale * k;
  a.offset = off;
  return a;
}

// The inverse of an affine map: x = (y - offset) / scale + center. No fill: NaN stays NaN.
NORMKIT_HD Affine invert_affine(const Affine& a) { return Affine{a.offset, 1.0 / a.scale, a.center, NAN}; }

// Writes slice k's coefficients (of the method, or of its inverse) into the arrays of `out`.
NORMKIT_HD void write_coefficients(const StatsSummary& summary, const NormalizerOptions& options, bool inverse,
                                   const AffineCoefficients& out, std::int64_t k) {
  Affine a = fit_affine(summary, options);
  if (inverse) a = invert_affine(a);
  out.center[k] = a.center;
  out.scale[k] = a.scale;
  out.offset[k] = a.offset;
  if (out.fill) out.fill[k] = a.fill;
}

// y for one value. Compute is float (float32/16-bit/uint8 inputs to non-float64 outputs) or double.
// In float, the center is subtracted as a hi/lo pair so that x - center is exact when they are close, and
// a scale outside float's range is split (split_scale): y = (x * pre - center * pre) * rest + offset, with
// pre = 1 and x * pre - center_hi one fused multiply-add on the device for every scale that fits.
// The per-slice part (AffineColumn) is apart from what every slice shares (AffineFlags), so that kernels
// holding many columns keep few registers.
template <typename Compute>
struct AffineColumn {
  Compute pre, center_hi, center_lo, scale, offset, fill;  // center_hi + center_lo = center * pre, scale = rest
};

template <typename Compute>
struct AffineFlags {
  bool impute, clip;
  Compute clip_min, clip_max;
};

template <typename Compute>
NORMKIT_HD AffineColumn<Compute> prepare_column(const Affine& a) {
  AffineColumn<Compute> p;
  const ScaleSplit<Compute> split = split_scale<Compute>(a.scale);
  p.pre = split.pre;
  p.center_hi = static_cast<Compute>(a.center);
  p.center_lo = static_cast<Compute>(a.center - static_cast<double>(p.center_hi));
  p.center_hi *= split.pre;  // (a power of two: exact unless it overflows or underflows; two multiplies
                             // cost short rows less than a test)
  p.center_lo *= split.pre;
  p.scale = split.rest;
  p.offset = static_cast<Compute>(a.offset);
  p.fill = a.fill == a.fill ? static_cast<Compute>(a.fill) : Compute(0);
  return p;
}

template <typename Compute>
NORMKIT_HD AffineFlags<Compute> prepare_flags(bool impute, bool clip, double clip_min, double clip_max) {
  return AffineFlags<Compute>{impute, clip, static_cast<Compute>(clip_min), static_cast<Compute>(clip_max)};
}

// x * pre - c for a power of two pre (an exact product): written as a fused multiply-add on the device,
// where the PTX would otherwise hold a multiply and a subtraction (ptxas fuses them; the issue model
// counts both), and as the multiply and subtraction on the host, where fma may be a library call.
template <typename Compute>
NORMKIT_HD Compute scaled_difference(Compute x, Compute pre, Compute c) {
#if defined(__CUDA_ARCH__)
  return fma(x, pre, -c);
#else
  return x * pre - c;
#endif
}

template <typename Compute>
NORMKIT_HD Compute apply_affine_value(Compute x, const AffineColumn<Compute>& p, const AffineFlags<Compute>& f) {
  if (f.impute && x != x) x = p.fill;
  Compute y = (scaled_difference(x, p.pre, p.center_hi) - p.center_lo) * p.scale + p.offset;
  if (f.clip) y = y < f.clip_min ? f.clip_min : (y > f.clip_max ? f.clip_max : y);
  return y;
}

}  // namespace normkit::math
