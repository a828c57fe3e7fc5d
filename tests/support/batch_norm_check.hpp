// BatchNorm test cases shared by the host and device tests: seeded data, the public API's training step
// (one call per direction, or the phases) on buffers the caller places, and the comparison with the float64
// reference.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "layer_norm_check.hpp"
#include "normkit/batch_norm.hpp"
#include "normkit/stats.hpp"
#include "reference_batch_norm.hpp"

namespace normkit::testing {

struct BatchNormCase {
  std::vector<std::int64_t> shape{2, 3, 5, 7};
  DType x = DType::float32;
  bool gamma = true, beta = true;
  BatchNormOptions options;
  double center = 0.0;  // the data's mean (a large one tests the variance's accuracy)
  unsigned seed = 1;

  int ndim() const { return static_cast<int>(shape.size()); }
  int axis() const { return options.channel_axis == ChannelAxis::first ? 1 : ndim() - 1; }
  ChannelShape channel_shape() const {
    ChannelShape s;
    s.channels = shape[axis()];
    s.outer = 1;
    s.inner = 1;
    for (int d = 0; d < ndim(); ++d) {
      if (d < axis()) s.outer *= shape[d];
      if (d > axis()) s.inner *= shape[d];
    }
    return s;
  }
  std::int64_t channels() const { return shape[axis()]; }
  std::string name() const {
    std::string s = "batch_norm " + TensorView(nullptr, x, shape.data(), ndim()).shape_string() +
                    (options.channel_axis == ChannelAxis::first ? " channels first " : " channels last ") + dtype_name(x) +
                    (gamma ? " gamma" : "") + (beta ? " beta" : "") +
                    (options.running_stats == RunningStatsConvention::keras ? " keras" : " pytorch") +
                    (options.cumulative_average ? " cumulative" : "") + " center " + std::to_string(center);
    return s;
  }
};

struct BatchNormData {
  TypedData x, dy;
  std::vector<float> gamma, beta, running_mean, running_var;
  static std::vector<double> widened(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }
};

inline std::vector<float> float_values(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

// Two float32 results of different engines (host and device) within float32 rounding of each other.
inline void expect_close_floats(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4 * (1 + std::fabs(a[i]))) << what << "[" << i << "]";
}

inline BatchNormData make_batch_norm_data(const BatchNormCase& c) {
  const ChannelShape s = c.channel_shape();
  const std::size_t numel = static_cast<std::size_t>(s.numel()), channels = static_cast<std::size_t>(s.channels);
  BatchNormData d;
  d.x = encode(normal_values(numel, c.center, 1.0, c.seed), c.x);
  d.dy = encode(normal_values(numel, 0.0, 1.0, c.seed + 1), c.x);
  if (c.gamma) d.gamma = float_values(uniform_values(channels, 0.5, 1.5, c.seed + 2));
  if (c.beta) d.beta = float_values(uniform_values(channels, -0.5, 0.5, c.seed + 3));
  d.running_mean = float_values(uniform_values(channels, -1.0, 1.0, c.seed + 4));
  d.running_var = float_values(uniform_values(channels, 0.5, 2.0, c.seed + 5));
  return d;
}

// What a training step wrote, in host memory.
struct BatchNormResult {
  std::vector<unsigned char> y, dx;
  std::vector<float> saved_mean, saved_rstd, running_mean, running_var, dgamma, dbeta;
};

inline void expect_same_bits(const BatchNormResult& a, const BatchNormResult& b, const std::string& what) {
  EXPECT_TRUE(a.y == b.y) << what << ": y";
  EXPECT_TRUE(a.dx == b.dx) << what << ": dx";
  auto same = [](const std::vector<float>& u, const std::vector<float>& v) {
    return u.size() == v.size() && (u.empty() || same_bits(u.data(), v.data(), u.size() * 4));
  };
  EXPECT_TRUE(same(a.saved_mean, b.saved_mean)) << what << ": saved_mean";
  EXPECT_TRUE(same(a.saved_rstd, b.saved_rstd)) << what << ": saved_rstd";
  EXPECT_TRUE(same(a.running_mean, b.running_mean)) << what << ": running_mean";
  EXPECT_TRUE(same(a.running_var, b.running_var)) << what << ": running_var";
  EXPECT_TRUE(same(a.dgamma, b.dgamma)) << what << ": dgamma";
  EXPECT_TRUE(same(a.dbeta, b.dbeta)) << what << ": dbeta";
}

// The training step's outputs against the reference: y, saved statistics, running statistics after one
// update, dx, dgamma, dbeta.
inline void expect_training_near_reference(const BatchNormCase& c, const BatchNormData& d, const BatchNormResult& r) {
  const ChannelShape s = c.channel_shape();
  const auto gamma = BatchNormData::widened(d.gamma), beta = BatchNormData::widened(d.beta);
  const BatchNormReference ref = batch_norm_reference(d.x.stored, s, gamma, beta, c.options.eps);
  const double rel = accumulation_tolerance(s.n()) * (1.0 + c.center * c.center);
  std::vector<double> y_scale(ref.y.size());
  for (std::size_t i = 0; i < y_scale.size(); ++i) {
    const double w = gamma.empty() ? 1.0 : std::fabs(gamma[s.channel_of(static_cast<std::int64_t>(i))]);
    y_scale[i] = std::fabs(ref.y[i]) + w * 4;
  }
  expect_near_scaled(decode(r.y, c.x), ref.y, y_scale, rel, output_rounding(c.x), output_rounding_abs(c.x), c.name() + ": y");
  const std::vector<double> mean_scale(s.channels, 1.0 + std::fabs(c.center));
  expect_near_scaled(BatchNormData::widened(r.saved_mean), ref.mean, mean_scale, rel, 0.0, 0.0, c.name() + ": saved_mean");
  expect_near_scaled(BatchNormData::widened(r.saved_rstd), ref.rstd, ref.rstd, rel, 0.0, 0.0, c.name() + ": saved_rstd");
  // Running statistics: one update from the caller's initial values.
  auto running_mean = BatchNormData::widened(d.running_mean), running_var = BatchNormData::widened(d.running_var);
  running_stats_reference(&running_mean, &running_var, ref.mean, ref.var, s.n(), c.options);
  std::vector<double> rm_scale(s.channels), rv_scale(s.channels);
  for (std::int64_t k = 0; k < s.channels; ++k) {
    rm_scale[k] = std::fabs(running_mean[k]) + 1.0 + std::fabs(c.center);
    rv_scale[k] = std::fabs(running_var[k]) + 1.0;
  }
  if (!r.running_mean.empty()) {
    expect_near_scaled(BatchNormData::widened(r.running_mean), running_mean, rm_scale, rel + 1e-7, 0.0, 0.0, c.name() + ": running_mean");
    expect_near_scaled(BatchNormData::widened(r.running_var), running_var, rv_scale, rel + 1e-7, 0.0, 0.0, c.name() + ": running_var");
  }
  if (r.dx.empty() && r.dgamma.empty()) return;
  const BatchNormGradReference g = batch_norm_grad_reference(d.dy.stored, d.x.stored, s, gamma, c.options.eps);
  if (!r.dx.empty()) {
    expect_near_scaled(decode(r.dx, c.x), g.dx, g.dx_scale, rel * 4, output_rounding(c.x), output_rounding_abs(c.x), c.name() + ": dx");
  }
  if (!r.dgamma.empty()) expect_near_scaled(BatchNormData::widened(r.dgamma), g.dgamma, g.dgamma_scale, rel * 4, 0.0, 0.0, c.name() + ": dgamma");
  if (!r.dbeta.empty()) expect_near_scaled(BatchNormData::widened(r.dbeta), g.dbeta, g.dbeta_scale, rel * 4, 0.0, 0.0, c.name() + ": dbeta");
}

// Views of one training step's buffers: `place` turns a host buffer into the pointer the call sees (the
// host buffer itself, or a device copy).
struct BatchNormBuffers {
  TensorView x, dy, y, dx, gamma, beta, running_mean, running_var, saved_mean, saved_rstd, dgamma, dbeta;
};

inline TensorView channel_view(void* p, std::int64_t channels, MemorySpace space) {
  return p ? TensorView(p, DType::float32, {channels}, space) : TensorView();
}

// The training step on prepared views: forward (one call or phases), then backward (one call or phases).
inline void run_training_step(const BatchNormCase& c, const BatchNormBuffers& b, bool phases, void* workspace,
                              std::size_t workspace_bytes, Stream stream) {
  const std::int64_t channels = c.channels();
  if (!phases) {
    Status s = batch_norm_forward_training(b.x, b.gamma, b.beta, b.y, b.running_mean, b.running_var, b.saved_mean, b.saved_rstd,
                                           c.options, workspace, workspace_bytes, stream);
    EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
    s = batch_norm_backward(b.dy, b.x, b.saved_mean, b.saved_rstd, b.gamma, b.dx, b.dgamma, b.dbeta, c.options, workspace,
                            workspace_bytes, stream);
    EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
    return;
  }
  // Phases: the summaries and sums live at the end of the workspace (device) or in host vectors.
  const bool device = b.x.space == MemorySpace::device;
  std::vector<StatsSummary> host_summaries(device ? 0 : channels);
  std::vector<float> host_sums(device ? 0 : 2 * channels);
  std::size_t phase_bytes = workspace_bytes;
  StatsSummary* summaries = host_summaries.data();
  float* sums = host_sums.data();
  if (device) {
    phase_bytes = workspace_bytes - static_cast<std::size_t>(channels) * (sizeof(StatsSummary) + 8);
    summaries = reinterpret_cast<StatsSummary*>(static_cast<char*>(workspace) + phase_bytes);
    sums = reinterpret_cast<float*>(summaries + channels);
  }
  Status s = batch_norm_statistics(b.x, c.options, summaries, channels, workspace, phase_bytes, stream);
  EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
  s = batch_norm_finalize(summaries, channels, b.x.space, b.running_mean, b.running_var, b.saved_mean, b.saved_rstd, c.options, stream);
  EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
  s = batch_norm_normalize(b.x, b.saved_mean, b.saved_rstd, b.gamma, b.beta, b.y, c.options, workspace, phase_bytes, stream);
  EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
  const TensorView sum_dy = channel_view(sums, channels, b.x.space), sum_dy_xmu = channel_view(sums + channels, channels, b.x.space);
  s = batch_norm_backward_reduce(b.dy, b.x, b.saved_mean, sum_dy, sum_dy_xmu, c.options, workspace, phase_bytes, stream);
  EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
  s = batch_norm_backward_apply(b.dy, b.x, b.saved_mean, b.saved_rstd, b.gamma, sum_dy, sum_dy_xmu, 0, b.dx, b.dgamma, b.dbeta,
                                c.options, workspace, phase_bytes, stream);
  EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
}

// A result sized for the case's outputs, the running statistics at the data's initial values.
inline BatchNormResult prepared_result(const BatchNormCase& c, const BatchNormData& d) {
  const std::int64_t channels = c.channels();
  BatchNormResult r;
  r.y.resize(d.x.bytes.size());
  r.dx.resize(d.x.bytes.size());
  r.saved_mean.resize(channels);
  r.saved_rstd.resize(channels);
  r.running_mean = d.running_mean;
  r.running_var = d.running_var;
  if (c.gamma) r.dgamma.resize(channels);
  if (c.beta) r.dbeta.resize(channels);
  return r;
}

// Inference's y (x's dtype, as bytes) against the reference from the data's running statistics.
inline void expect_inference_near_reference(const BatchNormCase& c, const BatchNormData& d, const std::vector<unsigned char>& y) {
  const std::vector<double> want = batch_norm_inference_reference(d.x.stored, c.channel_shape(), BatchNormData::widened(d.gamma),
                                                                  BatchNormData::widened(d.beta), BatchNormData::widened(d.running_mean),
                                                                  BatchNormData::widened(d.running_var), c.options.eps);
  std::vector<double> scale(want.size());
  for (std::size_t i = 0; i < want.size(); ++i) scale[i] = std::fabs(want[i]) + 4;
  expect_near_scaled(decode(y, c.x), want, scale, 1e-6, output_rounding(c.x), output_rounding_abs(c.x), c.name() + ": inference y");
}

// A training step on host memory.
inline BatchNormResult run_batch_norm_host(const BatchNormCase& c, BatchNormData& d, bool phases = false) {
  const std::int64_t channels = c.channels();
  BatchNormResult r = prepared_result(c, d);
  const auto view = [&](void* p, DType dtype) { return TensorView(p, dtype, c.shape.data(), c.ndim()); };
  const auto channel = [&](std::vector<float>& v) { return channel_view(v.empty() ? nullptr : v.data(), channels, MemorySpace::host); };
  BatchNormBuffers b;
  b.x = view(d.x.data(), c.x);
  b.dy = view(d.dy.data(), c.x);
  b.y = view(r.y.data(), c.x);
  b.dx = view(r.dx.data(), c.x);
  b.gamma = channel(d.gamma);
  b.beta = channel(d.beta);
  b.running_mean = channel(r.running_mean);
  b.running_var = channel(r.running_var);
  b.saved_mean = channel(r.saved_mean);
  b.saved_rstd = channel(r.saved_rstd);
  b.dgamma = channel(r.dgamma);
  b.dbeta = channel(r.dbeta);
  run_training_step(c, b, phases, nullptr, 0, nullptr);
  return r;
}

}  // namespace normkit::testing
