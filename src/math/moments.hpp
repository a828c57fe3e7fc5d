// Welford accumulation and Chan merging: the one definition of the statistics math, shared by the CUDA
// kernels and the host engine.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "math/element_types.hpp"
#include "math/host_device.hpp"
#include "normkit/stats_types.hpp"

namespace normkit::math {

NORMKIT_HD bool is_nan(float x) { return x != x; }
NORMKIT_HD bool is_nan(double x) { return x != x; }
template <typename Acc> NORMKIT_HD Acc pos_inf() { return static_cast<Acc>(HUGE_VAL); }
template <typename Acc> NORMKIT_HD Acc quiet_nan() { return static_cast<Acc>(NAN); }

// num / den for Welford and Chan weights (den a count): on the device in float one MUFU reciprocal
// instead of an IEEE division (its 1-ulp error moves the mean by a fraction of an ulp of each increment);
// on the host and in double an exact division.
template <typename Acc> NORMKIT_HD Acc weight_ratio(Acc num, Acc den) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(Acc) == 4) {
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(den));
    return num * r;
  }
#endif
  return num / den;
}

// Welford's running moments of a set of values: their count, mean and M2 = Σ (x - mean)². The one
// definition of the update and of Chan's merge, for every kernel, the host engine and every later family
// (layers, images). Values are given relative to an origin the caller keeps (MomentState's shift).
template <typename Acc>
struct Welford {
  std::int64_t count;  // an integer: a float count is exact only up to 2^24
  Acc mean;
  Acc m2;

  // Welford's update with one value.
  NORMKIT_HD void push(Acc x) {
    ++count;
    const Acc delta = x - mean;
    mean += delta / static_cast<Acc>(count);
    m2 += delta * (x - mean);
  }

  // Chan's merge of (count_b, mean_b, m2_b), relative to the same origin. Merging an empty side leaves
  // this one unchanged.
  NORMKIT_HD void merge(std::int64_t count_b, Acc mean_b, Acc m2_b) {
    if (count_b == 0) return;
    const std::int64_t total = count + count_b;
    const Acc delta = mean_b - mean;
    const Acc weight_b = weight_ratio(static_cast<Acc>(count_b), static_cast<Acc>(total));
    mean += delta * weight_b;
    m2 += m2_b + delta * delta * static_cast<Acc>(count) * weight_b;
    count = total;
  }
  NORMKIT_HD void merge(const Welford& b) { merge(b.count, b.mean, b.m2); }

  // Folds N finite values v[i] - origin at once: the pack's own mean and M2 (two passes over registers)
  // merged with one division instead of N.
  template <int N>
  NORMKIT_HD void push_pack(const Acc (&v)[N], Acc origin) {
    Acc sum = Acc(0);
NORMKIT_UNROLL
    for (int i = 0; i < N; ++i) sum += v[i] - origin;
    const Acc pack_mean = sum * (Acc(1) / Acc(N));
    Acc pack_m2 = Acc(0);
NORMKIT_UNROLL
    for (int i = 0; i < N; ++i) {
      const Acc d = (v[i] - origin) - pack_mean;
      pack_m2 += d * d;
    }
    merge(static_cast<std::int64_t>(N), pack_mean, pack_m2);
  }
};

template <typename Acc>
NORMKIT_HD Welford<Acc> empty_welford() {
  Welford<Acc> w;
  w.count = 0;
  w.mean = w.m2 = Acc(0);
  return w;
}

// One thread's (or one partition's) running summary of its values: Welford's moments of the finite
// values plus what numpy's rules need besides (NaN and ±Inf counts, extremes, Σ|x|, non-zeros).
//
// Mean and M2 are kept for the finite values only, relative to `shift`, the partition's first finite
// value: accumulating x - shift instead of x keeps float32 accurate when |mean| >> std (Chan, Golub and
// LeVeque's shifted algorithm). NaN and ±Inf are counted apart so that one of them does not poison the
// moments of the others; finalize_summary() applies numpy's rules. (A MomentState is a Welford, so
// s.count, s.mean and s.m2 are its moments.)
template <typename Acc>
struct MomentState : Welford<Acc> {
  std::int64_t nan_count;
  std::int64_t posinf_count;
  std::int64_t neginf_count;
  std::int64_t nonzero_count;  // non-NaN values != 0
  Acc shift;
  Acc min;   // over non-NaN values
  Acc max;
  Acc abs_sum;  // Σ |x| over non-NaN values
};

