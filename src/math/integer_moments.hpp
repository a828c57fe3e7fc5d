// Exact statistics of uint8 input: integer sums in the kernels' and the host engine's hot loops, merged
// by integer addition (so any order, chunking or plan gives the same bits), and one rounding of each
// exact fraction at the end. The one definition of those formulas for both backends.
#pragma once

#include <cmath>
#include <cstdint>

#include "math/byte_sums.hpp"
#include "math/double_double.hpp"
#include "math/host_device.hpp"
#include "math/moments.hpp"
#include "normkit/stats_types.hpp"

namespace normkit::math {

// ---- The public summary -------------------------------------------------------------------------------

NORMKIT_HD IntegerSummary empty_integer_summary() {
  return IntegerSummary{0, 0, 0, 0, INT64_MAX, INT64_MIN, 0};
}

// into += from. The sums add modulo 2^64 (no undefined behaviour past the limit); `overflow` is set once
// the count passes kMaxIntegerSummaryCount, below which Σx² of uint8 values fits int64.
NORMKIT_HD void merge_integer_summary(IntegerSummary& into, const IntegerSummary& from) {
  const bool overflow = into.overflow != 0 || from.overflow != 0 || from.count > kMaxIntegerSummaryCount - into.count;
  const auto add = [](std::int64_t a, std::int64_t b) {
    return static_cast<std::int64_t>(static_cast<std::uint64_t>(a) + static_cast<std::uint64_t>(b));
  };
  into.count = add(into.count, from.count);
  into.sum = add(into.sum, from.sum);
  into.sum_squares = add(into.sum_squares, from.sum_squares);
  into.nonzero_count = add(into.nonzero_count, from.nonzero_count);
  into.min = from.min < into.min ? from.min : into.min;
  into.max = from.max > into.max ? from.max : into.max;
  into.overflow = overflow ? 1 : 0;
}

// ---- A thread's state in the kernels and the host engine ----------------------------------------------

// Integer counterpart of LocalMoments (same interface, so the statistics kernels run it unchanged): sums in
// 64 bits, extremes as ByteSums' two half-precision lanes. Runs of uint8 come as ByteSums (exact 32-bit
// sums of at most kByteSumsMaxValues values), widened here once per run.
struct IntegerMoments {
  std::uint64_t count;
  std::uint64_t sum;
  std::uint64_t sum_sq;
  std::uint64_t nonzero;
  std::uint32_t min_lanes;  // two lanes holding x (ByteSums)
  std::uint32_t max_lanes;

  NORMKIT_HD static IntegerMoments empty() {
    return IntegerMoments{0u, 0u, 0u, 0u, ByteSums::kEmptyMinLanes, ByteSums::kEmptyMaxLanes};
  }

  // One value (the scalar head and tail paths of the kernels hand it over in their float type).
  template <typename Acc>
  NORMKIT_HD void push(Acc x) {
    const std::uint32_t v = static_cast<std::uint32_t>(x);
    ++count;
    sum += v;
    sum_sq += v * v;
    nonzero += v != 0u ? 1u : 0u;
    const std::uint32_t lanes = v | (v << 16);
    min_lanes = ByteSums::min_lanes_of(min_lanes, lanes);
    max_lanes = ByteSums::max_lanes_of(max_lanes, lanes);
  }

  template <bool kExtremes = true, bool kMinMax = kExtremes, bool kNonzero = kExtremes, typename Acc, int N>
  NORMKIT_HD bool push_pack(const Acc (&v)[N]) {
NORMKIT_UNROLL
    for (int i = 0; i < N; ++i) push(v[i]);
    return true;
  }

  // N values summed by ByteSums. kExtremes = false leaves the non-zero count and the extremes out;
  // kHalfCounts says how b counted its non-zeros (ByteSums::add_word).
  template <bool kExtremes = true, int N, bool kHalfCounts = false>
  NORMKIT_HD void push_bytes(const ByteSums& b) {
    push_bytes<kExtremes, kHalfCounts>(b, static_cast<std::uint32_t>(N));
  }
  template <bool kExtremes = true, bool kHalfCounts = false>
  NORMKIT_HD void push_bytes(const ByteSums& b, std::uint32_t values) {
    count += values;
    sum += b.sum;
    sum_sq += b.sum_sq;
    if constexpr (kExtremes) {
      nonzero += b.template nonzero<kHalfCounts>();
      min_lanes = ByteSums::min_lanes_of(min_lanes, b.min_lanes);
      max_lanes = ByteSums::max_lanes_of(max_lanes, b.max_lanes);
    }
  }

  NORMKIT_HD void merge(const IntegerMoments& b) {
    count += b.count;
    sum += b.sum;
    sum_sq += b.sum_sq;
    nonzero += b.nonzero;
    min_lanes = ByteSums::min_lanes_of(min_lanes, b.min_lanes);
    max_lanes = ByteSums::max_lanes_of(max_lanes, b.max_lanes);
  }

