#include "cpu/stats_cpu.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
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
constexpr int kTileRows = 64;          // rows per column tile: 64 x 256 float64 is 128 KB
constexpr int kSpanTileRows = 512;     // rows of kLanes values per span tile: 16-32 KB, in L1; amortizes the per-tile merge
constexpr std::int64_t kMinItemsPerThread = 1 << 16;  // elements below which a thread costs more than it saves

// 16 bytes of Acc as one SIMD value (GCC/Clang vector extension): 4 floats or 2 doubles. Operators act
// lane-wise, so the formulas below read like scalar code and compile to SSE/AVX instructions.
template <typename Acc>
struct Simd {
  typedef Acc Vec __attribute__((vector_size(16)));
  using Int = std::conditional_t<sizeof(Acc) == 4, std::int32_t, std::int64_t>;
  typedef Int IVec __attribute__((vector_size(16)));  // comparison results: all ones (-1) or 0 per lane
  static constexpr int width = static_cast<int>(16 / sizeof(Acc));
  static Vec load(const Acc* p) {
    Vec v;
    std::memcpy(&v, p, sizeof(Vec));
    return v;
  }
  static Vec splat(Acc a) { return Vec{} + a; }
  static Vec abs(Vec v) {  // clear the sign bits
    const IVec magnitude = IVec{} + std::numeric_limits<Int>::max();
    return reinterpret_cast<Vec>(reinterpret_cast<IVec>(v) & magnitude);
  }
};

// Pass-1 accumulators of W adjacent columns, one SIMD value each.
template <typename Acc>
struct Accumulators {
  using S = Simd<Acc>;
  using Vec = typename S::Vec;
  using IVec = typename S::IVec;
  Vec sum, lo, hi, abs_sum;
  IVec zeros_neg;  // minus the number of exact zeros (comparisons give -1)

  static Accumulators init(int c, const Acc* lo, const Acc* hi) {
    return {Vec{}, S::load(lo + c), S::load(hi + c), Vec{}, IVec{}};
  }
  // NaN makes sum NaN; ±Inf make sum non-finite or reach lo/hi: finite() tells the tile needs the slow path.
  void add(Vec v, Vec shift) {
    sum += v - shift;
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
    abs_sum += S::abs(v);
    zeros_neg += reinterpret_cast<IVec>(v == Vec{});
  }
  static Accumulators load(int c, const Acc* s, const Acc* l, const Acc* h, const Acc* a, const typename S::Int* z) {
    Accumulators r{S::load(s + c), S::load(l + c), S::load(h + c), S::load(a + c), {}};
    std::memcpy(&r.zeros_neg, z + c, sizeof(IVec));
    return r;
  }
  void store(int c, Acc* s, Acc* l, Acc* h, Acc* a, typename S::Int* z) const {
    std::memcpy(s + c, &sum, sizeof(Vec));
    std::memcpy(l + c, &lo, sizeof(Vec));
    std::memcpy(h + c, &hi, sizeof(Vec));
    std::memcpy(a + c, &abs_sum, sizeof(Vec));
    std::memcpy(z + c, &zeros_neg, sizeof(IVec));
  }
};

// Both passes over a tile of G * W columns with every accumulator in a register.
template <int G, typename Acc>
void fold_tile_registers(const Acc* tile, int rows, std::ptrdiff_t stride, const Acc* shift, Acc* sum, Acc* lo, Acc* hi,
                         Acc* abs_sum, typename Simd<Acc>::Int* zeros_neg, Acc* m2, Acc* mean) {
  using S = Simd<Acc>;
  using Vec = typename S::Vec;
  constexpr int W = S::width;
  Accumulators<Acc> a[G];
  Vec vshift[G];
  for (int g = 0; g < G; ++g) {
    a[g] = Accumulators<Acc>::init(g * W, lo, hi);
    vshift[g] = S::load(shift + g * W);
  }
  for (int r = 0; r < rows; ++r) {
    for (int g = 0; g < G; ++g) a[g].add(S::load(tile + r * stride + g * W), vshift[g]);
  }
  const Acc inv_rows = Acc(1) / static_cast<Acc>(rows);
  Vec vmean[G], vm2[G];
  for (int g = 0; g < G; ++g) {
    a[g].store(g * W, sum, lo, hi, abs_sum, zeros_neg);
    vmean[g] = a[g].sum * inv_rows;
    vm2[g] = Vec{};
  }
  for (int r = 0; r < rows; ++r) {
    for (int g = 0; g < G; ++g) {
      const Vec d = (S::load(tile + r * stride + g * W) - vshift[g]) - vmean[g];
      vm2[g] += d * d;
    }
  }
  for (int g = 0; g < G; ++g) {
    std::memcpy(mean + g * W, &vmean[g], sizeof(Vec));
    std::memcpy(m2 + g * W, &vm2[g], sizeof(Vec));
  }
}