template <typename Acc>
NORMKIT_HD MomentState<Acc> empty_state() {
  MomentState<Acc> s;
  s.count = s.nan_count = s.posinf_count = s.neginf_count = s.nonzero_count = 0;
  s.shift = s.mean = s.m2 = s.abs_sum = Acc(0);
  s.min = pos_inf<Acc>();
  s.max = -pos_inf<Acc>();
  return s;
}

// Bookkeeping every non-NaN value gets (extremes, |x|); returns 1 when it counts as non-zero (the
// caller adds it to nonzero_count: once per value, or once per pack from a 32-bit sum).
template <typename Acc>
NORMKIT_HD int push_extremes(MomentState<Acc>& s, Acc x) {
  s.min = x < s.min ? x : s.min;
  s.max = x > s.max ? x : s.max;
  s.abs_sum += x < Acc(0) ? -x : x;
  return x != Acc(0);
}

// Welford's update with one value.
template <typename Acc>
NORMKIT_HD void push(MomentState<Acc>& s, Acc x) {
  if (is_nan(x)) {
    ++s.nan_count;
    return;
  }
  s.nonzero_count += push_extremes(s, x);
  if (x - x != Acc(0)) {  // ±Inf (x - x is NaN only for infinities here)
    if (x > Acc(0)) ++s.posinf_count; else ++s.neginf_count;
    return;
  }
  if (s.count == 0) s.shift = x;
  s.Welford<Acc>::push(x - s.shift);
}

// Folds N values at once (Welford::push_pack). Packs holding NaN or Inf take the per-value path.
template <typename Acc, int N>
NORMKIT_HD void push_pack(MomentState<Acc>& s, const Acc (&v)[N]) {
  static_assert(N <= 16, "the pack's non-zero count is kept in Acc");
  Acc probe = Acc(0);
NORMKIT_UNROLL
  for (int i = 0; i < N; ++i) probe += v[i] - v[i];  // NaN iff some value is NaN or ±Inf
  if (probe != Acc(0)) {
NORMKIT_UNROLL
    for (int i = 0; i < N; ++i) push(s, v[i]);
    return;
  }
  if (s.count == 0) s.shift = v[0];
  // Non-zeros counted in Acc per pack (exact: N <= 16) and added to the 64-bit counter once: counted in an
  // int, nvcc widened every addition to 64 bits (8 issue cycles per value instead of 3).
  Acc nonzero = Acc(0);
NORMKIT_UNROLL
  for (int i = 0; i < N; ++i) nonzero += push_extremes(s, v[i]) ? Acc(1) : Acc(0);
  s.nonzero_count += static_cast<std::int64_t>(nonzero);
  s.push_pack(v, s.shift);
}

// a = merge(a, b). States may have different shifts: b's mean is re-expressed relative to a's shift
// (shift_b - shift_a is exact when the shifts are close, which is when it matters).
template <typename Acc>
NORMKIT_HD void merge(MomentState<Acc>& a, const MomentState<Acc>& b) {
  a.nan_count += b.nan_count;
  a.posinf_count += b.posinf_count;
  a.neginf_count += b.neginf_count;
  a.nonzero_count += b.nonzero_count;
  a.min = b.min < a.min ? b.min : a.min;
  a.max = b.max > a.max ? b.max : a.max;
  a.abs_sum += b.abs_sum;
  if (b.count == 0) return;
  if (a.count == 0) {
    a.count = b.count;
    a.shift = b.shift;
    a.mean = b.mean;
    a.m2 = b.m2;
    return;
  }
  a.merge(b.count, b.mean + (b.shift - a.shift), b.m2);
}

