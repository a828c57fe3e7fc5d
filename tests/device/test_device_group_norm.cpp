// GroupNorm kernels on a GPU or under ../shared/ptxemu: forward + backward steps against the float64
// reference and the host engine on both backward walks (segments for channels first, columns for channels
// last and [N, C]), 16-byte and element-wise packs, several partials a sample; the same bits run to run,
// misaligned, and for a sample whatever batch it is in; a step captured in a CUDA graph.
#include <cstring>
#include <vector>

#include "device_support.hpp"
#include "group_norm_check.hpp"
#include "normkit/group_norm.hpp"
#include "plan/batch_norm_plan.hpp"

using namespace normkit;
using namespace normkit::testing;

namespace {

struct DeviceRun {
  int graph_replays = 0;       // > 0: capture the step in a graph and launch it this many times
  std::size_t misalign = 0;    // bytes added to x, dy, y and dx's starts
  bool backward_only = false;  // the backward from r_in's saved statistics
};

GroupNormResult run_device(const GroupNormCase& c, GroupNormData& d, const DeviceRun& run = {}, const GroupNormResult* r_in = nullptr) {
  GroupNormResult r = prepared_result(c, d);
  if (r_in) {
    r.saved_mean = r_in->saved_mean;
    r.saved_rstd = r_in->saved_rstd;
  }
  DeviceCopy x = to_device(d.x.data(), d.x.bytes.size(), run.misalign), dy = to_device(d.dy.data(), d.dy.bytes.size(), run.misalign);
  DeviceCopy y = to_device(r.y.data(), r.y.size(), run.misalign), dx = to_device(r.dx.data(), r.dx.size(), run.misalign);
  auto floats = [](std::vector<float>& v) { return to_device(v.data(), v.size() * 4); };
  DeviceCopy gamma = floats(d.gamma), beta = floats(d.beta), saved_mean = floats(r.saved_mean), saved_rstd = floats(r.saved_rstd);
  DeviceCopy dgamma = floats(r.dgamma), dbeta = floats(r.dbeta);
  const auto view = [&](const DeviceCopy& p) { return TensorView(p.ptr(), c.x, c.shape.data(), c.ndim(), MemorySpace::device); };
  const auto vector = [&](const DeviceCopy& p, std::int64_t n) {
    return p.ptr() ? TensorView(p.ptr(), DType::float32, {n}, MemorySpace::device) : TensorView();
  };
  const std::int64_t channels = c.channels(), groups = c.group_count();
  GroupNormBuffers b{view(x), view(dy), view(y), view(dx), vector(gamma, channels), vector(beta, channels), vector(saved_mean, groups),
                     vector(saved_rstd, groups), vector(dgamma, channels), vector(dbeta, channels)};
  std::size_t workspace_bytes = 0;
  EXPECT_TRUE(group_norm_workspace_size(b.x, c.options, &workspace_bytes).ok());
  DeviceBytes workspace(workspace_bytes);
  run_on_new_stream(run.graph_replays, [&](cudaStream_t stream) {
    run_group_norm_step(c, b, workspace.ptr, workspace_bytes, stream, run.backward_only);
  });
  from_device(r.y, y);
  from_device(r.dx, dx);
  from_device(r.saved_mean, saved_mean);
  from_device(r.saved_rstd, saved_rstd);
  from_device(r.dgamma, dgamma);
  from_device(r.dbeta, dbeta);
  return r;
}

// Channels first: 16-byte packs (S = 64), element-wise (S = 35), two partials a (sample, channel) (S =
// 25600), [N, C] (S = 1: the columns walk, a row a sample); channels last: 16-byte packs (C = 16),
// element-wise (C = 3, InstanceNorm), two partials a sample (4096 rows of C = 8).
std::vector<GroupNormCase> walk_cases(DType x) {
  std::vector<GroupNormCase> cases{group_case({3, 6, 8, 8}, ChannelAxis::first, 3, x),    group_case({2, 4, 7, 5}, ChannelAxis::first, 2, x),
                                   group_case({1, 2, 160, 160}, ChannelAxis::first, 1, x), group_case({5, 8}, ChannelAxis::first, 4, x),
                                   group_case({3, 5, 7, 16}, ChannelAxis::last, 4, x),     group_case({2, 5, 5, 3}, ChannelAxis::last, 0, x),
                                   group_case({2, 64, 64, 8}, ChannelAxis::last, 2, x)};
  for (GroupNormCase& c : cases) c.center = 1.5;
  return cases;
}

void expect_near_host(const GroupNormCase& c, const GroupNormResult& host, const GroupNormResult& device) {
  expect_close_floats(host.saved_mean, device.saved_mean, c.name() + ": saved_mean");
  expect_close_floats(host.saved_rstd, device.saved_rstd, c.name() + ": saved_rstd");
  expect_close_floats(host.dbeta, device.dbeta, c.name() + ": dbeta");
}

TEST(DeviceGroupNorm, StepMatchesReferenceAndHost) {
  REQUIRE_DEVICE();
  for (DType x : {DType::float32, DType::float16, DType::bfloat16}) {
    for (GroupNormCase c : walk_cases(x)) {
      GroupNormData d = make_group_norm_data(c);
      const GroupNormResult device = run_device(c, d);
      expect_group_norm_near_reference(c, d, device);
      expect_near_host(c, run_group_norm_host(c, d), device);
    }
  }
}

TEST(DeviceGroupNorm, SameBitsRunToRunAndMisaligned) {
  REQUIRE_DEVICE();
  for (DType x : {DType::float32, DType::bfloat16}) {
    for (GroupNormCase c : walk_cases(x)) {
      GroupNormData d = make_group_norm_data(c);
      const GroupNormResult first = run_device(c, d);
      expect_same_bits(first, run_device(c, d), c.name() + " second run");
      DeviceRun aligned, misaligned;
      aligned.backward_only = misaligned.backward_only = true;
      misaligned.misalign = dtype_size(x);
      const GroupNormResult a = run_device(c, d, aligned, &first), m = run_device(c, d, misaligned, &first);
      EXPECT_TRUE(a.dx == first.dx) << c.name() << ": backward alone";
      EXPECT_TRUE(a.dx == m.dx) << c.name() << ": misaligned dx";
      EXPECT_TRUE(same_floats(a.dgamma, m.dgamma) && same_floats(a.dbeta, m.dbeta)) << c.name() << ": misaligned dgamma/dbeta";
    }
  }
}

// A sample's dx is the same bits in a batch of 3 and alone (its sums' partials depend on one sample's
// shape only), from the same saved statistics.
TEST(DeviceGroupNorm, SampleGradientIndependentOfTheBatch) {
  REQUIRE_DEVICE();
  for (GroupNormCase c : {group_case({3, 4, 40, 40}, ChannelAxis::first, 2, DType::bfloat16), group_case({3, 48, 48, 8}, ChannelAxis::last, 4)}) {
    GroupNormData d = make_group_norm_data(c);
    const GroupNormResult batch = run_device(c, d);
    GroupNormCase one = c;
    one.shape[0] = 1;
    GroupNormData alone = d;
    const std::size_t sample_bytes = d.x.bytes.size() / 3;
    auto middle = [&](const TypedData& t) {
      TypedData m = t;
      m.bytes.assign(t.bytes.begin() + sample_bytes, t.bytes.begin() + 2 * sample_bytes);
      return m;
    };
    alone.x = middle(d.x);
    alone.dy = middle(d.dy);
    const std::int64_t groups = one.group_count();
    GroupNormResult saved;
    saved.saved_mean.assign(batch.saved_mean.begin() + groups, batch.saved_mean.begin() + 2 * groups);
    saved.saved_rstd.assign(batch.saved_rstd.begin() + groups, batch.saved_rstd.begin() + 2 * groups);
    DeviceRun backward;
    backward.backward_only = true;
    const GroupNormResult r = run_device(one, alone, backward, &saved);
    EXPECT_TRUE(std::equal(r.dx.begin(), r.dx.end(), batch.dx.begin() + sample_bytes)) << c.name();
  }
}

TEST(DeviceGroupNorm, CapturedInAGraph) {
  REQUIRE_DEVICE();
  GroupNormCase c = group_case({4, 6, 9, 8}, ChannelAxis::first, 3, DType::float16);
  GroupNormData d = make_group_norm_data(c);
  const GroupNormResult once = run_device(c, d);
  DeviceRun graph;
  graph.graph_replays = 2;
  expect_same_bits(once, run_device(c, d, graph), c.name() + " graph");
}

TEST(DeviceGroupNorm, WorkspaceTooSmallIsAnError) {
  REQUIRE_DEVICE();
  GroupNormCase c = group_case({2, 4, 4, 4}, ChannelAxis::first, 2);
  GroupNormData d = make_group_norm_data(c);
  DeviceCopy x = to_device(d.x.data(), d.x.bytes.size()), y = to_device(d.x.data(), d.x.bytes.size());
  const TensorView xv(x.ptr(), c.x, c.shape.data(), c.ndim(), MemorySpace::device), yv(y.ptr(), c.x, c.shape.data(), c.ndim(), MemorySpace::device);
  std::size_t bytes = 0;
  ASSERT_TRUE(group_norm_workspace_size(xv, c.options, &bytes).ok());
  EXPECT_GT(bytes, 0u);
  DeviceBytes workspace(bytes);
  Status s = group_norm_forward(xv, {}, {}, yv, {}, {}, c.options, workspace.ptr, 16);
  EXPECT_EQ(s.code(), StatusCode::workspace_too_small) << s.message();
  EXPECT_NE(s.message().find("group_norm_workspace_size"), std::string::npos) << s.message();
}

}  // namespace
