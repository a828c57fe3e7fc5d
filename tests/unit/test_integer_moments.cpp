// The exact uint8 statistics math: integer states, summary merges and the one rounding of each exact
// fraction, against 128-bit integer references.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "math/integer_moments.hpp"
#include "reference_integer.hpp"

namespace nm = normkit::math;
using normkit::IntegerSummary;
using normkit::kMaxIntegerSummaryCount;
using normkit::testing::exact_mean;
using normkit::testing::exact_var;
using normkit::testing::within_ulps;

namespace {

// k values a and n - k values b: a consistent summary of any size without the values themselves.
IntegerSummary two_valued(std::int64_t n, std::int64_t k, std::int64_t a, std::int64_t b) {
  IntegerSummary s{};
  s.count = n;
  s.sum = k * a + (n - k) * b;
  s.sum_squares = k * a * a + (n - k) * b * b;
  s.nonzero_count = (a != 0 ? k : 0) + (b != 0 ? n - k : 0);
  s.min = k > 0 && n - k > 0 ? std::min(a, b) : (k > 0 ? a : b);
  s.max = k > 0 && n - k > 0 ? std::max(a, b) : (k > 0 ? a : b);
  return s;
}

}  // namespace

TEST(IntegerMoments, FinalizeIsWithinOneUlpOfTheExactFractionsAtEverySize) {
  std::mt19937_64 rng(7);
  const std::int64_t sizes[] = {1, 2, 3, 7, 255, 65536, 66051, 1 << 24, (1LL << 24) + 1, 1LL << 33, 3'000'000'000'000LL,
                                (1LL << 53) / 255, kMaxIntegerSummaryCount - 1, kMaxIntegerSummaryCount};
  for (std::int64_t n : sizes) {
    for (int trial = 0; trial < 200; ++trial) {
      const std::int64_t k = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(n + 1));
      const std::int64_t a = static_cast<std::int64_t>(rng() % 256), b = static_cast<std::int64_t>(rng() % 256);
      const IntegerSummary s = two_valued(n, k, a, b);
      for (std::int64_t ddof : {0, 1}) {
        const nm::StatValues v = nm::finalize_integer(s, ddof);
        const long double var = exact_var(n, s.sum, s.sum_squares, ddof);
        ASSERT_TRUE(within_ulps(v.mean, exact_mean(n, s.sum))) << n << " " << k << " " << a << " " << b << " mean " << v.mean;
        ASSERT_TRUE(within_ulps(v.var, var)) << n << " " << k << " " << a << " " << b << " var " << v.var;
        ASSERT_TRUE(within_ulps(v.std, std::sqrt(var))) << n << " std";
        ASSERT_TRUE(within_ulps(v.l2, std::sqrt(static_cast<long double>(s.sum_squares)))) << n << " l2";
        ASSERT_EQ(v.sum, static_cast<double>(s.sum));
        ASSERT_EQ(v.min, static_cast<double>(s.min));
        ASSERT_EQ(v.max, static_cast<double>(s.max));
        ASSERT_EQ(v.count, n);
        ASSERT_EQ(v.l0, s.nonzero_count);
      }
    }
  }
}

TEST(IntegerMoments, FloatFinalizeIsWithinOneFloatUlpForWorkItemSizes) {
  std::mt19937_64 rng(11);
  for (std::int64_t n : {1LL, 2LL, 16LL, 255LL, 256LL, 257LL, 1000LL, 65793LL, 1LL << 20, 1LL << 24}) {
    for (int trial = 0; trial < 500; ++trial) {
      const std::int64_t k = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(n + 1));
      const IntegerSummary s = two_valued(n, k, static_cast<std::int64_t>(rng() % 256), static_cast<std::int64_t>(rng() % 256));
      const auto v = nm::finalize_integer_float(s, 1);
      const long double var = exact_var(n, s.sum, s.sum_squares, 1);
      ASSERT_TRUE(within_ulps(v.mean, exact_mean(n, s.sum))) << n << " mean";
      ASSERT_TRUE(within_ulps(v.var, var)) << n << " var " << v.var << " vs " << static_cast<double>(var);
      ASSERT_TRUE(within_ulps(v.std, std::sqrt(var))) << n << " std";
      ASSERT_TRUE(within_ulps(v.l2, std::sqrt(static_cast<long double>(s.sum_squares)))) << n << " l2";
      ASSERT_EQ(v.sum, static_cast<float>(s.sum));
    }
  }
}

