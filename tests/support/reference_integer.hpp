// Independent oracle for the exact uint8 statistics: each kept slice's integer sums by plain 64-bit
// counting, and the exact fractions Σx / n and (n Σx² - (Σx)²) / (n (n - ddof)) from 128-bit integers,
// divided in long double. Shares no code with normkit's math.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "normkit/stats.hpp"
#include "stats_check.hpp"

namespace normkit::testing {

struct ReferenceIntegerStats {
  std::int64_t count = 0, sum = 0, sum_squares = 0, nonzero = 0, min = 0, max = 0;
};

// values row-major over `shape`; reduced[d] marks the reduced axes; one entry per kept index.
std::vector<ReferenceIntegerStats> reference_integer_stats(const std::vector<std::uint8_t>& values,
                                                           const std::vector<std::int64_t>& shape,
                                                           const std::vector<bool>& reduced);

// Exact mean and variance of n values with sums S and Q, to long double precision (NaN where undefined).
long double exact_mean(std::int64_t n, std::int64_t sum);
long double exact_var(std::int64_t n, std::int64_t sum, std::int64_t sum_squares, std::int64_t ddof);

// Whether `actual` is within `ulps` units in the last place of `actual`'s type from the exact value.
bool within_ulps(double actual, long double exact, double ulps = 1.0);
bool within_ulps(float actual, long double exact, double ulps = 1.0);

// EXPECTs every statistic in `buffers` (float64 values, int64 counts) to be the exact integers or within
// 1 ulp of the exact fractions. `what` labels failures.
void expect_exact_integer_stats(const std::vector<std::uint8_t>& values, const std::vector<std::int64_t>& shape,
                                const StatsOptions& options, const StatsBuffers& buffers, const std::string& what);

}  // namespace normkit::testing