// ---- A thread's running summary in the hot loops of the kernels ---------------------------------------
//
// LocalMoments is MomentState with every counter held in 32 bits or in Acc, for at most
// kLocalMomentsMaxValues values (the plans split work so that no partial state - a thread's, a block's -
// summarises more): a float count is exact up to 2^24, so Welford and Chan updates need no
// integer-to-float conversion or 64-bit arithmetic, and the state takes 11 registers instead of 16. The
// main kernels accumulate, merge across threads and store partials in this form; widen() turns it into a
// MomentState where slices are finished.
// Packs of finite values take the fast path (min/max/|x| without branches, one reciprocal per pack);
// a pack holding NaN or ±Inf (or whose sum overflows) takes the per-value path.
constexpr std::int64_t kLocalMomentsMaxValues = std::int64_t{1} << 24;

// counter += (x != 0): a compare and a predicated add (a select and an add cost one more instruction).
template <typename Acc> NORMKIT_HD void count_nonzero(Acc& counter, Acc x) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(Acc) == 4) {
    asm("{\n .reg .pred p;\n setp.ne.f32 p, %1, 0f00000000;\n @p add.f32 %0, %0, 0f3F800000;\n}" : "+f"(counter) : "f"(x));
    return;
  }
#endif
  counter += x != Acc(0) ? Acc(1) : Acc(0);
}

template <typename Acc> NORMKIT_HD Acc min_of(Acc a, Acc b) { return fmin(a, b); }  // fast path: no NaN
template <typename Acc> NORMKIT_HD Acc max_of(Acc a, Acc b) { return fmax(a, b); }
template <typename Acc> NORMKIT_HD Acc abs_of(Acc a) { return fabs(a); }
template <typename Acc> NORMKIT_HD Acc fma_of(Acc a, Acc b, Acc c) { return fma(a, b, c); }

template <typename Acc>
struct LocalMoments {
  Acc count;    // finite values (exact: at most kLocalMomentsMaxValues)
  Acc mean;     // relative to shift
  Acc m2;
  Acc shift;    // the first finite value
  Acc min, max, abs_sum;  // over non-NaN values
  Acc nonzero;  // non-NaN values != 0
  std::int32_t nan_count, posinf_count, neginf_count;

  NORMKIT_HD static LocalMoments empty() {
    LocalMoments s;
    s.count = s.mean = s.m2 = s.shift = s.abs_sum = s.nonzero = Acc(0);
    s.min = pos_inf<Acc>();
    s.max = -pos_inf<Acc>();
    s.nan_count = s.posinf_count = s.neginf_count = 0;
    return s;
  }

  // One value of any kind (NaN, ±Inf or finite).
  NORMKIT_HD void push(Acc x) {
    if (is_nan(x)) {
      ++nan_count;
      return;
    }
    min = x < min ? x : min;
    max = x > max ? x : max;
    abs_sum += x < Acc(0) ? -x : x;
    nonzero += x != Acc(0) ? Acc(1) : Acc(0);
    if (x - x != Acc(0)) {  // ±Inf
      if (x > Acc(0)) ++posinf_count; else ++neginf_count;
      return;
    }
    if (count == Acc(0)) shift = x;
    const Acc d = x - shift;
    count += Acc(1);
    const Acc delta = d - mean;
    mean += delta / count;
    m2 += delta * (d - mean);
  }

  // N values at once: the pack's own mean and M2 merged with Chan's formula (one reciprocal). kExtremes
  // = false (requests of count, mean, var, std, sum and l2 only) leaves min, max, Σ|x| and the non-zero
  // count of finite packs out: 9 of the ~19 issue cycles per value. kMinMax = false leaves min and max of
  // finite packs to the caller (16-bit inputs keep them as packed pairs: kernels/common/packed_extremes).
  // kNonzero = false leaves the non-zero count of finite packs to the caller likewise (PairNonzeros).
  // Returns whether the pack took the fast path (all values finite).
  //
  // The pack's moments are taken relative to its own first value b = v[0]: with d = v - b, S = Σd and
  // Q = Σd² (one subtraction, one addition and one fma per value, no second pass), M2 = Q - S²/N. Because
  // b is one of the pack's values, Q = M2 + N (mean - b)² <= (N + 1) M2: the subtraction loses at most a
  // factor N + 1 of relative precision (a two-pass pack cost a second subtraction per value).
  //
  // In three steps that kernels may also call apart (pack_sums, then fold_pack or the per-value path):
  // states with equal counts (a thread's columns) share one ChanWeights per pack.
  template <bool kExtremes = true, bool kMinMax = kExtremes, bool kNonzero = kExtremes, int N>
  NORMKIT_HD bool push_pack(const Acc (&v)[N]) {
    return push_pack_sums<kExtremes, kMinMax, kNonzero>(pack_sums<kExtremes, kMinMax, kNonzero>(v), v);
  }