  NORMKIT_HD IntegerMoments widen() const { return *this; }

  NORMKIT_HD IntegerSummary summary() const {
    IntegerSummary r = empty_integer_summary();
    r.count = static_cast<std::int64_t>(count);
    r.sum = static_cast<std::int64_t>(sum);
    r.sum_squares = static_cast<std::int64_t>(sum_sq);
    r.nonzero_count = static_cast<std::int64_t>(nonzero);
    if (count > 0) {
      r.min = ByteSums::lane_min(min_lanes) & 0xffu;
      r.max = ByteSums::lane_max(max_lanes) & 0xffu;
    }
    return r;
  }
};

NORMKIT_HD void merge(IntegerMoments& a, const IntegerMoments& b) { a.merge(b); }
template <typename Acc>
NORMKIT_HD void push(IntegerMoments& s, Acc x) { s.push(x); }

// The state a statistics kernel keeps for input T accumulated in Acc: `local` in the hot loops, `wide`
// where slices of any size are merged. uint8 is exact integers in both.
template <typename T, typename Acc>
struct KernelState {
  using local = LocalMoments<Acc>;
  using wide = MomentState<Acc>;
  NORMKIT_HD static wide empty_wide() { return empty_state<Acc>(); }
};
template <typename Acc>
struct KernelState<std::uint8_t, Acc> {
  using local = IntegerMoments;
  using wide = IntegerMoments;
  NORMKIT_HD static wide empty_wide() { return IntegerMoments::empty(); }
};

// ---- From exact integers to statistics ----------------------------------------------------------------

struct ExactMoments {
  double mean;      // Σx / n rounded once (within 1 ulp)
  DoubleDouble m2;  // n Σx² - (Σx)², divided by n, to ~2^-104 relative
};

// The mean and M2 of n > 0 values from their exact Σx and Σx² (< 2^63). With q the integer nearest the
// mean and r = Σx - q n (|r| <= n/2): mean = q + r/n and M2 = (Σx² - q (Σx + r)) - r²/n, an identity for
// any integer q. The first term is an integer, exact in 64-bit arithmetic modulo 2^64 and in [0, 2^64)
// since it equals M2 + r²/n. Every integer lies at least |r|/n from the mean, so r²/n <= M2: the
// subtraction cancels at most one bit, and M2 keeps double-double accuracy.
NORMKIT_HD ExactMoments exact_moments(std::uint64_t n, std::uint64_t sum, std::uint64_t sum_sq) {
  const double nd = static_cast<double>(n);  // exact: n < 2^53
  const std::uint64_t q = static_cast<std::uint64_t>(rint(static_cast<double>(sum) / nd));
  const std::int64_t r = static_cast<std::int64_t>(sum - q * n);  // |r| <= n/2 + 1: exact as a double
  const double rd = static_cast<double>(r);
  ExactMoments m;
  const DoubleDouble frac = dd_div(DoubleDouble{rd, 0.0}, nd);
  const DoubleDouble mean = two_sum(static_cast<double>(q), frac.hi);
  m.mean = mean.hi + (mean.lo + frac.lo);
  const std::uint64_t integer_part = sum_sq - q * (sum + static_cast<std::uint64_t>(r));
  m.m2 = dd_sub(dd_from_u64(integer_part), dd_div(two_prod(rd, rd), nd));
  if (m.m2.hi < 0.0) m.m2 = DoubleDouble{0.0, 0.0};
  return m;
}

// The statistics of an integer summary (stats.hpp's rules for empty slices and ddof; no NaN or Inf in
// integers). An overflowed summary gives NaN for every float statistic.
NORMKIT_HD StatValues finalize_integer(const IntegerSummary& s, std::int64_t ddof) {
  const double nan = quiet_nan<double>();
  StatValues v;
  v.count = s.count;
  v.l0 = s.nonzero_count;
  v.mean = v.var = v.std = v.min = v.max = v.linf = nan;
  if (s.overflow != 0) {
    v.sum = v.l1 = v.l2 = nan;
    return v;
  }
  v.sum = v.l1 = static_cast<double>(static_cast<std::uint64_t>(s.sum));
  v.l2 = dd_sqrt(dd_from_u64(static_cast<std::uint64_t>(s.sum_squares)));
  if (s.count == 0) return v;
  const std::uint64_t n = static_cast<std::uint64_t>(s.count);
  const ExactMoments m = exact_moments(n, static_cast<std::uint64_t>(s.sum), static_cast<std::uint64_t>(s.sum_squares));
  v.mean = m.mean;
  if (s.count - ddof > 0) {
    const DoubleDouble var = dd_div(m.m2, static_cast<double>(s.count - ddof));
    v.var = var.hi + var.lo;
    v.std = dd_sqrt(var);
  }
  v.min = static_cast<double>(s.min);
  v.max = v.linf = static_cast<double>(s.max);
  return v;
}

// numerator / denominator of exact integers (each below 2^53) as float. Operands below 2^24 are exact in
// float, and one float division of exact operands is correctly rounded (half an ulp, where the double
// division rounded again is within one): rows of 16 uint8 values take it, and skip two float64 divisions.
template <typename U>
NORMKIT_HD float exact_fraction_float(U numerator, U denominator) {
  constexpr U kFloatExact = U{1} << 24;
  if (numerator < kFloatExact && denominator < kFloatExact) return static_cast<float>(numerator) / static_cast<float>(denominator);
  return static_cast<float>(static_cast<double>(numerator) / static_cast<double>(denominator));
}

// The exact summary of a short row (at most kIntegerFloat32Count values, no overflow) in 32-bit fields:
// what finalize_integer_float_in<std::uint32_t> reads, without the 64-bit IntegerMoments and IntegerSummary
// (the kernels' uint8 short rows with float32 outputs).
struct ShortIntegerSummary {
  std::uint32_t count, sum, sum_squares, nonzero_count, min, max;
};

// finalize_integer_float's arithmetic in unsigned U, wide enough for n Σx² and (Σx)². Summary: an
// IntegerSummary, or a ShortIntegerSummary with U = std::uint32_t.
template <typename U, typename Summary>
NORMKIT_HD StatValuesIn<float> finalize_integer_float_in(const Summary& s, std::int64_t ddof, bool roots = true) {
  const float nan = quiet_nan<float>();
  StatValuesIn<float> v;
  v.count = s.count;
  v.l0 = s.nonzero_count;
  v.mean = v.var = v.std = v.min = v.max = v.linf = nan;
  const U n = static_cast<U>(s.count);
  const U sum = static_cast<U>(s.sum), sum_sq = static_cast<U>(s.sum_squares);
  v.sum = v.l1 = static_cast<float>(sum);
  v.l2 = roots ? sqrtf(static_cast<float>(sum_sq)) : nan;
  if (n == 0) return v;
  v.mean = exact_fraction_float(sum, n);
  const std::int64_t dof = static_cast<std::int64_t>(s.count) - ddof;
  if (dof > 0) {
    const U n_m2 = n * sum_sq - sum * sum;
    v.var = exact_fraction_float(n_m2, n * static_cast<U>(dof));  // (the product < 2^48)
    v.std = roots ? sqrtf(v.var) : nan;
  }
  v.min = static_cast<float>(s.min);
  v.max = v.linf = static_cast<float>(s.max);
  return v;
}

// Summaries of at most this many values take 32-bit arithmetic: n Σx² <= n² 255² < 2^32.
constexpr std::int64_t kIntegerFloat32Count = 256;

// The same statistics as float32, for summaries of at most kLocalMomentsMaxValues values (a kernel's
// slice that one work item finished): then n Σx² - (Σx)² = n M2 < 2^62 is exact in 64-bit integers, so
// each fraction is one division of exact operands (exact_fraction_float: within 1 ulp of float32), a
// quarter of the double-double path's cost or less. Up to kIntegerFloat32Count values the same exact
// operands in 32 bits (rows of 16 uint8: 64-bit multiplies and conversions were ~1/4 of a row's issue
// cycles, modelled). roots = false leaves std and l2 unset (finalize_moments).
NORMKIT_HD StatValuesIn<float> finalize_integer_float(const IntegerSummary& s, std::int64_t ddof, bool roots = true) {
  return s.count <= kIntegerFloat32Count ? finalize_integer_float_in<std::uint32_t>(s, ddof, roots)
                                         : finalize_integer_float_in<std::uint64_t>(s, ddof, roots);
}

// The float summary of the same values (accumulate_stats on uint8 input): mean and M2 rounded once.
NORMKIT_HD StatsSummary to_stats_summary(const IntegerSummary& s) {
  StatsSummary r;
  r.count = s.count;
  r.nan_count = r.posinf_count = r.neginf_count = 0;
  r.nonzero_count = s.nonzero_count;
  r.mean = r.m2 = 0.0;
  r.min = pos_inf<double>();
  r.max = -pos_inf<double>();
  r.abs_sum = static_cast<double>(static_cast<std::uint64_t>(s.sum));
  if (s.count > 0) {
    const ExactMoments m = exact_moments(static_cast<std::uint64_t>(s.count), static_cast<std::uint64_t>(s.sum),
                                         static_cast<std::uint64_t>(s.sum_squares));
    r.mean = m.mean;
    r.m2 = m.m2.hi + m.m2.lo;
    r.min = static_cast<double>(s.min);
    r.max = static_cast<double>(s.max);
  }
  return r;
}

}  // namespace normkit::math
