#include "reference_integer.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace normkit::testing {

std::vector<ReferenceIntegerStats> reference_integer_stats(const std::vector<std::uint8_t>& values,
                                                           const std::vector<std::int64_t>& shape,
                                                           const std::vector<bool>& reduced) {
  const int ndim = static_cast<int>(shape.size());
  std::int64_t kept_numel = 1;
  for (int d = 0; d < ndim; ++d) if (!reduced[static_cast<std::size_t>(d)]) kept_numel *= shape[static_cast<std::size_t>(d)];
  std::vector<ReferenceIntegerStats> out(static_cast<std::size_t>(kept_numel));
  for (auto& r : out) r.min = 256, r.max = -1;
  std::vector<std::int64_t> index(static_cast<std::size_t>(ndim), 0);
  for (std::size_t flat = 0; flat < values.size(); ++flat) {
    std::int64_t k = 0;
    for (int d = 0; d < ndim; ++d) {
      if (!reduced[static_cast<std::size_t>(d)]) k = k * shape[static_cast<std::size_t>(d)] + index[static_cast<std::size_t>(d)];
    }
    ReferenceIntegerStats& r = out[static_cast<std::size_t>(k)];
    const std::int64_t x = values[flat];
    ++r.count;
    r.sum += x;
    r.sum_squares += x * x;
    r.nonzero += x != 0;
    if (x < r.min) r.min = x;
    if (x > r.max) r.max = x;
    for (int d = ndim - 1; d >= 0; --d) {
      if (++index[static_cast<std::size_t>(d)] < shape[static_cast<std::size_t>(d)]) break;
      index[static_cast<std::size_t>(d)] = 0;
    }
  }
  return out;
}

long double exact_mean(std::int64_t n, std::int64_t sum) {
  if (n == 0) return std::numeric_limits<long double>::quiet_NaN();
  return static_cast<long double>(sum) / static_cast<long double>(n);
}

long double exact_var(std::int64_t n, std::int64_t sum, std::int64_t sum_squares, std::int64_t ddof) {
  if (n == 0 || n - ddof <= 0) return std::numeric_limits<long double>::quiet_NaN();
  const __int128 numerator = static_cast<__int128>(n) * sum_squares - static_cast<__int128>(sum) * sum;
  const __int128 denominator = static_cast<__int128>(n) * (n - ddof);
  return static_cast<long double>(numerator) / static_cast<long double>(denominator);
}

namespace {
template <typename F>
bool within(F actual, long double exact, double ulps) {
  if (std::isnan(exact)) return std::isnan(actual);
  const F rounded = static_cast<F>(exact);
  const F ulp = std::nextafter(std::fabs(rounded), std::numeric_limits<F>::infinity()) - std::fabs(rounded);
  return std::fabs(static_cast<long double>(actual) - exact) <= static_cast<long double>(ulps) * ulp;
}
}  // namespace

bool within_ulps(double actual, long double exact, double ulps) { return within(actual, exact, ulps); }
bool within_ulps(float actual, long double exact, double ulps) { return within(actual, exact, ulps); }

void expect_exact_integer_stats(const std::vector<std::uint8_t>& values, const std::vector<std::int64_t>& shape,
                                const StatsOptions& options, const StatsBuffers& buffers, const std::string& what) {
  const auto reference = reference_integer_stats(values, shape, reduced_mask(static_cast<int>(shape.size()), options.axes));
  ASSERT_EQ(static_cast<std::int64_t>(reference.size()), buffers.kept_numel) << what;
  for (std::size_t k = 0; k < reference.size(); ++k) {
    const ReferenceIntegerStats& r = reference[k];
    const std::int64_t i = static_cast<std::int64_t>(k);
    const std::string at = what + " slice " + std::to_string(k);
    const long double var = exact_var(r.count, r.sum, r.sum_squares, options.ddof);
    if (options.stats.has(Stat::count)) EXPECT_EQ(buffers.value(Stat::count, i), static_cast<double>(r.count)) << at;
    if (options.stats.has(Stat::l0)) EXPECT_EQ(buffers.value(Stat::l0, i), static_cast<double>(r.nonzero)) << at;
    if (options.stats.has(Stat::sum)) EXPECT_EQ(buffers.value(Stat::sum, i), static_cast<double>(r.sum)) << at;
    if (options.stats.has(Stat::l1)) EXPECT_EQ(buffers.value(Stat::l1, i), static_cast<double>(r.sum)) << at;
    if (options.stats.has(Stat::min)) {
      if (r.count == 0) EXPECT_TRUE(std::isnan(buffers.value(Stat::min, i))) << at;
      else EXPECT_EQ(buffers.value(Stat::min, i), static_cast<double>(r.min)) << at;
    }
    if (options.stats.has(Stat::max)) {
      if (r.count == 0) EXPECT_TRUE(std::isnan(buffers.value(Stat::max, i))) << at;
      else EXPECT_EQ(buffers.value(Stat::max, i), static_cast<double>(r.max)) << at;
    }
    if (options.stats.has(Stat::linf)) {
      if (r.count == 0) EXPECT_TRUE(std::isnan(buffers.value(Stat::linf, i))) << at;
      else EXPECT_EQ(buffers.value(Stat::linf, i), static_cast<double>(r.max)) << at;
    }
    if (options.stats.has(Stat::mean)) EXPECT_TRUE(within_ulps(buffers.value(Stat::mean, i), exact_mean(r.count, r.sum))) << at << " mean " << buffers.value(Stat::mean, i);
    if (options.stats.has(Stat::var)) EXPECT_TRUE(within_ulps(buffers.value(Stat::var, i), var)) << at << " var " << buffers.value(Stat::var, i);
    if (options.stats.has(Stat::std)) EXPECT_TRUE(within_ulps(buffers.value(Stat::std, i), std::sqrt(var))) << at << " std";
    if (options.stats.has(Stat::l2)) {
      EXPECT_TRUE(within_ulps(buffers.value(Stat::l2, i), std::sqrt(static_cast<long double>(r.sum_squares)))) << at << " l2";
    }
  }
}

}  // namespace normkit::testing
