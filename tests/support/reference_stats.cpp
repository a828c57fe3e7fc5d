#include "reference_stats.hpp"

#include <cmath>
#include <limits>

namespace normkit::testing {
namespace {

ReferenceStats reduce_slice(const std::vector<double>& slice, std::int64_t ddof, bool ignore_nan) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  ReferenceStats r;
  std::vector<double> v;
  bool has_nan = false;
  for (double x : slice) {
    if (std::isnan(x)) {
      has_nan = true;
      if (!ignore_nan) ++r.l0;
      if (ignore_nan) continue;
    } else if (x != 0) {
      ++r.l0;
    }
    if (!std::isnan(x)) v.push_back(x);
  }
  r.count = static_cast<std::int64_t>(v.size()) + (ignore_nan ? 0 : std::int64_t(0));
  if (!ignore_nan && has_nan) {
    r.count = static_cast<std::int64_t>(slice.size());
    r.mean = r.var = r.std = r.min = r.max = r.sum = r.l1 = r.l2 = r.linf = nan;
    return r;
  }
  const std::int64_t n = static_cast<std::int64_t>(v.size());
  long double sum = 0, abs_sum = 0, sq = 0;
  double lo = inf, hi = -inf, amax = 0;
  bool pos_inf = false, neg_inf = false;
  for (double x : v) {
    sum += x;
    abs_sum += std::fabs(x);
    sq += static_cast<long double>(x) * x;
    lo = std::fmin(lo, x);
    hi = std::fmax(hi, x);
    amax = std::fmax(amax, std::fabs(x));
    if (std::isinf(x)) (x > 0 ? pos_inf : neg_inf) = true;
  }
  r.sum = static_cast<double>(sum);
  if (pos_inf && neg_inf) r.sum = nan;
  r.l1 = static_cast<double>(abs_sum);
  r.l2 = static_cast<double>(std::sqrt(sq));
  if (n == 0) {
    r.sum = 0;
    r.mean = r.var = r.std = r.min = r.max = r.linf = nan;
    return r;
  }
  r.mean = static_cast<double>(sum / n);
  if (pos_inf || neg_inf) {
    r.mean = r.sum;
    r.var = r.std = nan;
  } else if (n - ddof <= 0) {
    r.var = r.std = nan;
  } else {
    const long double mean = sum / n;
    long double m2 = 0;
    for (double x : v) m2 += (x - mean) * (x - mean);
    r.var = static_cast<double>(m2 / (n - ddof));
    r.std = std::sqrt(r.var);
  }
  r.min = lo;
  r.max = hi;
  r.linf = amax;
  return r;
}

}  // namespace

std::vector<ReferenceStats> reference_stats(const std::vector<double>& values, const std::vector<std::int64_t>& shape,
                                            const std::vector<bool>& reduced, std::int64_t ddof, bool ignore_nan) {
  const int ndim = static_cast<int>(shape.size());
  std::int64_t kept_numel = 1;
  for (int d = 0; d < ndim; ++d) if (!reduced[d]) kept_numel *= shape[d];
  std::vector<std::vector<double>> slices(static_cast<std::size_t>(kept_numel));
  std::vector<std::int64_t> index(static_cast<std::size_t>(ndim), 0);
  for (std::size_t flat = 0; flat < values.size(); ++flat) {
    std::int64_t k = 0;
    for (int d = 0; d < ndim; ++d) if (!reduced[d]) k = k * shape[d] + index[static_cast<std::size_t>(d)];
    slices[static_cast<std::size_t>(k)].push_back(values[flat]);
    for (int d = ndim - 1; d >= 0; --d) {
      if (++index[static_cast<std::size_t>(d)] < shape[d]) break;
      index[static_cast<std::size_t>(d)] = 0;
    }
  }
  std::vector<ReferenceStats> out;
  out.reserve(slices.size());
  for (const auto& s : slices) out.push_back(reduce_slice(s, ddof, ignore_nan));
  return out;
}

}  // namespace normkit::testing
