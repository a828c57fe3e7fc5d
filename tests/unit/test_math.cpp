// The shared math: Welford/Chan, NaN/Inf rules, dtype conversions.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "math/element_types.hpp"
#include "math/integer_moments.hpp"
#include "math/moments.hpp"
#include "test_data.hpp"

namespace nm = normkit::math;
using normkit::StatsSummary;

namespace {

template <typename Acc>
nm::MomentState<Acc> fold(const std::vector<double>& values) {
  auto s = nm::empty_state<Acc>();
  for (double v : values) nm::push(s, static_cast<Acc>(v));
  return s;
}

nm::StatValues finalize(const nm::MomentState<float>& s, std::int64_t ddof = 0, bool ignore_nan = false) {
  return nm::finalize_summary(nm::to_summary(s), ddof, ignore_nan);
}

double two_pass_var(const std::vector<double>& v) {
  long double mean = 0;
  for (double x : v) mean += x;
  mean /= v.size();
  long double m2 = 0;
  for (double x : v) m2 += (x - mean) * (x - mean);
  return static_cast<double>(m2 / v.size());
}

}  // namespace

TEST(Welford, MatchesTwoPassOnSmallData) {
  const std::vector<double> v = {1, 2, 3, 4, 10};
  const auto r = finalize(fold<float>(v));
  EXPECT_EQ(r.count, 5);
  EXPECT_FLOAT_EQ(r.mean, 4.0f);
  EXPECT_NEAR(r.var, two_pass_var(v), 1e-6);
  EXPECT_EQ(r.min, 1);
  EXPECT_EQ(r.max, 10);
  EXPECT_EQ(r.sum, 20);
  EXPECT_EQ(r.l1, 20);
  EXPECT_NEAR(r.l2, std::sqrt(1 + 4 + 9 + 16 + 100.0), 1e-5);
  EXPECT_EQ(r.linf, 10);
}

// The case plain float32 Welford gets 30% wrong: 1e6 + N(0, 0.1^2).
TEST(Welford, LargeOffsetFloat32VarianceWithinOneThousandth) {
  std::vector<double> v = normkit::testing::normal_values(100000, 1e6, 0.1, 7);
  for (double& x : v) x = static_cast<float>(x);
  const double expected = two_pass_var(v);
  // One state, packs of 4, and a tree of merged partitions: all three paths kernels use.
  const auto single = finalize(fold<float>(v));
  EXPECT_NEAR(single.var, expected, 1e-3 * expected);
  auto packed = nm::empty_state<float>();
  for (std::size_t i = 0; i + 4 <= v.size(); i += 4) {
    const float pack[4] = {float(v[i]), float(v[i + 1]), float(v[i + 2]), float(v[i + 3])};
    nm::push_pack(packed, pack);
  }
  EXPECT_NEAR(finalize(packed).var, expected, 1e-3 * expected);
  std::vector<nm::MomentState<float>> parts;
  for (std::size_t i = 0; i < v.size(); i += 1000) parts.push_back(fold<float>({v.begin() + i, v.begin() + i + 1000}));
  for (std::size_t stride = 1; stride < parts.size(); stride *= 2) {
    for (std::size_t i = 0; i + stride < parts.size(); i += 2 * stride) nm::merge(parts[i], parts[i + stride]);
  }
  EXPECT_NEAR(finalize(parts[0]).var, expected, 1e-3 * expected);
  EXPECT_NEAR(finalize(parts[0]).mean, 1e6, 0.01);
}

TEST(Chan, MergingEmptyLeavesOtherUnchanged) {
  const auto a = fold<double>({3, 5, 8});
  auto merged = a;
  nm::merge(merged, nm::empty_state<double>());
  EXPECT_EQ(merged.count, a.count);
  EXPECT_EQ(merged.mean, a.mean);
  EXPECT_EQ(merged.m2, a.m2);
  auto from_empty = nm::empty_state<double>();
  nm::merge(from_empty, a);
  EXPECT_EQ(nm::to_summary(from_empty).mean, nm::to_summary(a).mean);
  EXPECT_EQ(from_empty.m2, a.m2);
}

