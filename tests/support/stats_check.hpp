// Comparing normkit's statistics with the reference, shared by the host and device tests.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "normkit/stats.hpp"
#include "reference_stats.hpp"

namespace normkit::testing {

// Output buffers for every statistic: float64 values, int64 count and l0.
struct StatsBuffers {
  std::array<std::vector<unsigned char>, kNumStats> bytes;
  std::int64_t kept_numel = 0;
  // Allocates host buffers of the kept shape and returns views on them.
  StatsOutputs make_host_outputs(const TensorView& input, const ReduceAxes& axes);
  double value(Stat s, std::int64_t k) const;
};

std::vector<bool> reduced_mask(int ndim, const ReduceAxes& axes);

// EXPECTs every requested statistic of `buffers` to match the reference of `stored` values within the
// tolerance of the accumulation precision. `what` labels failures.
void expect_matches_reference(const std::vector<double>& stored, const std::vector<std::int64_t>& shape,
                              const StatsOptions& options, bool double_accumulation, const StatsBuffers& buffers,
                              const std::string& what);

}  // namespace normkit::testing