// Below 2^24 both operands are exact in float: the quotient is the float nearest the exact fraction (its
// neighbours' products with the denominator are exact in long double, 48-bit).
TEST(IntegerMoments, SmallExactFractionsAreCorrectlyRounded) {
  std::mt19937_64 rng(12);
  for (int trial = 0; trial < 20000; ++trial) {
    const std::uint64_t den = 1 + rng() % ((trial % 2) ? 64 : (1u << 24) - 1);
    const std::uint64_t num = rng() % (1u << 24);
    const float q = nm::exact_fraction_float(num, den);
    if (num < (1u << 24) && den < (1u << 24)) {
      ASSERT_EQ(nm::exact_fraction_float(static_cast<std::uint32_t>(num), static_cast<std::uint32_t>(den)), q);
    }
    const auto error = [&](float f) { return std::fabs(static_cast<long double>(f) * den - static_cast<long double>(num)); };
    ASSERT_LE(error(q), error(std::nextafter(q, 2.0f * q + 1.0f))) << num << "/" << den;
    ASSERT_LE(error(q), error(std::nextafter(q, -1.0f))) << num << "/" << den;
  }
  EXPECT_EQ(nm::exact_fraction_float<std::uint32_t>(1, 3), 1.0f / 3.0f);
  EXPECT_EQ(nm::exact_fraction_float<std::uint64_t>(std::uint64_t{1} << 40, 3), static_cast<float>(static_cast<double>(std::uint64_t{1} << 40) / 3.0));
}

// Up to kIntegerFloat32Count values the float finalize runs in 32 bits: the same bits as in 64, up to the
// largest n Σx² there is (half 0, half 255; all 255).
TEST(IntegerMoments, ThirtyTwoBitFloatFinalizeMatchesSixtyFourBitUpToItsLimit) {
  const auto same = [](const nm::StatValuesIn<float>& a, const nm::StatValuesIn<float>& b) {
    const auto bits = [](float f) {
      std::uint32_t u;
      std::memcpy(&u, &f, sizeof(u));
      return u;
    };
    const float fa[] = {a.mean, a.var, a.std, a.min, a.max, a.sum, a.l1, a.l2, a.linf};
    const float fb[] = {b.mean, b.var, b.std, b.min, b.max, b.sum, b.l1, b.l2, b.linf};
    bool equal = a.count == b.count && a.l0 == b.l0;
    for (int i = 0; i < 9; ++i) equal = equal && bits(fa[i]) == bits(fb[i]);
    return equal;
  };
  for (std::int64_t n = 1; n <= nm::kIntegerFloat32Count; ++n) {
    for (std::int64_t k : {std::int64_t{0}, n / 2, n - 1, n}) {
      for (const auto& [a, b] : {std::pair<std::int64_t, std::int64_t>{0, 255}, {255, 255}, {1, 254}, {7, 200}}) {
        const IntegerSummary s = two_valued(n, k, a, b);
        for (std::int64_t ddof : {0, 1, 2}) {
          ASSERT_TRUE(same(nm::finalize_integer_float_in<std::uint32_t>(s, ddof), nm::finalize_integer_float_in<std::uint64_t>(s, ddof)))
              << n << " " << k << " " << a << " " << b << " ddof " << ddof;
        }
      }
    }
  }
}