TEST(Chan, MergeOfBatchesEqualsWhole) {
  const auto v = normkit::testing::uniform_values(1001, -5, 9, 3);
  auto a = fold<double>({v.begin(), v.begin() + 400});
  const auto b = fold<double>({v.begin() + 400, v.end()});
  nm::merge(a, b);
  const auto whole = nm::finalize_summary(nm::to_summary(fold<double>(v)), 1, false);
  const auto merged = nm::finalize_summary(nm::to_summary(a), 1, false);
  EXPECT_EQ(merged.count, 1001);
  EXPECT_NEAR(merged.mean, whole.mean, 1e-12);
  EXPECT_NEAR(merged.var, whole.var, 1e-12);
  StatsSummary sa = nm::to_summary(fold<double>({v.begin(), v.begin() + 400}));
  nm::merge_summary(sa, nm::to_summary(b));
  EXPECT_NEAR(sa.mean, nm::to_summary(fold<double>(v)).mean, 1e-12);
}

TEST(NumpyRules, InfinityAndNan) {
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto r = finalize(fold<float>({inf, 1}));
  EXPECT_EQ(r.mean, inf);  // numpy: mean([inf, 1]) == inf
  EXPECT_TRUE(std::isnan(r.var));
  EXPECT_EQ(r.sum, inf);
  EXPECT_EQ(r.max, inf);
  EXPECT_EQ(r.linf, inf);
  r = finalize(fold<float>({inf, -inf, 2}));
  EXPECT_TRUE(std::isnan(r.mean));
  EXPECT_TRUE(std::isnan(r.sum));
  r = finalize(fold<float>({-inf, 2}));
  EXPECT_EQ(r.mean, -inf);
  EXPECT_EQ(r.min, -inf);
  r = finalize(fold<float>({1, nan, 3}));
  EXPECT_EQ(r.count, 3);
  EXPECT_EQ(r.l0, 3);  // NaN != 0
  EXPECT_TRUE(std::isnan(r.mean) && std::isnan(r.min) && std::isnan(r.max) && std::isnan(r.l2));
  r = finalize(fold<float>({1, nan, 3}), 0, /*ignore_nan=*/true);
  EXPECT_EQ(r.count, 2);
  EXPECT_EQ(r.l0, 2);
  EXPECT_EQ(r.mean, 2);
  EXPECT_EQ(r.min, 1);
}

TEST(NumpyRules, EmptyAndDdof) {
  const auto empty = finalize(nm::empty_state<float>());
  EXPECT_EQ(empty.count, 0);
  EXPECT_EQ(empty.sum, 0);
  EXPECT_EQ(empty.l0, 0);
  EXPECT_EQ(empty.l1, 0);
  EXPECT_EQ(empty.l2, 0);
  EXPECT_TRUE(std::isnan(empty.mean) && std::isnan(empty.var) && std::isnan(empty.std) && std::isnan(empty.min) &&
              std::isnan(empty.max) && std::isnan(empty.linf));
  const auto all_nan = finalize(fold<float>({NAN, NAN}), 0, true);
  EXPECT_EQ(all_nan.count, 0);
  EXPECT_TRUE(std::isnan(all_nan.mean));
  const auto one = finalize(fold<float>({4}), 1);
  EXPECT_TRUE(std::isnan(one.var));  // count <= ddof
  EXPECT_EQ(one.mean, 4);
  EXPECT_EQ(finalize(fold<float>({4}), 0).var, 0);
}

TEST(PushPack, NonFinitePackFallsBackToPerValue) {
  auto s = nm::empty_state<float>();
  const float pack[4] = {1, INFINITY, 3, NAN};
  nm::push_pack(s, pack);
  EXPECT_EQ(s.count, 2);
  EXPECT_EQ(s.posinf_count, 1);
  EXPECT_EQ(s.nan_count, 1);
  EXPECT_EQ(s.nonzero_count, 3);
}

TEST(Conversions, HalfRoundTripsEveryValue) {
  for (std::uint32_t bits = 0; bits < 65536; ++bits) {
    const nm::float16_bits h{static_cast<std::uint16_t>(bits)};
    const float f = nm::half_to_float(h);
    const double expected = normkit::testing::decode_half(static_cast<std::uint16_t>(bits));
    if (std::isnan(expected)) {  // (the payload kept: sign, all-ones exponent, mantissa moved up)
      std::uint32_t got;
      std::memcpy(&got, &f, 4);
      ASSERT_EQ(got, ((bits & 0x8000u) << 16) | 0x7f800000u | ((bits & 0x3ffu) << 13)) << bits;
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), expected) << bits;
    ASSERT_EQ(nm::float_to_half(f).bits, bits) << bits;
  }
}

