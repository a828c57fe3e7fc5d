#include "cpu/stats_cpu.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/parallel_items.hpp"
#include "math/dtype_dispatch.hpp"
#include "cpu/tile_fold.hpp"
#include "math/moments.hpp"

namespace normkit::cpu {
namespace {

using math::MomentState;

constexpr int kTileRows = 64;        // rows per column tile: 64 x 256 float64 is 128 KB
constexpr int kSpanTileRows = 512;   // rows of span lanes per span tile: in L1; amortizes the per-tile merge
constexpr std::int64_t kMinItemsPerThread = 1 << 16;
constexpr std::int64_t kItemsPerThread = 4;     // work items per thread when slices must be split (balance)
constexpr std::int64_t kNarrowColumns = 32;     // narrower column sets are folded into wide rows ...
constexpr std::int64_t kNarrowColumnMultiple = 8;  // ... of a multiple of 8 columns (whole AVX2 vectors)
// Contiguous rows up to this length take run_short_rows: per-row SIMD two-pass, no lane states. Measured
// (bench_normkit host float32, 256 MB, 2 cores, AVX2; GB/s short-row path vs lane spans): rows of 16
// 3.1 vs 0.31, 64 9.6 vs 1.2, 128 13.2 vs 2.4, 256 16.7 vs 5.2, 600 17.6 vs 9.0, 1024 17.3 vs 11.8,
// 2048 17.3 vs 15.2, 4096 16.4 vs 17.0.
constexpr std::int64_t kShortRowLength = 2048;
static_assert(kShortRowLength <= math::kLocalMomentsMaxValues, "a short row is finalized with int counts (write_short_row)");
constexpr std::int64_t kShortRowItemValues = 16384;  // values per work item of short rows (64 KB of float32)

template <typename Acc, typename T>
void convert(const T* in, std::int64_t n, Acc* out) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = math::to_acc<Acc>(in[i]);
}
// (float16: F16C's conversion where the CPU has it: bench_normkit host float16, 2 cores, per-feature 2.9 ->
// 5.4 GB/s, global 3.7 -> 9.6)
void convert(const math::float16_bits* in, std::int64_t n, float* out) {
  tile_fold().halves_to_floats(reinterpret_cast<const std::uint16_t*>(in), n, out);
}

void fold_span_tile(const float* tile, int rows, MomentState<float>* lanes) { tile_fold().span_f32(tile, rows, lanes); }
void fold_span_tile(const double* tile, int rows, MomentState<double>* lanes) { tile_fold().span_f64(tile, rows, lanes); }
void fold_column_tile(const float* tile, int rows, int cols, std::ptrdiff_t stride, MomentState<float>* states) {
  tile_fold().columns_f32(tile, rows, cols, stride, states);
}
void fold_column_tile(const double* tile, int rows, int cols, std::ptrdiff_t stride, MomentState<double>* states) {
  tile_fold().columns_f64(tile, rows, cols, stride, states);
}

// Folds a contiguous span into `lanes` interleaved lane states (element j goes to lane j % lanes). Input
// already in the accumulation type is read in place; other types are converted chunk by chunk.
template <typename Acc, typename T>
void fold_span(const T* x, std::int64_t n, MomentState<Acc>* lane_states, std::vector<Acc>& buffer) {
  const std::int64_t lanes = tile_fold().span_lanes;
  const std::int64_t chunk = static_cast<std::int64_t>(kSpanTileRows) * lanes;
  const std::int64_t body = n / lanes * lanes;
  for (std::int64_t i = 0; i < body; i += chunk) {
    const std::int64_t m = std::min(chunk, body - i);
    const Acc* values;
    if constexpr (std::is_same_v<T, Acc>) {
      values = x + i;
    } else {
      buffer.resize(static_cast<std::size_t>(chunk));
      convert(x + i, m, buffer.data());
      values = buffer.data();
    }
    fold_span_tile(values, static_cast<int>(m / lanes), lane_states);
  }
  for (std::int64_t j = body; j < n; ++j) math::push(lane_states[j - body], math::to_acc<Acc>(x[j]));
}

template <typename Acc>
void finish_slices(const std::vector<MomentState<Acc>>& partials, std::int64_t kept, std::int64_t splits,
                   const math::StatsSink& sink) {
  for (std::int64_t k = 0; k < kept; ++k) {
    MomentState<Acc> s = math::empty_state<Acc>();
    for (std::int64_t p = 0; p < splits; ++p) math::merge(s, partials[static_cast<std::size_t>(k * splits + p)]);
    math::write_slice(sink, k, math::to_summary(s));
  }
}

void fold_rows(const float* x, std::int64_t rows, int length, MomentState<float>* out) { tile_fold().rows_f32(x, rows, length, out); }
void fold_rows(const double* x, std::int64_t rows, int length, MomentState<double>* out) { tile_fold().rows_f64(x, rows, length, out); }

// Short contiguous rows (per-sample statistics of feature vectors): each row folded on its own, written
// to the sink at once by the thread that folded it (rows are independent, so the bits do not depend on
// the thread count). Items are blocks of rows of about kShortRowItemValues values.
template <typename Acc, typename T>
void run_short_rows(const T* input, const plan::CanonicalGeometry& g, const math::StatsSink& sink, int threads) {
  const int length = static_cast<int>(g.seg_b);
  const std::int64_t rows_per_item = std::max<std::int64_t>(1, kShortRowItemValues / length);
  const std::int64_t items = (g.seg_c + rows_per_item - 1) / rows_per_item;
  const int used = static_cast<int>(std::min<std::int64_t>(threads, std::max<std::int64_t>(1, g.numel / kMinItemsPerThread)));
  parallel_items(items, used, [&](std::int64_t begin, std::int64_t end) {
    std::vector<Acc> buffer;
    std::vector<MomentState<Acc>> states(static_cast<std::size_t>(rows_per_item));
    for (std::int64_t item = begin; item < end; ++item) {
      const std::int64_t first = item * rows_per_item, rows = std::min(rows_per_item, g.seg_c - first);
      const T* x = input + first * length;
      const Acc* values;
      if constexpr (std::is_same_v<T, Acc>) {
        values = x;
      } else {
        buffer.resize(static_cast<std::size_t>(rows * length));
        convert(x, rows * length, buffer.data());
        values = buffer.data();
      }
      fold_rows(values, rows, length, states.data());
      for (std::int64_t r = 0; r < rows; ++r) math::write_short_row(sink, first + r, states[static_cast<std::size_t>(r)]);
    }
  });
}

template <typename Acc, typename T>
void run_segments(const T* input, const plan::CanonicalGeometry& g, const math::StatsSink& sink, int threads) {
  if (g.seg_a == 1 && g.seg_b <= kShortRowLength) return run_short_rows<Acc>(input, g, sink, threads);
  const std::int64_t total = g.seg_a * g.seg_b;
  // Few segments (global, NCHW with 3 channels): split them so every thread gets several items.
  std::int64_t splits = 1;
  if (g.seg_c < kItemsPerThread * threads && total >= 2 * kMinItemsPerThread) {
    splits = std::max<std::int64_t>(1, std::min<std::int64_t>((kItemsPerThread * threads + g.seg_c - 1) / g.seg_c,
                                                              total / kMinItemsPerThread));
  }
  const std::int64_t chunk = (total + splits - 1) / splits;
  const std::int64_t items = g.seg_c * splits;
  std::vector<MomentState<Acc>> partials(static_cast<std::size_t>(items));
  const int used = static_cast<int>(std::min<std::int64_t>(threads, std::max<std::int64_t>(1, g.numel / kMinItemsPerThread)));
  parallel_items(items, used, [&](std::int64_t begin, std::int64_t end) {
    std::vector<Acc> buffer;
    for (std::int64_t item = begin; item < end; ++item) {
      const std::int64_t segment = item / splits, split = item % splits;
      const std::int64_t lo = split * chunk, hi = std::min(total, lo + chunk);
      MomentState<Acc> lanes[kMaxSpanLanes];
      for (auto& lane : lanes) lane = math::empty_state<Acc>();
      for (std::int64_t a = lo / g.seg_b; a * g.seg_b < hi; ++a) {
        const std::int64_t b0 = std::max<std::int64_t>(lo - a * g.seg_b, 0);
        const std::int64_t b1 = std::min(hi - a * g.seg_b, g.seg_b);
        fold_span(input + (a * g.seg_c + segment) * g.seg_b + b0, b1 - b0, lanes, buffer);
      }
      for (int l = 1; l < tile_fold().span_lanes; ++l) math::merge(lanes[0], lanes[l]);
      partials[static_cast<std::size_t>(item)] = lanes[0];
    }
  });
  finish_slices(partials, g.seg_c, splits, sink);
}

// Columns [O, R, I]. Narrow widths (NHWC with 3 channels) are read as wide rows: k consecutive rows make
// one contiguous row of k * I columns, so the SIMD loops see whole vectors; wide column j belongs to
// channel j % I, and the R % k rows left over are pushed one by one.
template <typename Acc, typename T>
void run_columns(const T* input, const plan::CanonicalGeometry& g, const math::StatsSink& sink, int threads) {
  std::int64_t fold = 1;
  if (g.col_inner < kNarrowColumns) {
    while (fold * g.col_inner < kNarrowColumns || (fold * g.col_inner) % kNarrowColumnMultiple != 0) ++fold;
    if (fold > g.col_rows) fold = 1;
  }
  const std::int64_t wide_inner = g.col_inner * fold;
  const std::int64_t wide_rows = g.col_rows / fold;
  const std::int64_t tiles = (wide_inner + kMaxTileColumns - 1) / kMaxTileColumns;
  std::int64_t splits = 1;
  if (g.col_outer * tiles < kItemsPerThread * threads && g.numel >= 2 * kMinItemsPerThread) {
    splits = std::max<std::int64_t>(1, std::min<std::int64_t>(kItemsPerThread * threads, wide_rows / kTileRows));
  }
  const std::int64_t chunk = (wide_rows + splits - 1) / splits;
  const std::int64_t items = g.col_outer * tiles * splits;
  std::vector<MomentState<Acc>> partials(static_cast<std::size_t>(g.kept_numel * splits));
  const int used = static_cast<int>(std::min<std::int64_t>(threads, std::max<std::int64_t>(1, g.numel / kMinItemsPerThread)));
  parallel_items(items, used, [&](std::int64_t begin, std::int64_t end) {
    std::vector<Acc> buffer(static_cast<std::size_t>(kTileRows) * kMaxTileColumns);
    MomentState<Acc> states[kMaxTileColumns];
    for (std::int64_t item = begin; item < end; ++item) {
      const std::int64_t split = item % splits, tile = (item / splits) % tiles, o = item / splits / tiles;
      const std::int64_t c0 = tile * kMaxTileColumns;
      const int cols = static_cast<int>(std::min<std::int64_t>(kMaxTileColumns, wide_inner - c0));
      const std::int64_t r_lo = split * chunk, r_hi = std::min(wide_rows, r_lo + chunk);
      const T* outer_slice = input + o * g.col_rows * g.col_inner;
      for (int c = 0; c < cols; ++c) states[c] = math::empty_state<Acc>();
      for (std::int64_t r = r_lo; r < r_hi; r += kTileRows) {
        const int rows = static_cast<int>(std::min<std::int64_t>(kTileRows, r_hi - r));
        const T* first = outer_slice + r * wide_inner + c0;
        if constexpr (std::is_same_v<T, Acc>) {
          fold_column_tile(first, rows, cols, wide_inner, states);  // in place, row stride = wide_inner
        } else {
          for (int i = 0; i < rows; ++i) convert(first + i * wide_inner, cols, buffer.data() + i * cols);
          fold_column_tile(buffer.data(), rows, cols, cols, states);
        }
      }
      // Wide columns back to channels (fold > 1 means one tile holds every wide column), in a fixed order.
      for (int j = 1; j < fold; ++j) {
        for (std::int64_t c = 0; c < g.col_inner; ++c) math::merge(states[c], states[j * g.col_inner + c]);
      }
      if (split == splits - 1) {
        for (std::int64_t r = wide_rows * fold; r < g.col_rows; ++r) {
          for (std::int64_t c = 0; c < g.col_inner; ++c) math::push(states[c], math::to_acc<Acc>(outer_slice[r * g.col_inner + c]));
        }
      }
      const int channels = fold > 1 ? static_cast<int>(g.col_inner) : cols;
      for (int c = 0; c < channels; ++c) {
        partials[static_cast<std::size_t>((o * g.col_inner + c0 + c) * splits + split)] = states[c];
      }
    }
  });
  finish_slices(partials, g.kept_numel, splits, sink);
}

template <typename Acc, typename T>
void run_generic(const T* input, const plan::CanonicalGeometry& g, const math::StatsSink& sink, int threads) {
  std::vector<MomentState<Acc>> partials(static_cast<std::size_t>(g.kept_numel));
  const int used = static_cast<int>(std::min<std::int64_t>(threads, std::max<std::int64_t>(1, g.numel / kMinItemsPerThread)));
  parallel_items(g.kept_numel, used, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t k = begin; k < end; ++k) {
      const T* slice = input + plan::strided_offset(g.kept, k);
      MomentState<Acc> s = math::empty_state<Acc>();
      for (std::int64_t j = 0; j < g.reduce_numel; ++j) math::push(s, math::to_acc<Acc>(slice[plan::strided_offset(g.reduced, j)]));
      partials[static_cast<std::size_t>(k)] = s;
    }
  });
  finish_slices(partials, g.kept_numel, 1, sink);
}

