// Where a finished slice summary goes: the requested statistics outputs, or the caller's summaries
// (streaming). Shared by every kernel's epilogue and by the host engine.
#pragma once

#include <cmath>
#include <cstdint>

#include "math/integer_moments.hpp"
#include "math/moments.hpp"
#include "normkit/dtype.hpp"
#include "normkit/stats_types.hpp"

namespace normkit::math {

struct StatsSink {
  void* outputs[kNumStats];     // null for statistics not requested
  DType output_dtype[kNumStats];  // float32 / float64, int64 for count and l0
  StatsSummary* summaries;      // non-null: write (or merge into) summaries instead of outputs
  bool merge_into_summaries;    // (also for integer_summaries)
  std::int64_t ddof;
  bool ignore_nan;
  bool float32_outputs = false;  // all_outputs_float32(*this), set where the sink is made
  IntegerSummary* integer_summaries = nullptr;  // uint8 input only: write (or merge into) these instead
  // Summaries: whether they carry min, max, Σ|x| and the non-zero count. false (callers that need moments
  // only: BatchNorm, GroupNorm): the moments-only kernels run and those fields are written neutral.
  bool summary_extremes = true;
};

// Index: std::int64_t, or int where the caller bounds k below 2^31 (a 64-bit index costs each store a
// 64-bit shift and add: ~6 issue cycles, ~10% of a row of 16 with every statistic).
template <typename Index>
NORMKIT_HD void store_value(void* base, DType dtype, Index k, double value) {
  switch (dtype) {
    case DType::float32: static_cast<float*>(base)[k] = static_cast<float>(value); break;
    case DType::float64: static_cast<double*>(base)[k] = value; break;
    case DType::int64: static_cast<std::int64_t*>(base)[k] = static_cast<std::int64_t>(value); break;
    default: break;  // rejected by validation
  }
}

template <typename Index>
NORMKIT_HD void store_count(void* base, DType dtype, Index k, std::int64_t value) {
  if (dtype == DType::int64) static_cast<std::int64_t*>(base)[k] = value;
  else store_value(base, dtype, k, static_cast<double>(value));
}

// Statistics that need the extremes a moments-only kernel does not keep (min, max, Σ|x|, non-zeros).
NORMKIT_HD constexpr bool needs_extremes(int stat) {
  return stat == static_cast<int>(Stat::min) || stat == static_cast<int>(Stat::max) || stat == static_cast<int>(Stat::l0) ||
         stat == static_cast<int>(Stat::l1) || stat == static_cast<int>(Stat::linf);
}

// Writes the requested statistics of kept index k. Real = float only when every output is float32 or a
// count (sink.float32_outputs). kExtremes = false (a moments-only kernel, whose sink requests none of
// needs_extremes): those outputs are not even tested (rows of 16: ~15 instructions a row).
template <bool kExtremes = true, typename Real, typename Index>
NORMKIT_HD void store_stat_values(const StatsSink& sink, Index k, const StatValuesIn<Real>& v) {
  const Real values[kNumStats] = {Real(0), v.mean, v.var, v.std, v.min, v.max, v.sum, Real(0), v.l1, v.l2, v.linf};
  NORMKIT_UNROLL
  for (int i = 0; i < kNumStats; ++i) {
    if (!kExtremes && needs_extremes(i)) continue;  // (i is a constant once unrolled)
    if (sink.outputs[i] == nullptr) continue;
    if (i == static_cast<int>(Stat::count)) store_count(sink.outputs[i], sink.output_dtype[i], k, v.count);
    else if (i == static_cast<int>(Stat::l0)) store_count(sink.outputs[i], sink.output_dtype[i], k, v.l0);
    else if constexpr (sizeof(Real) == 4) static_cast<float*>(sink.outputs[i])[k] = values[i];
    else store_value(sink.outputs[i], sink.output_dtype[i], k, values[i]);
  }
}

// Whether the sink stores std or l2 (the finalizes skip their square roots otherwise).
NORMKIT_HD bool wants_roots(const StatsSink& sink) {
  return sink.outputs[static_cast<int>(Stat::std)] != nullptr || sink.outputs[static_cast<int>(Stat::l2)] != nullptr;
}

// Writes everything the sink asks for about kept index k.
template <typename Index>
NORMKIT_HD void write_slice(const StatsSink& sink, Index k, const StatsSummary& summary) {
  if (sink.summaries != nullptr) {
    StatsSummary written = summary;
    if (!sink.summary_extremes) {
      // (the moments-only kernels keep no extremes: neutral fields, whatever a per-value path gathered)
      written.min = HUGE_VAL, written.max = -HUGE_VAL, written.abs_sum = 0.0, written.nonzero_count = 0;
    }
    if (sink.merge_into_summaries) merge_summary(sink.summaries[k], written);
    else sink.summaries[k] = written;
    return;
  }
  store_stat_values(sink, k, finalize_summary(summary, sink.ddof, sink.ignore_nan, wants_roots(sink)));
}

// The same for the exact summary of uint8 input: into integer summaries, float summaries (converted,
// then merged with Chan's formula) or the outputs. `small`: the summary holds at most
// kLocalMomentsMaxValues values (float32 outputs may take finalize_integer_float).
template <bool kExtremes = true, typename Index>
NORMKIT_HD void write_integer_slice(const StatsSink& sink, Index k, const IntegerSummary& summary,
                                    bool small = false) {
  if (sink.integer_summaries != nullptr) {
    if (sink.merge_into_summaries) merge_integer_summary(sink.integer_summaries[k], summary);
    else sink.integer_summaries[k] = summary;
    return;
  }
  if (sink.summaries != nullptr) {
    write_slice(sink, k, to_stats_summary(summary));
    return;
  }
  if (small && sink.float32_outputs) store_stat_values<kExtremes>(sink, k, finalize_integer_float(summary, sink.ddof, wants_roots(sink)));
  else store_stat_values<kExtremes>(sink, k, finalize_integer(summary, sink.ddof));
}

// Whether every requested statistic is float32 or an integer count (no summaries): then the kernels
// finalize their float states in float (write_local_slice).
NORMKIT_HD bool all_outputs_float32(const StatsSink& sink) {
  if (sink.summaries != nullptr || sink.integer_summaries != nullptr) return false;
  bool narrow = true;
  for (int i = 0; i < kNumStats; ++i) {
    const bool counted = i == static_cast<int>(Stat::count) || i == static_cast<int>(Stat::l0);
    narrow = narrow && (sink.outputs[i] == nullptr || counted || sink.output_dtype[i] == DType::float32);
  }
  return narrow;
}

// (the float finalize of a state of at most kLocalMomentsMaxValues values: counts in int)
template <bool kExtremes, typename State, typename Index>
NORMKIT_HD void store_float_moments(const StatsSink& sink, Index k, const State& s, int finite, int nonzero) {
  const auto v = finalize_moments<float, int>(finite, static_cast<int>(s.nan_count), static_cast<int>(s.posinf_count),
                                              static_cast<int>(s.neginf_count), nonzero, finite > 0 ? s.shift + s.mean : 0.0f, s.m2,
                                              s.min, s.max, s.abs_sum, sink.ddof, sink.ignore_nan, wants_roots(sink));
  store_stat_values<kExtremes>(sink, k, v);
}

// Writes kept index k from a kernel's LocalMoments. With float accumulation and float32 outputs the
// statistics are finalized in float (finalize_moments<float>): the double path costs ~1000 issue cycles
// per slice (float64 division and square roots, conversions), which dominated short rows (rows of 16
// float32: 1400 cycles per row, of which the row's own values ~160).
// kExtremes = false: the caller kept no extremes, and the sink requests none (store_stat_values).
template <bool kExtremes = true, typename Acc, typename Index>
NORMKIT_HD void write_local_slice(const StatsSink& sink, Index k, const LocalMoments<Acc>& s) {
  if constexpr (sizeof(Acc) == 4) {
    if (sink.float32_outputs) {
      store_float_moments<kExtremes>(sink, k, s, static_cast<int>(s.count), static_cast<int>(s.nonzero));
      return;
    }
  }
  write_slice(sink, k, to_summary(s.widen()));
}

// A host short row's state (at most kLocalMomentsMaxValues values), as write_local_slice: in float where
// every output is float32 (rows of 16 float32: the double finalize was as costly as the fold).
template <typename Acc, typename Index>
NORMKIT_HD void write_short_row(const StatsSink& sink, Index k, const MomentState<Acc>& s) {
  if constexpr (sizeof(Acc) == 4) {
    if (sink.float32_outputs) {
      store_float_moments<true>(sink, k, s, static_cast<int>(s.count), static_cast<int>(s.nonzero_count));
      return;
    }
  }
  write_slice(sink, k, to_summary(s));
}

// A kernel's exact uint8 state (a work item's values: at most kLocalMomentsMaxValues when it finishes a
// slice alone; merged slices of any size come through here too, `small` says which).
template <bool kExtremes = true, typename Index>
NORMKIT_HD void write_local_slice(const StatsSink& sink, Index k, const IntegerMoments& s) {
  write_integer_slice<kExtremes>(sink, k, s.summary(), s.count <= static_cast<std::uint64_t>(kLocalMomentsMaxValues));
}

// A slice finished in a kernel's wide state (any number of values).
template <typename Acc>
NORMKIT_HD void write_wide_slice(const StatsSink& sink, std::int64_t k, const MomentState<Acc>& s) {
  write_slice(sink, k, to_summary(s));
}
NORMKIT_HD void write_wide_slice(const StatsSink& sink, std::int64_t k, const IntegerMoments& s) { write_local_slice(sink, k, s); }

}  // namespace normkit::math