  // A pack's one-pass sums relative to its first value.
  struct PackSums {
    Acc base, sum, squares, min, max, abs, nonzero;
  };
  template <bool kExtremes = true, bool kMinMax = kExtremes, bool kNonzero = kExtremes, int N>
  NORMKIT_HD static PackSums pack_sums(const Acc (&v)[N]) {
    static_assert(N <= 64, "a pack's non-zero count is kept exactly");
    // One pass over the values, the pack's own extremes, |x| sum and non-zeros included, all before the
    // finite check: a second read of v after it made nvcc recompute each value's conversion (bfloat16: a
    // shift and a move per value) rather than keep it live.
    PackSums p;
    p.base = v[0];
    p.sum = p.squares = p.nonzero = Acc(0);
    p.min = p.max = p.base;
    p.abs = abs_of(p.base);
    if constexpr (kExtremes && kNonzero) count_nonzero(p.nonzero, p.base);
NORMKIT_UNROLL
    for (int i = 1; i < N; ++i) {
      const Acc d = v[i] - p.base;
      p.sum = i == 1 ? d : p.sum + d;  // (0 + d is an instruction: nvcc keeps it for the sign of zero)
      p.squares = i == 1 ? d * d : fma_of(d, d, p.squares);
      if constexpr (kExtremes) {
        if constexpr (kMinMax) {
          p.min = min_of(p.min, v[i]);
          p.max = max_of(p.max, v[i]);
        }
        p.abs += abs_of(v[i]);
        if constexpr (kNonzero) count_nonzero(p.nonzero, v[i]);
      }
    }
    return p;
  }

  // No NaN or ±Inf in the pack (v[i] - b is NaN or infinite, and so is the sum), and no sum past the range.
  template <int N>
  NORMKIT_HD static bool pack_finite(const PackSums& p) {
    return p.sum - p.sum == Acc(0) && (N != 1 || p.base - p.base == Acc(0));
  }

  // The pack (its sums p) folded: the fast path when finite, else value by value. Returns whether finite.
  template <bool kExtremes = true, bool kMinMax = kExtremes, bool kNonzero = kExtremes, int N>
  NORMKIT_HD bool push_pack_sums(const PackSums& p, const Acc (&v)[N]) {
    shift = count == Acc(0) ? p.base : shift;
    if (!pack_finite<N>(p)) {
NORMKIT_UNROLL
      for (int i = 0; i < N; ++i) push(v[i]);
      return false;
    }
    fold_pack<kExtremes, kMinMax, kNonzero, N>(p, chan_weights(count, Acc(N)));
    return true;
  }

  // Chan's weights for adding n values to `count` values: one reciprocal, shared by every state holding
  // `count` values.
  struct ChanWeights {
    Acc total, weight, count_weight;
  };
  NORMKIT_HD static ChanWeights chan_weights(Acc count, Acc n) {
    ChanWeights w;
    w.total = count + n;
    w.weight = weight_ratio(n, w.total);
    w.count_weight = count * w.weight;
    return w;
  }

  // A finite pack's sums folded with w = chan_weights(count, N); the shift already set (push_pack_sums sets
  // an empty state's to p.base).
  template <bool kExtremes = true, bool kMinMax = kExtremes, bool kNonzero = kExtremes, int N>
  NORMKIT_HD void fold_pack(const PackSums& p, const ChanWeights& w) {
    if constexpr (kExtremes) {
      if constexpr (kMinMax) {
        min = min_of(min, p.min);
        max = max_of(max, p.max);
      }
      abs_sum += p.abs;
      if constexpr (kNonzero) nonzero += p.nonzero;
    }
    // The pack's mean relative to its base, negated (a negation is an instruction of its own). Its M2 may
    // round to an ulp or so below 0: finalize_moments and to_summary clamp M2 (a clamp here cost 2 issue
    // cycles per pack).
    const Acc minus_mean = p.sum * (Acc(-1) / Acc(N));
    const Acc pack_m2 = fma_of(p.sum, minus_mean, p.squares);
    chan_step(w, (p.base - shift) - minus_mean, pack_m2);
  }

