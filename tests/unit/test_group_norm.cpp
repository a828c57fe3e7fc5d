// GroupNorm and InstanceNorm on the host engine: forward and backward against the float64 reference on both
// layouts, every activation dtype, odd shapes, C = 1, G = 1, G = C; the reference's gradient against finite
// differences; edge values; conventions; argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "group_norm_check.hpp"
#include "normkit/group_norm.hpp"

using namespace normkit;
using namespace normkit::testing;

namespace {

// Channels first and last: odd spatial sizes, S = 1 ([N, C]), C = 1, G = 1 (LayerNorm over a sample), G = C
// (InstanceNorm), one sample.
std::vector<GroupNormCase> host_cases() {
  std::vector<GroupNormCase> cases;
  for (ChannelAxis axis : {ChannelAxis::first, ChannelAxis::last}) {
    const bool first = axis == ChannelAxis::first;
    cases.push_back(group_case(first ? std::vector<std::int64_t>{2, 6, 5, 7} : std::vector<std::int64_t>{2, 5, 7, 6}, axis, 3));
    cases.push_back(group_case({3, 8}, axis, 4));
    cases.push_back(group_case(first ? std::vector<std::int64_t>{3, 1, 11} : std::vector<std::int64_t>{3, 11, 1}, axis, 1));
    cases.push_back(group_case(first ? std::vector<std::int64_t>{1, 12, 3, 3} : std::vector<std::int64_t>{1, 3, 3, 12}, axis, 1));
    cases.push_back(group_case(first ? std::vector<std::int64_t>{2, 5, 9} : std::vector<std::int64_t>{2, 9, 5}, axis, 0));
    cases.push_back(group_case(first ? std::vector<std::int64_t>{4, 64, 7, 7} : std::vector<std::int64_t>{4, 7, 7, 64}, axis, 32));
  }
  return cases;
}

}  // namespace

TEST(HostGroupNorm, StepMatchesReference) {
  for (DType x : {DType::float32, DType::float16, DType::bfloat16}) {
    for (GroupNormCase c : host_cases()) {
      c.x = x;
      for (int params = 0; params < 2; ++params) {
        c.gamma = c.beta = params == 1;
        GroupNormData d = make_group_norm_data(c);
        expect_group_norm_near_reference(c, d, run_group_norm_host(c, d));
      }
    }
  }
}

TEST(HostGroupNorm, LargeMeanKeepsTheVariance) {
  GroupNormCase c = group_case({2, 4, 6, 6}, ChannelAxis::first, 2);
  c.center = 1000.0;
  GroupNormData d = make_group_norm_data(c);
  expect_group_norm_near_reference(c, d, run_group_norm_host(c, d));
}

TEST(HostGroupNorm, InstanceNormIsAGroupAChannel) {
  for (ChannelAxis axis : {ChannelAxis::first, ChannelAxis::last}) {
    GroupNormCase instance = group_case({2, 5, 4, 3}, axis, 0), explicit_groups = instance;
    explicit_groups.options.groups = axis == ChannelAxis::first ? 5 : 3;
    GroupNormData d = make_group_norm_data(instance);
    expect_same_bits(run_group_norm_host(instance, d), run_group_norm_host(explicit_groups, d), instance.name());
  }
}

TEST(GroupNormConventions, Defaults) {
  const GroupNormOptions torch = GroupNormOptions::pytorch(8), keras = GroupNormOptions::keras(), instance = GroupNormOptions::instance_norm();
  EXPECT_EQ(torch.groups, 8);
  EXPECT_EQ(torch.eps, 1e-5);
  EXPECT_EQ(torch.channel_axis, ChannelAxis::first);
  EXPECT_EQ(keras.groups, 32);
  EXPECT_EQ(keras.eps, 1e-3);
  EXPECT_EQ(keras.channel_axis, ChannelAxis::last);
  EXPECT_EQ(instance.groups, 0);
  EXPECT_EQ(instance.eps, 1e-5);
}

