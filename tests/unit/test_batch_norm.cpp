// BatchNorm on the host: training steps against the float64 reference on NCHW / NHWC / [N, C] with odd
// spatial sizes, running statistics step by step under both conventions, the phases against the one-call
// form, inference, edge values, the reference against finite differences, the backward plans and argument
// errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "batch_norm_check.hpp"
#include "normkit/batch_norm.hpp"
#include "plan/batch_norm_plan.hpp"

namespace normkit::testing {
namespace {

// The shapes of the tests: channels first (NCHW with odd spatial sizes, NCL, [N, C]) and last (NHWC).
std::vector<BatchNormCase> layout_cases() {
  std::vector<BatchNormCase> cases;
  const std::vector<std::vector<std::int64_t>> first{{2, 3, 5, 7}, {4, 1, 33}, {19, 64}, {3, 64, 3, 3}, {1, 3, 17, 9}, {2, 8, 1, 1}};
  const std::vector<std::vector<std::int64_t>> last{{2, 5, 7, 3}, {19, 64}, {3, 9, 1}, {2, 3, 3, 64}, {33, 8}, {5, 1, 1, 13}};
  for (const auto& shape : first) {
    BatchNormCase c;
    c.shape = shape;
    cases.push_back(c);
  }
  for (const auto& shape : last) {
    BatchNormCase c = BatchNormCase{};
    c.shape = shape;
    c.options = BatchNormOptions::keras();
    cases.push_back(c);
  }
  return cases;
}

TEST(HostBatchNorm, TrainingStepMatchesReference) {
  for (BatchNormCase c : layout_cases()) {
    for (DType x : {DType::float32, DType::float16, DType::bfloat16}) {
      c.x = x;
      for (int params = 0; params < 2; ++params) {
        c.gamma = c.beta = params == 1;
        c.center = x == DType::float32 ? 3.0 : 0.5;
        BatchNormData d = make_batch_norm_data(c);
        expect_training_near_reference(c, d, run_batch_norm_host(c, d));
      }
    }
  }
}

// Phases called in turn give the one-call results bit for bit.
// The forward's summaries hold what BatchNorm needs (count, mean, M2, the non-finite counts); min, max, Σ|x|
// and the non-zero count are neutral (the statistics engine's moments-only kernels run on the device).
TEST(HostBatchNorm, StatisticsSummariesCarryTheMomentsOnly) {
  // [2, 3, 2]: channel 0 holds 1, 2, 7 and a NaN; channel 1 3, -4, 9, 10; channel 2 0, 6, 11, 12
  std::vector<float> x{1, 2, 3, -4, 0, 6, 7, NAN, 9, 10, 11, 12};
  std::vector<StatsSummary> s(3);
  ASSERT_TRUE(batch_norm_statistics(TensorView(x.data(), DType::float32, {2, 3, 2}), BatchNormOptions::pytorch(), s.data(), 3, nullptr, 0).ok());
  EXPECT_EQ(s[0].count, 3);
  EXPECT_EQ(s[0].nan_count, 1);
  EXPECT_EQ(s[1].count, 4);
  EXPECT_DOUBLE_EQ(s[1].mean, 4.5);
  EXPECT_DOUBLE_EQ(s[2].mean, 7.25);
  EXPECT_DOUBLE_EQ(s[2].m2, (7.25 * 7.25) + (1.25 * 1.25) + (3.75 * 3.75) + (4.75 * 4.75));
  for (const StatsSummary& q : s) {
    EXPECT_EQ(q.min, HUGE_VAL);
    EXPECT_EQ(q.max, -HUGE_VAL);
    EXPECT_EQ(q.abs_sum, 0.0);
    EXPECT_EQ(q.nonzero_count, 0);
  }
}

TEST(HostBatchNorm, PhasesEqualOneCall) {
  for (BatchNormCase c : layout_cases()) {
    c.x = DType::bfloat16;
    BatchNormData d = make_batch_norm_data(c);
    expect_same_bits(run_batch_norm_host(c, d, false), run_batch_norm_host(c, d, true), c.name());
  }
}

TEST(HostBatchNorm, LargeMeanKeepsTheVariance) {
  BatchNormCase c;
  c.shape = {8, 4, 9, 11};
  c.center = 1e4;
  BatchNormData d = make_batch_norm_data(c);
  const BatchNormResult r = run_batch_norm_host(c, d);
  expect_training_near_reference(c, d, r);
  for (float rstd : r.saved_rstd) EXPECT_NEAR(rstd, 1.0, 0.1);
}

// Several steps of each convention against the reference's updates, from the same initial statistics.
TEST(HostBatchNorm, RunningStatisticsStepByStep) {
  std::vector<BatchNormOptions> conventions{BatchNormOptions::pytorch(), BatchNormOptions::keras()};
  BatchNormOptions cumulative;
  cumulative.cumulative_average = true;
  conventions.push_back(cumulative);
  BatchNormOptions keras_first = BatchNormOptions::keras();
  keras_first.channel_axis = ChannelAxis::first;
  keras_first.momentum = 0.9;
  conventions.push_back(keras_first);
  for (const BatchNormOptions& o : conventions) {
    BatchNormCase c;
    c.shape = o.channel_axis == ChannelAxis::first ? std::vector<std::int64_t>{5, 3, 4, 3} : std::vector<std::int64_t>{5, 4, 3, 3};
    c.options = o;
    BatchNormData d = make_batch_norm_data(c);
    const ChannelShape s = c.channel_shape();
    std::vector<float> running_mean = d.running_mean, running_var = d.running_var;
    auto ref_mean = BatchNormData::widened(running_mean), ref_var = BatchNormData::widened(running_var);
    std::vector<unsigned char> y(d.x.bytes.size());
    for (int step = 1; step <= 4; ++step) {
      c.seed = 10 * step;
      c.center = step;
      c.options.batches_tracked = step;
      BatchNormData batch = make_batch_norm_data(c);
      const TensorView x(batch.x.data(), c.x, c.shape.data(), c.ndim()), yv(y.data(), c.x, c.shape.data(), c.ndim());
      const Status st = batch_norm_forward_training(x, TensorView(), TensorView(), yv, channel_view(running_mean.data(), s.channels, MemorySpace::host),
                                                    channel_view(running_var.data(), s.channels, MemorySpace::host), TensorView(), TensorView(),
                                                    c.options, nullptr, 0);
      ASSERT_TRUE(st.ok()) << st.message();
      const BatchNormReference ref = batch_norm_reference(batch.x.stored, s, {}, {}, c.options.eps);
      running_stats_reference(&ref_mean, &ref_var, ref.mean, ref.var, s.n(), c.options);
      for (std::int64_t k = 0; k < s.channels; ++k) {
        EXPECT_NEAR(running_mean[k], ref_mean[k], 2e-6 * (1 + std::fabs(ref_mean[k]))) << c.name() << " step " << step;
        EXPECT_NEAR(running_var[k], ref_var[k], 2e-6 * (1 + ref_var[k])) << c.name() << " step " << step;
      }
    }
  }
}

// The conventions' formulas on one constant-free batch, written out: PyTorch takes the unbiased variance,
// Keras the biased one, cumulative the plain average.
TEST(HostBatchNorm, RunningStatisticsConventions) {
  // One channel, values 1..4: mean 2.5, biased var 1.25, unbiased 5/3.
  std::vector<float> x{1, 2, 3, 4}, y(4), rm{0.0f}, rv{1.0f};
  const TensorView xv(x.data(), DType::float32, {4, 1}), yv(y.data(), DType::float32, {4, 1});
  const TensorView rmv(rm.data(), DType::float32, {1}), rvv(rv.data(), DType::float32, {1});
  BatchNormOptions o = BatchNormOptions::pytorch();
  ASSERT_TRUE(batch_norm_forward_training(xv, {}, {}, yv, rmv, rvv, {}, {}, o, nullptr, 0).ok());
  EXPECT_FLOAT_EQ(rm[0], 0.25f);
  EXPECT_FLOAT_EQ(rv[0], static_cast<float>(0.9 + 0.1 * 5.0 / 3.0));
  rm = {0.0f};
  rv = {1.0f};
  o = BatchNormOptions::keras();
  ASSERT_TRUE(batch_norm_forward_training(xv, {}, {}, yv, rmv, rvv, {}, {}, o, nullptr, 0).ok());
  EXPECT_FLOAT_EQ(rm[0], static_cast<float>(0.01 * 2.5));
  EXPECT_FLOAT_EQ(rv[0], static_cast<float>(0.99 + 0.01 * 1.25));
  rm = {10.0f};
  rv = {1.0f};
  o = BatchNormOptions::pytorch();
  o.cumulative_average = true;
  o.batches_tracked = 1;  // the first batch replaces the initial values
  ASSERT_TRUE(batch_norm_forward_training(xv, {}, {}, yv, rmv, rvv, {}, {}, o, nullptr, 0).ok());
  EXPECT_FLOAT_EQ(rm[0], 2.5f);
  EXPECT_FLOAT_EQ(rv[0], static_cast<float>(5.0 / 3.0));
  // y uses the biased variance: (x - 2.5) / sqrt(1.25 + 1e-5)
  EXPECT_NEAR(y[0], -1.5 / std::sqrt(1.25 + 1e-5), 1e-6);
}

TEST(HostBatchNorm, InferenceMatchesReference) {
  for (BatchNormCase c : layout_cases()) {
    for (DType x : {DType::float32, DType::float16, DType::bfloat16}) {
      c.x = x;
      BatchNormData d = make_batch_norm_data(c);
      std::vector<unsigned char> y(d.x.bytes.size());
      const std::int64_t channels = c.channels();
      const TensorView xv(d.x.data(), x, c.shape.data(), c.ndim()), yv(y.data(), x, c.shape.data(), c.ndim());
      const Status s = batch_norm_forward_inference(xv, channel_view(d.gamma.data(), channels, MemorySpace::host),
                                                    channel_view(d.beta.data(), channels, MemorySpace::host),
                                                    channel_view(d.running_mean.data(), channels, MemorySpace::host),
                                                    channel_view(d.running_var.data(), channels, MemorySpace::host), yv, c.options, nullptr, 0);
      ASSERT_TRUE(s.ok()) << s.message();
      expect_inference_near_reference(c, d, y);
    }
  }
}

// A running mean of 1e6 keeps the data's spread: the center is subtracted apart from the scale.
TEST(HostBatchNorm, InferenceKeepsSpreadAtLargeMean) {
  std::vector<float> x(64), y(64);
  for (int i = 0; i < 64; ++i) x[i] = 1e6f + 0.0625f * static_cast<float>(i % 8);
  std::vector<float> rm{1e6f}, rv{0.0625f * 0.0625f};
  BatchNormOptions o;
  o.eps = 0;
  const Status s = batch_norm_forward_inference(TensorView(x.data(), DType::float32, {64, 1}), {}, {},
                                                TensorView(rm.data(), DType::float32, {1}), TensorView(rv.data(), DType::float32, {1}),
                                                TensorView(y.data(), DType::float32, {64, 1}), o, nullptr, 0);
  ASSERT_TRUE(s.ok()) << s.message();
  for (int i = 0; i < 64; ++i) EXPECT_EQ(y[i], static_cast<float>(i % 8)) << i;
}

TEST(HostBatchNorm, EdgeValues) {
  // Channel 0 constant with eps = 0: var = eps = 0 gives rstd 0 (PyTorch), so y = beta. Channel 1 holds a
  // NaN: NaN statistics, NaN y, NaN running statistics. Channel 2 is ordinary.
  const std::int64_t n = 6;
  std::vector<float> x(3 * n), y(3 * n), beta{0.25f, 0.0f, 0.0f}, rm(3, 0.0f), rv(3, 1.0f), mean(3), rstd(3);
  for (std::int64_t i = 0; i < n; ++i) {
    x[i] = 2.0f;
    x[n + i] = static_cast<float>(i);
    x[2 * n + i] = static_cast<float>(i * i);
  }
  x[n + 2] = std::numeric_limits<float>::quiet_NaN();
  BatchNormOptions o;
  o.eps = 0;
  const Status s = batch_norm_forward_training(TensorView(x.data(), DType::float32, {1, 3, n}), {}, TensorView(beta.data(), DType::float32, {3}),
                                               TensorView(y.data(), DType::float32, {1, 3, n}), TensorView(rm.data(), DType::float32, {3}),
                                               TensorView(rv.data(), DType::float32, {3}), TensorView(mean.data(), DType::float32, {3}),
                                               TensorView(rstd.data(), DType::float32, {3}), o, nullptr, 0);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(rstd[0], 0.0f);
  EXPECT_EQ(mean[0], 2.0f);
  for (std::int64_t i = 0; i < n; ++i) EXPECT_EQ(y[i], 0.25f);
  EXPECT_TRUE(std::isnan(mean[1]) && std::isnan(rstd[1]) && std::isnan(rm[1]) && std::isnan(rv[1]));
  for (std::int64_t i = 0; i < n; ++i) EXPECT_TRUE(std::isnan(y[n + i]));
  EXPECT_TRUE(std::isfinite(rstd[2]) && std::isfinite(y[2 * n + 5]));
  // An empty batch is a no-op.
  std::vector<float> before = rm;
  EXPECT_TRUE(batch_norm_forward_training(TensorView(x.data(), DType::float32, {0, 3, n}), {}, {}, TensorView(y.data(), DType::float32, {0, 3, n}),
                                          TensorView(rm.data(), DType::float32, {3}), {}, {}, {}, o, nullptr, 0)
                  .ok());
  EXPECT_TRUE(std::equal(before.begin(), before.end(), rm.begin(), [](float a, float b) { return (a == b) || (a != a && b != b); }));
}

// The reference's backward is the gradient of its forward: for L = Σ y * dy, the directional derivative
// along v (and along a gamma direction) by central differences equals Σ dx * v.
TEST(BatchNormReference, GradientMatchesFiniteDifferences) {
  for (std::int64_t inner : {1, 5}) {
    ChannelShape s;
    s.outer = 4;
    s.channels = 3;
    s.inner = inner;
    const std::vector<double> x = normal_values(s.numel(), 0.3, 1.0, 7), dy = normal_values(s.numel(), 0.0, 1.0, 8);
    const std::vector<double> gamma = uniform_values(3, 0.5, 1.5, 9), beta = uniform_values(3, -0.5, 0.5, 10);
    const std::vector<double> v = normal_values(s.numel(), 0.0, 1.0, 11), vg = normal_values(3, 0.0, 1.0, 12);
    auto loss = [&](double h, double hg) {
      std::vector<double> xs = x, gs = gamma;
      for (std::size_t i = 0; i < xs.size(); ++i) xs[i] += h * v[i];
      for (std::size_t i = 0; i < gs.size(); ++i) gs[i] += hg * vg[i];
      const BatchNormReference f = batch_norm_reference(xs, s, gs, beta, 1e-5);
      double l = 0;
      for (std::size_t i = 0; i < f.y.size(); ++i) l += f.y[i] * dy[i];
      return l;
    };
    const BatchNormGradReference g = batch_norm_grad_reference(dy, x, s, gamma, 1e-5);
    const double h = 1e-5;
    double want_x = 0, want_g = 0;
    for (std::size_t i = 0; i < v.size(); ++i) want_x += g.dx[i] * v[i];
    for (std::size_t i = 0; i < vg.size(); ++i) want_g += g.dgamma[i] * vg[i];
    EXPECT_NEAR((loss(h, 0) - loss(-h, 0)) / (2 * h), want_x, 1e-6 * (1 + std::fabs(want_x)));
    EXPECT_NEAR((loss(0, h) - loss(0, -h)) / (2 * h), want_g, 1e-6 * (1 + std::fabs(want_g)));
  }
}

// SyncBatchNorm with two "ranks" on the host: summaries merged, sums added, merged count: the same result as
// one rank holding both halves (to float32 rounding: the merge order differs).
TEST(HostBatchNorm, PhasesMergeAcrossRanks) {
  BatchNormCase whole;
  whole.shape = {8, 3, 5, 5};
  BatchNormData d = make_batch_norm_data(whole);
  const BatchNormResult want = run_batch_norm_host(whole, d);
  const std::int64_t half = d.x.bytes.size() / 2, channels = 3;
  BatchNormCase rank = whole;
  rank.shape = {4, 3, 5, 5};
  std::vector<StatsSummary> a(channels), b(channels);
  std::vector<float> running_mean = d.running_mean, running_var = d.running_var, mean(channels), rstd(channels);
  std::vector<unsigned char> y(d.x.bytes.size()), dx(d.x.bytes.size());
  auto view = [&](TypedData& t, std::int64_t offset) { return TensorView(static_cast<unsigned char*>(t.data()) + offset, DType::float32, rank.shape.data(), 4); };
  auto out = [&](std::vector<unsigned char>& t, std::int64_t offset) { return TensorView(t.data() + offset, DType::float32, rank.shape.data(), 4); };
  auto ch = [&](std::vector<float>& v) { return channel_view(v.data(), channels, MemorySpace::host); };
  ASSERT_TRUE(batch_norm_statistics(view(d.x, 0), rank.options, a.data(), channels, nullptr, 0).ok());
  ASSERT_TRUE(batch_norm_statistics(view(d.x, half), rank.options, b.data(), channels, nullptr, 0).ok());
  ASSERT_TRUE(merge_summaries(a.data(), b.data(), channels, MemorySpace::host).ok());
  ASSERT_TRUE(batch_norm_finalize(a.data(), channels, MemorySpace::host, ch(running_mean), ch(running_var), ch(mean), ch(rstd), rank.options).ok());
  std::vector<float> gamma = d.gamma, beta = d.beta;
  std::vector<float> sums_a(2 * channels), sums_b(2 * channels), dgamma(channels), dbeta(channels);
  for (std::int64_t offset : {std::int64_t{0}, half}) {
    ASSERT_TRUE(batch_norm_normalize(view(d.x, offset), ch(mean), ch(rstd), ch(gamma), ch(beta), out(y, offset), rank.options, nullptr, 0).ok());
  }
  ASSERT_TRUE(batch_norm_backward_reduce(view(d.dy, 0), view(d.x, 0), ch(mean), channel_view(sums_a.data(), channels, MemorySpace::host),
                                         channel_view(sums_a.data() + channels, channels, MemorySpace::host), rank.options, nullptr, 0).ok());
  ASSERT_TRUE(batch_norm_backward_reduce(view(d.dy, half), view(d.x, half), ch(mean), channel_view(sums_b.data(), channels, MemorySpace::host),
                                         channel_view(sums_b.data() + channels, channels, MemorySpace::host), rank.options, nullptr, 0).ok());
  for (std::size_t i = 0; i < sums_a.size(); ++i) sums_a[i] += sums_b[i];
  const TensorView sum_dy = channel_view(sums_a.data(), channels, MemorySpace::host);
  const TensorView sum_dy_xmu = channel_view(sums_a.data() + channels, channels, MemorySpace::host);
  for (std::int64_t offset : {std::int64_t{0}, half}) {
    ASSERT_TRUE(batch_norm_backward_apply(view(d.dy, offset), view(d.x, offset), ch(mean), ch(rstd), ch(gamma), sum_dy, sum_dy_xmu, 8 * 25,
                                          out(dx, offset), offset == 0 ? ch(dgamma) : TensorView(), offset == 0 ? ch(dbeta) : TensorView(),
                                          rank.options, nullptr, 0).ok());
  }
  BatchNormResult got;
  got.y = y;
  got.dx = dx;
  got.saved_mean = mean;
  got.saved_rstd = rstd;
  got.running_mean = running_mean;
  got.running_var = running_var;
  got.dgamma = dgamma;
  got.dbeta = dbeta;
  expect_training_near_reference(whole, d, got);
  for (std::int64_t c = 0; c < channels; ++c) {
    EXPECT_NEAR(got.running_var[c], want.running_var[c], 1e-6 * want.running_var[c]);  // the merged count's unbiased factor
  }
}

// SyncBatchNorm with an empty rank: its statistics are empty summaries, its sums zeros, and it still writes
// dgamma/dbeta from the merged sums; a merged count of 0 leaves the running statistics alone.
TEST(HostBatchNorm, EmptyRankInPhases) {
  const std::int64_t channels = 3;
  float dummy = 0;
  const TensorView empty(&dummy, DType::float32, {0, channels, 4, 4});
  BatchNormOptions o;
  std::vector<StatsSummary> summaries(channels);
  ASSERT_TRUE(batch_norm_statistics(empty, o, summaries.data(), channels, nullptr, 0).ok());
  for (const auto& sm : summaries) EXPECT_EQ(sm.count, 0);
  std::vector<float> rm{1, 2, 3}, rv{4, 5, 6}, mean(channels), rstd(channels, 2.0f);
  auto ch = [&](std::vector<float>& v) { return TensorView(v.data(), DType::float32, {channels}); };
  ASSERT_TRUE(batch_norm_finalize(summaries.data(), channels, MemorySpace::host, ch(rm), ch(rv), ch(mean), ch(rstd), o).ok());
  EXPECT_EQ(rm, (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(rv, (std::vector<float>{4, 5, 6}));
  EXPECT_TRUE(std::isnan(mean[0]) && std::isnan(rstd[0]));
  std::vector<float> sum_dy(channels, 7.0f), sum_dy_xmu(channels, 7.0f);
  ASSERT_TRUE(batch_norm_backward_reduce(empty, empty, ch(mean), ch(sum_dy), ch(sum_dy_xmu), o, nullptr, 0).ok());
  EXPECT_EQ(sum_dy, (std::vector<float>(channels, 0.0f)));
  EXPECT_EQ(sum_dy_xmu, (std::vector<float>(channels, 0.0f)));
  // The merged sums of the other ranks give this rank's parameter gradients too.
  std::vector<float> merged_dy{1, 2, 3}, merged_xmu{4, 5, 6}, saved_mean(channels, 0.0f), saved_rstd(channels, 0.5f), dgamma(channels), dbeta(channels);
  ASSERT_TRUE(batch_norm_backward_apply(empty, empty, ch(saved_mean), ch(saved_rstd), {}, ch(merged_dy), ch(merged_xmu), 10, {}, ch(dgamma),
                                        ch(dbeta), o, nullptr, 0).ok());
  EXPECT_EQ(dgamma, (std::vector<float>{2, 2.5f, 3}));
  EXPECT_EQ(dbeta, merged_dy);
  // No channels at all: the backward's plan is empty (no division by the channel tiles).
  const plan::ChannelPlan none = plan::choose_channel_plan(plan::ChannelGeometry{8, 0, 1}, DType::float32);
  EXPECT_EQ(none.blocks, 0);
  EXPECT_EQ(none.parts, 0);
}

TEST(BatchNormPlan, DependsOnShapeAndDtypeOnly) {
  // ResNet-50's first stage, NCHW bfloat16: segments of 56 x 56 = 3136 (392 packs of 8), a warp per chunk
  // of 128 packs; 256 channels of 2 parts (512 blocks).
  plan::ChannelGeometry g{32, 256, 3136};
  plan::ChannelPlan p = plan::choose_channel_plan(g, DType::bfloat16);
  EXPECT_EQ(p.walk, plan::ChannelWalk::segments);
  EXPECT_EQ(p.vec, 8);
  EXPECT_EQ(p.group_lanes, 32);
  EXPECT_EQ(p.chunk_packs, 128);
  EXPECT_EQ(p.chunks_per_segment, 4);
  EXPECT_EQ(p.items_per_part, 64);
  EXPECT_EQ(p.parts, 2);
  EXPECT_EQ(p.blocks, 2 * 256);
  EXPECT_EQ(p.sum_lanes, 32);
  // Few channels spread over more parts: 3 channels of 256 x 224 x 224 float32.
  p = plan::choose_channel_plan(plan::ChannelGeometry{256, 3, 224 * 224}, DType::float32);
  EXPECT_EQ(p.parts, (256 * 98 + p.items_per_part - 1) / p.items_per_part);
  EXPECT_LE(p.parts * 3, plan::kMaxSegmentParts + 3);
  EXPECT_EQ(p.sum_lanes, 4);
  // Odd spatial sizes load element by element; short segments take narrower lane groups.
  p = plan::choose_channel_plan(plan::ChannelGeometry{4, 3, 49}, DType::float32);
  EXPECT_EQ(p.vec, 1);
  EXPECT_EQ(p.group_lanes, 16);  // 49 packs in batches of 4
  EXPECT_EQ(p.parts, 1);
  EXPECT_EQ(p.groups_per_channel, 4);  // a group a segment
  EXPECT_EQ(p.channels_per_block, 3);  // the block holds every channel's one partial
  EXPECT_EQ(p.threads, 3 * 4 * 16);
  EXPECT_EQ(p.blocks, 1);
  // ResNet-50's last stage, 7 x 7 bfloat16 (segments of 49: not whole packs; rows of 2048 x 49, whole ones):
  // spans of 40 channels (245 packs of 8, a thread each), 52 tiles, 9 parts of 38 rows.
  p = plan::choose_channel_plan(plan::ChannelGeometry{334, 2048, 49}, DType::bfloat16);
  EXPECT_EQ(p.walk, plan::ChannelWalk::spans);
  EXPECT_EQ(p.vec, 8);
  EXPECT_EQ(p.span_channels, 40);
  EXPECT_EQ(p.span_packs, 245);
  EXPECT_EQ(p.threads, 256);
  EXPECT_EQ(p.channel_tiles, 52);
  EXPECT_EQ(p.rows_per_part, 38);
  EXPECT_EQ(p.parts, 9);
  EXPECT_EQ(p.blocks, 9 * 52);
  // 14 x 14 float32 (196 = 49 packs of 4: the segments walk); 14 x 14 bfloat16: spans of channel pairs.
  EXPECT_EQ(plan::choose_channel_plan(plan::ChannelGeometry{8, 1024, 196}, DType::float32).walk, plan::ChannelWalk::segments);
  p = plan::choose_channel_plan(plan::ChannelGeometry{8, 1024, 196}, DType::bfloat16);
  EXPECT_EQ(p.walk, plan::ChannelWalk::spans);
  EXPECT_EQ(p.span_channels % 2, 0);
  EXPECT_EQ(p.span_channels * 196 % 8, 0);
  // Rows that are not whole packs (3 x 49 values), GroupNorm's per-sample sums and segments shorter than
  // a pack keep the segments walk.
  EXPECT_EQ(plan::choose_channel_plan(plan::ChannelGeometry{4, 3, 49}, DType::bfloat16).walk, plan::ChannelWalk::segments);
  EXPECT_EQ(plan::choose_channel_plan(plan::ChannelGeometry{1, 2048, 49, 8, true}, DType::bfloat16).walk, plan::ChannelWalk::segments);
  EXPECT_EQ(plan::choose_channel_plan(plan::ChannelGeometry{4, 16, 5}, DType::bfloat16).walk, plan::ChannelWalk::segments);
  p = plan::choose_channel_plan(plan::ChannelGeometry{64, 8, 12}, DType::float32);
  EXPECT_EQ(p.vec, 4);
  EXPECT_EQ(p.group_lanes, 1);
  // Channels last: a tile of 32 packs of channels, rows in parts of whole trips.
  p = plan::choose_channel_plan(plan::ChannelGeometry{100352, 256, 1}, DType::bfloat16);
  EXPECT_EQ(p.walk, plan::ChannelWalk::columns);
  EXPECT_EQ(p.block_x, 32);
  EXPECT_EQ(p.block_y, 8);
  EXPECT_EQ(p.rows_per_part % (8 * plan::kColumnRowBatch), 0);
  EXPECT_EQ(p.rows_per_part, 416);  // 100352 / 256 = 392 rows, in whole trips of 32
  EXPECT_EQ(p.parts, (100352 + 415) / 416);
  p = plan::choose_channel_plan(plan::ChannelGeometry{10, 3, 1}, DType::float16);
  EXPECT_EQ(p.vec, 1);
  EXPECT_EQ(p.block_x, 4);
  EXPECT_EQ(p.block_y, 64);
  EXPECT_EQ(p.parts, 1);
  // C = 320 float16 (40 packs of 8): 5 tiles of 8 packs rather than one of 64 lanes with 24 idle.
  p = plan::choose_channel_plan(plan::ChannelGeometry{4096, 320, 1}, DType::float16);
  EXPECT_EQ(p.block_x, 8);
  EXPECT_EQ(p.channel_tiles, 5);
  // GroupNorm: a sample's parts are those of the sample alone, whatever the batch.
  plan::ChannelGeometry one{4096, 320, 1, 1, true}, many{4096, 320, 1, 24, true};
  const plan::ChannelPlan p1 = plan::choose_channel_plan(one, DType::float16), p24 = plan::choose_channel_plan(many, DType::float16);
  EXPECT_EQ(p1.rows_per_part, p24.rows_per_part);
  EXPECT_EQ(p1.parts, p24.parts);
  EXPECT_EQ(p24.blocks, 24 * p1.blocks);
  EXPECT_GE(p1.rows_per_part * 320, plan::kSamplePartElements);
  // ... and channels first: one segment a (sample, channel), 32 of them a block.
  const plan::ChannelPlan s1 = plan::choose_channel_plan({1, 1280, 256, 1, true}, DType::float16);
  const plan::ChannelPlan s8 = plan::choose_channel_plan({1, 1280, 256, 8, true}, DType::float16);
  EXPECT_EQ(s1.group_lanes, s8.group_lanes);
  EXPECT_EQ(s1.groups_per_channel, s8.groups_per_channel);
  EXPECT_EQ(s1.chunk_packs, s8.chunk_packs);
  EXPECT_EQ(s8.channels_per_block, 32);
  EXPECT_EQ(s8.blocks, 8 * 1280 / 32);
  // Workspace: sums and partials, each 256-byte aligned.
  const auto w = plan::batch_norm_backward_workspace(plan::ChannelGeometry{32, 256, 3136}, plan::choose_channel_plan({32, 256, 3136}, DType::bfloat16));
  EXPECT_EQ(w.sums, 2048u);
  EXPECT_EQ(w.partials, 2u * 2 * 256 * 4);
  EXPECT_EQ(w.total, w.sums + w.partials);
}

TEST(HostBatchNorm, ArgumentErrors) {
  std::vector<float> x(24), y(24), c3(3), c4(4), dx(24);
  const TensorView xv(x.data(), DType::float32, {2, 3, 4}), yv(y.data(), DType::float32, {2, 3, 4});
  const TensorView c3v(c3.data(), DType::float32, {3});
  BatchNormOptions o;
  auto message = [](const Status& s) { return s.ok() ? std::string("ok") : s.message(); };
  Status s = batch_norm_forward_training(xv, TensorView(c4.data(), DType::float32, {4}), {}, yv, {}, {}, {}, {}, o, nullptr, 0);
  EXPECT_EQ(s.code(), StatusCode::shape_mismatch);
  EXPECT_NE(message(s).find("gamma.shape"), std::string::npos) << message(s);
  o.channel_axis = ChannelAxis::last;  // C = 4: now gamma of 4 fits and c3 does not
  s = batch_norm_forward_training(xv, c3v, {}, yv, {}, {}, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("gamma.shape"), std::string::npos) << message(s);
  o = BatchNormOptions{};
  s = batch_norm_forward_training(TensorView(x.data(), DType::float32, {24}), {}, {}, TensorView(y.data(), DType::float32, {24}), {}, {}, {},
                                  {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("x.ndim"), std::string::npos) << message(s);
  s = batch_norm_forward_training(TensorView(x.data(), DType::float64, {2, 3, 2}), {}, {}, yv, {}, {}, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("x.dtype"), std::string::npos) << message(s);
  s = batch_norm_forward_training(xv, {}, {}, TensorView(y.data(), DType::float16, {2, 3, 4}), {}, {}, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("y.dtype"), std::string::npos) << message(s);
  s = batch_norm_forward_training(xv, {}, {}, TensorView(x.data() + 1, DType::float32, {2, 3, 4}), {}, {}, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("overlapping"), std::string::npos) << message(s);
  s = batch_norm_forward_training(xv, {}, {}, yv, TensorView(c3.data(), DType::float16, {3}), {}, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("running_mean.dtype"), std::string::npos) << message(s);
  s = batch_norm_forward_training(TensorView(x.data(), DType::float32, {1, 3, 1}), {}, {}, TensorView(y.data(), DType::float32, {1, 3, 1}), {},
                                  {}, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("more than 1 value per channel"), std::string::npos) << message(s);
  o.eps = -1;
  s = batch_norm_forward_training(xv, {}, {}, yv, {}, {}, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("options.eps"), std::string::npos) << message(s);
  o = BatchNormOptions{};
  o.momentum = 1.5;
  s = batch_norm_forward_training(xv, {}, {}, yv, {}, {}, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("options.momentum"), std::string::npos) << message(s);
  o = BatchNormOptions::keras();
  o.cumulative_average = true;
  s = batch_norm_forward_training(xv, {}, {}, yv, {}, {}, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("cumulative_average"), std::string::npos) << message(s);
  o = BatchNormOptions{};
  o.cumulative_average = true;
  o.batches_tracked = 0;
  s = batch_norm_forward_training(xv, {}, {}, yv, {}, {}, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("batches_tracked"), std::string::npos) << message(s);
  o = BatchNormOptions{};
  // Inference needs the running statistics; the backward its saved ones.
  s = batch_norm_forward_inference(xv, {}, {}, {}, c3v, yv, o, nullptr, 0);
  EXPECT_EQ(s.code(), StatusCode::null_pointer);
  EXPECT_NE(message(s).find("running_mean"), std::string::npos) << message(s);
  const TensorView dxv(dx.data(), DType::float32, {2, 3, 4});
  s = batch_norm_backward(yv, xv, {}, c3v, {}, dxv, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("saved_mean"), std::string::npos) << message(s);
  s = batch_norm_backward(yv, xv, c3v, c3v, {}, yv, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("dx.data"), std::string::npos) << message(s);  // dx overlaps dy
  s = batch_norm_backward_apply(yv, xv, c3v, c3v, {}, c3v, c3v, -1, dxv, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("count"), std::string::npos) << message(s);
  std::vector<StatsSummary> summaries(3);
  s = batch_norm_statistics(xv, o, summaries.data(), 4, nullptr, 0);
  EXPECT_NE(message(s).find("num_summaries"), std::string::npos) << message(s);
  s = batch_norm_finalize(summaries.data(), 3, MemorySpace::host, TensorView(c4.data(), DType::float32, {4}), {}, {}, {}, o);
  EXPECT_NE(message(s).find("running_mean.shape"), std::string::npos) << message(s);
  TensorView bad_rank = c3v;
  bad_rank.ndim = 9;
  s = batch_norm_forward_training(xv, bad_rank, {}, yv, {}, {}, {}, {}, o, nullptr, 0);
  EXPECT_NE(message(s).find("gamma.ndim"), std::string::npos) << message(s);
  std::int64_t channels = 0;
  ASSERT_TRUE(batch_norm_channels(xv, BatchNormOptions::keras(), &channels).ok());
  EXPECT_EQ(channels, 4);
  std::size_t bytes = 1;
  ASSERT_TRUE(batch_norm_workspace_size(xv, o, &bytes).ok());
  EXPECT_EQ(bytes, 0u);
}

// Eval-mode backward (PyTorch's model.eval() with gradients): dx = dy * gamma / sqrt(running_var + eps),
// dgamma = Σ dy (x - running_mean) / sqrt(running_var + eps), dbeta = Σ dy, against float64 formulas, on
// both layouts and every dtype; dx alone and the parameters alone.
TEST(HostBatchNorm, EvalModeBackwardMatchesFormulas) {
  for (DType dtype : {DType::float32, DType::float16, DType::bfloat16}) {
    for (ChannelAxis axis : {ChannelAxis::first, ChannelAxis::last}) {
      BatchNormCase c;
      c.shape = axis == ChannelAxis::first ? std::vector<std::int64_t>{3, 4, 5, 7} : std::vector<std::int64_t>{3, 5, 7, 4};
      c.options = axis == ChannelAxis::first ? BatchNormOptions::pytorch() : BatchNormOptions::keras();
      c.x = dtype;
      BatchNormData d = make_batch_norm_data(c);
      const ChannelShape s = c.channel_shape();
      const double eps = static_cast<float>(c.options.eps);
      std::vector<unsigned char> dx(d.x.bytes.size());
      std::vector<float> dgamma(4), dbeta(4);
      const auto view = [&](void* p) { return TensorView(p, dtype, c.shape.data(), c.ndim()); };
      const auto ch = [](std::vector<float>& v) { return TensorView(v.data(), DType::float32, {4}); };
      Status st = batch_norm_backward_eval(view(d.dy.data()), view(d.x.data()), ch(d.gamma), ch(d.running_mean), ch(d.running_var),
                                           view(dx.data()), ch(dgamma), ch(dbeta), c.options, nullptr, 0);
      ASSERT_TRUE(st.ok()) << st.message();
      std::vector<double> want_dx(d.x.stored.size()), scale(want_dx.size()), want_dg(4, 0.0), want_db(4, 0.0), dg_scale(4, 0.0);
      for (std::int64_t i = 0; i < s.numel(); ++i) {
        const std::int64_t k = s.channel_of(i);
        const double rstd = 1.0 / std::sqrt(static_cast<double>(d.running_var[k]) + eps);
        want_dx[i] = d.dy.stored[i] * d.gamma[k] * rstd;
        scale[i] = std::fabs(want_dx[i]);
        want_dg[k] += d.dy.stored[i] * (d.x.stored[i] - d.running_mean[k]) * rstd;
        dg_scale[k] += std::fabs(d.dy.stored[i] * (std::fabs(d.x.stored[i]) + std::fabs(d.running_mean[k])) * rstd);
        want_db[k] += d.dy.stored[i];
      }
      const std::string what = c.name() + " eval backward";
      expect_near_scaled(decode(dx, dtype), want_dx, scale, 1e-6, output_rounding(dtype), output_rounding_abs(dtype), what + ": dx");
      const double rel = accumulation_tolerance(s.n());
      expect_near_scaled(BatchNormData::widened(dgamma), want_dg, dg_scale, rel, 0.0, 0.0, what + ": dgamma");
      std::vector<double> db_scale(4);
      for (int k = 0; k < 4; ++k) db_scale[k] = std::fabs(want_db[k]) + std::sqrt(static_cast<double>(s.n()));
      expect_near_scaled(BatchNormData::widened(dbeta), want_db, db_scale, rel, 0.0, 0.0, what + ": dbeta");
      // dx alone needs no running mean; the parameters alone no dx.
      std::vector<unsigned char> dx_only(dx.size());
      st = batch_norm_backward_eval(view(d.dy.data()), view(d.x.data()), ch(d.gamma), {}, ch(d.running_var), view(dx_only.data()), {}, {},
                                    c.options, nullptr, 0);
      ASSERT_TRUE(st.ok()) << st.message();
      EXPECT_TRUE(dx_only == dx) << what;
      std::vector<float> dg2(4), db2(4);
      st = batch_norm_backward_eval(view(d.dy.data()), view(d.x.data()), {}, ch(d.running_mean), ch(d.running_var), {}, ch(dg2), ch(db2),
                                    c.options, nullptr, 0);
      ASSERT_TRUE(st.ok()) << st.message();
      EXPECT_EQ(dg2, dgamma);
      EXPECT_EQ(db2, dbeta);
      // dgamma without the running mean is an error naming it.
      st = batch_norm_backward_eval(view(d.dy.data()), view(d.x.data()), {}, {}, ch(d.running_var), {}, ch(dg2), {}, c.options, nullptr, 0);
      EXPECT_EQ(st.code(), StatusCode::null_pointer);
      EXPECT_NE(st.message().find("running_mean"), std::string::npos) << st.message();
    }
  }
}

}  // namespace
}  // namespace normkit::testing
