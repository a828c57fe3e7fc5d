// all_merge_summaries on device memory: rank r of P, the other ranks' summaries played back by the test's
// communicator. Every rank's result is the same bits, equal to the host's rank-ordered merge to rounding.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "device_support.hpp"
#include "normkit/distributed.hpp"
#include "batch_norm_check.hpp"
#include "normkit/stats.hpp"
#include "normkit/sync_batch_norm.hpp"
#include "test_data.hpp"

namespace normkit::testing {
namespace {

// Rank `rank` of `size`: its own bytes from `send`, every other rank's from `peers` (host copies).
class PlayedBackPeers final : public Communicator {
 public:
  PlayedBackPeers(int rank, const std::vector<std::vector<unsigned char>>& peers) : rank_(rank), peers_(peers) {}
  int rank() const override { return rank_; }
  int size() const override { return static_cast<int>(peers_.size()); }
  bool gathers_host_memory() const override { return false; }  // (the played-back peers hold device bytes)
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

// Rank `rank`: gather g of its calls takes every other rank's bytes from rounds[g] (host copies), its own from
// `send`.
class PlayedBackRounds final : public Communicator {
 public:
  PlayedBackRounds(int rank, int size, const std::vector<std::vector<std::vector<unsigned char>>>& rounds)
      : rank_(rank), size_(size), rounds_(rounds) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  bool gathers_host_memory() const override { return false; }  // (the played-back peers hold device bytes)
  Status all_gather(const void* send, void* recv, std::size_t bytes, MemorySpace, Stream stream) override {
    if (call_ >= rounds_.size()) return Status(StatusCode::invalid_argument, "test all_gather: no bytes recorded for this gather");
    const auto& peers = rounds_[call_++];
    for (int r = 0; r < size_; ++r) {
      void* slot = static_cast<unsigned char*>(recv) + bytes * r;
      if (r != rank_ && peers[r].size() != bytes) return Status(StatusCode::invalid_argument, "test all_gather: recorded size differs");
      const cudaError_t e = r == rank_ ? cudaMemcpyAsync(slot, send, bytes, cudaMemcpyDeviceToDevice, stream)
                                       : cudaMemcpyAsync(slot, peers[r].data(), bytes, cudaMemcpyHostToDevice, stream);
      if (e != cudaSuccess) return Status(StatusCode::cuda_error, "test all_gather");
    }
    return cudaStreamSynchronize(stream) == cudaSuccess ? Status::success() : Status(StatusCode::cuda_error, "test sync");
  }