  // Chan's merge of another local state (any shifts); empty sides leave the other unchanged.
  NORMKIT_HD void merge(const LocalMoments& b) {
    nan_count += b.nan_count;
    posinf_count += b.posinf_count;
    neginf_count += b.neginf_count;
    nonzero += b.nonzero;
    abs_sum += b.abs_sum;
    min = b.min < min ? b.min : min;
    max = b.max > max ? b.max : max;
    if (b.count == Acc(0)) return;
    if (count == Acc(0)) {
      count = b.count;
      shift = b.shift;
      mean = b.mean;
      m2 = b.m2;
      return;
    }
    chan_step(chan_weights(count, b.count), b.mean + (b.shift - shift), b.m2);
  }

  // Chan's step with n > 0 other values of mean other_mean (relative to this shift) and M2 other_m2, with
  // w = chan_weights(count, n).
  NORMKIT_HD void chan_step(const ChanWeights& w, Acc other_mean, Acc other_m2) {
    const Acc delta = other_mean - mean;
    mean += delta * w.weight;
    m2 += fma_of(delta * delta, w.count_weight, other_m2);
    count = w.total;
  }

  // The MomentState of the same values (64-bit counters).
  NORMKIT_HD MomentState<Acc> widen() const {
    MomentState<Acc> s;
    s.count = static_cast<std::int64_t>(count);
    s.mean = mean;
    s.m2 = m2;
    s.shift = shift;
    s.nan_count = nan_count;
    s.posinf_count = posinf_count;
    s.neginf_count = neginf_count;
    s.nonzero_count = static_cast<std::int64_t>(nonzero);
    s.min = min;
    s.max = max;
    s.abs_sum = abs_sum;
    return s;
  }
};

template <typename Acc>
NORMKIT_HD void merge(LocalMoments<Acc>& a, const LocalMoments<Acc>& b) { a.merge(b); }

// Bytes of one stored LocalMoments (partial states, kernels/common/partial_states.cuh): 16-byte records.
template <typename Acc>
constexpr std::size_t kStoredMomentsBytes = (sizeof(LocalMoments<Acc>) + 15) / 16 * 16;
static_assert(kStoredMomentsBytes<float> == 48 && kStoredMomentsBytes<double> == 80, "odd 16-byte words per record");

// The public, shift-free float64 form of a state.
template <typename Acc>
NORMKIT_HD StatsSummary to_summary(const MomentState<Acc>& s) {
  StatsSummary r;
  r.count = s.count;
  r.nan_count = s.nan_count;
  r.posinf_count = s.posinf_count;
  r.neginf_count = s.neginf_count;
  r.nonzero_count = s.nonzero_count;
  r.mean = s.count ? static_cast<double>(s.shift) + static_cast<double>(s.mean) : 0.0;
  r.m2 = s.m2 < Acc(0) ? 0.0 : static_cast<double>(s.m2);  // (LocalMoments::fold_pack)
  r.min = static_cast<double>(s.min);
  r.max = static_cast<double>(s.max);
  r.abs_sum = static_cast<double>(s.abs_sum);
  return r;
}

NORMKIT_HD MomentState<double> from_summary(const StatsSummary& r) {
  MomentState<double> s;
  s.count = r.count;
  s.nan_count = r.nan_count;
  s.posinf_count = r.posinf_count;
  s.neginf_count = r.neginf_count;
  s.nonzero_count = r.nonzero_count;
  s.shift = 0.0;
  s.mean = r.mean;
  s.m2 = r.m2;
  s.min = r.min;
  s.max = r.max;
  s.abs_sum = r.abs_sum;
  return s;
}

NORMKIT_HD void merge_summary(StatsSummary& into, const StatsSummary& from) {
  MomentState<double> a = from_summary(into);
  merge(a, from_summary(from));
  into = to_summary(a);
}

// The statistics of one slice, with numpy's rules for NaN, ±Inf, empty slices and ddof, in Real: double
// for summaries; float where a kernel writes float32 outputs from its float state (write_local_slice:
// the same formulas, within an ulp or two of float32 of the double path, at a fraction of its cost:
// no float64 division or square root, no conversions).
template <typename Real> NORMKIT_HD Real sqrt_of(Real x) {
  if constexpr (sizeof(Real) == 4) return sqrtf(x);
  else return sqrt(x);
}

