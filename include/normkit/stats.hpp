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
// Accumulation is float32 for 16/32-bit inputs (float64 on request) and float64 for float64 inputs.
// Counts are 64-bit integers.
//
// uint8 input is summed exactly in integers instead (IntegerSummary: count, Σx, Σx², non-zeros, min, max
// in 64 bits, for every call and engine; `accumulation` does not apply): count, sum (in the summary), min,
// max and l0 equal the exact integers, and mean, var and std are within 1 ulp of the exact fractions
// Σx / n and (n Σx² - (Σx)²) / (n (n - ddof)) (float64 outputs; float32 outputs within 1 ulp of float32).
// sum, l1 and l2 are the exact Σx and sqrt(Σx²) rounded once to the output type. uint8 results are the same
// bits on the host and on every GPU, whatever the plan.
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

#include "normkit/stats_types.hpp"
#include "normkit/status.hpp"
#include "normkit/tensor.hpp"

namespace normkit {

// The shape of the statistics: the input's shape with the reduced axes removed ([] when all are reduced).
// Fails for an axis out of range or repeated.
Status kept_shape(const TensorView& input, const ReduceAxes& axes, std::array<std::int64_t, kMaxDims>* shape,
                  int* ndim);

// Bytes of device scratch compute_stats / accumulate_stats need for this input and options (0 on the host).
Status stats_workspace_size(const TensorView& input, const StatsOptions& options, std::size_t* bytes);

// Computes the requested statistics of `input` over `options.axes` into `outputs`, in one read of the input.
// `workspace` may be null when stats_workspace_size() gave 0; otherwise it must be 16-byte aligned (cudaMalloc
// memory is).
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

// ---- Exact statistics of uint8 input (see IntegerSummary in stats_types.hpp) -------------------------
// The integer form of the streaming calls above, for data-set statistics that must not depend on how the
// data was chunked, ordered or spread over processes: summaries are merged by integer addition.

// Summarises uint8 `input` over options.axes into `summaries` (kept_numel entries, same memory space as the
// input); merge == true adds the batch to the summaries already there, merge == false overwrites them. The
// workspace is the one stats_workspace_size() gives for this input and options. A merge that passes
// kMaxIntegerSummaryCount values of a slice sets its `overflow` flag (finalize_integer_stats then fails on
// the host; on the device it writes NaN statistics for that slice).
Status accumulate_integer_stats(const TensorView& input, const StatsOptions& options, IntegerSummary* summaries,
                                std::int64_t num_summaries, bool merge, void* workspace, std::size_t workspace_bytes,
                                Stream stream = nullptr);

// into[k] += from[k] for k < n (integer addition: exact, order-free). Both arrays in `space`.
Status merge_integer_summaries(IntegerSummary* into, const IntegerSummary* from, std::int64_t n, MemorySpace space,
                               Stream stream = nullptr);

// Writes the statistics of `n` integer summaries into `outputs` (as compute_stats would for the same
// values), applying options.stats and ddof. Host summaries: fails with StatusCode::overflow naming the
// first overflowed slice, writing nothing. Device summaries: the check is not possible without a
// synchronization, so an overflowed slice gets NaN float statistics (its count as stored).
Status finalize_integer_stats(const IntegerSummary* summaries, std::int64_t n, const StatsOptions& options,
                              const StatsOutputs& outputs, MemorySpace space, Stream stream = nullptr);

// ---- Element ranges: data read in chunks that split a row or an image --------------------------------
// A file streamed in pieces of bytes holds, in each piece, a run of the whole tensor's elements in flat
// (row-major) order. `piece` describes the whole tensor (dtype, shape, memory space) but its data points at
// the run's first element, element `first` of the flat order, and holds `count` elements. The run's values
// are merged into `summaries`, the whole tensor's kept_numel summaries (options.axes of the whole tensor;
// the ones the run does not touch stay as they are): always a merge, so start from empty summaries
// (empty_stats_summary / empty_integer_summary, copied to the device for device summaries). Runs summarised
// in flat order give the statistics of the whole tensor; their merge order depends on where the runs are cut.
// The workspace is the one stats_range_workspace_size() gives for the same run. At most 2 * ndim - 1 of the
// engine's passes per call (one per box the run is cut into).
Status stats_range_workspace_size(const TensorView& piece, std::int64_t first, std::int64_t count,
                                  const StatsOptions& options, std::size_t* bytes);
Status accumulate_stats_range(const TensorView& piece, std::int64_t first, std::int64_t count, const StatsOptions& options,
                              StatsSummary* summaries, std::int64_t num_summaries, void* workspace,
                              std::size_t workspace_bytes, Stream stream = nullptr);
// uint8 only: integer summaries, exact whatever the cuts.
Status accumulate_integer_stats_range(const TensorView& piece, std::int64_t first, std::int64_t count,
                                      const StatsOptions& options, IntegerSummary* summaries, std::int64_t num_summaries,
                                      void* workspace, std::size_t workspace_bytes, Stream stream = nullptr);

// The summaries of no values (count 0, min +Inf / INT64_MAX, max -Inf / INT64_MIN): merging one into a
// summary leaves it unchanged, and merging a summary into one gives that summary.
StatsSummary empty_stats_summary() noexcept;
IntegerSummary empty_integer_summary() noexcept;

// Threads the host engine uses: NORMKIT_NUM_THREADS when set, else std::thread::hardware_concurrency().
// set_host_threads(0) restores that default.
int host_threads() noexcept;
void set_host_threads(int threads) noexcept;

// True when normkit was built with CUDA and a device is usable.
bool cuda_available() noexcept;

}  // namespace normkit
