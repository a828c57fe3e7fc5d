#include "reference_transform.hpp"

#include <cmath>
#include <limits>

namespace normkit::testing {
namespace {

struct SliceFit {
  long double mean = 0, var = 0, min = 0, max = 0, maxabs = 0;
  std::int64_t n = 0, nan = 0, infinite = 0;
};

// scikit-learn's _handle_zeros_in_scale: scales below 10 * finfo(dtype).eps count as zero, with dtype the
// array dtype scikit-learn computes the statistic in (float32 and float16 stay, everything else is
// float64; bfloat16 reaches it as float32).
long double zero_scale_floor(DType fitted) {
  switch (fitted) {
    case DType::float32:
    case DType::bfloat16: return 10.0L * std::numeric_limits<float>::epsilon();
    case DType::float16: return 10.0L * std::ldexp(1.0L, -10);
    default: return 10.0L * std::numeric_limits<double>::epsilon();
  }
}

// scikit-learn's _is_constant_feature, with its float64 eps.
bool constant_feature(long double var, long double mean, std::int64_t n) {
  const long double eps = std::numeric_limits<double>::epsilon();
  return var <= n * eps * var + (n * mean * eps) * (n * mean * eps);
}

}  // namespace

std::vector<double> reference_transform(const std::vector<double>& values, const std::vector<std::int64_t>& shape,
                                        const std::vector<bool>& reduced, const NormalizerOptions& o) {
  const int ndim = static_cast<int>(shape.size());
  // Kept index of every element.
  std::vector<std::int64_t> kept_of(values.size());
  std::int64_t kept_numel = 1;
  for (int d = 0; d < ndim; ++d) if (!reduced[d]) kept_numel *= shape[d];
  std::vector<std::int64_t> index(static_cast<std::size_t>(ndim), 0);
  for (std::size_t flat = 0; flat < values.size(); ++flat) {
    std::int64_t k = 0;
    for (int d = 0; d < ndim; ++d) if (!reduced[d]) k = k * shape[d] + index[static_cast<std::size_t>(d)];
    kept_of[flat] = k;
    for (int d = ndim - 1; d >= 0; --d) {
      if (++index[static_cast<std::size_t>(d)] < shape[d]) break;
      index[static_cast<std::size_t>(d)] = 0;
    }
  }
  const bool impute = o.impute_nan || o.method == Method::impute_mean;
  // Fill values: NaN-ignoring mean of the raw values, 0 for an all-NaN slice.
  std::vector<SliceFit> raw(static_cast<std::size_t>(kept_numel));
  for (std::size_t i = 0; i < values.size(); ++i) {
    SliceFit& f = raw[static_cast<std::size_t>(kept_of[i])];
    if (std::isnan(values[i])) ++f.nan;
    else { f.mean += values[i]; ++f.n; }
  }
  std::vector<long double> fill(raw.size());
  for (std::size_t k = 0; k < raw.size(); ++k) fill[k] = raw[k].n ? raw[k].mean / raw[k].n : 0.0L;
  // The values the method is fitted on and applied to: imputed (if asked), then rescaled.
  std::vector<long double> x(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    long double v = values[i];
    if (impute && std::isnan(values[i])) v = fill[static_cast<std::size_t>(kept_of[i])];
    x[i] = std::isnan(values[i]) && !impute ? v : v * o.scale + o.offset;
  }
  std::vector<SliceFit> fit(raw.size());
  for (auto& f : fit) {
    f.min = std::numeric_limits<long double>::infinity();
    f.max = -f.min;
  }
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) continue;
    SliceFit& f = fit[static_cast<std::size_t>(kept_of[i])];
    if (std::isinf(x[i])) {  // scikit-learn refuses such fits; normkit marks the slice NaN
      ++f.infinite;
      continue;
    }
    f.mean += x[i];
    ++f.n;
    f.min = std::fmin(f.min, x[i]);
    f.max = std::fmax(f.max, x[i]);
  }
  for (auto& f : fit) if (f.n) f.mean /= f.n;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]) || std::isinf(x[i])) continue;
    SliceFit& f = fit[static_cast<std::size_t>(kept_of[i])];
    f.var += (x[i] - f.mean) * (x[i] - f.mean);
  }
  for (auto& f : fit) {
    if (f.n) f.var /= f.n;
    f.maxabs = f.n ? std::fmax(std::fabs(f.min), std::fabs(f.max)) : 0;
  }
  std::vector<double> y(values.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const SliceFit& f = fit[static_cast<std::size_t>(kept_of[i])];
    const long double v = x[i];
    long double r = v;
    if (f.infinite && o.method != Method::rescale) {
      y[i] = NAN;
      continue;
    }
    switch (o.method) {
      case Method::zscore: {
        const long double mean = o.with_mean ? f.mean : 0;
        long double sd = 1;
        const long double std_dev = std::sqrt(f.var);
        if (o.with_std) {
          if (o.zero_variance == ZeroVariance::keras) sd = std::fmax(std_dev, static_cast<long double>(o.epsilon));
          else sd = constant_feature(f.var, f.mean, f.n) ? 1 : std_dev;
        }
        r = (v - mean) / sd;
        break;
      }
      case Method::minmax: {
        const long double range = f.max - f.min < zero_scale_floor(o.fitted_dtype) ? 1 : f.max - f.min;
        r = (v - f.min) / range * (o.range_max - o.range_min) + o.range_min;
        if (o.clip && !std::isnan(r)) r = std::fmin(std::fmax(r, static_cast<long double>(o.range_min)), static_cast<long double>(o.range_max));
        break;
      }
      case Method::maxabs:
        r = v / (f.maxabs < zero_scale_floor(o.fitted_dtype) ? 1 : f.maxabs);
        break;
      case Method::decimal: {
        int j = 0;
        if (f.maxabs > 0) {
          j = -400;
          while (f.maxabs / std::pow(10.0L, j) >= 1) ++j;
        }
        r = v / std::pow(10.0L, j);
        break;
      }
      case Method::rescale:
        r = v;
        break;
      case Method::impute_mean:
        r = impute && std::isnan(values[i]) ? fill[static_cast<std::size_t>(kept_of[i])] : values[i];
        break;
    }
    y[i] = static_cast<double>(r);
  }
  return y;
}

std::vector<double> reference_lp(const std::vector<double>& values, std::int64_t row_length, LpNorm p) {
  std::vector<double> y(values.size());
  for (std::size_t r = 0; r * row_length < values.size(); ++r) {
    long double norm = 0;
    for (std::int64_t j = 0; j < row_length; ++j) {
      const long double v = values[r * row_length + j];
      if (p == LpNorm::l1) norm += std::fabs(v);
      else if (p == LpNorm::l2) norm += v * v;
      else norm = std::fmax(norm, std::fabs(v));
    }
    if (p == LpNorm::l2) norm = std::sqrt(norm);
    if (norm == 0) norm = 1;
    for (std::int64_t j = 0; j < row_length; ++j) y[r * row_length + j] = static_cast<double>(values[r * row_length + j] / norm);
  }
  return y;
}

}  // namespace normkit::testing
