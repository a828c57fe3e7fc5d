// Value types of the statistics API (stats.hpp documents their semantics): which statistics, which axes,
// the options, the outputs and the mergeable per-slice summary. Host-only C++, no CUDA headers; the math,
// plan and kernel layers include this header, not the API.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "normkit/tensor.hpp"

namespace normkit {

enum class Stat : std::uint8_t { count, mean, var, std, min, max, sum, l0, l1, l2, linf };
constexpr int kNumStats = 11;

// "count", "mean", "var", "std", "min", "max", "sum", "l0", "l1", "l2", "linf".
const char* stat_name(Stat stat) noexcept;
bool parse_stat(const char* name, Stat* stat) noexcept;

// A runtime set of statistics. All requested statistics come from the same single read of the input.
class StatSet {
 public:
  constexpr StatSet() = default;
  constexpr StatSet(std::initializer_list<Stat> stats) {
    for (Stat s : stats) bits_ |= bit(s);
  }
  static constexpr StatSet all() { return StatSet((1u << kNumStats) - 1u); }
  constexpr bool has(Stat s) const { return (bits_ & bit(s)) != 0; }
  constexpr StatSet& add(Stat s) { bits_ |= bit(s); return *this; }
  constexpr bool empty() const { return bits_ == 0; }
  constexpr std::uint32_t bits() const { return bits_; }

 private:
  constexpr explicit StatSet(std::uint32_t bits) : bits_(bits) {}
  static constexpr std::uint32_t bit(Stat s) { return 1u << static_cast<unsigned>(s); }
  std::uint32_t bits_ = 0;
};

// The axes reduced over. Default: all axes (numpy's axis=None).
struct ReduceAxes {
  bool all = true;
  int count = 0;
  std::array<int, kMaxDims> axes{};

  static ReduceAxes every() { return ReduceAxes{}; }
  // Reduce exactly these axes (negative values count from the end). An empty list reduces nothing.
  static ReduceAxes of(std::initializer_list<int> reduced);
  static ReduceAxes of(const int* reduced, int n);
  // Keras' convention: `kept` lists the axes that are KEPT; every other axis of an `ndim`-dimensional
  // input is reduced. keeping(4, {1}) on NCHW == of({0, 2, 3}).
  static ReduceAxes keeping(int ndim, std::initializer_list<int> kept);
};

enum class Accumulation : std::uint8_t {
  automatic,  // float32 for float32/float16/bfloat16/uint8 input, float64 for float64 input
  float64,    // float64 for every input
};

struct StatsOptions {
  ReduceAxes axes;                   // reduced axes; default all
  StatSet stats = StatSet::all();    // which outputs are written (all are computed in the same pass)
  std::int64_t ddof = 0;             // var = M2 / (n - ddof); must be >= 0
  bool ignore_nan = false;           // skip NaN like numpy's nan-functions
  Accumulation accumulation = Accumulation::automatic;
};

// One output tensor per requested statistic, each of the kept shape (or the input's shape with the
// reduced axes set to 1, numpy's keepdims). Float statistics may be float32 or float64; count and l0 are
// int64. Outputs live in the same memory space as the input. Unrequested entries are ignored.
struct StatsOutputs {
  std::array<TensorView, kNumStats> views{};
  TensorView& operator[](Stat s) { return views[static_cast<int>(s)]; }
  const TensorView& operator[](Stat s) const { return views[static_cast<int>(s)]; }
};

// Mergeable per-slice summary: the state streaming statistics carry between batches (and, later, between
// GPUs). 80 bytes, trivially copyable, identical layout on host and device.
//   count: finite values folded into mean/m2; mean and m2 (Σ (x - mean)²) are over those finite values.
//   min/max/abs_sum: over every non-NaN value (±Inf included); nonzero_count counts non-NaN non-zeros.
struct StatsSummary {
  std::int64_t count;
  std::int64_t nan_count;
  std::int64_t posinf_count;
  std::int64_t neginf_count;
  std::int64_t nonzero_count;
  double mean;
  double m2;
  double min;
  double max;
  double abs_sum;
};
static_assert(sizeof(StatsSummary) == 80, "StatsSummary layout is part of the API");

// Exact summary of integer input (uint8), merged by integer addition: the same bits whatever the order,
// chunking, thread, block or process count. 56 bytes, trivially copyable, identical on host and device.
//   count, sum (Σx), sum_squares (Σx²), nonzero_count: exact 64-bit integers;
//   min, max: the extremes (INT64_MAX and INT64_MIN when count == 0);
//   overflow: 1 once a merge passed kMaxIntegerSummaryCount values (Σx² of 255s past 2^63), then sticky;
//   the sums of an overflowed summary are meaningless and finalize refuses it.
struct IntegerSummary {
  std::int64_t count;
  std::int64_t sum;
  std::int64_t sum_squares;
  std::int64_t nonzero_count;
  std::int64_t min;
  std::int64_t max;
  std::int64_t overflow;
};
static_assert(sizeof(IntegerSummary) == 56, "IntegerSummary layout is part of the API");

// Values one IntegerSummary holds exactly: floor((2^63 - 1) / 255²), about 1.4e14 (140 TB of uint8).
constexpr std::int64_t kMaxIntegerSummaryCount = 0x7fffffffffffffffLL / (255 * 255);

}  // namespace normkit
