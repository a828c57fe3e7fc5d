#include "cpu/stats_cpu.hpp"

#include <algorithm>
#include <thread>
#include <type_traits>
#include <vector>

#include "math/dtype_dispatch.hpp"
#include "math/moments.hpp"

namespace normkit::cpu {
namespace {

using math::MomentState;

constexpr int kLanes = 8;              // interleaved accumulators per contiguous span (vectorizable)
constexpr int kMaxTileColumns = 256;   // columns per column tile
constexpr int kTileRows = 64;          // rows per tile: one tile of float64 is at most 128 KB
constexpr std::int64_t kMinItemsPerThread = 1 << 16;  // elements below which a thread costs more than it saves

// Folds a [rows][cols] tile (row-major, contiguous) into one state per column. Fast path: the tile's
// per-column mean and M2 (two passes over cached data, vectorized across columns) merged with one Chan
// step per column. Columns holding NaN or ±Inf take Welford's per-value path.
// COLS > 0 fixes the column count at compile time (the lanes of a span), 0 takes it from `cols_runtime`.
template <int COLS, typename Acc>
void fold_tile(const Acc* tile, int rows, int cols_runtime, MomentState<Acc>* states) {
  const int cols = COLS > 0 ? COLS : cols_runtime;
  Acc probe[kMaxTileColumns], sum[kMaxTileColumns], lo[kMaxTileColumns], hi[kMaxTileColumns];
  Acc abs_sum[kMaxTileColumns], nonzero[kMaxTileColumns], m2[kMaxTileColumns], shift[kMaxTileColumns];
  for (int c = 0; c < cols; ++c) {
    if (states[c].count == 0) states[c].shift = tile[c] - tile[c] == Acc(0) ? tile[c] : Acc(0);
    shift[c] = states[c].shift;
    probe[c] = sum[c] = abs_sum[c] = nonzero[c] = m2[c] = Acc(0);
    lo[c] = states[c].min;
    hi[c] = states[c].max;
  }
  for (int r = 0; r < rows; ++r) {
    const Acc* x = tile + static_cast<std::ptrdiff_t>(r) * cols;
    for (int c = 0; c < cols; ++c) {
      const Acc v = x[c];
      probe[c] += v - v;
      sum[c] += v - shift[c];
      lo[c] = v < lo[c] ? v : lo[c];
      hi[c] = v > hi[c] ? v : hi[c];
      abs_sum[c] += v < Acc(0) ? -v : v;
      nonzero[c] += v != Acc(0) ? Acc(1) : Acc(0);
    }
  }
  Acc mean[kMaxTileColumns];
  const Acc inv_rows = Acc(1) / static_cast<Acc>(rows);
  for (int c = 0; c < cols; ++c) mean[c] = sum[c] * inv_rows;
  for (int r = 0; r < rows; ++r) {
    const Acc* x = tile + static_cast<std::ptrdiff_t>(r) * cols;
    for (int c = 0; c < cols; ++c) {
      const Acc d = (x[c] - shift[c]) - mean[c];
      m2[c] += d * d;
    }
  }
  for (int c = 0; c < cols; ++c) {
    MomentState<Acc>& s = states[c];
    if (probe[c] != Acc(0)) {  // NaN or ±Inf somewhere in this column of the tile
      for (int r = 0; r < rows; ++r) math::push(s, tile[static_cast<std::ptrdiff_t>(r) * cols + c]);
      continue;
    }
    s.min = lo[c];
    s.max = hi[c];
    s.abs_sum += abs_sum[c];
    s.nonzero_count += static_cast<std::int64_t>(nonzero[c]);
    math::merge_moments(s.count, s.mean, s.m2, static_cast<std::int64_t>(rows), mean[c], m2[c]);
  }
}

template <typename Acc, typename T>
void convert(const T* in, std::int64_t n, Acc* out) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = math::to_acc<Acc>(in[i]);
}

// Folds a contiguous span into kLanes interleaved lane states: element j goes to lane j % kLanes.
template <typename Acc, typename T>
void fold_span(const T* x, std::int64_t n, MomentState<Acc>* lanes, std::vector<Acc>& buffer) {
  constexpr std::int64_t kChunk = static_cast<std::int64_t>(kTileRows) * 32 * kLanes;
  buffer.resize(kChunk);
  const std::int64_t body = n / kLanes * kLanes;
  for (std::int64_t i = 0; i < body; i += kChunk) {
    const std::int64_t m = std::min(kChunk, body - i);
    convert(x + i, m, buffer.data());
    const std::int64_t rows = m / kLanes;
    for (std::int64_t r = 0; r < rows; r += kTileRows) {
      const int tile_rows = static_cast<int>(std::min<std::int64_t>(kTileRows, rows - r));
      fold_tile<kLanes>(buffer.data() + r * kLanes, tile_rows, kLanes, lanes);
    }
  }
  for (std::int64_t j = body; j < n; ++j) math::push(lanes[j - body], math::to_acc<Acc>(x[j]));
}

// Runs items [0, count) over `threads` threads, each taking a contiguous range of items.
template <typename F>
void parallel_items(std::int64_t count, int threads, F&& work) {
  threads = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, count)));
  if (threads == 1) {
    work(std::int64_t{0}, count);
    return;
  }
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    const std::int64_t begin = count * t / threads, end = count * (t + 1) / threads;
    pool.emplace_back([&work, begin, end] { work(begin, end); });
  }
  for (auto& th : pool) th.join();
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

