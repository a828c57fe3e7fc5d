// The host engine against the independent reference: dtype x axis pattern x shapes on and around the
// thresholds, NaN/Inf, streaming, determinism, accuracy.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "normkit/stats.hpp"
#include "reference_integer.hpp"
#include "stats_check.hpp"
#include "test_data.hpp"

using namespace normkit;
using normkit::testing::StatsBuffers;

namespace {

using normkit::testing::Case;
using normkit::testing::numel;

// Runs the host engine on `values` stored as `dtype` and compares with the reference.
void check(const Case& c, DType dtype, const std::vector<double>& values, StatsOptions options = {}) {
  options.axes = c.axes;
  auto data = normkit::testing::encode(values, dtype);
  TensorView input(data.data(), dtype, c.shape.data(), static_cast<int>(c.shape.size()));
  StatsBuffers buffers;
  const StatsOutputs outputs = buffers.make_host_outputs(input, options.axes);
  const Status s = compute_stats(input, options, outputs, nullptr, 0);
  ASSERT_TRUE(s.ok()) << s.message();
  const bool double_acc = dtype == DType::float64 || options.accumulation == Accumulation::float64;
  normkit::testing::expect_matches_reference(data.stored, c.shape, options, double_acc, buffers,
                                             c.name + " " + dtype_name(dtype));
}

std::vector<double> data_for(DType dtype, std::size_t n, unsigned seed) {
  return dtype == DType::uint8 ? normkit::testing::uniform_values(n, 0, 255, seed)
                               : normkit::testing::uniform_values(n, -3, 5, seed);
}

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {{19, 1}, ReduceAxes::of({1}), "rows of length 1"},
      {{19, 7}, ReduceAxes::of({1}), "rows 7"},
      {{3, 33}, ReduceAxes::of({-1}), "rows 33"},
      {{9, 8}, ReduceAxes::of({1}), "rows 8 (one AVX2 vector, short-row path)"},
      {{9, 17}, ReduceAxes::of({1}), "rows 17 (vectors and a tail)"},
      {{10000, 16}, ReduceAxes::of({1}), "rows 16, many (short-row items on two threads)"},
      {{37, 17}, ReduceAxes::of({1}), "rows 17, 37 of them (transposed in blocks, a tail column, the last rows one by one)"},
      {{40, 24}, ReduceAxes::of({1}), "rows 24 (the longest transposed)"},
      {{33, 25}, ReduceAxes::of({1}), "rows 25 (one by one)"},
      {{50, 3}, ReduceAxes::of({1}), "rows 3 (transposed: no whole vector)"},
      {{3, 2048}, ReduceAxes::of({1}), "rows 2048 (the last short-row length)"},
      {{3, 2049}, ReduceAxes::of({1}), "rows 2049 (lane spans)"},
      {{5, 1025}, ReduceAxes::of({1}), "rows 1025"},
      {{2, 4097}, ReduceAxes::of({1}), "rows 4097"},
      {{33, 7}, ReduceAxes::of({0}), "columns 7"},
      {{1000, 3}, ReduceAxes::of({0}), "columns 3 (NHWC RGB)"},
      {{5, 1, 129}, ReduceAxes::of({0, 1}), "columns 129"},
      {{3, 11, 7, 4}, ReduceAxes::of({0, 1, 2}), "NHWC per-channel"},
      {{3, 4, 5, 7}, ReduceAxes::of({0, 2, 3}), "NCHW per-channel"},
      {{1023}, ReduceAxes::every(), "global 1023"},
      {{4097}, ReduceAxes::every(), "global 4097"},
      {{2, 3, 5, 7}, ReduceAxes::every(), "global 4-d"},
      {{3, 4, 5, 6}, ReduceAxes::of({0, 2}), "generic NCHW axes 0,2"},
      {{2, 3, 4}, ReduceAxes::of({1}), "batched columns"},
      {{50001, 3}, ReduceAxes::of({0}), "narrow columns folded, split, tail row"},
      {{700, 37}, ReduceAxes::of({0}), "columns 37 (two bands of 16 over blocks of 255 rows, 5 columns left)"},
      {{3, 20001, 5}, ReduceAxes::of({1}), "batched narrow columns folded"},
      {{3, 70001}, ReduceAxes::of({1}), "few long rows split"},
      {{200003}, ReduceAxes::every(), "global split"},
      {{2, 3, 4}, ReduceAxes::of({}), "nothing reduced"},
      {{}, ReduceAxes::every(), "scalar"},
  };
  return all;
}

