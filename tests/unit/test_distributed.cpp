// Distributed statistics on an in-process group of threads: every rank ends with bitwise the same summaries,
// equal to the rank-ordered merge in one process, for world sizes 1..5 and unequal parts (empty ones too);
// finalized, they are the statistics of the whole data (float64 reference); uint8 exactly.
#include <gtest/gtest.h>

#include <cstring>
#include <mutex>
#include <vector>

#include "normkit/distributed.hpp"
#include "normkit/stats.hpp"
#include "normkit/sync_batch_norm.hpp"
#include "batch_norm_check.hpp"
#include "reference_stats.hpp"
#include "test_data.hpp"
#include "thread_communicator.hpp"

namespace normkit::testing {
namespace {

// Row boundaries of `size` unequal parts of `rows` (rank 1 empty when size > 2).
std::vector<std::int64_t> boundaries(std::int64_t rows, int size) {
  std::vector<std::int64_t> b{0};
  for (int r = 0; r < size; ++r) {
    std::int64_t part = (r == 1 && size > 2) ? 0 : rows * (r + 1) / (size * (size + 1) / 2);
    if (r == size - 1) part = rows - b.back();
    b.push_back(std::min(rows, b.back() + part));
  }
  return b;
}

TEST(Distributed, EveryRankGetsTheRankOrderedMergeBitForBit) {
  const std::int64_t rows = 1000, features = 7;
  for (DType dtype : {DType::float32, DType::float64}) {
    const TypedData x = encode(normal_values(static_cast<std::size_t>(rows * features), 1e3, 5.0, 3), dtype);
    const std::size_t row_bytes = features * dtype_size(dtype);
    for (int size : {1, 2, 3, 5}) {
      const std::vector<std::int64_t> b = boundaries(rows, size);
      StatsOptions o;
      o.axes = ReduceAxes::of({0});
      o.accumulation = Accumulation::float64;  // (the reference below is float64: the merge is the subject)
      // The per-rank summaries and their rank-ordered merge in one process.
      std::vector<std::vector<StatsSummary>> parts(size, std::vector<StatsSummary>(features));
      for (int r = 0; r < size; ++r) {
        std::vector<unsigned char> part(x.bytes.begin() + b[r] * row_bytes, x.bytes.begin() + b[r + 1] * row_bytes);
        ASSERT_TRUE(accumulate_stats(TensorView(part.data(), dtype, {b[r + 1] - b[r], features}), o, parts[r].data(), features, false, nullptr, 0).ok());
      }
      std::vector<StatsSummary> expected = parts[0];
      for (int r = 1; r < size; ++r) ASSERT_TRUE(merge_summaries(expected.data(), parts[r].data(), features, MemorySpace::host).ok());
      std::vector<std::vector<StatsSummary>> got(size);
      std::mutex m;
      run_ranks(size, [&](Communicator& comm) {
        std::vector<StatsSummary> mine = parts[comm.rank()];
        const Status s = all_merge_summaries(comm, mine.data(), features, MemorySpace::host);
        std::lock_guard<std::mutex> lock(m);
        EXPECT_TRUE(s.ok()) << s.message();
        got[comm.rank()] = mine;
      });
      for (int r = 0; r < size; ++r) {
        ASSERT_EQ(std::memcmp(got[r].data(), expected.data(), features * sizeof(StatsSummary)), 0) << "rank " << r << " of " << size;
      }
      // Finalized: the statistics of all rows.
      StatsOptions fo = o;
      fo.stats = {Stat::mean, Stat::var, Stat::min, Stat::max};
      std::vector<double> mean(features), var(features), mn(features), mx(features);
      StatsOutputs out;
      out[Stat::mean] = TensorView(mean.data(), DType::float64, {features});
      out[Stat::var] = TensorView(var.data(), DType::float64, {features});
      out[Stat::min] = TensorView(mn.data(), DType::float64, {features});
      out[Stat::max] = TensorView(mx.data(), DType::float64, {features});
      ASSERT_TRUE(finalize_stats(got[0].data(), features, fo, out, MemorySpace::host).ok());
      for (std::int64_t f = 0; f < features; ++f) {
        double sum = 0, square = 0;
        for (std::int64_t i = 0; i < rows; ++i) sum += x.stored[i * features + f];
        const double mu = sum / rows;
        for (std::int64_t i = 0; i < rows; ++i) square += (x.stored[i * features + f] - mu) * (x.stored[i * features + f] - mu);
        EXPECT_NEAR(mean[f], mu, 1e-12 * std::fabs(mu)) << f;
        EXPECT_NEAR(var[f], square / rows, 1e-9 * square / rows) << f;
      }
    }
  }
}

TEST(Distributed, IntegerSummariesMergeExactly) {
  const std::int64_t rows = 513, features = 3;
  const TypedData x = encode(uniform_values(static_cast<std::size_t>(rows * features), 0, 256, 9), DType::uint8);
  StatsOptions o;
  o.axes = ReduceAxes::of({0});
  std::vector<IntegerSummary> whole(features);
  ASSERT_TRUE(accumulate_integer_stats(TensorView(const_cast<unsigned char*>(x.bytes.data()), DType::uint8, {rows, features}), o, whole.data(),
                                       features, false, nullptr, 0).ok());
  for (int size : {2, 3, 4}) {
    const std::vector<std::int64_t> b = boundaries(rows, size);
    std::vector<std::vector<IntegerSummary>> got(size);
    std::mutex m;
    run_ranks(size, [&](Communicator& comm) {
      const int r = comm.rank();
      std::vector<unsigned char> part(x.bytes.begin() + b[r] * features, x.bytes.begin() + b[r + 1] * features);
      std::vector<IntegerSummary> mine(features);
      Status s = accumulate_integer_stats(TensorView(part.data(), DType::uint8, {b[r + 1] - b[r], features}), o, mine.data(), features, false, nullptr, 0);
      if (s.ok()) s = all_merge_integer_summaries(comm, mine.data(), features, MemorySpace::host);
      std::lock_guard<std::mutex> lock(m);
      EXPECT_TRUE(s.ok()) << s.message();
      got[r] = mine;
    });
    for (int r = 0; r < size; ++r) ASSERT_EQ(std::memcmp(got[r].data(), whole.data(), features * sizeof(IntegerSummary)), 0) << r;
  }
}

// SyncBatchNorm on 1, 2, 3 and 5 ranks (unequal parts of the batch, an empty one): every rank's saved and
// running statistics, dgamma and dbeta are the same bits, and agree with one process's BatchNorm over the
// whole batch to float32 rounding; each rank's y and dx are those of its slice.
TEST(Distributed, SyncBatchNormIsTheWholeBatchsBatchNorm) {
  const std::int64_t n = 11, c = 3, h = 4, w = 5, per_sample = c * h * w;
  const std::vector<float> x = float_values(normal_values(static_cast<std::size_t>(n * per_sample), 4.0, 2.0, 11));
  const std::vector<float> dy = float_values(normal_values(static_cast<std::size_t>(n * per_sample), 0.0, 1.0, 12));
  std::vector<float> gamma{1.5f, -0.5f, 0.75f}, beta{0.25f, 0.0f, -1.0f};
  const BatchNormOptions o = BatchNormOptions::pytorch();
  // One process, the whole batch.
  struct Result {
    std::vector<float> y, dx, saved_mean, saved_rstd, running_mean, running_var, dgamma, dbeta;
  };
  auto fresh = [&](std::int64_t rows) {
    Result r;
    r.y.assign(static_cast<std::size_t>(rows * per_sample), 0.0f);
    r.dx = r.y;
    r.saved_mean.assign(c, 0.0f), r.saved_rstd.assign(c, 0.0f), r.running_mean.assign(c, 0.0f), r.running_var.assign(c, 1.0f);
    r.dgamma.assign(c, 0.0f), r.dbeta.assign(c, 0.0f);
    return r;
  };
  auto ch = [&](std::vector<float>& v) { return TensorView(v.data(), DType::float32, {c}); };
  Result whole = fresh(n);
  {
    std::vector<float> xs = x, dys = dy;
    const TensorView xv(xs.data(), DType::float32, {n, c, h, w}), dyv(dys.data(), DType::float32, {n, c, h, w});
    ASSERT_TRUE(batch_norm_forward_training(xv, ch(gamma), ch(beta), TensorView(whole.y.data(), DType::float32, {n, c, h, w}), ch(whole.running_mean),
                                            ch(whole.running_var), ch(whole.saved_mean), ch(whole.saved_rstd), o, nullptr, 0).ok());
    ASSERT_TRUE(batch_norm_backward(dyv, xv, ch(whole.saved_mean), ch(whole.saved_rstd), ch(gamma), TensorView(whole.dx.data(), DType::float32, {n, c, h, w}),
                                    ch(whole.dgamma), ch(whole.dbeta), o, nullptr, 0).ok());
  }
  auto near = [](const std::vector<float>& got, const std::vector<float>& want, std::size_t offset, double scale, const std::string& what) {
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_NEAR(got[i], want[offset + i], 2e-5 * (scale + std::fabs(want[offset + i]))) << what << "[" << i << "]";
    }
  };
  for (int size : {1, 2, 3, 5}) {
    const std::vector<std::int64_t> b = boundaries(n, size);
    std::vector<Result> got(static_cast<std::size_t>(size));
    std::mutex m;
    run_ranks(size, [&](Communicator& comm) {
      const int r = comm.rank();
      const std::int64_t rows = b[r + 1] - b[r];
      Result mine = fresh(rows);
      std::vector<float> xs(x.begin() + b[r] * per_sample, x.begin() + b[r + 1] * per_sample);
      std::vector<float> dys(dy.begin() + b[r] * per_sample, dy.begin() + b[r + 1] * per_sample);
      const TensorView xv(xs.data(), DType::float32, {rows, c, h, w}), dyv(dys.data(), DType::float32, {rows, c, h, w});
      Status s = sync_batch_norm_forward(comm, xv, ch(gamma), ch(beta), TensorView(mine.y.data(), DType::float32, {rows, c, h, w}),
                                         ch(mine.running_mean), ch(mine.running_var), ch(mine.saved_mean), ch(mine.saved_rstd), o);
      if (s.ok()) {
        s = sync_batch_norm_backward(comm, dyv, xv, ch(mine.saved_mean), ch(mine.saved_rstd), ch(gamma), n * h * w,
                                     TensorView(mine.dx.data(), DType::float32, {rows, c, h, w}), ch(mine.dgamma), ch(mine.dbeta), o);
      }
      std::lock_guard<std::mutex> lock(m);
      EXPECT_TRUE(s.ok()) << "rank " << r << " of " << size << ": " << s.message();
      got[r] = std::move(mine);
    });
    for (int r = 0; r < size; ++r) {
      const std::string at = std::to_string(size) + " ranks, rank " + std::to_string(r);
      EXPECT_EQ(got[r].saved_mean, got[0].saved_mean) << at;
      EXPECT_EQ(got[r].saved_rstd, got[0].saved_rstd) << at;
      EXPECT_EQ(got[r].running_mean, got[0].running_mean) << at;
      EXPECT_EQ(got[r].running_var, got[0].running_var) << at;
      EXPECT_EQ(got[r].dgamma, got[0].dgamma) << at;
      EXPECT_EQ(got[r].dbeta, got[0].dbeta) << at;
      near(got[r].saved_mean, whole.saved_mean, 0, 0.0, at + " saved_mean");
      near(got[r].saved_rstd, whole.saved_rstd, 0, 0.0, at + " saved_rstd");
      near(got[r].running_mean, whole.running_mean, 0, 0.0, at + " running_mean");
      near(got[r].running_var, whole.running_var, 0, 0.0, at + " running_var");
      near(got[r].dgamma, whole.dgamma, 0, 1.0, at + " dgamma");
      near(got[r].dbeta, whole.dbeta, 0, 1.0, at + " dbeta");
      near(got[r].y, whole.y, static_cast<std::size_t>(b[r] * per_sample), 1.0, at + " y");
      near(got[r].dx, whole.dx, static_cast<std::size_t>(b[r] * per_sample), 1.0, at + " dx");
    }
  }
  // Errors: the saved statistics are required, the whole batch's count positive, a device workspace big enough.
  run_ranks(1, [&](Communicator& comm) {
    std::vector<float> xs(x.begin(), x.begin() + per_sample * 2), ys(xs.size()), dxs(xs.size()), dys(xs.size());
    const TensorView xv(xs.data(), DType::float32, {2, c, h, w});
    Result r = fresh(2);
    Status s = sync_batch_norm_forward(comm, xv, ch(gamma), ch(beta), TensorView(ys.data(), DType::float32, {2, c, h, w}), {}, {}, {}, ch(r.saved_rstd), o);
    EXPECT_EQ(s.code(), StatusCode::invalid_argument);
    EXPECT_NE(s.message().find("'saved_mean'"), std::string::npos) << s.message();
    s = sync_batch_norm_backward(comm, TensorView(dys.data(), DType::float32, {2, c, h, w}), xv, ch(r.saved_mean), ch(r.saved_rstd), ch(gamma), 0,
                                 TensorView(dxs.data(), DType::float32, {2, c, h, w}), {}, {}, o);
    EXPECT_EQ(s.code(), StatusCode::invalid_argument);
    EXPECT_NE(s.message().find("'global_count'"), std::string::npos) << s.message();
  });
}

// all_sum_in_rank_order: rank 0's + rank 1's + ... in that order, the same bits on every rank. Rank 0 holds
// 1e8, the last rank -1e8 and the others 1: in rank order each 1 is lost against 1e8 (its ulp is 8) and the sum
// is 0; any other order keeps some of them.
TEST(Distributed, FloatSumsInRankOrder) {
  for (int size : {1, 2, 3, 5}) {
    std::vector<std::vector<float>> got(static_cast<std::size_t>(size));
    std::mutex m;
    auto value = [size](int r) { return r == 0 ? 1e8f : r == size - 1 ? -1e8f : 1.0f; };
    run_ranks(size, [&](Communicator& comm) {
      std::vector<float> mine{value(comm.rank()), 0.1f * static_cast<float>(comm.rank() + 1), 3.0f};
      const Status s = all_sum_in_rank_order(comm, mine.data(), 3, MemorySpace::host);
      std::lock_guard<std::mutex> lock(m);
      EXPECT_TRUE(s.ok()) << s.message();
      got[comm.rank()] = mine;
    });
    std::vector<float> expected{value(0), 0.1f, 3.0f};
    for (int r = 1; r < size; ++r) {
      expected[0] += value(r);
      expected[1] += 0.1f * static_cast<float>(r + 1);
      expected[2] += 3.0f;
    }
    if (size >= 3) EXPECT_EQ(expected[0], 0.0f);  // (the test's premise)
    for (int r = 0; r < size; ++r) EXPECT_EQ(got[r], expected) << size << " ranks, rank " << r;
  }
  run_ranks(2, [](Communicator& comm) {
    float v[2]{};
    EXPECT_EQ(all_sum_in_rank_order(comm, v, -1, MemorySpace::host).code(), StatusCode::invalid_argument);
    EXPECT_EQ(all_sum_in_rank_order(comm, v, 2, MemorySpace::host, v, sizeof(v)).code(), StatusCode::workspace_too_small);
    EXPECT_EQ(all_sum_workspace_size(comm, 2), 4 * sizeof(float));
  });
}

// A rank that fails its checks makes every rank return the same error (all_agree) instead of leaving the
// others waiting in a gather it never enters; so do ranks that disagree on n.
TEST(Distributed, OneRankFailingFailsEveryRank) {
  for (int bad : {0, 1, 2}) {
    std::vector<Status> got(3);
    std::mutex m;
    run_ranks(3, [&](Communicator& comm) {
      StatsSummary s[2]{};
      const Status r = all_merge_summaries(comm, s, comm.rank() == bad ? -1 : 2, MemorySpace::host);
      std::lock_guard<std::mutex> lock(m);
      got[comm.rank()] = r;
    });
    for (int r = 0; r < 3; ++r) {
      EXPECT_EQ(got[r].code(), StatusCode::invalid_argument) << "bad rank " << bad << ", rank " << r;
      EXPECT_NE(got[r].message().find("rank " + std::to_string(bad) + " of 3 failed"), std::string::npos) << got[r].message();
    }
    EXPECT_NE(got[bad].message().find("'n'"), std::string::npos) << got[bad].message();  // (its own reason too)
  }
  std::vector<Status> got(3);
  std::mutex m;
  run_ranks(3, [&](Communicator& comm) {
    float v[3]{};
    const Status r = all_sum_in_rank_order(comm, v, comm.rank() == 2 ? 3 : 2, MemorySpace::host);
    std::lock_guard<std::mutex> lock(m);
    got[comm.rank()] = r;
  });
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(got[r].code(), StatusCode::invalid_argument) << r;
    EXPECT_NE(got[r].message().find("disagree"), std::string::npos) << got[r].message();
  }
  // SyncBatchNorm: rank 1 without saved statistics.
  run_ranks(3, [&](Communicator& comm) {
    std::vector<float> x(2 * 3 * 4, 1.0f), y(x.size()), mean(3), rstd(3);
    const TensorView xv(x.data(), DType::float32, {2, 3, 4});
    const TensorView m3 = comm.rank() == 1 ? TensorView() : TensorView(mean.data(), DType::float32, {3});
    const Status r = sync_batch_norm_forward(comm, xv, {}, {}, TensorView(y.data(), DType::float32, {2, 3, 4}), {}, {}, m3,
                                             TensorView(rstd.data(), DType::float32, {3}), BatchNormOptions::pytorch());
    std::lock_guard<std::mutex> lock(m);
    EXPECT_EQ(r.code(), StatusCode::invalid_argument) << comm.rank();
    EXPECT_NE(r.message().find("rank 1 of 3 failed"), std::string::npos) << r.message();
  });
}

TEST(Distributed, ArgumentErrors) {
  run_ranks(1, [](Communicator& comm) {
    StatsSummary s{};
    EXPECT_EQ(all_merge_summaries(comm, &s, -1, MemorySpace::host).code(), StatusCode::invalid_argument);
    EXPECT_TRUE(all_merge_summaries(comm, &s, 1, MemorySpace::host).ok());  // one rank: nothing to do
    EXPECT_EQ(all_merge_workspace_size(comm, 4), 4 * sizeof(StatsSummary));
  });
  run_ranks(2, [](Communicator& comm) {
    StatsSummary s[2]{};
    EXPECT_EQ(all_merge_summaries(comm, s, 2, MemorySpace::host, s, sizeof(s)).code(), StatusCode::workspace_too_small);
  });
}

}  // namespace
}  // namespace normkit::testing