template <typename Acc, typename T>
void run_segments(const T* input, const plan::CanonicalGeometry& g, const math::StatsSink& sink, int threads) {
  const std::int64_t total = g.seg_a * g.seg_b;
  std::int64_t splits = 1;
  if (g.seg_c < threads && total >= 2 * kMinItemsPerThread) splits = std::min<std::int64_t>(threads, total / kMinItemsPerThread);
  const std::int64_t chunk = (total + splits - 1) / splits;
  const std::int64_t items = g.seg_c * splits;
  std::vector<MomentState<Acc>> partials(static_cast<std::size_t>(items));
  const int used = static_cast<int>(std::min<std::int64_t>(threads, std::max<std::int64_t>(1, g.numel / kMinItemsPerThread)));
  parallel_items(items, used, [&](std::int64_t begin, std::int64_t end) {
    std::vector<Acc> buffer;
    for (std::int64_t item = begin; item < end; ++item) {
      const std::int64_t segment = item / splits, split = item % splits;
      const std::int64_t lo = split * chunk, hi = std::min(total, lo + chunk);
      MomentState<Acc> lanes[kLanes];
      for (auto& lane : lanes) lane = math::empty_state<Acc>();
      for (std::int64_t a = lo / g.seg_b; a * g.seg_b < hi; ++a) {
        const std::int64_t b0 = std::max<std::int64_t>(lo - a * g.seg_b, 0);
        const std::int64_t b1 = std::min(hi - a * g.seg_b, g.seg_b);
        fold_span(input + (a * g.seg_c + segment) * g.seg_b + b0, b1 - b0, lanes, buffer);
      }
      for (int l = 1; l < kLanes; ++l) math::merge(lanes[0], lanes[l]);
      partials[static_cast<std::size_t>(item)] = lanes[0];
    }
  });
  finish_slices(partials, g.seg_c, splits, sink);
}

template <typename Acc, typename T>
void run_columns(const T* input, const plan::CanonicalGeometry& g, const math::StatsSink& sink, int threads) {
  const std::int64_t tiles = (g.col_inner + kMaxTileColumns - 1) / kMaxTileColumns;
  std::int64_t splits = 1;
  if (g.col_outer * tiles < threads && g.numel >= 2 * kMinItemsPerThread) {
    splits = std::max<std::int64_t>(1, std::min<std::int64_t>(threads, g.col_rows / kTileRows));
  }
  const std::int64_t chunk = (g.col_rows + splits - 1) / splits;
  const std::int64_t items = g.col_outer * tiles * splits;
  std::vector<MomentState<Acc>> partials(static_cast<std::size_t>(g.kept_numel * splits));
  const int used = static_cast<int>(std::min<std::int64_t>(threads, std::max<std::int64_t>(1, g.numel / kMinItemsPerThread)));
  parallel_items(items, used, [&](std::int64_t begin, std::int64_t end) {
    std::vector<Acc> buffer(static_cast<std::size_t>(kTileRows) * kMaxTileColumns);
    MomentState<Acc> states[kMaxTileColumns];
    for (std::int64_t item = begin; item < end; ++item) {
      const std::int64_t split = item % splits, tile = (item / splits) % tiles, o = item / splits / tiles;
      const std::int64_t c0 = tile * kMaxTileColumns;
      const int cols = static_cast<int>(std::min<std::int64_t>(kMaxTileColumns, g.col_inner - c0));
      const std::int64_t r_lo = split * chunk, r_hi = std::min(g.col_rows, r_lo + chunk);
      for (int c = 0; c < cols; ++c) states[c] = math::empty_state<Acc>();
      for (std::int64_t r = r_lo; r < r_hi; r += kTileRows) {
        const int rows = static_cast<int>(std::min<std::int64_t>(kTileRows, r_hi - r));
        for (int i = 0; i < rows; ++i) {
          convert(input + (o * g.col_rows + r + i) * g.col_inner + c0, cols, buffer.data() + static_cast<std::ptrdiff_t>(i) * cols);
        }
        fold_tile<0>(buffer.data(), rows, cols, states);
      }
      for (int c = 0; c < cols; ++c) {
        partials[static_cast<std::size_t>((o * g.col_inner + c0 + c) * splits + split)] = states[c];
      }
    }
  });
  finish_slices(partials, g.kept_numel, splits, sink);
}

std::int64_t strided_offset(const plan::StridedDims& dims, std::int64_t index) {
  std::int64_t offset = 0;
  for (int d = dims.ndim - 1; d >= 0; --d) {
    offset += (index % dims.extent[d]) * dims.stride[d];
    index /= dims.extent[d];
  }
  return offset;
}

template <typename Acc, typename T>
void run_generic(const T* input, const plan::CanonicalGeometry& g, const math::StatsSink& sink, int threads) {
  std::vector<MomentState<Acc>> partials(static_cast<std::size_t>(g.kept_numel));
  const int used = static_cast<int>(std::min<std::int64_t>(threads, std::max<std::int64_t>(1, g.numel / kMinItemsPerThread)));
  parallel_items(g.kept_numel, used, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t k = begin; k < end; ++k) {
      const T* slice = input + strided_offset(g.kept, k);
      MomentState<Acc> s = math::empty_state<Acc>();
      for (std::int64_t j = 0; j < g.reduce_numel; ++j) math::push(s, math::to_acc<Acc>(slice[strided_offset(g.reduced, j)]));
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
    } else {
      return double_accumulation ? run<double>(typed, geometry, sink, threads) : run<float>(typed, geometry, sink, threads);
    }
  });
}

}  // namespace normkit::cpu
