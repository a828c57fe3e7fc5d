// The host engine's uint8 statistics: exact integer sums per slice (math/integer_moments.hpp), so the
// host gives the same bits as the kernels whatever the thread count. Loops over runs of bytes with 32-bit
// accumulators (flushed to 64 bits before Σx² can overflow) that the compiler vectorizes.
#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "cpu/stats_cpu.hpp"
#include "cpu/parallel_items.hpp"
#include "math/integer_moments.hpp"

namespace normkit::cpu {
namespace {

using math::merge_integer_summary;

// Values per flush of the 32-bit accumulators: 65536 x 255² < 2^32.
constexpr std::int64_t kFlushValues = 65536;
constexpr std::int64_t kMinValuesPerThread = 1 << 18;
constexpr std::int64_t kItemsPerThread = 4;
// Wide rows of narrow columns (NHWC with 3 channels): at least this many columns per row of the loop.
constexpr std::int64_t kMinWideColumns = 64;
constexpr std::int64_t kColumnTile = 1024;  // columns per work item (their accumulators stay in L1)

// s += the n bytes p[0], p[1], ... one at a time.
void add_bytes(const std::uint8_t* p, std::int64_t n, IntegerSummary& s) {
  for (std::int64_t begin = 0; begin < n; begin += kFlushValues) {
    const std::int64_t end = std::min(n, begin + kFlushValues);
    std::uint32_t sum = 0, sum_sq = 0, nonzero = 0;
    std::uint8_t lo = 255, hi = 0;
    for (std::int64_t i = begin; i < end; ++i) {
      const std::uint32_t x = p[i];
      sum += x;
      sum_sq += x * x;
      nonzero += x != 0u;
      lo = std::min<std::uint8_t>(lo, p[i]);
      hi = std::max<std::uint8_t>(hi, p[i]);
    }
    merge_integer_summary(s, IntegerSummary{end - begin, sum, sum_sq, nonzero, lo, hi, 0});
  }
}

// s += the n bytes p[0], p[1], ...
#if defined(__SSE2__)
// SSE2 (every x86-64): per 16 bytes, Σx by psadbw, Σx² by pmaddwd of the bytes widened to 16 bits (pairs of
// squares in 32-bit lanes), the zeros by a compare and psadbw, the extremes by pminub/pmaxub; the 32-bit
// lanes of Σx² take at most 4 squares an iteration, so they are widened every kVectorFlush iterations.
// (bench_normkit host/global/uint8/large, 2 cores: 3.2 GB/s with the compiler's vectorization of add_bytes,
// 5.9 GB/s with this.)
constexpr std::int64_t kVectorFlush = 4096;  // 4096 x 4 x 255² < 2^32
void add_run(const std::uint8_t* p, std::int64_t n, IntegerSummary& s) {
  const __m128i zero = _mm_setzero_si128(), ones = _mm_set1_epi8(1);
  std::int64_t i = 0;
  while (n - i >= 16) {
    const std::int64_t blocks = std::min<std::int64_t>((n - i) / 16, kVectorFlush);
    __m128i sum = zero, zeros = zero, sq = zero, lo = _mm_set1_epi8(static_cast<char>(0xff)), hi = zero;
    for (std::int64_t b = 0; b < blocks; ++b, i += 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
      sum = _mm_add_epi64(sum, _mm_sad_epu8(v, zero));
      zeros = _mm_add_epi64(zeros, _mm_sad_epu8(_mm_and_si128(_mm_cmpeq_epi8(v, zero), ones), zero));
      const __m128i low = _mm_unpacklo_epi8(v, zero), high = _mm_unpackhi_epi8(v, zero);
      sq = _mm_add_epi32(sq, _mm_add_epi32(_mm_madd_epi16(low, low), _mm_madd_epi16(high, high)));
      lo = _mm_min_epu8(lo, v);
      hi = _mm_max_epu8(hi, v);
    }
    alignas(16) std::uint64_t sums[2], zero_counts[2];
    alignas(16) std::uint32_t squares[4];
    alignas(16) std::uint8_t lows[16], highs[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(sums), sum);
    _mm_store_si128(reinterpret_cast<__m128i*>(zero_counts), zeros);
    _mm_store_si128(reinterpret_cast<__m128i*>(squares), sq);
    _mm_store_si128(reinterpret_cast<__m128i*>(lows), lo);
    _mm_store_si128(reinterpret_cast<__m128i*>(highs), hi);
    const std::int64_t count = blocks * 16;
    IntegerSummary part{count, static_cast<std::int64_t>(sums[0] + sums[1]),
                        static_cast<std::int64_t>(std::uint64_t{squares[0]} + squares[1] + squares[2] + squares[3]),
                        count - static_cast<std::int64_t>(zero_counts[0] + zero_counts[1]), 255, 0, 0};
    for (int k = 0; k < 16; ++k) {
      part.min = std::min<std::int64_t>(part.min, lows[k]);
      part.max = std::max<std::int64_t>(part.max, highs[k]);
    }
    merge_integer_summary(s, part);
  }
  if (i < n) add_bytes(p + i, n - i, s);  // (15 bytes at most)
}
#else
void add_run(const std::uint8_t* p, std::int64_t n, IntegerSummary& s) { add_bytes(p, n, s); }
#endif

#if defined(__SSE2__)
// 16 adjacent columns `pitch` bytes apart, over `rows` rows, added to partial(0..15): the accumulators stay in
// registers down the rows (Σx in 16-bit lanes and the zero counts in 8-bit lanes for up to kBandRows rows,
// Σx² widened to 32 bits each row), instead of a load and a store of each per byte.
constexpr std::int64_t kBandWidth = 16;
constexpr std::int64_t kBandRows = 255;  // 8-bit zero counts; 255 x 255 fits 16 bits
template <typename Partial>
void add_band(const std::uint8_t* p, std::int64_t pitch, std::int64_t rows, const Partial& partial) {
  const __m128i zero = _mm_setzero_si128(), ones = _mm_set1_epi8(1);
  for (std::int64_t r0 = 0; r0 < rows; r0 += kBandRows) {
    const std::int64_t n = std::min(kBandRows, rows - r0);
    __m128i sum_lo = zero, sum_hi = zero, zeros = zero, sq0 = zero, sq1 = zero, sq2 = zero, sq3 = zero;
    __m128i lo = _mm_set1_epi8(static_cast<char>(0xff)), hi = zero;
    const std::uint8_t* row = p + r0 * pitch;
    for (std::int64_t r = 0; r < n; ++r, row += pitch) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row));
      const __m128i low = _mm_unpacklo_epi8(v, zero), high = _mm_unpackhi_epi8(v, zero);
      sum_lo = _mm_add_epi16(sum_lo, low);
      sum_hi = _mm_add_epi16(sum_hi, high);
      zeros = _mm_add_epi8(zeros, _mm_and_si128(_mm_cmpeq_epi8(v, zero), ones));
      const __m128i square_lo = _mm_mullo_epi16(low, low), square_hi = _mm_mullo_epi16(high, high);
      sq0 = _mm_add_epi32(sq0, _mm_unpacklo_epi16(square_lo, zero));
      sq1 = _mm_add_epi32(sq1, _mm_unpackhi_epi16(square_lo, zero));
      sq2 = _mm_add_epi32(sq2, _mm_unpacklo_epi16(square_hi, zero));
      sq3 = _mm_add_epi32(sq3, _mm_unpackhi_epi16(square_hi, zero));
      lo = _mm_min_epu8(lo, v);
      hi = _mm_max_epu8(hi, v);
    }
    alignas(16) std::uint16_t sums[16];
    alignas(16) std::uint32_t squares[16];
    alignas(16) std::uint8_t zero_counts[16], lows[16], highs[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(sums), sum_lo);
    _mm_store_si128(reinterpret_cast<__m128i*>(sums + 8), sum_hi);
    _mm_store_si128(reinterpret_cast<__m128i*>(squares), sq0);
    _mm_store_si128(reinterpret_cast<__m128i*>(squares + 4), sq1);
    _mm_store_si128(reinterpret_cast<__m128i*>(squares + 8), sq2);
    _mm_store_si128(reinterpret_cast<__m128i*>(squares + 12), sq3);
    _mm_store_si128(reinterpret_cast<__m128i*>(zero_counts), zeros);
    _mm_store_si128(reinterpret_cast<__m128i*>(lows), lo);
    _mm_store_si128(reinterpret_cast<__m128i*>(highs), hi);
    for (int c = 0; c < 16; ++c) {
      merge_integer_summary(partial(c), IntegerSummary{n, sums[c], squares[c], n - zero_counts[c], lows[c], highs[c], 0});
    }
  }
}
#else
constexpr std::int64_t kBandWidth = 0;  // (no bands: every column through ColumnTotals)
template <typename Partial>
void add_band(const std::uint8_t*, std::int64_t, std::int64_t, const Partial&) {}
#endif

