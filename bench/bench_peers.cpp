// Host peers of the statistics benchmarks, on the same data and shapes (bench_common.hpp's patterns): what a
// user would otherwise write. `naive`: a two-pass loop (mean, then the squared deviations) in float64 over
// float32 data; `eigen`: Eigen's colwise()/rowwise() mean and the mean of squared deviations (two passes,
// libeigen3-dev; built when Eigen is found). Names: host/peers/<peer>/<pattern>/float32/<size>, `of_copy` as
// the statistics report it (input bytes/s over a copy's read bytes/s).
#include "bench_common.hpp"

#if defined(NORMKIT_BENCH_EIGEN)
#include <Eigen/Core>
#endif

using namespace normkit;
using namespace normkit::bench;

namespace {

// The pattern as a matrix (global: one column).
bool as_matrix(const Pattern& p, Matrix* m) {
  const std::string name = p.name;
  if (name == "per_feature" || name == "global") {
    *m = Matrix{numel(p.shape) / p.shape.back(), p.shape.back(), true};
    if (name == "global") *m = Matrix{numel(p.shape), 1, true};
    return true;
  }
  if (name.rfind("per_sample", 0) == 0) {
    *m = Matrix{p.shape[0], p.shape[1], false};
    return true;
  }
  return false;
}

void naive(benchmark::State& state, Matrix m) {
  const std::size_t bytes = static_cast<std::size_t>(m.rows * m.cols) * 4;
  const auto raw = random_bytes(bytes, DType::float32);
  const float* x = reinterpret_cast<const float*>(raw.data());
  const std::int64_t kept = m.per_feature ? m.cols : m.rows, reduced = m.per_feature ? m.rows : m.cols;
  std::vector<double> mean(static_cast<std::size_t>(kept)), var(static_cast<std::size_t>(kept));
  for (auto _ : state) {
    std::fill(mean.begin(), mean.end(), 0.0);
    std::fill(var.begin(), var.end(), 0.0);
    if (m.per_feature) {  // (row by row, so both passes read memory in order)
      for (std::int64_t i = 0; i < m.rows; ++i)
        for (std::int64_t j = 0; j < m.cols; ++j) mean[j] += x[i * m.cols + j];
      for (double& v : mean) v /= static_cast<double>(reduced);
      for (std::int64_t i = 0; i < m.rows; ++i)
        for (std::int64_t j = 0; j < m.cols; ++j) {
          const double d = x[i * m.cols + j] - mean[j];
          var[j] += d * d;
        }
    } else {
      for (std::int64_t i = 0; i < m.rows; ++i) {
        double s = 0;
        for (std::int64_t j = 0; j < m.cols; ++j) s += x[i * m.cols + j];
        mean[i] = s / static_cast<double>(reduced);
        double q = 0;
        for (std::int64_t j = 0; j < m.cols; ++j) {
          const double d = x[i * m.cols + j] - mean[i];
          q += d * d;
        }
        var[i] = q;
      }
    }
    for (double& v : var) v /= static_cast<double>(reduced);
    benchmark::DoNotOptimize(var.data());
  }
  report(state, bytes, "host/" + std::to_string(bytes));
}

#if defined(NORMKIT_BENCH_EIGEN)
void eigen(benchmark::State& state, Matrix m) {
  const std::size_t bytes = static_cast<std::size_t>(m.rows * m.cols) * 4;
  const auto raw = random_bytes(bytes, DType::float32);
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const RowMajor> x(reinterpret_cast<const float*>(raw.data()), m.rows, m.cols);
  for (auto _ : state) {
    if (m.per_feature) {
      const Eigen::RowVectorXf mean = x.colwise().mean();
      const Eigen::RowVectorXf var = (x.rowwise() - mean).array().square().colwise().mean();
      benchmark::DoNotOptimize(var.data());
    } else {
      const Eigen::VectorXf mean = x.rowwise().mean();
      const Eigen::VectorXf var = (x.colwise() - mean).array().square().rowwise().mean();
      benchmark::DoNotOptimize(var.data());
    }
  }
  report(state, bytes, "host/" + std::to_string(bytes));
}
#endif

}  // namespace

void register_peer_benchmarks() {
  for (bool large : {false, true}) {
    const char* size = large ? "large" : "small";
    for (const Pattern& p : patterns(large)) {
      Matrix m;
      if (!as_matrix(p, &m)) continue;
      register_copies(static_cast<std::size_t>(numel(p.shape)) * 4);
      const std::string tail = std::string("/") + p.name + "/float32/" + size;
      benchmark::RegisterBenchmark(("host/peers/naive" + tail).c_str(), [m](benchmark::State& st) { naive(st, m); })
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
#if defined(NORMKIT_BENCH_EIGEN)
      benchmark::RegisterBenchmark(("host/peers/eigen" + tail).c_str(), [m](benchmark::State& st) { eigen(st, m); })
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
#endif
    }
  }
}
