#include "stats_check.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace normkit::testing {

StatsOutputs StatsBuffers::make_host_outputs(const TensorView& input, const ReduceAxes& axes, DType value_dtype) {
  std::array<std::int64_t, kMaxDims> kept{};
  int kept_ndim = 0;
  EXPECT_TRUE(kept_shape(input, axes, &kept, &kept_ndim).ok());
  kept_numel = 1;
  for (int d = 0; d < kept_ndim; ++d) kept_numel *= kept[d];
  StatsOutputs outputs;
  for (int i = 0; i < kNumStats; ++i) {
    const bool count_like = i == static_cast<int>(Stat::count) || i == static_cast<int>(Stat::l0);
    const DType dtype = count_like ? DType::int64 : value_dtype;
    dtypes[static_cast<std::size_t>(i)] = dtype;
    bytes[i].assign(static_cast<std::size_t>(kept_numel) * 8 + 8, 0xff);
    outputs.views[i] = TensorView(bytes[i].data(), dtype, kept.data(), kept_ndim);
  }
  return outputs;
}

double StatsBuffers::value(Stat s, std::int64_t k) const {
  const int i = static_cast<int>(s);
  if (s == Stat::count || s == Stat::l0) {
    std::int64_t v;
    std::memcpy(&v, bytes[i].data() + k * 8, 8);
    return static_cast<double>(v);
  }
  if (dtypes[static_cast<std::size_t>(i)] == DType::float32) {
    float f;
    std::memcpy(&f, bytes[i].data() + k * 4, 4);
    return f;
  }
  double v;
  std::memcpy(&v, bytes[i].data() + k * 8, 8);
  return v;
}

std::vector<bool> reduced_mask(int ndim, const ReduceAxes& axes) {
  std::vector<bool> mask(static_cast<std::size_t>(ndim), axes.all);
  if (!axes.all) {
    for (int i = 0; i < axes.count; ++i) mask[static_cast<std::size_t>(axes.axes[i] < 0 ? axes.axes[i] + ndim : axes.axes[i])] = true;
  }
  return mask;
}

namespace {

bool close(double actual, double expected, double atol, double rtol) {
  if (std::isnan(expected)) return std::isnan(actual);
  if (std::isinf(expected)) return actual == expected;
  return std::fabs(actual - expected) <= atol + rtol * std::fabs(expected);
}

}  // namespace

void expect_matches_reference(const std::vector<double>& stored, const std::vector<std::int64_t>& shape,
                              const StatsOptions& options, bool double_accumulation, const StatsBuffers& buffers,
                              const std::string& what) {
  const auto reference = reference_stats(stored, shape, reduced_mask(static_cast<int>(shape.size()), options.axes),
                                         options.ddof, options.ignore_nan);
  ASSERT_EQ(static_cast<std::int64_t>(reference.size()), buffers.kept_numel) << what;
  // float32 accumulation: a few ulps of float per merge level; float64: near exact.
  const double eps = double_accumulation ? 1e-12 : 2e-5;
  int failures = 0;
  for (std::size_t k = 0; k < reference.size() && failures < 5; ++k) {
    const ReferenceStats& r = reference[k];
    const auto ki = static_cast<std::int64_t>(k);
    const double scale = std::isfinite(r.linf) ? r.linf : 0.0;  // magnitude of the data
    auto check = [&](Stat s, double expected, double atol, double rtol) {
      if (!options.stats.has(s)) return;
      const double actual = buffers.value(s, ki);
      if (!close(actual, expected, atol, rtol)) {
        ++failures;
        ADD_FAILURE() << what << ": slice " << k << " " << stat_name(s) << " = " << actual << ", reference " << expected
                      << " (count " << r.count << ")";
      }
    };
    check(Stat::count, static_cast<double>(r.count), 0, 0);
    check(Stat::l0, static_cast<double>(r.l0), 0, 0);
    // Errors scale with the spread of the data (shifted Welford), not with its offset.
    const double spread = std::isfinite(r.std) ? r.std : scale;
    const double mean_atol = eps * (spread + 1e-3 * std::fabs(std::isfinite(r.mean) ? r.mean : 0.0));
    check(Stat::mean, r.mean, mean_atol, eps);
    check(Stat::var, r.var, eps * eps * scale * scale, 50 * eps);
    check(Stat::std, r.std, eps * eps * scale, 50 * eps);
    // (exact: the extremes are input values, rounded once where the outputs are float32)
    const auto stored_as = [&](Stat s, double v) {
      return buffers.dtypes[static_cast<std::size_t>(s)] == DType::float32 ? static_cast<double>(static_cast<float>(v)) : v;
    };
    check(Stat::min, stored_as(Stat::min, r.min), 0, 0);
    check(Stat::max, stored_as(Stat::max, r.max), 0, 0);
    check(Stat::linf, stored_as(Stat::linf, r.linf), 0, 0);
    check(Stat::sum, r.sum, static_cast<double>(r.count) * mean_atol, eps);
    check(Stat::l1, r.l1, 0, 50 * eps);
    check(Stat::l2, r.l2, eps * eps * scale, 50 * eps);
  }
}

}  // namespace normkit::testing