template <typename Real>
struct StatValuesIn {
  std::int64_t count;
  std::int64_t l0;
  Real mean, var, std, min, max, sum, l1, l2, linf;
};
using StatValues = StatValuesIn<double>;

// finite: the values in mean and m2 (relative to no shift); min/max/abs_sum over every non-NaN value.
// Count: the counters' type (int where a kernel's state holds at most kLocalMomentsMaxValues values: the
// 64-bit arithmetic was a fifth of a short row's issue cycles). roots = false leaves std and l2 unset (their
// square roots cost 19 issue cycles each per slice; the caller does not store them).
template <typename Real, typename Count = std::int64_t>
NORMKIT_HD StatValuesIn<Real> finalize_moments(Count finite, Count nan_count, Count posinf_count, Count neginf_count,
                                               Count nonzero_count, Real mean, Real m2, Real min, Real max,
                                               Real abs_sum, std::int64_t ddof, bool ignore_nan, bool roots = true) {
  m2 = m2 < Real(0) ? Real(0) : m2;  // rounding of packs' M2 (LocalMoments::fold_pack)
  const Real nan = quiet_nan<Real>();
  const Real inf = pos_inf<Real>();
  const Count non_nan = finite + posinf_count + neginf_count;
  const bool nan_poisons = !ignore_nan && nan_count > 0;
  const bool has_inf = posinf_count > 0 || neginf_count > 0;
  const bool both_inf = posinf_count > 0 && neginf_count > 0;
  StatValuesIn<Real> v;
  v.count = ignore_nan ? non_nan : non_nan + nan_count;
  v.l0 = nonzero_count + (ignore_nan ? 0 : nan_count);
  if (nan_poisons) {
    v.mean = v.var = v.std = v.min = v.max = v.sum = v.l1 = v.l2 = v.linf = nan;
    return v;
  }
  const Real inf_sum = both_inf ? nan : (posinf_count > 0 ? inf : -inf);
  const Real n = static_cast<Real>(finite);
  v.sum = has_inf ? inf_sum : mean * n;
  v.mean = non_nan == 0 ? nan : (has_inf ? inf_sum : mean);
  v.var = (non_nan == 0 || has_inf || non_nan - ddof <= 0) ? nan : m2 / static_cast<Real>(non_nan - ddof);
  v.std = roots ? sqrt_of(v.var) : nan;
  v.min = non_nan == 0 ? nan : min;
  v.max = non_nan == 0 ? nan : max;
  v.l1 = abs_sum;
  v.l2 = has_inf ? inf : (roots ? sqrt_of(m2 + n * mean * mean) : nan);
#if !defined(__CUDA_ARCH__)
  if constexpr (sizeof(Real) == 4) {
    // Σx² = m2 + n mean² overflows float from |mean| ~ 1.8e19 / sqrt(n) while its root still fits: then in
    // double (a branch only float finalizes with such rows take). Host only for now: in the kernels' float
    // finalize the branch cost 16-bit rows of 16 two points (modelled), so there l2 is Inf for such rows.
    if (roots && !has_inf && !(v.l2 <= Real(3.40282347e38f))) {
      const double mean_d = static_cast<double>(mean);
      v.l2 = static_cast<Real>(sqrt_of(static_cast<double>(m2) + static_cast<double>(finite) * mean_d * mean_d));
    }
  }
#endif
  const Real abs_min = min < Real(0) ? -min : min;
  const Real abs_max = max < Real(0) ? -max : max;
  v.linf = non_nan == 0 ? nan : (abs_min > abs_max ? abs_min : abs_max);
  return v;
}

NORMKIT_HD StatValues finalize_summary(const StatsSummary& s, std::int64_t ddof, bool ignore_nan, bool roots = true) {
  return finalize_moments<double>(s.count, s.nan_count, s.posinf_count, s.neginf_count, s.nonzero_count, s.mean, s.m2,
                                  s.min, s.max, s.abs_sum, ddof, ignore_nan, roots);
}

}  // namespace normkit::math
