// Statistics over any set of axes, in one read of the input, on device or host memory.
//
// For an input x and a set of reduced axes, each statistic is a tensor of the *kept shape* (the input
// shape with the reduced axes removed) whose element k summarises the values x_1..x_n sharing kept index k:
//
//   count  n                        (int64; with ignore_nan, the number of non-NaN values)
//   mean   (1/n) Σ x_i
//   var    Σ (x_i - mean)² / (n - ddof)          population variance by default (ddof = 0, numpy's default)
//   std    sqrt(var)
//   min    min x_i           max   max x_i
//   sum    Σ x_i
//   l0     #{i : x_i != 0}   (int64; NaN counts as non-zero, as in numpy.count_nonzero)
//   l1     Σ |x_i|           l2    sqrt(Σ x_i²)      linf  max |x_i|
//
// Conventions (numpy's):
//  * `axes` lists the axes REDUCED over (numpy's `axis`); negative axes count from the end. Keras users who
//    think in kept axes build the set with ReduceAxes::keeping().
//  * NaN propagates: a slice with a NaN has NaN mean/var/std/min/max/sum/l1/l2/linf (numpy.mean, numpy.min).
//    With ignore_nan, NaN values are skipped (numpy.nanmean, nanvar, nanmin, ...).
//  * ±Inf behave as in numpy: mean of [inf, 1] is inf, of [inf, -inf] NaN; var of a slice with an inf is NaN.
//  * An empty slice (n == 0): count 0, sum/l0/l1/l2 0, mean/var/std/min/max/linf NaN.
//  * n - ddof <= 0 gives NaN var and std.
//
// Accuracy: mean and variance come from Welford's update per thread and Chan's pairwise merge between
// threads, blocks and batches, never from Σx and Σx². Each thread's partition is shifted by its first value
// (the shifted-data algorithm), so float32 accumulation keeps the variance of 1e6 + N(0, 0.1²) to ~1e-5.
// Accumulation is float32 for 8/16/32-bit inputs (float64 on request) and float64 for float64 inputs.
// Counts are 64-bit integers.
//
// Determinism: no floating-point atomics. The merge order is fixed by the launch plan, so the same input
// on the same GPU model gives bitwise identical statistics on every run; the host engine gives bitwise
// identical results for the same thread count.
//
// Device calls: every call takes a stream, only enqueues work on it (no synchronization, no allocation:
// the caller provides a workspace of stats_workspace_size() bytes) and can be captured in a CUDA graph.
// Input, outputs and workspace must all live in device memory of the current device.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "normkit/status.hpp"
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

// The shape of the statistics: the input's shape with the reduced axes removed ([] when all are reduced).
// Fails for an axis out of range or repeated.
Status kept_shape(const TensorView& input, const ReduceAxes& axes, std::array<std::int64_t, kMaxDims>* shape,
                  int* ndim);

// Bytes of device scratch compute_stats / accumulate_stats need for this input and options (0 on the host).
Status stats_workspace_size(const TensorView& input, const StatsOptions& options, std::size_t* bytes);

// Computes the requested statistics of `input` over `options.axes` into `outputs`, in one read of the input.
// `workspace` may be null when stats_workspace_size() gave 0.
Status compute_stats(const TensorView& input, const StatsOptions& options, const StatsOutputs& outputs,
                     void* workspace, std::size_t workspace_bytes, Stream stream = nullptr);

// Streaming: summarises `input` into `summaries` (one per kept index, kept_numel entries, same memory space
// as the input). With merge == true the new batch is merged (Chan) into the summaries already there, so
// calling it batch after batch gives the statistics of the concatenation; with merge == false they are
// overwritten. options.stats, ddof and ignore_nan are not used here (they apply at finalize_stats).
Status accumulate_stats(const TensorView& input, const StatsOptions& options, StatsSummary* summaries,
                        std::int64_t num_summaries, bool merge, void* workspace, std::size_t workspace_bytes,
                        Stream stream = nullptr);

// into[k] = merge(into[k], from[k]) for k < n (Chan's formula, exact up to rounding; merging an empty
// summary leaves the other unchanged). Both arrays in `space`.
Status merge_summaries(StatsSummary* into, const StatsSummary* from, std::int64_t n, MemorySpace space,
                       Stream stream = nullptr);

// Writes the statistics of `n` summaries into `outputs` (each output must have n elements), applying
// options.stats, ddof and ignore_nan. Summaries and outputs in `space`.
Status finalize_stats(const StatsSummary* summaries, std::int64_t n, const StatsOptions& options,
                      const StatsOutputs& outputs, MemorySpace space, Stream stream = nullptr);

// Threads the host engine uses: NORMKIT_NUM_THREADS when set, else std::thread::hardware_concurrency().
// set_host_threads(0) restores that default.
int host_threads() noexcept;
void set_host_threads(int threads) noexcept;

// True when normkit was built with CUDA and a device is usable.
bool cuda_available() noexcept;

}  // namespace normkit