// Column accumulators of one work item: 32-bit sums of up to kFlushValues rows, then flushed.
struct ColumnTotals {
  std::vector<std::uint32_t> sum, sum_sq, nonzero;
  std::vector<std::uint8_t> lo, hi;
  std::int64_t rows = 0;

  explicit ColumnTotals(std::int64_t columns)
      : sum(columns), sum_sq(columns), nonzero(columns), lo(columns, 255), hi(columns, 0) {}

  void add_row(const std::uint8_t* row, std::int64_t columns) {
    std::uint32_t* __restrict__ s = sum.data();
    std::uint32_t* __restrict__ q = sum_sq.data();
    std::uint32_t* __restrict__ z = nonzero.data();
    std::uint8_t* __restrict__ l = lo.data();
    std::uint8_t* __restrict__ h = hi.data();
    for (std::int64_t c = 0; c < columns; ++c) {
      const std::uint32_t x = row[c];
      s[c] += x;
      q[c] += x * x;
      z[c] += x != 0u;
      l[c] = std::min(l[c], row[c]);
      h[c] = std::max(h[c], row[c]);
    }
    ++rows;
  }

  // Adds column c's totals to `into` and clears them.
  void flush(std::int64_t c, IntegerSummary& into) {
    if (rows == 0) return;
    merge_integer_summary(into, IntegerSummary{rows, sum[c], sum_sq[c], nonzero[c], lo[c], hi[c], 0});
    sum[c] = sum_sq[c] = nonzero[c] = 0;
    lo[c] = 255;
    hi[c] = 0;
  }
};

