// NcclCommunicator on a real GPU (NCCL does not run under the emulator; this test skips without a device,
// and fails there with NORMKIT_REQUIRE_DEVICE=1 as gpu-check.sh sets it). One process, one rank a GPU: the
// device summaries of each rank's part, all_merge_summaries on the device (ncclAllGather, then the
// rank-ordered merge on the stream, no host round trip), against the same merge done on the host.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>
#include <nccl.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "normkit/nccl.hpp"
#include "normkit/stats.hpp"

namespace normkit::testing {
namespace {

bool required() {
  const char* r = std::getenv("NORMKIT_REQUIRE_DEVICE");
  return r != nullptr && std::string(r) == "1";
}

TEST(NcclCommunicator, HostMemoryIsAnError) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    (void)cudaGetLastError();
    if (required()) FAIL() << "no CUDA device (required)";
    GTEST_SKIP() << "no CUDA device";
  }
  ncclComm_t comm = nullptr;
  const int device = 0;
  const ncclResult_t rc = ncclCommInitAll(&comm, 1, &device);
  if (rc != ncclSuccess) {
    if (required()) FAIL() << "ncclCommInitAll: " << ncclGetErrorString(rc);
    GTEST_SKIP() << "NCCL cannot start here: " << ncclGetErrorString(rc);
  }
  NcclCommunicator nccl(comm);
  ASSERT_TRUE(nccl.status().ok()) << nccl.status().message();
  EXPECT_EQ(nccl.rank(), 0);
  EXPECT_EQ(nccl.size(), 1);
  std::vector<StatsSummary> host(3);
  const Status s = all_merge_summaries(nccl, host.data(), 3, MemorySpace::host);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'space'"), std::string::npos) << s.message();

  // Device summaries of a [257, 3] part, gathered and merged on the device: one rank, so the merge is the
  // rank's own summaries, bit for bit, and the statistics those of the part.
  std::vector<float> part(257 * 3);
  for (std::size_t i = 0; i < part.size(); ++i) part[i] = static_cast<float>((i * 37) % 101) * 0.25f - 3.0f;
  void *x = nullptr, *summaries = nullptr, *workspace = nullptr;
  ASSERT_EQ(cudaMalloc(&x, part.size() * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&summaries, 3 * sizeof(StatsSummary)), cudaSuccess);
  const std::size_t workspace_bytes = all_merge_workspace_size(nccl, 3);
  ASSERT_EQ(cudaMalloc(&workspace, workspace_bytes), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(x, part.data(), part.size() * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
  StatsOptions o;
  o.axes = ReduceAxes::of({0});
  const TensorView xv(x, DType::float32, {257, 3}, MemorySpace::device);
  ASSERT_TRUE(accumulate_stats(xv, o, static_cast<StatsSummary*>(summaries), 3, false, nullptr, 0).ok());
  std::vector<StatsSummary> before(3), after(3), on_host(3);
  ASSERT_EQ(cudaMemcpy(before.data(), summaries, 3 * sizeof(StatsSummary), cudaMemcpyDeviceToHost), cudaSuccess);
  const Status merged = all_merge_summaries(nccl, static_cast<StatsSummary*>(summaries), 3, MemorySpace::device, workspace, workspace_bytes);
  ASSERT_TRUE(merged.ok()) << merged.message();
  ASSERT_EQ(cudaMemcpy(after.data(), summaries, 3 * sizeof(StatsSummary), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(std::memcmp(before.data(), after.data(), 3 * sizeof(StatsSummary)), 0) << "one rank's merge changed its summaries";
  ASSERT_TRUE(accumulate_stats(TensorView(part.data(), DType::float32, {257, 3}), o, on_host.data(), 3, false, nullptr, 0).ok());
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(after[c].count, 257);
    EXPECT_NEAR(after[c].mean, on_host[c].mean, 1e-5 * (1.0 + std::abs(on_host[c].mean)));
    EXPECT_EQ(after[c].min, on_host[c].min);
    EXPECT_EQ(after[c].max, on_host[c].max);
  }
  cudaFree(workspace);
  cudaFree(summaries);
  cudaFree(x);
  ncclCommDestroy(comm);
}

}  // namespace
}  // namespace normkit::testing
