// Uses only the public header of the installed package: per-feature mean and variance of a [4, 3] array.
#include <normkit/stats.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>

int main() {
  float x[4][3] = {{1, 10, -2}, {2, 20, -2}, {3, 30, -2}, {4, 40, -2}};
  float mean[3] = {}, var[3] = {};
  std::int64_t count[3] = {};
  const std::int64_t kept[1] = {3};

  const normkit::TensorView input(x, normkit::DType::float32, {4, 3});
  normkit::StatsOptions options;
  options.axes = normkit::ReduceAxes::of({0});
  options.stats = normkit::StatSet{normkit::Stat::mean, normkit::Stat::var, normkit::Stat::count};
  normkit::StatsOutputs outputs;
  outputs[normkit::Stat::mean] = normkit::TensorView(mean, normkit::DType::float32, kept, 1);
  outputs[normkit::Stat::var] = normkit::TensorView(var, normkit::DType::float32, kept, 1);
  outputs[normkit::Stat::count] = normkit::TensorView(count, normkit::DType::int64, kept, 1);

  const normkit::Status status = normkit::compute_stats(input, options, outputs, nullptr, 0);
  if (!status.ok()) {
    std::fprintf(stderr, "compute_stats failed: %s\n", status.message().c_str());
    return 1;
  }
  const float expected_mean[3] = {2.5f, 25.0f, -2.0f};
  const float expected_var[3] = {1.25f, 125.0f, 0.0f};
  int errors = 0;
  for (int j = 0; j < 3; ++j) {
    if (count[j] != 4 || std::fabs(mean[j] - expected_mean[j]) > 1e-5f * (1 + std::fabs(expected_mean[j])) ||
        std::fabs(var[j] - expected_var[j]) > 1e-5f * (1 + expected_var[j])) {
      std::fprintf(stderr, "feature %d: count %lld mean %g var %g, expected 4, %g, %g\n", j,
                   static_cast<long long>(count[j]), mean[j], var[j], expected_mean[j], expected_var[j]);
      ++errors;
    }
  }
  if (errors != 0) return 1;
  std::printf("normkit consumer: mean %g %g %g, var %g %g %g\n", mean[0], mean[1], mean[2], var[0], var[1], var[2]);
  return 0;
}