// Folds a tile of `rows` rows x `cols` columns (row r starts at tile + r * stride) into one state per
// column. Fast path: the tile's per-column mean and M2 (two passes over cached data, SIMD across
// columns), min, max, Σ|x| and zero count, merged into each column's state with one Chan step.
// Columns holding NaN or ±Inf in this tile take Welford's per-value path instead.
// COLS > 0 fixes the column count at compile time (the interleaved lanes of a span).
template <int COLS, typename Acc>
void fold_tile(const Acc* tile, int rows, int cols_runtime, std::ptrdiff_t stride, MomentState<Acc>* states) {
  using S = Simd<Acc>;
  using Vec = typename S::Vec;
  constexpr int W = S::width;
  const int cols = COLS > 0 ? COLS : cols_runtime;
  const int groups = cols / W;  // columns [groups * W, cols) take the scalar loop
  alignas(16) Acc shift[kMaxTileColumns], sum[kMaxTileColumns], lo[kMaxTileColumns], hi[kMaxTileColumns];
  alignas(16) Acc abs_sum[kMaxTileColumns], m2[kMaxTileColumns], mean[kMaxTileColumns];
  alignas(16) typename S::Int zeros_neg[kMaxTileColumns];  // minus the zeros per column (<= rows)
  for (int c = 0; c < cols; ++c) {
    if (states[c].count == 0) states[c].shift = tile[c] - tile[c] == Acc(0) ? tile[c] : Acc(0);
    shift[c] = states[c].shift;
    lo[c] = states[c].min;
    hi[c] = states[c].max;
  }
  if constexpr (COLS > 0 && COLS % W == 0) {
    // Few columns (a span's lanes): accumulators live in registers for the whole tile.
    fold_tile_registers<COLS / W>(tile, rows, stride, shift, sum, lo, hi, abs_sum, zeros_neg, m2, mean);
  } else {
    // Many columns: accumulators stay in L1; independent columns hide the latency.
    for (int g = 0; g < groups; ++g) Accumulators<Acc>::init(g * W, lo, hi).store(g * W, sum, lo, hi, abs_sum, zeros_neg);
    for (int c = groups * W; c < cols; ++c) {
      sum[c] = abs_sum[c] = Acc(0);
      zeros_neg[c] = 0;
    }
    for (int r = 0; r < rows; ++r) {
      const Acc* x = tile + r * stride;
      for (int g = 0; g < groups; ++g) {
        const int c = g * W;
        auto a = Accumulators<Acc>::load(c, sum, lo, hi, abs_sum, zeros_neg);
        a.add(S::load(x + c), S::load(shift + c));
        a.store(c, sum, lo, hi, abs_sum, zeros_neg);
      }
      for (int c = groups * W; c < cols; ++c) {
        const Acc v = x[c];
        sum[c] += v - shift[c];
        lo[c] = v < lo[c] ? v : lo[c];
        hi[c] = v > hi[c] ? v : hi[c];
        abs_sum[c] += v < Acc(0) ? -v : v;
        zeros_neg[c] -= v == Acc(0);
      }
    }
    // Pass 2: M2 around the tile's own mean.
    const Acc inv_rows = Acc(1) / static_cast<Acc>(rows);
    for (int c = 0; c < cols; ++c) {
      mean[c] = sum[c] * inv_rows;
      m2[c] = Acc(0);
    }
    for (int r = 0; r < rows; ++r) {
      const Acc* x = tile + r * stride;
      for (int g = 0; g < groups; ++g) {
        const int c = g * W;
        const Vec d = (S::load(x + c) - S::load(shift + c)) - S::load(mean + c);
        const Vec acc = S::load(m2 + c) + d * d;
        std::memcpy(m2 + c, &acc, sizeof(Vec));
      }
      for (int c = groups * W; c < cols; ++c) {
        const Acc d = (x[c] - shift[c]) - mean[c];
        m2[c] += d * d;
      }
    }
  }
  const Acc inf = std::numeric_limits<Acc>::infinity();
  for (int c = 0; c < cols; ++c) {
    MomentState<Acc>& s = states[c];
    const bool finite = sum[c] - sum[c] == Acc(0) && lo[c] != -inf && hi[c] != inf;
    if (!finite) {  // NaN or ±Inf somewhere in this column of the tile (or a sum that overflowed)
      for (int r = 0; r < rows; ++r) math::push(s, tile[r * stride + c]);
      continue;
    }
    s.min = lo[c];
    s.max = hi[c];
    s.abs_sum += abs_sum[c];
    s.nonzero_count += rows + static_cast<std::int64_t>(zeros_neg[c]);
    math::merge_moments(s.count, s.mean, s.m2, static_cast<std::int64_t>(rows), mean[c], m2[c]);
  }
}

template <typename Acc, typename T>
void convert(const T* in, std::int64_t n, Acc* out) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = math::to_acc<Acc>(in[i]);
}

// Folds a contiguous span into kLanes interleaved lane states: element j goes to lane j % kLanes. Input
// already in the accumulation type is read in place; other types are converted chunk by chunk.
template <typename Acc, typename T>
void fold_span(const T* x, std::int64_t n, MomentState<Acc>* lanes, std::vector<Acc>& buffer) {
  constexpr std::int64_t kChunk = static_cast<std::int64_t>(kSpanTileRows) * 4 * kLanes;
  const std::int64_t body = n / kLanes * kLanes;
  for (std::int64_t i = 0; i < body; i += kChunk) {
    const std::int64_t m = std::min(kChunk, body - i);
    const Acc* values;
    if constexpr (std::is_same_v<T, Acc>) {
      values = x + i;
    } else {
      buffer.resize(kChunk);
      convert(x + i, m, buffer.data());
      values = buffer.data();
    }
    const std::int64_t rows = m / kLanes;
    for (std::int64_t r = 0; r < rows; r += kSpanTileRows) {
      const int tile_rows = static_cast<int>(std::min<std::int64_t>(kSpanTileRows, rows - r));
      fold_tile<kLanes>(values + r * kLanes, tile_rows, kLanes, kLanes, lanes);
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
        const T* first = input + (o * g.col_rows + r) * g.col_inner + c0;
        if constexpr (std::is_same_v<T, Acc>) {
          fold_tile<0>(first, rows, cols, g.col_inner, states);  // in place, row stride = inner
        } else {
          for (int i = 0; i < rows; ++i) convert(first + i * g.col_inner, cols, buffer.data() + i * cols);
          fold_tile<0>(buffer.data(), rows, cols, cols, states);
        }
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
