// Independent oracle for the statistics tests: gathers each kept slice's values and computes every
// statistic with a two-pass long-double algorithm and numpy's rules. Shares no code with normkit's math.
#pragma once

#include <cstdint>
#include <vector>

namespace normkit::testing {

struct ReferenceStats {
  std::int64_t count = 0, l0 = 0;
  double mean = 0, var = 0, std = 0, min = 0, max = 0, sum = 0, l1 = 0, l2 = 0, linf = 0;
};

// values: the input as doubles, row-major over `shape`; reduced[d] marks the reduced axes.
// Returns one entry per kept index (row-major over the kept axes).
std::vector<ReferenceStats> reference_stats(const std::vector<double>& values, const std::vector<std::int64_t>& shape,
                                            const std::vector<bool>& reduced, std::int64_t ddof, bool ignore_nan);

}  // namespace normkit::testing