TEST(IntegerMoments, ConstantDataHasZeroVarianceAndEmptyOrShortSlicesFollowTheRules) {
  for (std::int64_t x : {0, 1, 128, 255}) {
    const nm::StatValues v = nm::finalize_integer(two_valued(1000003, 1000003, x, 0), 0);
    EXPECT_EQ(v.mean, static_cast<double>(x));
    EXPECT_EQ(v.var, 0.0);
    EXPECT_EQ(v.std, 0.0);
  }
  const nm::StatValues empty = nm::finalize_integer(nm::empty_integer_summary(), 0);
  EXPECT_EQ(empty.count, 0);
  EXPECT_EQ(empty.sum, 0.0);
  EXPECT_EQ(empty.l2, 0.0);
  EXPECT_TRUE(std::isnan(empty.mean) && std::isnan(empty.var) && std::isnan(empty.min) && std::isnan(empty.max) &&
              std::isnan(empty.linf));
  const nm::StatValues one = nm::finalize_integer(two_valued(1, 1, 9, 0), 1);  // n - ddof == 0
  EXPECT_EQ(one.mean, 9.0);
  EXPECT_TRUE(std::isnan(one.var) && std::isnan(one.std));
}

TEST(IntegerMoments, MergeIsExactAndFlagsOverflowPastTheLimit) {
  IntegerSummary a = two_valued(kMaxIntegerSummaryCount - 5, 3, 255, 1);
  const IntegerSummary five = two_valued(5, 2, 0, 7);
  IntegerSummary b = a;
  nm::merge_integer_summary(b, five);
  EXPECT_EQ(b.overflow, 0);
  EXPECT_EQ(b.count, kMaxIntegerSummaryCount);
  EXPECT_EQ(b.sum, a.sum + five.sum);
  EXPECT_EQ(b.min, 0);
  EXPECT_EQ(b.max, 255);
  nm::merge_integer_summary(b, two_valued(1, 1, 0, 0));
  EXPECT_EQ(b.overflow, 1);
  EXPECT_TRUE(std::isnan(nm::finalize_integer(b, 0).mean));
  nm::merge_integer_summary(a, nm::empty_integer_summary());
  EXPECT_EQ(a.overflow, 0);
  IntegerSummary c = nm::empty_integer_summary();
  nm::merge_integer_summary(c, b);  // sticky through later merges
  EXPECT_EQ(c.overflow, 1);
}

TEST(IntegerMoments, ByteBatchesScalarPushesAndMergesGiveTheSameSummary) {
  std::mt19937 rng(3);
  std::vector<std::uint8_t> bytes(64 * 5 + 13);
  for (auto& b : bytes) b = static_cast<std::uint8_t>(rng() % 7 == 0 ? 0 : rng() % 256);
  nm::IntegerMoments by_value = nm::IntegerMoments::empty();
  for (std::uint8_t b : bytes) by_value.push(static_cast<float>(b));
  nm::IntegerMoments batched = nm::IntegerMoments::empty(), tail = nm::IntegerMoments::empty();
  std::size_t i = 0;
  for (; i + 64 <= bytes.size(); i += 64) {
    nm::ByteSums sums = nm::ByteSums::empty();
    for (std::size_t w = 0; w < 64; w += 4) {
      sums.add_word(static_cast<std::uint32_t>(bytes[i + w]) | static_cast<std::uint32_t>(bytes[i + w + 1]) << 8 |
                    static_cast<std::uint32_t>(bytes[i + w + 2]) << 16 | static_cast<std::uint32_t>(bytes[i + w + 3]) << 24);
    }
    batched.push_bytes<true, 64>(sums);
  }
  for (; i < bytes.size(); ++i) tail.push(bytes[i]);
  batched.merge(tail);
  const IntegerSummary x = by_value.summary(), y = batched.summary();
  EXPECT_EQ(x.count, static_cast<std::int64_t>(bytes.size()));
  EXPECT_EQ(x.count, y.count);
  EXPECT_EQ(x.sum, y.sum);
  EXPECT_EQ(x.sum_squares, y.sum_squares);
  EXPECT_EQ(x.nonzero_count, y.nonzero_count);
  EXPECT_EQ(x.min, y.min);
  EXPECT_EQ(x.max, y.max);
  std::int64_t sum = 0, sq = 0, nz = 0;
  for (std::uint8_t b : bytes) sum += b, sq += b * b, nz += b != 0;
  EXPECT_EQ(x.sum, sum);
  EXPECT_EQ(x.sum_squares, sq);
  EXPECT_EQ(x.nonzero_count, nz);
  EXPECT_EQ(nm::IntegerMoments::empty().summary().min, INT64_MAX);
}
