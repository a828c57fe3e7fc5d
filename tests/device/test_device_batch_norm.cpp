// BatchNorm kernels on a GPU or under ../shared/ptxemu: training steps against the float64 reference and the
// host engine on both walks (segments, columns), 16-byte and element-wise packs, several partials; the same
// bits run to run, with misaligned tensors and in phases; inference; a step captured in a CUDA graph.
#include <cstring>
#include <vector>

#include "batch_norm_check.hpp"
#include "device_support.hpp"
#include "normkit/batch_norm.hpp"
#include "plan/batch_norm_plan.hpp"

using namespace normkit;
using namespace normkit::testing;

namespace {

struct DeviceRun {
  bool phases = false;
  int graph_replays = 0;        // > 0: capture the step in a graph and launch it this many times
  std::size_t misalign = 0;     // bytes added to x, dy, y and dx's starts
  bool backward_only = false;   // the backward from the host's saved statistics (in the result's saved_*)
  bool without_dx = false;      // dgamma and dbeta only
};

// A training step on device copies of `d`'s buffers, results copied back. With backward_only, r_in's
// saved_mean/saved_rstd feed the backward.
BatchNormResult run_device(const BatchNormCase& c, BatchNormData& d, const DeviceRun& run = {}, const BatchNormResult* r_in = nullptr) {
  const std::int64_t channels = c.channels();
  BatchNormResult r = prepared_result(c, d);
  if (r_in) {
    r.saved_mean = r_in->saved_mean;
    r.saved_rstd = r_in->saved_rstd;
  }
  DeviceCopy x = to_device(d.x.data(), d.x.bytes.size(), run.misalign), dy = to_device(d.dy.data(), d.dy.bytes.size(), run.misalign);
  DeviceCopy y = to_device(r.y.data(), r.y.size(), run.misalign), dx = to_device(r.dx.data(), r.dx.size(), run.misalign);
  auto floats = [](std::vector<float>& v) { return to_device(v.data(), v.size() * 4); };
  DeviceCopy gamma = floats(d.gamma), beta = floats(d.beta), running_mean = floats(r.running_mean), running_var = floats(r.running_var);
  DeviceCopy saved_mean = floats(r.saved_mean), saved_rstd = floats(r.saved_rstd), dgamma = floats(r.dgamma), dbeta = floats(r.dbeta);
  const auto view = [&](const DeviceCopy& p) { return TensorView(p.ptr(), c.x, c.shape.data(), c.ndim(), MemorySpace::device); };
  const auto channel = [&](const DeviceCopy& p) { return channel_view(p.ptr(), channels, MemorySpace::device); };
  BatchNormBuffers b;
  b.x = view(x);
  b.dy = view(dy);
  b.y = view(y);
  b.dx = run.without_dx ? TensorView() : view(dx);
  b.gamma = channel(gamma);
  b.beta = channel(beta);
  b.running_mean = channel(running_mean);
  b.running_var = channel(running_var);
  b.saved_mean = channel(saved_mean);
  b.saved_rstd = channel(saved_rstd);
  b.dgamma = channel(dgamma);
  b.dbeta = channel(dbeta);
  std::size_t workspace_bytes = 0;
  EXPECT_TRUE(batch_norm_workspace_size(b.x, c.options, &workspace_bytes).ok());
  // (the phases keep their summaries and sums past the call's workspace: batch_norm_check.hpp)
  workspace_bytes += static_cast<std::size_t>(channels) * (sizeof(StatsSummary) + 8);
  DeviceBytes workspace(workspace_bytes);
  run_on_new_stream(run.graph_replays, [&](cudaStream_t stream) {
    if (!run.backward_only) return run_training_step(c, b, run.phases, workspace.ptr, workspace_bytes, stream);
    const Status s = batch_norm_backward(b.dy, b.x, b.saved_mean, b.saved_rstd, b.gamma, b.dx, b.dgamma, b.dbeta, c.options, workspace.ptr,
                                         workspace_bytes, stream);
    EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
  });
  from_device(r.y, y);
  from_device(r.dx, dx);
  from_device(r.saved_mean, saved_mean);
  from_device(r.saved_rstd, saved_rstd);
  from_device(r.running_mean, running_mean);
  from_device(r.running_var, running_var);
  from_device(r.dgamma, dgamma);
  from_device(r.dbeta, dbeta);
  return r;
}

BatchNormCase make_case(std::vector<std::int64_t> shape, ChannelAxis axis, DType x) {
  BatchNormCase c;
  c.shape = std::move(shape);
  c.options = axis == ChannelAxis::first ? BatchNormOptions::pytorch() : BatchNormOptions::keras();
  c.x = x;
  c.center = 1.5;
  return c;
}

// The shapes that reach every walk and pack: channels first with 16-byte packs (S = 64), element-wise packs
// (S = 35), two chunks a segment (S = 2304), several partials (80 segments of 256), spans (S = 49 and 196 in
// rows of whole packs: 48 channels of 7 x 7 in a tile of 40 and one of 8, 20 rows in 3 parts); channels last
// with 16-byte packs (C = 16, 24 over 1000 rows: two partials) and element-wise (C = 3).
std::vector<BatchNormCase> walk_cases(DType x) {
  return {make_case({3, 5, 8, 8}, ChannelAxis::first, x),    make_case({2, 3, 7, 5}, ChannelAxis::first, x),
          make_case({2, 2, 48, 48}, ChannelAxis::first, x),  make_case({80, 2, 16, 16}, ChannelAxis::first, x),
          make_case({20, 48, 7, 7}, ChannelAxis::first, x),  make_case({4, 6, 14, 14}, ChannelAxis::first, x),
          make_case({4, 5, 7, 16}, ChannelAxis::last, x),    make_case({1000, 24}, ChannelAxis::last, x),
          make_case({3, 5, 5, 3}, ChannelAxis::last, x)};
}

void expect_near_host(const BatchNormCase& c, const BatchNormResult& host, const BatchNormResult& device) {
  // (both within float32 rounding of the reference; here of each other, per value's magnitude)
  expect_close_floats(host.saved_mean, device.saved_mean, c.name() + ": saved_mean");
  expect_close_floats(host.saved_rstd, device.saved_rstd, c.name() + ": saved_rstd");
  expect_close_floats(host.running_mean, device.running_mean, c.name() + ": running_mean");
  expect_close_floats(host.running_var, device.running_var, c.name() + ": running_var");
}

TEST(DeviceBatchNorm, TrainingStepMatchesReferenceAndHost) {
  REQUIRE_DEVICE();
  for (DType x : {DType::float32, DType::float16, DType::bfloat16}) {
    for (BatchNormCase c : walk_cases(x)) {
      BatchNormData d = make_batch_norm_data(c);
      const BatchNormResult device = run_device(c, d);
      expect_training_near_reference(c, d, device);
      expect_near_host(c, run_batch_norm_host(c, d), device);
    }
  }
}

// Run to run, misaligned or not, in phases or in one call: the same bits.
TEST(DeviceBatchNorm, SameBitsRunToRunAlignedOrNotAndInPhases) {
  REQUIRE_DEVICE();
  for (DType x : {DType::float32, DType::bfloat16}) {
    for (BatchNormCase c : walk_cases(x)) {
      BatchNormData d = make_batch_norm_data(c);
      const BatchNormResult first = run_device(c, d);
      expect_same_bits(first, run_device(c, d), c.name() + " second run");
      DeviceRun phases;
      phases.phases = true;
      expect_same_bits(first, run_device(c, d, phases), c.name() + " phases");
      // The backward from the same saved statistics, with x, dy and dx one element off 16 bytes.
      DeviceRun aligned, misaligned;
      aligned.backward_only = misaligned.backward_only = true;
      misaligned.misalign = dtype_size(x);
      const BatchNormResult a = run_device(c, d, aligned, &first), m = run_device(c, d, misaligned, &first);
      EXPECT_TRUE(a.dx == m.dx) << c.name() << ": misaligned dx";
      EXPECT_TRUE(a.dgamma == m.dgamma && a.dbeta == m.dbeta) << c.name() << ": misaligned dgamma/dbeta";
      EXPECT_TRUE(a.dx == first.dx) << c.name() << ": backward alone";
      DeviceRun without_dx = aligned;
      without_dx.without_dx = true;
      const BatchNormResult p = run_device(c, d, without_dx, &first);
      EXPECT_TRUE(p.dgamma == first.dgamma && p.dbeta == first.dbeta) << c.name() << ": dgamma/dbeta without dx";
    }
  }
}

// A forward + backward step captured in a graph and replayed twice: the running statistics take two
// updates; every other output equals one step's.
TEST(DeviceBatchNorm, CapturedInAGraph) {
  REQUIRE_DEVICE();
  BatchNormCase c = make_case({4, 6, 9, 8}, ChannelAxis::first, DType::bfloat16);
  BatchNormData d = make_batch_norm_data(c);
  const BatchNormResult once = run_device(c, d);
  DeviceRun graph;
  graph.graph_replays = 2;
  const BatchNormResult twice = run_device(c, d, graph);
  BatchNormResult host_twice = run_batch_norm_host(c, d);
  d.running_mean = host_twice.running_mean;
  d.running_var = host_twice.running_var;
  host_twice = run_batch_norm_host(c, d);
  EXPECT_TRUE(once.y == twice.y && once.dx == twice.dx && once.dgamma == twice.dgamma);
  for (std::int64_t k = 0; k < c.channels(); ++k) {
    EXPECT_NEAR(twice.running_mean[k], host_twice.running_mean[k], 1e-5);
    EXPECT_NEAR(twice.running_var[k], host_twice.running_var[k], 1e-5);
  }
}

TEST(DeviceBatchNorm, InferenceMatchesReference) {
  REQUIRE_DEVICE();
  for (DType x : {DType::float32, DType::float16, DType::bfloat16}) {
    for (BatchNormCase c : {make_case({3, 5, 8, 8}, ChannelAxis::first, x), make_case({4, 5, 7, 16}, ChannelAxis::last, x)}) {
      BatchNormData d = make_batch_norm_data(c);
      const std::int64_t channels = c.channels();
      std::vector<unsigned char> y(d.x.bytes.size());
      DeviceCopy xd = to_device(d.x.data(), d.x.bytes.size()), yd = to_device(y.data(), y.size());
      DeviceCopy g = to_device(d.gamma.data(), channels * 4), b = to_device(d.beta.data(), channels * 4);
      DeviceCopy rm = to_device(d.running_mean.data(), channels * 4), rv = to_device(d.running_var.data(), channels * 4);
      const TensorView xv(xd.ptr(), x, c.shape.data(), c.ndim(), MemorySpace::device), yv(yd.ptr(), x, c.shape.data(), c.ndim(), MemorySpace::device);
      std::size_t bytes = 0;
      ASSERT_TRUE(batch_norm_workspace_size(xv, c.options, &bytes).ok());
      DeviceBytes workspace(bytes);
      const Status s = batch_norm_forward_inference(xv, channel_view(g.ptr(), channels, MemorySpace::device),
                                                    channel_view(b.ptr(), channels, MemorySpace::device),
                                                    channel_view(rm.ptr(), channels, MemorySpace::device),
                                                    channel_view(rv.ptr(), channels, MemorySpace::device), yv, c.options, workspace.ptr, bytes);
      ASSERT_TRUE(s.ok()) << s.message();
      CUDA_OK(cudaDeviceSynchronize());
      from_device(y, yd);
      expect_inference_near_reference(c, d, y);
    }
  }
}

// An empty rank of SyncBatchNorm on the device: zero sums, dgamma and dbeta from the merged sums.
TEST(DeviceBatchNorm, EmptyRankWritesZeroSums) {
  REQUIRE_DEVICE();
  std::vector<float> host{7, 7, 7, 7, 7, 7}, merged{1, 2, 3, 4, 5, 6}, stats{0, 0, 0, 0.5f, 0.5f, 0.5f}, grads(6, 9.0f);
  DeviceCopy sums = to_device(host.data(), 24), merged_d = to_device(merged.data(), 24), stats_d = to_device(stats.data(), 24);
  DeviceCopy grads_d = to_device(grads.data(), 24), x = to_device(host.data(), 4);
  auto ch = [](const DeviceCopy& d, int offset) {
    return channel_view(static_cast<float*>(d.ptr()) + offset, 3, MemorySpace::device);
  };
  const TensorView empty(x.ptr(), DType::bfloat16, {0, 3, 5, 5}, MemorySpace::device);
  const BatchNormOptions o;
  std::size_t bytes = 0;
  ASSERT_TRUE(batch_norm_workspace_size(empty, o, &bytes).ok());
  DeviceBytes workspace(bytes);
  Status s = batch_norm_backward_reduce(empty, empty, ch(stats_d, 0), ch(sums, 0), ch(sums, 3), o, workspace.ptr, bytes);
  ASSERT_TRUE(s.ok()) << s.message();
  s = batch_norm_backward_apply(empty, empty, ch(stats_d, 0), ch(stats_d, 3), {}, ch(merged_d, 0), ch(merged_d, 3), 10, {}, ch(grads_d, 0),
                                ch(grads_d, 3), o, workspace.ptr, bytes);
  ASSERT_TRUE(s.ok()) << s.message();
  CUDA_OK(cudaDeviceSynchronize());
  from_device(host, sums);
  from_device(grads, grads_d);
  EXPECT_EQ(host, std::vector<float>(6, 0.0f));
  EXPECT_EQ(grads, (std::vector<float>{2, 2.5f, 3, 1, 2, 3}));
}

// Eval-mode backward on the device against the host engine: dx (the fused apply) within rounding of the host's,
// dgamma/dbeta within float32 rounding (the device sums in float32, the host in float64).
TEST(DeviceBatchNorm, EvalModeBackwardMatchesHost) {
  REQUIRE_DEVICE();
  for (DType x : {DType::float32, DType::bfloat16}) {
    for (BatchNormCase c : {make_case({3, 5, 8, 8}, ChannelAxis::first, x), make_case({4, 5, 7, 16}, ChannelAxis::last, x)}) {
      BatchNormData d = make_batch_norm_data(c);
      const std::int64_t channels = c.channels();
      std::vector<unsigned char> dx_host(d.x.bytes.size()), dx_dev(d.x.bytes.size());
      std::vector<float> dg_host(channels), db_host(channels), dg_dev(channels), db_dev(channels);
      const auto host_view = [&](void* p) { return TensorView(p, x, c.shape.data(), c.ndim()); };
      const auto host_ch = [&](std::vector<float>& v) { return channel_view(v.data(), channels, MemorySpace::host); };
      ASSERT_TRUE(batch_norm_backward_eval(host_view(d.dy.data()), host_view(d.x.data()), host_ch(d.gamma), host_ch(d.running_mean),
                                           host_ch(d.running_var), host_view(dx_host.data()), host_ch(dg_host), host_ch(db_host), c.options,
                                           nullptr, 0)
                      .ok());
      DeviceCopy xd = to_device(d.x.data(), d.x.bytes.size()), dyd = to_device(d.dy.data(), d.dy.bytes.size());
      DeviceCopy dxd = to_device(dx_dev.data(), dx_dev.size());
      auto floats = [](std::vector<float>& v) { return to_device(v.data(), v.size() * 4); };
      DeviceCopy g = floats(d.gamma), rm = floats(d.running_mean), rv = floats(d.running_var), dg = floats(dg_dev), db = floats(db_dev);
      const auto view = [&](const DeviceCopy& p) { return TensorView(p.ptr(), x, c.shape.data(), c.ndim(), MemorySpace::device); };
      const auto ch = [&](const DeviceCopy& p) { return channel_view(p.ptr(), channels, MemorySpace::device); };
      std::size_t bytes = 0;
      ASSERT_TRUE(batch_norm_workspace_size(view(xd), c.options, &bytes).ok());
      DeviceBytes workspace(bytes);
      const Status s = batch_norm_backward_eval(view(dyd), view(xd), ch(g), ch(rm), ch(rv), view(dxd), ch(dg), ch(db), c.options,
                                                workspace.ptr, bytes);
      ASSERT_TRUE(s.ok()) << s.message();
      CUDA_OK(cudaDeviceSynchronize());
      from_device(dx_dev, dxd);
      from_device(dg_dev, dg);
      from_device(db_dev, db);
      const std::vector<double> a = decode(dx_dev, x), b = decode(dx_host, x);
      for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6 * (1 + std::fabs(b[i])) + output_rounding(x) * std::fabs(b[i])) << i;
      expect_close_floats(dg_host, dg_dev, c.name() + ": eval dgamma");
      expect_close_floats(db_host, db_dev, c.name() + ": eval dbeta");
    }
  }
}

TEST(DeviceBatchNorm, WorkspaceTooSmallIsAnError) {
  REQUIRE_DEVICE();
  BatchNormCase c = make_case({2, 3, 4, 4}, ChannelAxis::first, DType::float32);
  BatchNormData d = make_batch_norm_data(c);
  DeviceCopy x = to_device(d.x.data(), d.x.bytes.size()), y = to_device(d.x.data(), d.x.bytes.size());
  const TensorView xv(x.ptr(), c.x, c.shape.data(), c.ndim(), MemorySpace::device), yv(y.ptr(), c.x, c.shape.data(), c.ndim(), MemorySpace::device);
  std::size_t bytes = 0;
  ASSERT_TRUE(batch_norm_workspace_size(xv, c.options, &bytes).ok());
  EXPECT_GT(bytes, 0u);
  DeviceBytes workspace(bytes);
  const Status s = batch_norm_forward_training(xv, {}, {}, yv, {}, {}, {}, {}, c.options, workspace.ptr, 16);
  EXPECT_EQ(s.code(), StatusCode::workspace_too_small) << s.message();
}

}  // namespace
