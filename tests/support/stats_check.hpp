// Comparing normkit's statistics with the reference, shared by the host and device tests.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "normkit/stats.hpp"
#include "reference_stats.hpp"

namespace normkit::testing {

// One statistics test case: a shape, the reduced axes and a label for failure messages.
struct Case {
  std::vector<std::int64_t> shape;
  ReduceAxes axes;
  std::string name;
};

inline std::int64_t numel(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto e : shape) n *= e;
  return n;
}

// Output buffers for every statistic: float64 (or float32) values, int64 count and l0.
struct StatsBuffers {
  std::array<std::vector<unsigned char>, kNumStats> bytes;
  std::int64_t kept_numel = 0;
  // Allocates host buffers of the kept shape and returns views on them.
  std::array<DType, kNumStats> dtypes{};  // of each output
  // value_dtype: float64, or float32 (the engines' float finalizes); count and l0 are int64 either way.
  StatsOutputs make_host_outputs(const TensorView& input, const ReduceAxes& axes, DType value_dtype = DType::float64);
  double value(Stat s, std::int64_t k) const;
};

std::vector<bool> reduced_mask(int ndim, const ReduceAxes& axes);

// EXPECTs every requested statistic of `buffers` to match the reference of `stored` values within the
// tolerance of the accumulation precision. `what` labels failures.
void expect_matches_reference(const std::vector<double>& stored, const std::vector<std::int64_t>& shape,
                              const StatsOptions& options, bool double_accumulation, const StatsBuffers& buffers,
                              const std::string& what);

}  // namespace normkit::testing
