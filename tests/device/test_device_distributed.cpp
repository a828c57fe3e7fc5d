// all_merge_summaries on device memory: rank r of P, the other ranks' summaries played back by the test's
// communicator. Every rank's result is the same bits, equal to the host's rank-ordered merge to rounding.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "device_support.hpp"
#include "normkit/distributed.hpp"
#include "normkit/stats.hpp"
#include "test_data.hpp"

namespace normkit::testing {
namespace {

// Rank `rank` of `size`: its own bytes from `send`, every other rank's from `peers` (host copies).
class PlayedBackPeers final : public Communicator {
 public:
  PlayedBackPeers(int rank, const std::vector<std::vector<unsigned char>>& peers) : rank_(rank), peers_(peers) {}
  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(peers_.size()); }
  Status all_gather(const void* send, void* recv, std::size_t bytes, MemorySpace space, Stream stream) override {
    EXPECT_EQ(space, MemorySpace::device);
    for (int r = 0; r < size(); ++r) {
      void* slot = static_cast<unsigned char*>(recv) + bytes * r;
      const cudaError_t e = r == rank_ ? cudaMemcpyAsync(slot, send, bytes, cudaMemcpyDeviceToDevice, stream)
                                       : cudaMemcpyAsync(slot, peers_[r].data(), bytes, cudaMemcpyHostToDevice, stream);
      if (e != cudaSuccess) return Status(StatusCode::cuda_error, "test all_gather");
    }
    return cudaStreamSynchronize(stream) == cudaSuccess ? Status::success() : Status(StatusCode::cuda_error, "test sync");
  }

 private:
  int rank_;
  const std::vector<std::vector<unsigned char>>& peers_;
};

TEST(DistributedDevice, EveryRankGetsTheSameMerge) {
  REQUIRE_DEVICE();
  const std::int64_t features = 6, size = 4;
  std::vector<std::vector<unsigned char>> parts(size);
  std::vector<StatsSummary> expected;
  for (int r = 0; r < size; ++r) {
    const std::int64_t rows = r == 2 ? 0 : 50 + 13 * r;  // rank 2 holds nothing
    const TypedData x = encode(normal_values(static_cast<std::size_t>(rows * features), 10.0 * r, 2.0, r + 1), DType::float32);
    std::vector<unsigned char> bytes = x.bytes;
    std::vector<StatsSummary> s(features);
    StatsOptions o;
    o.axes = ReduceAxes::of({0});
    ASSERT_TRUE(accumulate_stats(TensorView(bytes.data(), DType::float32, {rows, features}), o, s.data(), features, false, nullptr, 0).ok());
    parts[r].resize(features * sizeof(StatsSummary));
    std::memcpy(parts[r].data(), s.data(), parts[r].size());
    if (r == 0) expected = s;
    else ASSERT_TRUE(merge_summaries(expected.data(), s.data(), features, MemorySpace::host).ok());
  }
  std::vector<StatsSummary> first;
  for (int r = 0; r < size; ++r) {
    PlayedBackPeers comm(r, parts);
    const std::size_t ws_bytes = all_merge_workspace_size(comm, features);
    DeviceBytes summaries(parts[r].size()), workspace(ws_bytes);
    CUDA_OK(cudaMemcpy(summaries.ptr, parts[r].data(), parts[r].size(), cudaMemcpyHostToDevice));
    run_on_new_stream(0, [&](cudaStream_t stream) {
      const Status s = all_merge_summaries(comm, summaries.as<StatsSummary>(), features, MemorySpace::device, workspace.ptr, ws_bytes, stream);
      EXPECT_TRUE(s.ok()) << s.message();
    });
    std::vector<StatsSummary> got(features);
    CUDA_OK(cudaMemcpy(got.data(), summaries.ptr, parts[r].size(), cudaMemcpyDeviceToHost));
    if (r == 0) first = got;
    EXPECT_EQ(std::memcmp(got.data(), first.data(), parts[r].size()), 0) << "rank " << r << " differs from rank 0";
    for (std::int64_t f = 0; f < features; ++f) {
      EXPECT_EQ(got[f].count, expected[f].count);
      EXPECT_NEAR(got[f].mean, expected[f].mean, 1e-13 * std::fabs(expected[f].mean)) << f;
      EXPECT_NEAR(got[f].m2, expected[f].m2, 1e-12 * expected[f].m2) << f;
      EXPECT_EQ(got[f].min, expected[f].min);
      EXPECT_EQ(got[f].max, expected[f].max);
    }
  }
}

}  // namespace
}  // namespace normkit::testing
