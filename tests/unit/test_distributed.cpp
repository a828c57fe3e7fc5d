// Distributed statistics on an in-process group of threads: every rank ends with bitwise the same summaries,
// equal to the rank-ordered merge in one process, for world sizes 1..5 and unequal parts (empty ones too);
// finalized, they are the statistics of the whole data (float64 reference); uint8 exactly.
#include <gtest/gtest.h>

#include <cstring>
#include <mutex>
#include <vector>

#include "normkit/distributed.hpp"
#include "normkit/stats.hpp"
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