// For L = Σ y * dy, the directional derivatives along v (x) and vg (gamma) by central differences equal
// Σ dx * v and Σ dgamma * vg.
TEST(GroupNormReference, GradientMatchesFiniteDifferences) {
  for (bool last : {false, true}) {
    GroupLayout l;
    l.n = 3;
    l.c = 6;
    l.s = 5;
    l.groups = 2;
    l.last = last;
    const std::vector<double> x = normal_values(l.numel(), 0.3, 1.0, 7), dy = normal_values(l.numel(), 0.0, 1.0, 8);
    const std::vector<double> gamma = uniform_values(6, 0.5, 1.5, 9), beta = uniform_values(6, -0.5, 0.5, 10);
    const std::vector<double> v = normal_values(l.numel(), 0.0, 1.0, 11), vg = normal_values(6, 0.0, 1.0, 12);
    auto loss = [&](double h, double hg) {
      std::vector<double> xs = x, gs = gamma;
      for (std::size_t i = 0; i < xs.size(); ++i) xs[i] += h * v[i];
      for (std::size_t i = 0; i < gs.size(); ++i) gs[i] += hg * vg[i];
      const GroupNormReference f = group_norm_reference(xs, l, gs, beta, 1e-5);
      double sum = 0;
      for (std::size_t i = 0; i < f.y.size(); ++i) sum += f.y[i] * dy[i];
      return sum;
    };
    const GroupNormGradReference g = group_norm_grad_reference(dy, x, l, gamma, 1e-5);
    const double h = 1e-5;
    double want_x = 0, want_g = 0, want_b = 0;
    for (std::size_t i = 0; i < v.size(); ++i) want_x += g.dx[i] * v[i];
    for (std::size_t i = 0; i < vg.size(); ++i) want_g += g.dgamma[i] * vg[i];
    for (double d : dy) want_b += d;
    EXPECT_NEAR((loss(h, 0) - loss(-h, 0)) / (2 * h), want_x, 1e-6 * (1 + std::fabs(want_x)));
    EXPECT_NEAR((loss(0, h) - loss(0, -h)) / (2 * h), want_g, 1e-6 * (1 + std::fabs(want_g)));
    double dbeta_total = 0;
    for (double b : g.dbeta) dbeta_total += b;
    EXPECT_NEAR(dbeta_total, want_b, 1e-9 * (1 + std::fabs(want_b)));
  }
}

TEST(HostGroupNorm, EdgeValues) {
  // [1, 4, 6] with 2 groups and eps 0: group 0 (channels 0, 1) constant -> rstd 0, y = beta; group 1 holds
  // a NaN -> NaN statistics and y. A second sample is ordinary.
  const std::int64_t s = 6;
  std::vector<float> x(2 * 4 * s), y(x.size()), beta{0.25f, -0.5f, 0.0f, 0.0f}, mean(4), rstd(4);
  for (std::int64_t i = 0; i < 4 * s; ++i) {
    x[i] = i < 2 * s ? 2.0f : static_cast<float>(i);
    x[4 * s + i] = static_cast<float>(i % 7);
  }
  x[3 * s + 1] = std::numeric_limits<float>::quiet_NaN();
  GroupNormOptions o = GroupNormOptions::pytorch(2);
  o.eps = 0;
  const Status st = group_norm_forward(TensorView(x.data(), DType::float32, {2, 4, s}), {}, TensorView(beta.data(), DType::float32, {4}),
                                       TensorView(y.data(), DType::float32, {2, 4, s}), TensorView(mean.data(), DType::float32, {2, 2}),
                                       TensorView(rstd.data(), DType::float32, {4}), o, nullptr, 0);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(mean[0], 2.0f);
  EXPECT_EQ(rstd[0], 0.0f);
  for (std::int64_t i = 0; i < s; ++i) {
    EXPECT_EQ(y[i], 0.25f);
    EXPECT_EQ(y[s + i], -0.5f);
  }
  EXPECT_TRUE(std::isnan(mean[1]) && std::isnan(rstd[1]));
  for (std::int64_t i = 2 * s; i < 4 * s; ++i) EXPECT_TRUE(std::isnan(y[i]));
  EXPECT_TRUE(std::isfinite(mean[2]) && std::isfinite(rstd[3]) && std::isfinite(y[4 * s + 3]));
  // An empty batch is a no-op.
  EXPECT_TRUE(group_norm_forward(TensorView(x.data(), DType::float32, {0, 4, s}), {}, {}, TensorView(y.data(), DType::float32, {0, 4, s}), {},
                                 {}, o, nullptr, 0)
                  .ok());
}

