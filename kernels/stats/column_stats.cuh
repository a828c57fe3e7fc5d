// Statistics over columns: per-feature ([rows, features] reduced over rows) and NHWC per-channel.
// Kept index (o, i) owns R elements at offset o*R*I + r*I + i.
//
// Threads map to columns (threadIdx.x, VEC adjacent columns each, so a warp's loads are contiguous) and
// to rows (threadIdx.y strides the rows of the block's row range). Each thread keeps a private Welford
// state per column: no cross-lane traffic in the loop. The block then merges over threadIdx.y in a
// fixed tree order through shared memory.
//
// Narrow inputs (NHWC with 3 channels) are read through a *folded* view: k consecutive rows form one
// wide row of k*I columns, so threads still load VEC-element vectors; wide column j belongs to channel
// j % I, and merge_partials_kernel folds the k wide columns of each channel (and the R % k rows left
// over) in a fixed order - or, when the wide row fits one block, the block folds them before writing its
// partials. blockIdx.y splits the rows when there are too few columns to fill the GPU.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/common/packed_extremes.cuh"
#include "kernels/common/partial_states.cuh"
#include "kernels/common/vector_load.cuh"
#include "math/stats_sink.hpp"
#include "plan/stats_plan.hpp"

namespace normkit::kernels {

// Row blocks (geometry.hpp: reduced, kept, reduced, kept, e.g. NCHW over axes 0 and 2) repeat the
// [outer, rows, inner] view every row_block_stride elements; each column reduces the rows of every block.
// Split y = g * row_splits + s takes row blocks [g * block_span, (g + 1) * block_span) and, in each, the
// s-th of row_splits row ranges: a thread carries its states across the blocks of its split, so that a
// block of 64 rows costs no tree merge and no partial state of its own.
struct ColumnShape {
  std::int64_t outer;             // kept outer extent O
  std::int64_t rows;              // (wide) rows reduced per column in each row block
  std::int64_t inner;             // (wide) columns
  std::int64_t outer_stride;      // elements between outer slices of the input (R * I)
  std::int64_t splits;            // partial states per column (== gridDim.y)
  std::int64_t row_blocks;        // 1 without row blocks
  std::int64_t row_block_stride;  // elements between row blocks (O * R * I)
  std::int64_t block_span;        // row blocks per split
  std::int64_t row_splits;        // row ranges per row block
  std::int64_t range_rows;        // rows per row range (plan::column_range_rows)
  bool to_partials;               // write partial states (split or folded) instead of final statistics
  std::int64_t fold_channels;     // > 0: the block merges wide columns c, c + fold_channels, ... (the fold) of
                                  // each channel c and writes [split][outer][channel] partials (one block in x)
};

// Rows a thread loads before folding them (8 x VEC values in registers; 16-bit inputs in float without
// extremes: 16). With extremes, 16-bit batches of 8 rows take the shared path of add_row_batch (bfloat16
// per-feature all 72.6% modelled at 16 rows, where the shared path does not fit the registers; 81.2% at 8).
template <typename T, typename Acc, bool EXTREMES>
constexpr int kColumnRowBatch = sizeof(T) == 2 && sizeof(Acc) == 4 && !EXTREMES
                                    ? plan::StatsPolicy::half_column_batch_rows
                                    : plan::StatsPolicy::column_batch_rows;

// A 4x4 byte transpose: out[j] holds byte j of rows[0..3] (8 byte permutes).
__device__ __forceinline__ void transpose_bytes(const std::uint32_t* rows, std::uint32_t (&out)[4]) {
  const std::uint32_t lo01 = __byte_perm(rows[0], rows[1], 0x5140u);  // a0 b0 a1 b1
  const std::uint32_t lo23 = __byte_perm(rows[2], rows[3], 0x5140u);  // c0 d0 c1 d1
  const std::uint32_t hi01 = __byte_perm(rows[0], rows[1], 0x7362u);  // a2 b2 a3 b3
  const std::uint32_t hi23 = __byte_perm(rows[2], rows[3], 0x7362u);  // c2 d2 c3 d3
  out[0] = __byte_perm(lo01, lo23, 0x5410u);
  out[1] = __byte_perm(lo01, lo23, 0x7632u);
  out[2] = __byte_perm(hi01, hi23, 0x5410u);
  out[3] = __byte_perm(hi01, hi23, 0x7632u);
}

// ROWS rows `pitch` bytes apart from `row` of 4 uint8 columns (a 4-byte word each) into the columns'
// ByteSums: all loads first, then a 4x4 byte transpose per quad of rows.
template <int ROWS, bool EXTREMES>
__device__ __forceinline__ void add_byte_rows(const std::uint8_t* __restrict__ row, int pitch, math::ByteSums (&sums)[4]) {
  std::uint32_t words[ROWS];
  load_rows(row, pitch, words, std::make_integer_sequence<int, ROWS>{});
  NORMKIT_UNROLL
  for (int q = 0; q < ROWS / 4; ++q) {
    std::uint32_t by_column[4];
    transpose_bytes(words + 4 * q, by_column);
    NORMKIT_UNROLL
    for (int j = 0; j < 4; ++j) sums[j].template add_word<EXTREMES, true>(by_column[j]);
  }
}

// 0 when a thread's column states hold equal, non-zero counts (add_row_batch shares their Chan weights),
// else NaN.
template <typename Acc, int VEC, typename State>
__device__ __forceinline__ Acc columns_apart(const State (&local)[VEC]) {
  if constexpr (VEC == 1 || std::is_same_v<State, math::IntegerMoments>) {
    return Acc(0);
  } else {
    bool equal = local[0].count > 0;
    NORMKIT_UNROLL
    for (int j = 1; j < VEC; ++j) equal = equal && local[j].count == local[0].count;
    return equal ? Acc(0) : math::quiet_nan<Acc>();
  }
}

// 16-bit inputs with extremes keep min, max (and per batch non-zero counts) as packed pairs of adjacent
// columns.
template <typename T, bool EXTREMES, int VEC>
constexpr bool kColumnPairs = EXTREMES && sizeof(T) == 2 && VEC == 4;
template <typename T, bool EXTREMES, int VEC>
using ColumnPairs = std::conditional_t<kColumnPairs<T, EXTREMES, VEC>, PairExtremes<T>, NoPairExtremes>;
// Non-zero counts of the batches that took the shared path (add_row_batch), added to the states every
// kPendingBatches batches (a half-precision count is exact up to 2048).
template <typename T, bool EXTREMES, int VEC>
using ColumnNonzeros = std::conditional_t<kColumnPairs<T, EXTREMES, VEC>, PairNonzeros, NoPairNonzeros>;
constexpr int kPendingBatches = 2048 / plan::StatsPolicy::column_batch_rows;

// A batch of kBatch rows pitch_bytes apart from `row` (advanced past them) into the columns' states:
// their loads are all in flight before the math, and each column takes the batch as one pack (one
// reciprocal per batch instead of a division per value).
template <int kBatch, typename T, typename Acc, int VEC, bool EXTREMES, typename State>
__device__ __forceinline__ void add_row_batch(const T* __restrict__& row, int pitch_bytes, State (&local)[VEC],
                                              ColumnPairs<T, EXTREMES, VEC> (&pairs)[2],
                                              ColumnNonzeros<T, EXTREMES, VEC> (&pending)[2], Acc& apart) {
  constexpr bool kPairs = kColumnPairs<T, EXTREMES, VEC>;
  // Loaded first, converted after: every load in flight at once. With packed extremes, 16-bit packs
  // load as words (as Pack structs, nvcc unpacked each at its load, before the next load; without the
  // pairs, as words they cost the moments-only kernel 2% modelled in conversions).
  // bfloat16 loads as words either way (convert_raw_pack).
  constexpr bool kWords = kPairs || std::is_same_v<T, math::bfloat16_bits>;
  using Raw = std::conditional_t<kWords, RawPack<T, VEC>, Pack<T, VEC>>;
  Raw raw[kBatch];
  if constexpr (kBatch <= plan::StatsPolicy::column_batch_rows) {
    load_rows(row, pitch_bytes, raw, std::make_integer_sequence<int, kBatch>{});
    row = row_at<kBatch>(row, pitch_bytes);
  } else {
    // (16-bit moments: 16 rows addressed from the pitch spilled a register; they are not issue-bound)
    const std::int64_t pitch = pitch_bytes / static_cast<int>(sizeof(T));
    NORMKIT_UNROLL
    for (int b = 0; b < kBatch; ++b, row += pitch) raw[b] = *reinterpret_cast<const Raw*>(row);
  }
  std::conditional_t<kPairs, PairNonzeros, NoPairNonzeros> nonzeros[2];
  const auto lane_value = [&](int b, int j) {
    if constexpr (kWords) {
      Acc lanes[VEC];  // (the other lanes' conversions are dead code)
      convert_raw_pack<Acc, T, VEC>(raw[b], lanes);
      return lanes[j];
    } else {
      return math::to_acc<Acc>(raw[b].v[j]);
    }
  };
  // 16 rows: each column's values converted where its pack folds (the whole batch up front spilled).
  // 8 rows: everything up front (a column at a time cost float16 with extremes 2-3% modelled), packed
  // extremes and non-zeros first.
  constexpr bool kUpFront = kBatch <= plan::StatsPolicy::column_batch_rows;
  static_assert(kUpFront || !kPairs, "packed pairs come in batches of 8 rows");
  if constexpr (kPairs) {
    nonzeros[0] = PairNonzeros::of(raw[0].x);
    nonzeros[1] = PairNonzeros::of(raw[0].y);
    NORMKIT_UNROLL
    for (int b = 0; b < kBatch; ++b) {
      pairs[0].add(raw[b].x);
      pairs[1].add(raw[b].y);
      if (b > 0) {
        nonzeros[0].add(raw[b].x);
        nonzeros[1].add(raw[b].y);
      }
    }
  }
  Acc values[kUpFront ? kBatch : 1][VEC];
  if constexpr (kUpFront) {
    NORMKIT_UNROLL
    for (int b = 0; b < kBatch; ++b) {
      NORMKIT_UNROLL
      for (int j = 0; j < VEC; ++j) values[b][j] = lane_value(b, j);
    }
  }
  const auto column_pack = [&](int j, Acc (&pack)[kBatch]) {
    NORMKIT_UNROLL
    for (int b = 0; b < kBatch; ++b) {
      if constexpr (kUpFront) pack[b] = values[b][j];
      else pack[b] = lane_value(b, j);
    }
  };
  const auto add_pair_nonzeros = [&](int j) {
    if constexpr (kPairs) local[j].nonzero += nonzeros[j / 2].lane(j % 2);
  };
  if constexpr (std::is_same_v<State, math::IntegerMoments> || VEC == 1 || !kUpFront) {
    NORMKIT_UNROLL
    for (int j = 0; j < VEC; ++j) {
      Acc pack[kBatch];
      column_pack(j, pack);
      if (local[j].template push_pack<EXTREMES, !kPairs, !kPairs>(pack)) add_pair_nonzeros(j);
    }
  } else {
    // Every column of a thread sees the same rows, so its states hold equal counts (from the second batch:
    // the first sets the shifts) until a pack holds NaN or ±Inf: the columns' packs are tested once and
    // share the batch's Chan weights (one reciprocal instead of VEC) and non-zero counts. `apart` is 0
    // while the counts are equal and NaN once they are not: added to the probe, it costs one addition
    // where a flag cost two tests.
    typename State::PackSums sums[VEC];
    NORMKIT_UNROLL
    for (int j = 0; j < VEC; ++j) {
      Acc pack[kBatch];
      column_pack(j, pack);
      sums[j] = State::template pack_sums<EXTREMES, !kPairs, !kPairs>(pack);
    }
    Acc probe = sums[0].sum + apart;  // NaN or ±Inf when any column's sum is (or the sums overflow together)
    NORMKIT_UNROLL
    for (int j = 1; j < VEC; ++j) probe += sums[j].sum;
    if (probe - probe == Acc(0)) {
      const auto weights = State::chan_weights(local[0].count, Acc(kBatch));
      NORMKIT_UNROLL
      for (int j = 0; j < VEC; ++j) local[j].template fold_pack<EXTREMES, !kPairs, !kPairs, kBatch>(sums[j], weights);
      if constexpr (kPairs) {
        pending[0].add_counts(nonzeros[0]);
        pending[1].add_counts(nonzeros[1]);
      }
    } else {
      NORMKIT_UNROLL
      for (int j = 0; j < VEC; ++j) {
        Acc pack[kBatch];
        NORMKIT_UNROLL
        for (int b = 0; b < kBatch; ++b) pack[b] = lane_value(b, j);
        if (local[j].template push_pack_sums<EXTREMES, !kPairs, !kPairs>(sums[j], pack)) add_pair_nonzeros(j);
      }
      apart = columns_apart<Acc>(local);
    }
  }
}

// `count` rows `pitch` elements apart from `row` (VEC columns of one row block) into the columns' states.
// Rows advance by pointer additions (an index times the row length cost a 64-bit multiply per load) and
// a 32-bit count (the plan bounds a row range, and a span of row blocks, by kLocalMomentsMaxValues).
template <typename T, typename Acc, int VEC, bool EXTREMES, typename State>
__device__ __forceinline__ void add_column_rows(const T* __restrict__ row, int count, std::int64_t pitch, State (&local)[VEC],
                                                ColumnPairs<T, EXTREMES, VEC> (&pairs)[2]) {
  if constexpr (std::is_same_v<T, std::uint8_t> && VEC == 4) {
    // uint8: batches of rows of 4 columns in flight, transposed to words of 4 rows per column and summed
    // exactly (math::ByteSums) into the integer states; then quads of rows (short row blocks: NCHW over
    // axes 0 and 2), before the per-value path for the last 1-3 rows.
    constexpr int kRows = plan::StatsPolicy::byte_column_batch_rows;
    const int pitch_bytes = static_cast<int>(pitch);  // (the kernel keeps it under 2^31)
    while (count >= 4) {
      // Up to kByteSumsMaxValues rows into one set of exact 32-bit ByteSums, widened into the states once
      // (widened every batch, the 64-bit additions cost uint8 per-feature calls 2-3% modelled).
      const int rows = (count < math::kByteSumsMaxValues ? count : math::kByteSumsMaxValues) & ~3;
      math::ByteSums sums[4];
      NORMKIT_UNROLL
      for (int j = 0; j < 4; ++j) sums[j] = math::ByteSums::empty();
      int left = rows;
      for (; left >= kRows; left -= kRows, row = row_at<kRows>(row, pitch_bytes)) add_byte_rows<kRows, EXTREMES>(row, pitch_bytes, sums);
      for (; left >= 4; left -= 4, row = row_at<4>(row, pitch_bytes)) add_byte_rows<4, EXTREMES>(row, pitch_bytes, sums);
      NORMKIT_UNROLL
      for (int j = 0; j < 4; ++j) local[j].template push_bytes<EXTREMES, true>(sums[j], static_cast<std::uint32_t>(rows));
      count -= rows;
    }
  } else {
    // Batches of kColumnRowBatch rows, then (16-bit) of 8: a row block of 8 rows a thread (reduced, kept,
    // reduced, kept with 64-row blocks) left to the per-row path below had one load in flight (15%
    // modelled). Rows of a batch are addressed from a 32-bit byte pitch (row_at): the plan keeps a thread
    // row's pitch under 2^31 bytes (StatsPolicy::column_max_pitch_bytes).
    const int pitch_bytes = static_cast<int>(pitch) * static_cast<int>(sizeof(T));
    constexpr int kBatch = kColumnRowBatch<T, Acc, EXTREMES>;
    ColumnNonzeros<T, EXTREMES, VEC> pending[2];
    Acc apart = columns_apart<Acc>(local);
    const auto flush_pending = [&] {
      if constexpr (kColumnPairs<T, EXTREMES, VEC>) {
        NORMKIT_UNROLL
        for (int j = 0; j < VEC; ++j) local[j].nonzero += pending[j / 2].lane(j % 2);
        pending[0] = pending[1] = PairNonzeros{};
      }
    };
    if constexpr (kColumnPairs<T, EXTREMES, VEC>) {
      while (count >= kBatch) {
        const int batches = count / kBatch < kPendingBatches ? count / kBatch : kPendingBatches;
        for (int i = 0; i < batches; ++i) add_row_batch<kBatch, T, Acc, VEC, EXTREMES>(row, pitch_bytes, local, pairs, pending, apart);
        count -= batches * kBatch;
        flush_pending();
      }
    } else {
      for (; count >= kBatch; count -= kBatch) add_row_batch<kBatch, T, Acc, VEC, EXTREMES>(row, pitch_bytes, local, pairs, pending, apart);
    }
    if constexpr (kBatch > plan::StatsPolicy::column_batch_rows) {
      // (16-row batches fold column by column: a NaN or ±Inf there may have set the counts apart)
      apart = columns_apart<Acc>(local);
      constexpr int kSmall = plan::StatsPolicy::column_batch_rows;
      for (; count >= kSmall; count -= kSmall) add_row_batch<kSmall, T, Acc, VEC, EXTREMES>(row, pitch_bytes, local, pairs, pending, apart);
    }
  }
  for (; count > 0; --count, row += pitch) {
    Acc v[VEC];
    if constexpr (VEC == 1) v[0] = load_one<Acc>(row);
    else load_pack<Acc, T, VEC>(row, v);
    NORMKIT_UNROLL
    for (int j = 0; j < VEC; ++j) local[j].push(v[j]);
  }
}

// Thread c of row 0 (c, c + blockDim.x, ...) merges channel c's parked wide columns c, c + channels, ...
// < wide in order and stores partial first + c. (Spread over the whole block, its index arithmetic cost
// the float32 kernel with extremes a 4-byte spill at its 128 registers on sm_80.)
template <typename State>
__device__ __forceinline__ void fold_parked_columns(PartialStates<State> parked, PartialStates<State> partials, int channels,
                                                 int wide, std::int64_t first) {
  for (int c = static_cast<int>(threadIdx.x); c < channels; c += static_cast<int>(blockDim.x)) {
    State s = parked.load(c);
    for (int w = c + channels; w < wide; w += channels) s.merge(parked.load(w));
    partials.store(first + c, s);
  }
}

// blockDim.y must be a power of two; dynamic shared memory holds (blockDim.y / 2) * blockDim.x * VEC
// states. Partial state of (split, o, column) at index split * outer * inner + o * inner + column; folded
// in the block (shape.fold_channels = I > 0), of (split, o, channel) at (split * outer + o) * I + channel.
// EXTREMES = false: a request without min, max, l0, l1 and linf (math::LocalMoments::push_pack).
template <typename T, typename Acc, int VEC, bool EXTREMES>
// 2 blocks per SM (<= 128 registers) with float states: left to itself ptxas took 139-164 registers for
// the row-block loop (1 block per SM, 8 resident warps: latency-bound, modelled). float64 states: 1, or
// ptxas for sm_90 caps them at 64 registers and spills.
__global__ void __launch_bounds__(256, sizeof(Acc) == 8 ? 1 : plan::StatsPolicy::target_blocks_per_sm) column_stats_kernel(const T* __restrict__ input, ColumnShape shape,
                                                           math::StatsSink sink,
                                                           PartialStates<typename math::KernelState<T, Acc>::local> partials) {
  using State = typename math::KernelState<T, Acc>::local;
  extern __shared__ __align__(16) unsigned char shared_raw[];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const PartialStates<State> parked{shared_raw, static_cast<std::int64_t>(blockDim.y / 2) * blockDim.x * VEC};
  const std::int64_t col0 = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + tx) * VEC;
  const bool owns_columns = col0 < shape.inner;  // with VEC > 1, inner % VEC == 0: all VEC columns exist
  constexpr bool kByteBatches = std::is_same_v<T, std::uint8_t> && VEC == 4;
  const std::int64_t split = blockIdx.y;  // the plan keeps splits <= 65535
  // (no division without row blocks: a 64-bit one per block cost uint8 per-feature statistics 2% modelled)
  const std::int64_t group = shape.row_splits == 1 ? split : split / shape.row_splits;
  const std::int64_t block_lo = group * shape.block_span;
  const std::int64_t block_hi = block_lo + shape.block_span < shape.row_blocks ? block_lo + shape.block_span : shape.row_blocks;
  const std::int64_t row_lo = (split - group * shape.row_splits) * shape.range_rows;
  const std::int64_t row_hi = row_lo + shape.range_rows < shape.rows ? row_lo + shape.range_rows : shape.rows;
  for (std::int64_t o = blockIdx.z; o < shape.outer; o += gridDim.z) {
    State local[VEC];
    NORMKIT_UNROLL
    for (int j = 0; j < VEC; ++j) local[j] = State::empty();
    if (owns_columns) {
      // 16-bit inputs keep min, max and non-zero counts as packed pairs of adjacent columns (the pack's two
      // words), folded into the states once after every row block of the split.
      ColumnPairs<T, EXTREMES, VEC> pairs[2];
      // This thread's rows of each block: ty, ty + blockDim.y, ... < row_hi - row_lo (a power-of-two step),
      // in every block of the span (at most kLocalMomentsMaxValues blocks: an int counts them). uint8 runs
      // the longer of the two walks inside, as one strided column of rows: short row blocks (NCHW over
      // axes 0 and 2: 8 rows a thread) then still fill its 32-row batches (a block at a time it had 16
      // bytes in flight per thread: 15% modelled). Float batches of 8 rows fill either way (and the
      // choice costs 16-bit kernels the register they have left).
      const int range = static_cast<int>(row_hi - row_lo);
      const int rows = ty < range ? ((range - 1 - ty) >> (__ffs(blockDim.y) - 1)) + 1 : 0;
      const int blocks = block_hi > block_lo ? static_cast<int>(block_hi - block_lo) : 0;
      const std::int64_t row_pitch = static_cast<std::int64_t>(blockDim.y) * shape.inner;
      // (uint8 rows are addressed from a 32-bit pitch: the plan bounds row_pitch, not the row block stride)
      const bool blocks_inside = kByteBatches && blocks > rows && shape.row_block_stride <= plan::StatsPolicy::column_max_pitch_bytes;
      const int outer_count = blocks_inside ? rows : blocks, inner_count = blocks_inside ? blocks : rows;
      const std::int64_t outer_pitch = blocks_inside ? row_pitch : shape.row_block_stride;
      const std::int64_t inner_pitch = blocks_inside ? shape.row_block_stride : row_pitch;
      const T* column = input + block_lo * shape.row_block_stride + o * shape.outer_stride + (row_lo + ty) * shape.inner + col0;
      for (int i = 0; i < outer_count; ++i, column += outer_pitch) {
        add_column_rows<T, Acc, VEC, EXTREMES>(column, inner_count, inner_pitch, local, pairs);
      }
      if constexpr (kColumnPairs<T, EXTREMES, VEC>) {
        NORMKIT_UNROLL
        for (int j = 0; j < VEC; ++j) pairs[j / 2].fold_lane(local[j], j % 2);
      }
    }
    // Tree over threadIdx.y: the upper half parks, the lower half merges, until row 0 holds the block's.
    for (int half = blockDim.y / 2; half >= 1; half /= 2) {
      if (ty >= half && ty < 2 * half) {
        NORMKIT_UNROLL
        for (int j = 0; j < VEC; ++j) parked.store((j * half + (ty - half)) * blockDim.x + tx, local[j]);
      }
      __syncthreads();
      if (ty < half) {
        NORMKIT_UNROLL
        for (int j = 0; j < VEC; ++j) local[j].merge(parked.load((j * half + ty) * blockDim.x + tx));
      }
      __syncthreads();
    }
    // Folded in the block: row 0 parks the wide row (inner <= blockDim.x * VEC <= the parked slots:
    // blockDim.y >= 2), then merges each channel's wide columns in a fixed order (deterministic).
    const bool fold = shape.fold_channels > 0;
    if (ty == 0 && owns_columns) {
      NORMKIT_UNROLL
      for (int j = 0; j < VEC; ++j) {
        const std::int64_t column = o * shape.inner + col0 + j;
        if (fold) parked.store(col0 + j, local[j]);
        else if (shape.to_partials) partials.store(split * shape.outer * shape.inner + column, local[j]);
        else math::write_local_slice<EXTREMES>(sink, column, local[j]);
      }
    }
    if (fold) {
      __syncthreads();
      if (ty == 0) fold_parked_columns(parked, partials, static_cast<int>(shape.fold_channels), static_cast<int>(shape.inner),
                                       (split * shape.outer + o) * shape.fold_channels);
      __syncthreads();  // (the next outer slice parks again)
    }
  }
}

}  // namespace normkit::kernels