int threads_for(std::int64_t numel, int threads) {
  return static_cast<int>(std::min<std::int64_t>(threads, std::max<std::int64_t>(1, numel / kMinValuesPerThread)));
}

// Splits per slice so that few slices still give every thread several items.
std::int64_t splits_for(std::int64_t slices, std::int64_t values_per_slice, int threads) {
  if (slices >= kItemsPerThread * threads) return 1;
  const std::int64_t wanted = (kItemsPerThread * threads + slices - 1) / slices;
  return std::max<std::int64_t>(1, std::min(wanted, values_per_slice / kMinValuesPerThread));
}

// items x splits partial summaries, slice-major, summed into each slice.
void finish(const std::vector<IntegerSummary>& partials, std::int64_t kept, std::int64_t splits, const math::StatsSink& sink) {
  for (std::int64_t k = 0; k < kept; ++k) {
    IntegerSummary s = math::empty_integer_summary();
    for (std::int64_t p = 0; p < splits; ++p) merge_integer_summary(s, partials[static_cast<std::size_t>(k * splits + p)]);
    math::write_integer_slice(sink, k, s);
  }
}

// Segments: kept index c owns A sub-rows of B contiguous bytes at (a*C + c)*B.
void run_segments(const std::uint8_t* input, const plan::CanonicalGeometry& g, const math::StatsSink& sink, int threads) {
  const std::int64_t total = g.seg_a * g.seg_b;
  const std::int64_t splits = splits_for(g.seg_c, total, threads);
  const std::int64_t chunk = (total + splits - 1) / splits;
  std::vector<IntegerSummary> partials(static_cast<std::size_t>(g.seg_c * splits), math::empty_integer_summary());
  parallel_items(g.seg_c * splits, threads_for(g.numel, threads), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t item = begin; item < end; ++item) {
      const std::int64_t segment = item / splits, split = item % splits;
      const std::int64_t lo = split * chunk, hi = std::min(total, lo + chunk);
      IntegerSummary& s = partials[static_cast<std::size_t>(item)];
      for (std::int64_t a = lo / g.seg_b; a * g.seg_b < hi; ++a) {
        const std::int64_t b0 = std::max<std::int64_t>(lo - a * g.seg_b, 0), b1 = std::min(hi - a * g.seg_b, g.seg_b);
        add_run(input + (a * g.seg_c + segment) * g.seg_b + b0, b1 - b0, s);
      }
    }
  });
  finish(partials, g.seg_c, splits, sink);
}