TEST(HostGroupNorm, ArgumentErrors) {
  std::vector<float> x(48), y(48), dx(48), c6(6), c4(4), g4(4), g3(3);
  const TensorView xv(x.data(), DType::float32, {2, 6, 4}), yv(y.data(), DType::float32, {2, 6, 4});
  const TensorView dxv(dx.data(), DType::float32, {2, 6, 4});
  auto message = [](const Status& s) { return s.ok() ? std::string("ok") : s.message(); };
  GroupNormOptions o = GroupNormOptions::pytorch(4);
  Status s = group_norm_forward(xv, {}, {}, yv, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("options.groups"), std::string::npos) << message(s);  // 4 does not divide 6
  EXPECT_NE(message(s).find("a divisor of C = 6"), std::string::npos) << message(s);
  o.groups = -1;
  s = group_norm_forward(xv, {}, {}, yv, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("options.groups"), std::string::npos) << message(s);
  o = GroupNormOptions::pytorch(2);
  s = group_norm_forward(xv, TensorView(c4.data(), DType::float32, {4}), {}, yv, {}, {}, o, nullptr, 0);
  EXPECT_EQ(s.code(), StatusCode::shape_mismatch);
  EXPECT_NE(message(s).find("gamma.shape"), std::string::npos) << message(s);
  s = group_norm_forward(xv, {}, {}, yv, TensorView(g3.data(), DType::float32, {3}), {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("saved_mean.shape"), std::string::npos) << message(s);
  EXPECT_NE(message(s).find("N * G"), std::string::npos) << message(s);
  s = group_norm_forward(xv, {}, {}, TensorView(y.data(), DType::bfloat16, {2, 6, 4}), {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("y.dtype"), std::string::npos) << message(s);
  s = group_norm_forward(TensorView(x.data(), DType::float32, {48}), {}, {}, TensorView(y.data(), DType::float32, {48}), {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("x.ndim"), std::string::npos) << message(s);
  s = group_norm_forward(xv, {}, {}, TensorView(x.data() + 1, DType::float32, {2, 6, 4}), {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("overlapping"), std::string::npos) << message(s);
  o.eps = std::numeric_limits<double>::infinity();
  s = group_norm_forward(xv, {}, {}, yv, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("options.eps"), std::string::npos) << message(s);
  o = GroupNormOptions::pytorch(2);
  const TensorView g4v(g4.data(), DType::float32, {2, 2});
  s = group_norm_backward(yv, xv, {}, g4v, {}, dxv, {}, {}, o, nullptr, 0);
  EXPECT_EQ(s.code(), StatusCode::null_pointer);
  EXPECT_NE(message(s).find("saved_mean"), std::string::npos) << message(s);
  s = group_norm_backward(yv, xv, g4v, g4v, {}, yv, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("dx.data"), std::string::npos) << message(s);  // dx overlaps dy
  s = group_norm_backward(yv, xv, g4v, g4v, {}, dxv, TensorView(c6.data(), DType::float16, {6}), {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("dgamma.dtype"), std::string::npos) << message(s);
  // Channels last: C is the last axis (4), so 2 groups of 2.
  o.channel_axis = ChannelAxis::last;
  s = group_norm_backward(yv, xv, g4v, g4v, TensorView(c4.data(), DType::float32, {4}), dxv, {}, {}, o, nullptr, 0);
  EXPECT_TRUE(s.ok()) << message(s);
}