TEST(Conversions, FloatToHalfRoundsToNearestEven) {
  for (double v : {1.0 + 1.0 / 2048, 1.0 + 3.0 / 2048, 65519.0, 65520.0, 1e-8, 3e-5, -2.5e-7, 70000.0}) {
    EXPECT_EQ(nm::float_to_half(static_cast<float>(v)).bits, normkit::testing::encode_half(v)) << v;
  }
}

TEST(Conversions, Bfloat16) {
  for (double v : {1.0, -3.14159, 1e30, 1e-30, 65504.0, 1.00390625}) {
    const auto b = nm::float_to_bfloat16(static_cast<float>(v));
    EXPECT_EQ(b.bits, normkit::testing::encode_bfloat16(v)) << v;
    EXPECT_EQ(static_cast<double>(nm::bfloat16_to_float(b)), normkit::testing::decode_bfloat16(b.bits));
  }
}

// LocalMoments (the kernels' per-thread and per-block form): packs, per-value pushes with NaN and ±Inf,
// and merges of local states agree with MomentState on every field, and float32 keeps the accuracy of
// the large-offset case.
TEST(LocalMoments, PacksValuesAndMergesAgreeWithMomentState) {
  std::vector<double> v = normkit::testing::normal_values(4096, 1e6, 0.1, 11);
  for (double& x : v) x = static_cast<float>(x);
  v[5] = std::numeric_limits<double>::quiet_NaN();
  v[100] = std::numeric_limits<double>::infinity();
  v[101] = -std::numeric_limits<double>::infinity();
  v[200] = 0.0;
  v[3000] = -0.0;
  nm::LocalMoments<float> parts[4];
  for (auto& p : parts) p = nm::LocalMoments<float>::empty();
  for (std::size_t i = 0; i < v.size(); i += 8) {
    float pack[8];
    for (int j = 0; j < 8; ++j) pack[j] = static_cast<float>(v[i + j]);
    if ((i / 8) % 3 == 2) {
      for (float x : pack) parts[(i / 8) % 4].push(x);
    } else {
      parts[(i / 8) % 4].push_pack(pack);
    }
  }
  parts[0].merge(parts[1]);
  parts[2].merge(parts[3]);
  parts[0].merge(parts[2]);
  parts[0].merge(nm::LocalMoments<float>::empty());
  const StatsSummary got = nm::to_summary(parts[0].widen());
  const StatsSummary want = nm::to_summary(fold<double>(v));
  EXPECT_EQ(got.count, want.count);
  EXPECT_EQ(got.nan_count, 1);
  EXPECT_EQ(got.posinf_count, 1);
  EXPECT_EQ(got.neginf_count, 1);
  EXPECT_EQ(got.nonzero_count, want.nonzero_count);
  EXPECT_EQ(got.min, want.min);
  EXPECT_EQ(got.max, want.max);
  EXPECT_NEAR(got.mean, want.mean, 1e-9 * std::abs(want.mean));
  EXPECT_NEAR(got.m2, want.m2, 1e-3 * want.m2);
  EXPECT_EQ(got.abs_sum, want.abs_sum);  // +Inf: the infinities count in Σ|x|
}