// Columns [O, R, I]: narrow ones read as wide rows of `fold` rows (wide column j is channel j % I), the
// rows left over pushed one by one.
void run_columns(const std::uint8_t* input, const plan::CanonicalGeometry& g, const math::StatsSink& sink, int threads) {
  std::int64_t fold = 1;
  while (fold * g.col_inner < kMinWideColumns && 2 * fold <= g.col_rows) fold *= 2;
  const std::int64_t wide_inner = g.col_inner * fold, wide_rows = g.col_rows / fold;
  const std::int64_t tiles = (wide_inner + kColumnTile - 1) / kColumnTile;
  const std::int64_t splits = splits_for(g.col_outer * tiles, wide_rows * std::min(wide_inner, kColumnTile), threads);
  const std::int64_t chunk = (wide_rows + splits - 1) / splits;
  // partials[(o * I + channel) * splits + split]; a tile of a folded view holds every channel.
  std::vector<IntegerSummary> partials(static_cast<std::size_t>(g.kept_numel * splits), math::empty_integer_summary());
  parallel_items(g.col_outer * tiles * splits, threads_for(g.numel, threads), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t item = begin; item < end; ++item) {
      const std::int64_t split = item % splits, tile = (item / splits) % tiles, o = item / splits / tiles;
      const std::int64_t c0 = tile * kColumnTile, cols = std::min(kColumnTile, wide_inner - c0);
      const std::int64_t r_lo = split * chunk, r_hi = std::min(wide_rows, r_lo + chunk);
      const std::uint8_t* outer_slice = input + o * g.col_rows * g.col_inner;
      const auto partial = [&](std::int64_t wide_column) -> IntegerSummary& {
        return partials[static_cast<std::size_t>((o * g.col_inner + (c0 + wide_column) % g.col_inner) * splits + split)];
      };
      // Bands of 16 columns a block of rows at a time (the block's rows stay in cache for its next band),
      // the columns left over through ColumnTotals.
      const std::int64_t banded = kBandWidth > 0 ? cols / kBandWidth * kBandWidth : 0, rest = cols - banded;
      for (std::int64_t r = r_lo; r < r_hi && banded > 0; r += kBandRows) {
        const std::int64_t n = std::min(kBandRows, r_hi - r);
        for (std::int64_t c = 0; c < banded; c += kBandWidth) {
          add_band(outer_slice + r * wide_inner + c0 + c, wide_inner, n, [&](std::int64_t k) -> IntegerSummary& { return partial(c + k); });
        }
      }
      ColumnTotals totals(rest);
      for (std::int64_t r = r_lo; r < r_hi && rest > 0; ++r) {
        totals.add_row(outer_slice + r * wide_inner + c0 + banded, rest);
        if (totals.rows == kFlushValues) {
          for (std::int64_t c = 0; c < rest; ++c) totals.flush(c, partial(banded + c));
          totals.rows = 0;
        }
      }
      for (std::int64_t c = 0; c < rest; ++c) totals.flush(c, partial(banded + c));
      if (split == splits - 1 && tile == 0) {
        for (std::int64_t r = wide_rows * fold; r < g.col_rows; ++r) {
          for (std::int64_t c = 0; c < g.col_inner; ++c) add_run(outer_slice + r * g.col_inner + c, 1, partial(c));
        }
      }
    }
  });
  finish(partials, g.kept_numel, splits, sink);
}

void run_generic(const std::uint8_t* input, const plan::CanonicalGeometry& g, const math::StatsSink& sink, int threads) {
  std::vector<IntegerSummary> partials(static_cast<std::size_t>(g.kept_numel), math::empty_integer_summary());
  parallel_items(g.kept_numel, threads_for(g.numel, threads), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t k = begin; k < end; ++k) {
      const std::uint8_t* slice = input + plan::strided_offset(g.kept, k);
      math::IntegerMoments s = math::IntegerMoments::empty();
      for (std::int64_t j = 0; j < g.reduce_numel; ++j) s.push(slice[plan::strided_offset(g.reduced, j)]);
      partials[static_cast<std::size_t>(k)] = s.summary();
    }
  });
  finish(partials, g.kept_numel, 1, sink);
}

}  // namespace

Status compute_integer_stats(const std::uint8_t* input, const plan::CanonicalGeometry& geometry, const math::StatsSink& sink,
                             int threads) {
  switch (geometry.pattern) {
    case plan::Pattern::empty: finish({}, geometry.kept_numel, 0, sink); break;
    case plan::Pattern::segments: run_segments(input, geometry, sink, threads); break;
    case plan::Pattern::columns: run_columns(input, geometry, sink, threads); break;
    case plan::Pattern::generic: run_generic(input, geometry, sink, threads); break;
  }
  return Status::success();
}

}  // namespace normkit::cpu