 private:
  int rank_, size_;
  const std::vector<std::vector<std::vector<unsigned char>>>& rounds_;
  std::size_t call_ = 0;
};

template <typename T>
std::vector<unsigned char> bytes_of(const void* device, std::size_t n) {
  std::vector<unsigned char> b(n * sizeof(T));
  EXPECT_EQ(cudaMemcpy(b.data(), device, b.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  return b;
}

// SyncBatchNorm on device memory, rank r of 3 (rank 1 empty; bfloat16 7 x 7 channels, the spans walk of the
// backward), the other ranks' exchanged bytes played back: their summaries from their own device statistics,
// their sums from their own device reduce. Every rank's saved and running statistics, dgamma and dbeta are the
// same bits, and agree with one process's host BatchNorm over the whole batch to bfloat16 rounding.
TEST(DistributedDevice, SyncBatchNormEveryRankTheWholeBatch) {
  REQUIRE_DEVICE();
  const std::int64_t c = 16, h = 7, w = 7, per_sample = c * h * w, size = 3;
  const std::int64_t rows[size] = {3, 0, 4}, n = 7;
  const DType dtype = DType::bfloat16;
  const TypedData x = encode(normal_values(static_cast<std::size_t>(n * per_sample), 2.0, 1.5, 21), dtype);
  const TypedData dy = encode(normal_values(static_cast<std::size_t>(n * per_sample), 0.0, 1.0, 22), dtype);
  const std::size_t es = dtype_size(dtype);
  std::vector<float> gamma(c), beta(c);
  for (std::int64_t k = 0; k < c; ++k) gamma[k] = 0.5f + 0.125f * static_cast<float>(k), beta[k] = 0.25f * static_cast<float>(k % 3);
  const BatchNormOptions o = BatchNormOptions::pytorch();
  // Each rank's part on the device.
  std::vector<std::unique_ptr<DeviceBytes>> xs, dys;
  std::int64_t first = 0;
  for (int r = 0; r < size; ++r) {
    const std::size_t bytes = static_cast<std::size_t>(rows[r] * per_sample) * es;
    xs.push_back(std::make_unique<DeviceBytes>(bytes));
    dys.push_back(std::make_unique<DeviceBytes>(bytes));
    CUDA_OK(cudaMemcpy(xs[r]->ptr, x.bytes.data() + first * per_sample * es, bytes, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(dys[r]->ptr, dy.bytes.data() + first * per_sample * es, bytes, cudaMemcpyHostToDevice));
    first += rows[r];
  }
  auto view = [&](const DeviceBytes& p, std::int64_t r) { return TensorView(p.ptr, dtype, {rows[r], c, h, w}, MemorySpace::device); };
  DeviceBytes d_gamma(c * 4), d_beta(c * 4);
  CUDA_OK(cudaMemcpy(d_gamma.ptr, gamma.data(), c * 4, cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(d_beta.ptr, beta.data(), c * 4, cudaMemcpyHostToDevice));
  auto ch = [&](const DeviceBytes& p) { return TensorView(p.ptr, DType::float32, {c}, MemorySpace::device); };
  // Round 0: each rank's summaries.
  std::vector<std::vector<std::vector<unsigned char>>> rounds(2, std::vector<std::vector<unsigned char>>(size));
  std::size_t ws_bytes = 0;
  for (int r = 0; r < size; ++r) {
    PlayedBackRounds probe(r, size, rounds);
    std::size_t b = 0;
    ASSERT_TRUE(sync_batch_norm_workspace_size(probe, view(*xs[r], r), o, &b).ok());
    ws_bytes = std::max(ws_bytes, b);
  }
  DeviceBytes workspace(ws_bytes), summaries(c * sizeof(StatsSummary));
  for (int r = 0; r < size; ++r) {
    ASSERT_TRUE(batch_norm_statistics(view(*xs[r], r), o, summaries.as<StatsSummary>(), c, workspace.ptr, ws_bytes).ok());
    rounds[0][r] = bytes_of<StatsSummary>(summaries.ptr, c);
  }
  // Round 1: each rank's sums over the merged mean (rank 0's forward gives it: every rank's is the same).
  DeviceBytes mean0(c * 4), rstd0(c * 4), y0(static_cast<std::size_t>(rows[0] * per_sample) * es);
  {
    const std::vector<std::vector<std::vector<unsigned char>>> forward_only{rounds[0]};
    PlayedBackRounds comm(0, size, forward_only);
    const Status s = sync_batch_norm_forward(comm, view(*xs[0], 0), ch(d_gamma), ch(d_beta), view(y0, 0), {}, {}, ch(mean0), ch(rstd0), o,
                                             workspace.ptr, ws_bytes);
    ASSERT_TRUE(s.ok()) << s.message();
  }
  DeviceBytes sums(2 * c * 4);
  for (int r = 0; r < size; ++r) {
    const TensorView sum_dy(sums.ptr, DType::float32, {c}, MemorySpace::device), sum_dy_xmu(sums.as<float>() + c, DType::float32, {c}, MemorySpace::device);
    ASSERT_TRUE(batch_norm_backward_reduce(view(*dys[r], r), view(*xs[r], r), ch(mean0), sum_dy, sum_dy_xmu, o, workspace.ptr, ws_bytes).ok());
    rounds[1][r] = bytes_of<float>(sums.ptr, 2 * c);
  }
  // Every rank: forward and backward.
  struct Result {
    std::vector<unsigned char> mean, rstd, running_mean, running_var, dgamma, dbeta, y, dx;
  };
  std::vector<Result> got(size);
  for (int r = 0; r < size; ++r) {
    PlayedBackRounds comm(r, size, rounds);
    const std::vector<float> zeros(c, 0.0f), ones(c, 1.0f);
    DeviceBytes mean(c * 4), rstd(c * 4), rm(c * 4), rv(c * 4), dg(c * 4), db(c * 4);
    const std::size_t part_bytes = static_cast<std::size_t>(rows[r] * per_sample) * es;
    DeviceBytes y(part_bytes), dx(part_bytes);
    CUDA_OK(cudaMemcpy(rm.ptr, zeros.data(), c * 4, cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(rv.ptr, ones.data(), c * 4, cudaMemcpyHostToDevice));
    run_on_new_stream(0, [&](cudaStream_t stream) {
      Status s = sync_batch_norm_forward(comm, view(*xs[r], r), ch(d_gamma), ch(d_beta), view(y, r), ch(rm), ch(rv), ch(mean), ch(rstd), o,
                                         workspace.ptr, ws_bytes, stream);
      if (s.ok()) {
        s = sync_batch_norm_backward(comm, view(*dys[r], r), view(*xs[r], r), ch(mean), ch(rstd), ch(d_gamma), n * h * w, view(dx, r), ch(dg),
                                     ch(db), o, workspace.ptr, ws_bytes, stream);
      }
      EXPECT_TRUE(s.ok()) << "rank " << r << ": " << s.message();
    });
    got[r] = Result{bytes_of<float>(mean.ptr, c), bytes_of<float>(rstd.ptr, c), bytes_of<float>(rm.ptr, c), bytes_of<float>(rv.ptr, c),
                    bytes_of<float>(dg.ptr, c),   bytes_of<float>(db.ptr, c),   bytes_of<unsigned char>(y.ptr, part_bytes),
                    bytes_of<unsigned char>(dx.ptr, part_bytes)};
    EXPECT_EQ(got[r].mean, got[0].mean) << "rank " << r;
    EXPECT_EQ(got[r].rstd, got[0].rstd) << "rank " << r;
    EXPECT_EQ(got[r].running_mean, got[0].running_mean) << "rank " << r;
    EXPECT_EQ(got[r].running_var, got[0].running_var) << "rank " << r;
    EXPECT_EQ(got[r].dgamma, got[0].dgamma) << "rank " << r;
    EXPECT_EQ(got[r].dbeta, got[0].dbeta) << "rank " << r;
  }
  EXPECT_EQ(got[0].mean, bytes_of<float>(mean0.ptr, c)) << "the forward alone and the step's forward differ";
  // One process, the whole batch, on the host (float32 copies of the bfloat16 values: the same values).
  std::vector<float> hx = float_values(x.stored), hdy = float_values(dy.stored), hy(hx.size()), hdx(hx.size());
  std::vector<float> mean(c), rstd(c), rm(c, 0.0f), rv(c, 1.0f), dg(c), db(c);
  auto hch = [&](std::vector<float>& v) { return TensorView(v.data(), DType::float32, {c}); };
  const TensorView hxv(hx.data(), DType::float32, {n, c, h, w});
  ASSERT_TRUE(batch_norm_forward_training(hxv, hch(gamma), hch(beta), TensorView(hy.data(), DType::float32, {n, c, h, w}), hch(rm), hch(rv),
                                          hch(mean), hch(rstd), o, nullptr, 0).ok());
  ASSERT_TRUE(batch_norm_backward(TensorView(hdy.data(), DType::float32, {n, c, h, w}), hxv, hch(mean), hch(rstd), hch(gamma),
                                  TensorView(hdx.data(), DType::float32, {n, c, h, w}), hch(dg), hch(db), o, nullptr, 0).ok());
  auto floats_of = [](const std::vector<unsigned char>& b) {
    std::vector<float> f(b.size() / 4);
    std::memcpy(f.data(), b.data(), b.size());
    return f;
  };
  const std::vector<float> gm = floats_of(got[0].mean), gr = floats_of(got[0].rstd), gdg = floats_of(got[0].dgamma), gdb = floats_of(got[0].dbeta);
  for (std::int64_t k = 0; k < c; ++k) {
    EXPECT_NEAR(gm[k], mean[k], 1e-5 * (1.0 + std::fabs(mean[k]))) << k;
    EXPECT_NEAR(gr[k], rstd[k], 1e-5 * rstd[k]) << k;
    EXPECT_NEAR(gdg[k], dg[k], 1e-3 * (1.0 + std::fabs(dg[k]))) << k;  // (sums of 343 products in float32)
    EXPECT_NEAR(gdb[k], db[k], 1e-3 * (1.0 + std::fabs(db[k]))) << k;
  }
}

}  // namespace
}  // namespace normkit::testing