class HostStats : public ::testing::TestWithParam<DType> {};

}  // namespace

TEST_P(HostStats, EveryPatternMatchesReference) {
  unsigned seed = 1;
  for (const Case& c : cases()) check(c, GetParam(), data_for(GetParam(), static_cast<std::size_t>(numel(c.shape)), seed++));
}

TEST_P(HostStats, DdofOneAndFloat64Accumulation) {
  StatsOptions o;
  o.ddof = 1;
  o.accumulation = Accumulation::float64;
  for (const Case& c : cases()) check(c, GetParam(), data_for(GetParam(), static_cast<std::size_t>(numel(c.shape)), 5), o);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, HostStats,
                         ::testing::Values(DType::float32, DType::float64, DType::float16, DType::bfloat16, DType::uint8),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(HostStatsEdges, NanAndInfInEveryPattern) {
  for (bool ignore_nan : {false, true}) {
    StatsOptions o;
    o.ignore_nan = ignore_nan;
    for (const Case& c : cases()) {
      auto v = data_for(DType::float32, static_cast<std::size_t>(numel(c.shape)), 11);
      for (std::size_t i = 0; i < v.size(); i += 13) v[i] = NAN;
      for (std::size_t i = 5; i < v.size(); i += 29) v[i] = INFINITY;
      for (std::size_t i = 7; i < v.size(); i += 31) v[i] = -INFINITY;
      check(c, DType::float32, v, o);
      check(c, DType::float16, v, o);
    }
  }
}

TEST(HostStatsEdges, AllNanSlicesWithIgnoreNan) {
  std::vector<double> v(4 * 3, 1.0);
  for (int r = 0; r < 4; ++r) v[static_cast<std::size_t>(r * 3 + 1)] = NAN;  // column 1 all NaN
  StatsOptions o;
  o.ignore_nan = true;
  check({{4, 3}, ReduceAxes::of({0}), "all-NaN column"}, DType::float32, v, o);
}

TEST(HostStatsEdges, EmptyReductions) {
  check({{0, 4}, ReduceAxes::of({0}), "empty rows"}, DType::float32, {});
  check({{0}, ReduceAxes::every(), "empty global"}, DType::float32, {});
  check({{3, 0, 2}, ReduceAxes::of({1}), "empty middle"}, DType::uint8, {});
}

TEST(HostStatsEdges, PrimeAndOddSizes) {
  for (std::int64_t n : {2, 3, 31, 32, 33, 111, 1021, 4099, 65537}) {
    check({{n}, ReduceAxes::every(), "global prime"}, DType::float16, data_for(DType::float16, static_cast<std::size_t>(n), 3));
    check({{2, n}, ReduceAxes::of({0}), "columns prime"}, DType::float32, data_for(DType::float32, static_cast<std::size_t>(2 * n), 4));
  }
}

TEST(HostStatsEdges, TallAndWideTenMillion) {
  const std::size_t n = 10000000;
  const auto v = normkit::testing::uniform_values(n, -1, 1, 9);
  check({{1, static_cast<std::int64_t>(n)}, ReduceAxes::of({1}), "1 x 1e7 rows"}, DType::float32, v);
  check({{static_cast<std::int64_t>(n), 1}, ReduceAxes::of({0}), "1e7 x 1 columns"}, DType::float32, v);
}

TEST(HostStatsEdges, Float16SumOfSquaresOverflowingFloat16) {
  std::vector<double> v(5000, 300.0);  // sum of squares 4.5e8 >> 65504
  for (std::size_t i = 0; i < v.size(); i += 2) v[i] = -250.0;
  check({{5000}, ReduceAxes::every(), "float16 big squares"}, DType::float16, v);
}

TEST(HostStatsEdges, LargeOffsetFloat32Variance) {
  const auto v = normkit::testing::normal_values(1 << 20, 1e6, 0.1, 21);
  auto data = normkit::testing::encode(v, DType::float32);
  long double mean = 0;
  for (double x : data.stored) mean += x;
  mean /= data.stored.size();
  long double m2 = 0;
  for (double x : data.stored) m2 += (x - mean) * (x - mean);
  const double expected = static_cast<double>(m2 / data.stored.size());
  for (int threads : {1, 2}) {
    set_host_threads(threads);
    for (auto shape : {std::vector<std::int64_t>{1 << 20}, std::vector<std::int64_t>{1 << 10, 1 << 10}}) {
      TensorView input(data.data(), DType::float32, shape.data(), static_cast<int>(shape.size()));
      double var = 0;
      StatsOutputs out;
      out[Stat::var] = TensorView(&var, DType::float64, {});
      StatsOptions o;
      o.stats = StatSet{Stat::var};
      ASSERT_TRUE(compute_stats(input, o, out, nullptr, 0).ok());
      EXPECT_NEAR(var, expected, 1e-3 * expected) << threads << " threads";
    }
  }
  set_host_threads(0);
}

TEST(HostStatsDeterminism, SameThreadCountIsBitwiseEqual) {
  const auto v = normkit::testing::uniform_values(3 << 18, -2, 7, 4);
  auto data = normkit::testing::encode(v, DType::float32);
  for (auto axes : {ReduceAxes::every(), ReduceAxes::of({0})}) {
    std::int64_t shape[2] = {3 << 10, 1 << 8};
    TensorView input(data.data(), DType::float32, shape, 2);
    for (int threads : {1, 2}) {
      set_host_threads(threads);
      StatsOptions o;
      o.axes = axes;
      StatsBuffers a, b;
      ASSERT_TRUE(compute_stats(input, o, a.make_host_outputs(input, axes), nullptr, 0).ok());
      ASSERT_TRUE(compute_stats(input, o, b.make_host_outputs(input, axes), nullptr, 0).ok());
      for (int i = 0; i < kNumStats; ++i) EXPECT_EQ(std::memcmp(a.bytes[i].data(), b.bytes[i].data(), a.bytes[i].size()), 0);
    }
  }
  set_host_threads(0);
}

// Short rows are folded one by one: their statistics do not depend on the thread count either, and a
// large per-row offset keeps float32 variances accurate (the row's first value is its shift).
TEST(HostStatsDeterminism, ShortRowsAreBitwiseEqualAcrossThreadCounts) {
  auto v = normkit::testing::normal_values(40000 * 16, 1e6, 0.1, 9);
  auto data = normkit::testing::encode(v, DType::float32);
  std::int64_t shape[2] = {40000, 16};
  TensorView input(data.data(), DType::float32, shape, 2);
  StatsBuffers one, two;
  set_host_threads(1);
  ASSERT_TRUE(compute_stats(input, StatsOptions{ReduceAxes::of({1})}, one.make_host_outputs(input, ReduceAxes::of({1})), nullptr, 0).ok());
  set_host_threads(2);
  ASSERT_TRUE(compute_stats(input, StatsOptions{ReduceAxes::of({1})}, two.make_host_outputs(input, ReduceAxes::of({1})), nullptr, 0).ok());
  set_host_threads(0);
  for (int i = 0; i < kNumStats; ++i) EXPECT_EQ(std::memcmp(one.bytes[i].data(), two.bytes[i].data(), one.bytes[i].size()), 0) << i;
  check({{40000, 16}, ReduceAxes::of({1}), "rows 16 at mean 1e6"}, DType::float32, data.stored);
}

TEST(HostStatsStreaming, BatchesMergeToTheWhole) {
  const auto v = normkit::testing::uniform_values(40 * 6, -4, 9, 8);
  auto data = normkit::testing::encode(v, DType::float32);
  StatsOptions o;
  o.axes = ReduceAxes::of({0});
  std::vector<StatsSummary> summaries(6);
  // Three batches of 10, 25 and 5 rows: accumulate, merging.
  std::int64_t row = 0;
  for (std::int64_t rows : {10, 25, 5}) {
    std::int64_t shape[2] = {rows, 6};
    TensorView batch(static_cast<float*>(data.data()) + row * 6, DType::float32, shape, 2);
    ASSERT_TRUE(accumulate_stats(batch, o, summaries.data(), 6, /*merge=*/row > 0, nullptr, 0).ok());
    row += rows;
  }
  StatsBuffers merged;
  std::int64_t whole_shape[2] = {40, 6};
  TensorView whole(data.data(), DType::float32, whole_shape, 2);
  const StatsOutputs outputs = merged.make_host_outputs(whole, o.axes);
  ASSERT_TRUE(finalize_stats(summaries.data(), 6, o, outputs, MemorySpace::host).ok());
  normkit::testing::expect_matches_reference(data.stored, {40, 6}, o, false, merged, "streamed batches");

  // merge_summaries of two separately computed halves.
  std::vector<StatsSummary> first(6), second(6);
  std::int64_t half[2] = {20, 6};
  TensorView top(data.data(), DType::float32, half, 2);
  TensorView bottom(static_cast<float*>(data.data()) + 120, DType::float32, half, 2);
  ASSERT_TRUE(accumulate_stats(top, o, first.data(), 6, false, nullptr, 0).ok());
  ASSERT_TRUE(accumulate_stats(bottom, o, second.data(), 6, false, nullptr, 0).ok());
  ASSERT_TRUE(merge_summaries(first.data(), second.data(), 6, MemorySpace::host).ok());
  StatsBuffers halves;
  ASSERT_TRUE(finalize_stats(first.data(), 6, o, halves.make_host_outputs(whole, o.axes), MemorySpace::host).ok());
  normkit::testing::expect_matches_reference(data.stored, {40, 6}, o, false, halves, "merged halves");
}

TEST(HostStatsOutputs, Float32OutputsAndSubset) {
  std::vector<float> x = {1, 2, 3, 4, 5, 6};
  TensorView input(x.data(), DType::float32, {2, 3});
  float mean[3];
  std::int64_t count[3];
  StatsOutputs out;
  out[Stat::mean] = TensorView(mean, DType::float32, {3});
  out[Stat::count] = TensorView(count, DType::int64, {3});
  StatsOptions o;
  o.axes = ReduceAxes::of({0});
  o.stats = StatSet{Stat::mean, Stat::count};
  ASSERT_TRUE(compute_stats(input, o, out, nullptr, 0).ok());
  EXPECT_EQ(mean[0], 2.5f);
  EXPECT_EQ(mean[2], 4.5f);
  EXPECT_EQ(count[1], 2);
}

// Float32 outputs of short rows take the float finalize (math::write_short_row), transposed rows and the
// ones left over alike: every statistic with ddof 1, NaN and Inf rows, and a row near 1e19 whose Σx²
// overflows float while its l2 does not (computed in double then).
TEST(HostStatsOutputs, ShortRowsWithFloat32Outputs) {
  for (std::int64_t length : {16, 7, 40}) {
    const std::int64_t rows = 37;
    auto v = data_for(DType::float32, static_cast<std::size_t>(rows * length), 21);
    for (std::int64_t j = 0; j < length; ++j) v[static_cast<std::size_t>(3 * length + j)] = 1e19 + 1e16 * v[static_cast<std::size_t>(3 * length + j)];
    v[static_cast<std::size_t>(5 * length + 1)] = NAN;
    v[static_cast<std::size_t>(6 * length + 2)] = INFINITY;
    v[static_cast<std::size_t>(36 * length)] = -INFINITY;  // a row left over after the transposed blocks
    auto data = normkit::testing::encode(v, DType::float32);
    const std::vector<std::int64_t> shape = {rows, length};
    TensorView input(data.data(), DType::float32, shape.data(), 2);
    StatsOptions o;
    o.axes = ReduceAxes::of({1});
    o.ddof = 1;
    StatsBuffers buffers;
    ASSERT_TRUE(compute_stats(input, o, buffers.make_host_outputs(input, o.axes, DType::float32), nullptr, 0).ok());
    normkit::testing::expect_matches_reference(data.stored, shape, o, false, buffers, "float32 outputs, rows " + std::to_string(length));
  }
}

// ---- Exact uint8 statistics ----------------------------------------------------------------------------

namespace {

std::vector<std::uint8_t> random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> v(n);
  for (auto& b : v) b = static_cast<std::uint8_t>(rng() % 5 == 0 ? 0 : rng() % 256);  // zeros for l0
  return v;
}

TensorView bytes_view(std::vector<std::uint8_t>& v, const std::vector<std::int64_t>& shape) {
  return TensorView(v.data(), DType::uint8, shape.data(), static_cast<int>(shape.size()));
}

bool same_summary(const IntegerSummary& a, const IntegerSummary& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

TEST(HostIntegerStats, EveryPatternIsExact) {
  unsigned seed = 40;
  for (const Case& c : cases()) {
    auto bytes = random_bytes(static_cast<std::size_t>(numel(c.shape)), seed++);
    for (std::int64_t ddof : {0, 1}) {
      StatsOptions o;
      o.axes = c.axes;
      o.ddof = ddof;
      const TensorView input = bytes_view(bytes, c.shape);
      StatsBuffers buffers;
      const StatsOutputs outputs = buffers.make_host_outputs(input, o.axes);
      ASSERT_TRUE(compute_stats(input, o, outputs, nullptr, 0).ok());
      normkit::testing::expect_exact_integer_stats(bytes, c.shape, o, buffers, c.name);
    }
  }
}

// Long runs of 255 (the largest squares and sums: the vector loops' narrow lanes widened in time) with zeros
// at both ends and an odd tail, as one run, as one row, and as 48 columns (bands down 16385 rows): exact sums.
TEST(HostIntegerStats, LongRunsOfTheLargestValuesAreExact) {
  const std::int64_t n = 3 * 65536 * 4 + 13;
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(n), 255);
  bytes[0] = bytes[static_cast<std::size_t>(n - 1)] = 0;
  bytes[7] = 1;
  for (int threads : {1, 2}) {
    set_host_threads(threads);
    for (const std::vector<std::int64_t>& shape : {std::vector<std::int64_t>{n}, std::vector<std::int64_t>{1, n}}) {
      StatsOptions o;
      o.axes = ReduceAxes::of({static_cast<int>(shape.size()) - 1});
      IntegerSummary s{};
      ASSERT_TRUE(accumulate_integer_stats(bytes_view(bytes, shape), o, &s, 1, false, nullptr, 0).ok());
      EXPECT_EQ(s.count, n);
      EXPECT_EQ(s.sum, 255 * (n - 3) + 1);
      EXPECT_EQ(s.sum_squares, 65025 * (n - 3) + 1);
      EXPECT_EQ(s.nonzero_count, n - 2);
      EXPECT_EQ(s.min, 0);
      EXPECT_EQ(s.max, 255);
      EXPECT_EQ(s.overflow, 0);
    }
    const std::int64_t rows = 16385, columns = 48;
    std::vector<std::uint8_t> block(static_cast<std::size_t>(rows * columns), 255);
    block[5] = 0;
    StatsOptions o;
    o.axes = ReduceAxes::of({0});
    std::vector<IntegerSummary> per_column(static_cast<std::size_t>(columns));
    ASSERT_TRUE(accumulate_integer_stats(bytes_view(block, {rows, columns}), o, per_column.data(), columns, false, nullptr, 0).ok());
    for (std::int64_t c = 0; c < columns; ++c) {
      const std::int64_t zeros = c == 5 ? 1 : 0;
      EXPECT_EQ(per_column[c].sum, 255 * (rows - zeros)) << c;
      EXPECT_EQ(per_column[c].sum_squares, 65025 * (rows - zeros)) << c;
      EXPECT_EQ(per_column[c].nonzero_count, rows - zeros) << c;
      EXPECT_EQ(per_column[c].min, zeros ? 0 : 255) << c;
    }
  }
  set_host_threads(0);
}

TEST(HostIntegerStats, SummariesAreTheExactIntegersWhateverTheChunkingOrderAndThreads) {
  const std::vector<std::int64_t> shape = {997, 3};  // NHWC RGB pixels, per-channel
  auto bytes = random_bytes(997 * 3, 8);
  const auto reference = normkit::testing::reference_integer_stats(bytes, shape, {true, false});
  StatsOptions o;
  o.axes = ReduceAxes::of({0});
  std::vector<IntegerSummary> whole(3);
  ASSERT_TRUE(accumulate_integer_stats(bytes_view(bytes, shape), o, whole.data(), 3, false, nullptr, 0).ok());
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(whole[k].count, reference[k].count);
    EXPECT_EQ(whole[k].sum, reference[k].sum);
    EXPECT_EQ(whole[k].sum_squares, reference[k].sum_squares);
    EXPECT_EQ(whole[k].nonzero_count, reference[k].nonzero);
    EXPECT_EQ(whole[k].min, reference[k].min);
    EXPECT_EQ(whole[k].max, reference[k].max);
    EXPECT_EQ(whole[k].overflow, 0);
  }
  // Chunks of rows in reverse order, on 1 and 3 threads, and merged pairwise: the same bits.
  for (int threads : {1, 3}) {
    set_host_threads(threads);
    for (std::int64_t chunk : {1, 7, 100, 996}) {
      std::vector<IntegerSummary> streamed(3);
      bool first = true;
      for (std::int64_t end = 997; end > 0; end -= chunk) {
        const std::int64_t begin = std::max<std::int64_t>(0, end - chunk);
        const std::int64_t rows[2] = {end - begin, 3};
        const TensorView part(bytes.data() + begin * 3, DType::uint8, rows, 2);
        ASSERT_TRUE(accumulate_integer_stats(part, o, streamed.data(), 3, !first, nullptr, 0).ok());
        first = false;
      }
      for (int k = 0; k < 3; ++k) EXPECT_TRUE(same_summary(streamed[k], whole[k])) << "chunk " << chunk;
    }
  }
  set_host_threads(0);
  std::vector<IntegerSummary> halves(3), second(3);
  const std::int64_t top[2] = {500, 3}, bottom[2] = {497, 3};
  ASSERT_TRUE(accumulate_integer_stats(TensorView(bytes.data(), DType::uint8, top, 2), o, halves.data(), 3, false, nullptr, 0).ok());
  ASSERT_TRUE(accumulate_integer_stats(TensorView(bytes.data() + 1500, DType::uint8, bottom, 2), o, second.data(), 3, false, nullptr, 0).ok());
  ASSERT_TRUE(merge_integer_summaries(halves.data(), second.data(), 3, MemorySpace::host).ok());
  for (int k = 0; k < 3; ++k) EXPECT_TRUE(same_summary(halves[k], whole[k]));
  // finalize_integer_stats gives compute_stats' bits.
  const TensorView input = bytes_view(bytes, shape);
  StatsBuffers direct, finalized;
  ASSERT_TRUE(compute_stats(input, o, direct.make_host_outputs(input, o.axes), nullptr, 0).ok());
  ASSERT_TRUE(finalize_integer_stats(whole.data(), 3, o, finalized.make_host_outputs(input, o.axes), MemorySpace::host).ok());
  for (int i = 0; i < kNumStats; ++i) EXPECT_EQ(direct.bytes[i], finalized.bytes[i]) << stat_name(static_cast<Stat>(i));
}