template <typename Acc, typename T>
Status run(const T* input, const plan::CanonicalGeometry& g, const math::StatsSink& sink, int threads) {
  switch (g.pattern) {
    case plan::Pattern::empty: finish_slices(std::vector<MomentState<Acc>>{}, g.kept_numel, 0, sink); break;
    case plan::Pattern::segments: run_segments<Acc>(input, g, sink, threads); break;
    case plan::Pattern::columns: run_columns<Acc>(input, g, sink, threads); break;
    case plan::Pattern::generic: run_generic<Acc>(input, g, sink, threads); break;
  }
  return Status::success();
}

}  // namespace

Status compute_stats(const void* input, DType dtype, bool double_accumulation, const plan::CanonicalGeometry& geometry,
                     const math::StatsSink& sink, int threads) {
  return math::visit_input_dtype(dtype, "compute_stats", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* typed = static_cast<const T*>(input);
    if constexpr (std::is_same_v<T, double>) {
      return run<double>(typed, geometry, sink, threads);
    } else if constexpr (std::is_same_v<T, std::uint8_t>) {
      return compute_integer_stats(typed, geometry, sink, threads);
    } else {
      return double_accumulation ? run<double>(typed, geometry, sink, threads) : run<float>(typed, geometry, sink, threads);
    }
  });
}

}  // namespace normkit::cpu