// ByteSums (the uint8 fast path): exact integers for every byte value, zeros, the extremes 0 and 255 in
// every byte position; push_bytes agrees with per-value pushes of the same values.
TEST(ByteSums, ExactSumsExtremesAndNonZerosOfEveryBytePosition) {
  std::vector<std::uint8_t> bytes;
  for (int v = 0; v < 256; ++v) bytes.push_back(static_cast<std::uint8_t>(v));
  for (int v = 0; v < 64; ++v) bytes.push_back(static_cast<std::uint8_t>((v * 37) % 5 == 0 ? 0 : 128 + v));
  for (std::size_t start = 0; start + 64 <= bytes.size(); start += 4) {
    for (int pos = 0; pos < 4; ++pos) {  // the extremes in each byte position of a word
      std::vector<std::uint8_t> batch(bytes.begin() + start, bytes.begin() + start + 64);
      batch[pos] = 0;
      batch[8 + pos] = 255;
      nm::ByteSums sums = nm::ByteSums::empty();
      for (int w = 0; w < 16; ++w) {
        std::uint32_t word = 0;
        for (int k = 0; k < 4; ++k) word |= static_cast<std::uint32_t>(batch[4 * w + k]) << (8 * k);
        sums.add_word(word);
      }
      std::uint32_t sum = 0, sum_sq = 0, nonzero = 0, mn = 255, mx = 0;
      for (std::uint8_t b : batch) {
        sum += b;
        sum_sq += b * b;
        nonzero += b != 0;
        mn = b < mn ? b : mn;
        mx = b > mx ? b : mx;
      }
      ASSERT_EQ(sums.sum, sum) << start << " " << pos;
      ASSERT_EQ(sums.sum_sq, sum_sq);
      ASSERT_EQ(sums.nonzero(), nonzero);
      ASSERT_EQ(sums.min_value(), mn);
      ASSERT_EQ(sums.max_value(), mx);
    }
  }
  // The non-zero flags of single bytes (0x80 and 0x7f exercise both halves of the rule).
  for (std::uint32_t b = 0; b < 256; ++b) EXPECT_EQ(nm::nonzero_byte_flags(b << 16), b ? 0x800000u : 0u) << b;
}

TEST(ByteSums, PushBytesAgreesWithPerValuePushes) {
  std::vector<std::uint8_t> bytes(64 * 5 + 16);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>((i * 2654435761u >> 13) % 7 == 0 ? 0 : (i * 97 + 13) % 256);
  auto batched = nm::IntegerMoments::empty();
  batched.push(3.0f);  // a per-value push first, as the kernels' scalar heads do
  auto single = nm::IntegerMoments::empty();
  single.push(3.0f);
  for (std::size_t start = 0; start < bytes.size();) {
    const int n = start + 64 <= bytes.size() ? 64 : 16;
    nm::ByteSums sums = nm::ByteSums::empty();
    for (int w = 0; w < n / 4; ++w) {
      std::uint32_t word;
      std::memcpy(&word, &bytes[start + 4 * w], 4);
      sums.add_word(word);
    }
    if (n == 64) batched.push_bytes<true, 64>(sums);
    else batched.push_bytes<true, 16>(sums);
    for (int k = 0; k < n; ++k) single.push(bytes[start + k]);
    start += n;
  }
  const normkit::IntegerSummary got = batched.summary(), want = single.summary();
  EXPECT_EQ(got.count, want.count);
  EXPECT_EQ(got.nonzero_count, want.nonzero_count);
  EXPECT_EQ(got.min, want.min);
  EXPECT_EQ(got.max, want.max);
  EXPECT_EQ(got.sum, want.sum);
  EXPECT_EQ(got.sum_squares, want.sum_squares);
  // Moments only: the extremes and the non-zero count stay empty.
  auto moments = nm::IntegerMoments::empty();
  nm::ByteSums sums = nm::ByteSums::empty();
  sums.add_word<false>(0x01020304u);
  moments.push_bytes<false, 4>(sums);
  EXPECT_EQ(moments.count, 4u);
  EXPECT_EQ(moments.sum, 10u);
  EXPECT_EQ(moments.sum_sq, 30u);
  EXPECT_EQ(moments.nonzero, 0u);
  EXPECT_EQ(moments.min_lanes, nm::ByteSums::kEmptyMinLanes);
}

TEST(LocalMoments, AllNaNPackLeavesMomentsEmpty) {
  auto s = nm::LocalMoments<float>::empty();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float pack[4] = {nan, nan, nan, nan};
  s.push_pack(pack);
  const float finite[4] = {1, 2, 3, 4};
  s.push_pack(finite);
  const StatsSummary r = nm::to_summary(s.widen());
  EXPECT_EQ(r.count, 4);
  EXPECT_EQ(r.nan_count, 4);
  EXPECT_DOUBLE_EQ(r.mean, 2.5);
  EXPECT_DOUBLE_EQ(r.m2, 5.0);
}