TEST(HostIntegerStats, FloatSummariesOfUint8AreTheExactMoments) {
  auto bytes = random_bytes(4099, 12);
  const std::vector<std::int64_t> shape = {4099};
  StatsSummary s{};
  ASSERT_TRUE(accumulate_stats(bytes_view(bytes, shape), StatsOptions{}, &s, 1, false, nullptr, 0).ok());
  const auto r = normkit::testing::reference_integer_stats(bytes, shape, {true})[0];
  EXPECT_EQ(s.count, r.count);
  EXPECT_EQ(s.nonzero_count, r.nonzero);
  EXPECT_EQ(s.abs_sum, static_cast<double>(r.sum));
  EXPECT_TRUE(normkit::testing::within_ulps(s.mean, normkit::testing::exact_mean(r.count, r.sum)));
  EXPECT_TRUE(normkit::testing::within_ulps(s.m2 / r.count, normkit::testing::exact_var(r.count, r.sum, r.sum_squares, 0), 2.0));
}

TEST(HostIntegerStats, BadArgumentsAreRefusedAndOverflowWritesNothing) {
  std::vector<float> floats(6, 1.0f);
  const std::int64_t shape[2] = {2, 3};
  IntegerSummary summaries[3];
  StatsOptions o;
  o.axes = ReduceAxes::of({0});
  Status s = accumulate_integer_stats(TensorView(floats.data(), DType::float32, shape, 2), o, summaries, 3, false, nullptr, 0);
  EXPECT_EQ(s.code(), StatusCode::unsupported_dtype);
  EXPECT_NE(s.message().find("accumulate_integer_stats"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("uint8"), std::string::npos) << s.message();
  std::vector<std::uint8_t> bytes(6, 3);
  s = accumulate_integer_stats(TensorView(bytes.data(), DType::uint8, shape, 2), o, summaries, 2, false, nullptr, 0);
  EXPECT_EQ(s.code(), StatusCode::shape_mismatch);
  ASSERT_TRUE(accumulate_integer_stats(TensorView(bytes.data(), DType::uint8, shape, 2), o, summaries, 3, false, nullptr, 0).ok());
  summaries[2].overflow = 1;
  std::vector<double> mean(3, -7.0);
  const std::int64_t three = 3;
  StatsOutputs outputs;
  outputs[Stat::mean] = TensorView(mean.data(), DType::float64, &three, 1);
  StatsOptions only_mean;
  only_mean.stats = {Stat::mean};
  s = finalize_integer_stats(summaries, 3, only_mean, outputs, MemorySpace::host);
  EXPECT_EQ(s.code(), StatusCode::overflow);
  EXPECT_NE(s.message().find("summaries[2]"), std::string::npos) << s.message();
  EXPECT_EQ(mean, std::vector<double>(3, -7.0));  // nothing half-written
}

// ---- Element ranges: chunks that split rows and images -------------------------------------------------

// Runs of every length cut from a tensor's flat order, merged into empty summaries, give its statistics
// (float: against the float64 reference; uint8: exactly the whole tensor's integer summaries).
TEST(HostStatsRanges, RunsThatSplitRowsGiveTheWhole) {
  const std::vector<Case> range_cases = {{{9, 4, 5, 3}, ReduceAxes::of({0, 1, 2}), "NHWC per-channel"},
                                         {{9, 4, 5, 3}, ReduceAxes::of({0, 2, 3}), "NCHW per-channel"},
                                         {{23, 17}, ReduceAxes::of({0}), "per-feature"},
                                         {{23, 17}, ReduceAxes::of({1}), "per-sample"},
                                         {{6, 5, 7}, ReduceAxes::every(), "global"},
                                         {{6, 5, 7}, ReduceAxes::of({0, 2}), "axes 0 and 2"}};
  for (const Case& c : range_cases) {
    const std::int64_t n = numel(c.shape);
    StatsOptions o;
    o.axes = c.axes;
    std::array<std::int64_t, kMaxDims> kept{};
    int kept_ndim = 0;
    auto data = normkit::testing::encode(normkit::testing::uniform_values(static_cast<std::size_t>(n), -3, 5, 11), DType::float32);
    const TensorView whole(data.data(), DType::float32, c.shape.data(), static_cast<int>(c.shape.size()));
    ASSERT_TRUE(kept_shape(whole, o.axes, &kept, &kept_ndim).ok());
    std::int64_t slices = 1;
    for (int d = 0; d < kept_ndim; ++d) slices *= kept[d];
    auto bytes = random_bytes(static_cast<std::size_t>(n), 12);
    std::vector<IntegerSummary> exact(static_cast<std::size_t>(slices));
    ASSERT_TRUE(accumulate_integer_stats(bytes_view(bytes, c.shape), o, exact.data(), slices, false, nullptr, 0).ok());
    for (std::int64_t run : {std::int64_t{1}, std::int64_t{7}, std::int64_t{59}, n - 1, n}) {
      const std::string what = c.name + ", runs of " + std::to_string(run);
      std::vector<StatsSummary> summaries(static_cast<std::size_t>(slices), empty_stats_summary());
      std::vector<IntegerSummary> integer(static_cast<std::size_t>(slices), empty_integer_summary());
      for (std::int64_t first = 0; first < n; first += run) {
        const std::int64_t count = std::min(run, n - first);
        TensorView piece = whole;
        piece.data = static_cast<float*>(data.data()) + first;
        Status s = accumulate_stats_range(piece, first, count, o, summaries.data(), slices, nullptr, 0);
        ASSERT_TRUE(s.ok()) << what << ": " << s.message();
        TensorView byte_piece = bytes_view(bytes, c.shape);
        byte_piece.data = bytes.data() + first;
        s = accumulate_integer_stats_range(byte_piece, first, count, o, integer.data(), slices, nullptr, 0);
        ASSERT_TRUE(s.ok()) << what << ": " << s.message();
      }
      StatsBuffers buffers;  // (finalize writes n flat outputs: the kept shape's order)
      const TensorView flat(nullptr, DType::float32, {slices});
      ASSERT_TRUE(finalize_stats(summaries.data(), slices, o, buffers.make_host_outputs(flat, ReduceAxes::of({})), MemorySpace::host).ok());
      normkit::testing::expect_matches_reference(data.stored, c.shape, o, false, buffers, what);
      for (std::int64_t k = 0; k < slices; ++k) EXPECT_TRUE(same_summary(integer[k], exact[k])) << what << ", slice " << k;
    }
  }
}

TEST(HostStatsRanges, BadRangesAreErrors) {
  std::vector<float> x(12, 1.0f);
  const TensorView whole(x.data(), DType::float32, {4, 3});
  StatsOptions o;
  o.axes = ReduceAxes::of({0});
  std::vector<StatsSummary> s(3, empty_stats_summary());
  Status st = accumulate_stats_range(whole, 10, 3, o, s.data(), 3, nullptr, 0);
  EXPECT_EQ(st.code(), StatusCode::invalid_argument);
  EXPECT_NE(st.message().find("first + count <= 12"), std::string::npos) << st.message();
  EXPECT_EQ(accumulate_stats_range(whole, -1, 1, o, s.data(), 3, nullptr, 0).code(), StatusCode::invalid_argument);
  EXPECT_EQ(accumulate_stats_range(whole, 0, 1, o, s.data(), 4, nullptr, 0).code(), StatusCode::shape_mismatch);
  std::vector<IntegerSummary> integer(3, empty_integer_summary());
  EXPECT_EQ(accumulate_integer_stats_range(whole, 0, 1, o, integer.data(), 3, nullptr, 0).code(), StatusCode::unsupported_dtype);
  EXPECT_EQ(accumulate_integer_stats_range(whole, 12, 0, o, integer.data(), 3, nullptr, 0).code(), StatusCode::unsupported_dtype);
  const TensorView scalar(x.data(), DType::float32, {});
  EXPECT_EQ(accumulate_stats_range(scalar, 0, 1, StatsOptions{}, s.data(), 1, nullptr, 0).code(), StatusCode::invalid_argument);
  EXPECT_TRUE(accumulate_stats_range(whole, 12, 0, o, s.data(), 3, nullptr, 0).ok());  // an empty run
  for (const StatsSummary& k : s) EXPECT_EQ(k.count, 0);
}
