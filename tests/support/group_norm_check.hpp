// GroupNorm test cases shared by the host and device tests: seeded data, a forward + backward step through
// the public API on buffers the caller places, and the comparison with the float64 reference.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "batch_norm_check.hpp"
#include "normkit/group_norm.hpp"
#include "reference_group_norm.hpp"

namespace normkit::testing {

struct GroupNormCase {
  std::vector<std::int64_t> shape{2, 6, 5, 7};
  DType x = DType::float32;
  bool gamma = true, beta = true;
  GroupNormOptions options = GroupNormOptions::pytorch(3);
  double center = 0.0;
  unsigned seed = 1;

  int ndim() const { return static_cast<int>(shape.size()); }
  GroupLayout layout() const {
    GroupLayout l;
    l.last = options.channel_axis == ChannelAxis::last;
    const int axis = l.last ? ndim() - 1 : 1;
    l.n = shape[0];
    l.c = shape[axis];
    l.s = 1;
    for (int d = 1; d < ndim(); ++d) {
      if (d != axis) l.s *= shape[d];
    }
    l.groups = options.groups == 0 ? l.c : options.groups;
    return l;
  }
  std::int64_t channels() const { return layout().c; }
  std::int64_t group_count() const { return layout().n * layout().groups; }
  std::string name() const {
    return "group_norm " + TensorView(nullptr, x, shape.data(), ndim()).shape_string() +
           (options.channel_axis == ChannelAxis::first ? " channels first " : " channels last ") + dtype_name(x) + " G " +
           std::to_string(options.groups) + (gamma ? " gamma" : "") + (beta ? " beta" : "") + " center " + std::to_string(center);
  }
};

inline GroupNormCase group_case(std::vector<std::int64_t> shape, ChannelAxis axis, std::int64_t groups, DType x = DType::float32) {
  GroupNormCase c;
  c.shape = std::move(shape);
  c.options = axis == ChannelAxis::first ? GroupNormOptions::pytorch(groups) : GroupNormOptions::keras(groups);
  c.x = x;
  return c;
}

struct GroupNormData {
  TypedData x, dy;
  std::vector<float> gamma, beta;
};

inline GroupNormData make_group_norm_data(const GroupNormCase& c) {
  const GroupLayout l = c.layout();
  const std::size_t numel = static_cast<std::size_t>(l.numel()), channels = static_cast<std::size_t>(l.c);
  GroupNormData d;
  d.x = encode(normal_values(numel, c.center, 1.0, c.seed), c.x);
  d.dy = encode(normal_values(numel, 0.0, 1.0, c.seed + 1), c.x);
  if (c.gamma) d.gamma = float_values(uniform_values(channels, 0.5, 1.5, c.seed + 2));
  if (c.beta) d.beta = float_values(uniform_values(channels, -0.5, 0.5, c.seed + 3));
  return d;
}

// What a step wrote, in host memory.
struct GroupNormResult {
  std::vector<unsigned char> y, dx;
  std::vector<float> saved_mean, saved_rstd, dgamma, dbeta;
};

inline GroupNormResult prepared_result(const GroupNormCase& c, const GroupNormData& d) {
  GroupNormResult r;
  r.y.resize(d.x.bytes.size());
  r.dx.resize(d.x.bytes.size());
  r.saved_mean.resize(c.group_count());
  r.saved_rstd.resize(c.group_count());
  if (c.gamma) r.dgamma.resize(c.channels());
  if (c.beta) r.dbeta.resize(c.channels());
  return r;
}

inline bool same_floats(const std::vector<float>& u, const std::vector<float>& v) {
  return u.size() == v.size() && (u.empty() || same_bits(u.data(), v.data(), u.size() * 4));
}

inline void expect_same_bits(const GroupNormResult& a, const GroupNormResult& b, const std::string& what) {
  EXPECT_TRUE(a.y == b.y) << what << ": y";
  EXPECT_TRUE(a.dx == b.dx) << what << ": dx";
  EXPECT_TRUE(same_floats(a.saved_mean, b.saved_mean)) << what << ": saved_mean";
  EXPECT_TRUE(same_floats(a.saved_rstd, b.saved_rstd)) << what << ": saved_rstd";
  EXPECT_TRUE(same_floats(a.dgamma, b.dgamma)) << what << ": dgamma";
  EXPECT_TRUE(same_floats(a.dbeta, b.dbeta)) << what << ": dbeta";
}

// The step's outputs against the reference: y, saved statistics, dx, dgamma, dbeta.
inline void expect_group_norm_near_reference(const GroupNormCase& c, const GroupNormData& d, const GroupNormResult& r) {
  const GroupLayout l = c.layout();
  const auto gamma = BatchNormData::widened(d.gamma), beta = BatchNormData::widened(d.beta);
  const GroupNormReference ref = group_norm_reference(d.x.stored, l, gamma, beta, c.options.eps);
  const double rel = accumulation_tolerance(l.values_per_group()) * (1.0 + c.center * c.center);
  std::vector<double> y_scale(ref.y.size());
  for (std::size_t i = 0; i < y_scale.size(); ++i) {
    const std::int64_t channel = l.last ? static_cast<std::int64_t>(i) % l.c : (static_cast<std::int64_t>(i) / l.s) % l.c;
    y_scale[i] = std::fabs(ref.y[i]) + (gamma.empty() ? 1.0 : std::fabs(gamma[channel])) * 4;
  }
  expect_near_scaled(decode(r.y, c.x), ref.y, y_scale, rel, output_rounding(c.x), output_rounding_abs(c.x), c.name() + ": y");
  const std::vector<double> mean_scale(ref.mean.size(), 1.0 + std::fabs(c.center));
  expect_near_scaled(BatchNormData::widened(r.saved_mean), ref.mean, mean_scale, rel, 0.0, 0.0, c.name() + ": saved_mean");
  expect_near_scaled(BatchNormData::widened(r.saved_rstd), ref.rstd, ref.rstd, rel, 0.0, 0.0, c.name() + ": saved_rstd");
  const GroupNormGradReference g = group_norm_grad_reference(d.dy.stored, d.x.stored, l, gamma, c.options.eps);
  if (!r.dx.empty()) {
    expect_near_scaled(decode(r.dx, c.x), g.dx, g.dx_scale, rel * 4, output_rounding(c.x), output_rounding_abs(c.x), c.name() + ": dx");
  }
  const double batch_rel = rel * 4 + accumulation_tolerance(l.n);
  if (!r.dgamma.empty()) expect_near_scaled(BatchNormData::widened(r.dgamma), g.dgamma, g.dgamma_scale, batch_rel, 0.0, 0.0, c.name() + ": dgamma");
  if (!r.dbeta.empty()) expect_near_scaled(BatchNormData::widened(r.dbeta), g.dbeta, g.dbeta_scale, batch_rel, 0.0, 0.0, c.name() + ": dbeta");
}

struct GroupNormBuffers {
  TensorView x, dy, y, dx, gamma, beta, saved_mean, saved_rstd, dgamma, dbeta;
};

// Forward, then backward from the forward's saved statistics (backward_only: from those already in
// saved_mean/saved_rstd).
inline void run_group_norm_step(const GroupNormCase& c, const GroupNormBuffers& b, void* workspace, std::size_t workspace_bytes,
                                Stream stream, bool backward_only = false) {
  if (!backward_only) {
    const Status s = group_norm_forward(b.x, b.gamma, b.beta, b.y, b.saved_mean, b.saved_rstd, c.options, workspace, workspace_bytes, stream);
    EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
  }
  const Status s = group_norm_backward(b.dy, b.x, b.saved_mean, b.saved_rstd, b.gamma, b.dx, b.dgamma, b.dbeta, c.options, workspace,
                                       workspace_bytes, stream);
  EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
}

// A step on host memory.
inline GroupNormResult run_group_norm_host(const GroupNormCase& c, GroupNormData& d) {
  GroupNormResult r = prepared_result(c, d);
  const auto view = [&](void* p) { return TensorView(p, c.x, c.shape.data(), c.ndim()); };
  const auto floats = [&](std::vector<float>& v) {
    return v.empty() ? TensorView() : TensorView(v.data(), DType::float32, {static_cast<std::int64_t>(v.size())});
  };
  GroupNormBuffers b{view(d.x.data()), view(d.dy.data()), view(r.y.data()), view(r.dx.data()), floats(d.gamma), floats(d.beta),
                     floats(r.saved_mean), floats(r.saved_rstd), floats(r.dgamma), floats(r.dbeta)};
  run_group_norm_step(c, b, nullptr, 0, nullptr);
  return r;
}

}  // namespace normkit::testing
