// Kernel choice and launch shape for a statistics call: pure host functions, testable without a GPU.
#pragma once

#include <cstddef>
#include <cstdint>

#include "normkit/dtype.hpp"
#include "math/moments.hpp"
#include "plan/geometry.hpp"

namespace normkit::plan {

enum class StatsKernel {
  empty,          // fill every slice with the empty-slice statistics (merge kernel with no partials)
  segment_warp,   // one warp per (segment, split): short rows, many of them
  segment_block,  // one block per (segment, split): long rows, middle-axis (NCHW per-channel), global
  spans,          // channels-first sub-rows that are not whole vectors (NCHW 7 x 7): a block a (tile of channels,
                  // part of the samples), a thread a vector of the tile's span in each row (span_stats.cuh)
  columns,        // threads over kept columns, private Welford per column, block merge over rows
  generic,        // one block per kept slice, per-element index arithmetic
};

const char* stats_kernel_name(StatsKernel kernel) noexcept;

struct DeviceInfo {
  int sm_count = 132;
  int shared_per_sm = 233472;  // bytes of shared memory a SM (sm_90: 228 KB; sm_80: 164 KB; sm_86/89: 100 KB)
};

// Policies: one table, each entry with why it was chosen. No GPU has measured these yet (see README's
// performance section); they follow the published practice collected in shared/reference/performance.md.
struct StatsPolicy {
  // 256 threads: 8 warps hide latency with 16-byte loads; leaves room for 4+ blocks per SM.
  static constexpr int block_threads = 256;
  // Segments up to this many elements go warp-per-segment (a warp streams 4 KB in 2 iterations of
  // 16-byte loads; beyond that a whole block keeps more loads in flight) - and longer ones of at most
  // 32 x segment_loads_per_lane vectors when there are enough of them to give each SM 8 warps' worth
  // (choose_stats_plan).
  static constexpr std::int64_t warp_segment_max = 4096;
  // Shorter segments share a warp: a group of lanes per segment with about this many vector loads per
  // lane, so that the group's merge and the slice's finalize are paid once per several rows (rows of 1024
  // float32 with a warp each: 60% of the issue cycles after the loads; rows of 16: 1% modelled).
  // 64, not 16: each round of a group pays its Chan tree across lanes and the slice's finalize (rows of
  // 1024 float32 at 16 loads per lane: 1.61 issue cycles per element, of which the loads' own math 0.26).
  static constexpr std::int64_t segment_loads_per_lane = 64;
  // Rows of at most this many vectors, every one 16-byte aligned, take a lane each with all of their
  // vectors loaded at once and no alignment head, tail or merge (segment_short_rows): rows of 16 values
  // paid ~2x their values' work in that bookkeeping (530 issue cycles a row of 16 uint8, modelled).
  static constexpr std::int64_t short_row_vectors = 4;
  // ... unless the grid would then leave SMs idle: lanes double until the grid has this many blocks per
  // SM (or a lane per vector).
  static constexpr std::int64_t segment_warp_blocks_per_sm = 1;
  // segment_warp blocks halve (down to min_segment_warp_block threads, more of them resident) while the
  // grid's rounds spread over the SMs at less than this balance (segment_grid_balance).
  static constexpr double min_grid_balance = 0.85;
  static constexpr int min_segment_warp_block = 64;
  // Segments of several sub-rows (NCHW per-channel: N sub-rows of H*W) give each sub-row a sub-group of
  // lanes with at least this many vector loads per lane: a whole block on a 64x64 float32 image had one
  // 4-load batch per thread and paid the sub-row loop's overhead per 16 values (1.9 issue cycles per
  // element modelled); on sub-rows of 256, 7.1.
  static constexpr std::int64_t segment_loads_per_sub_row = 16;
  // Split segments of sub-rows keep whole sub-rows a split (segment_chunk) when such splits still fill this
  // share of a wave (NCHW with 7 channels of 585 images: 56 whole splits fill 392 of 396 slots).
  static constexpr double min_whole_sub_row_fill = 0.9;
  // Resident blocks per SM the grid aims for when it has to split slices to fill the GPU (columns, in
  // whole waves: wave_filling_splits; blocks of 5 warps or fewer would fit 3 an SM at 128 registers, which
  // the plan does not count on - conservative, fewer partials; the
  // segment kernels use segment_residency below). 2: the column kernels hold 2 blocks per SM (116-128
  // registers); aiming at 4 ran two waves and doubled the partials to merge (NHWC RGB float32: 2112 per
  // channel, a 3.3 us merge; 47% -> 62% modelled at 32 MB with 2).
  // NHWC RGB (3 threads across a folded wide row) keeps 2 blocks of 3 x 64 threads, 12 warps an SM;
  // blocks of 3 x 32 keep 5, 15 warps, but the 4th warp on some schedulers cost issue time: uint8 with
  // extremes 86.7 -> 82.2%, float32 -0.7; float16 with extremes (latency-bound at 12 warps) gained only
  // 78.2 -> 81.0% (modelled, 64 MB).
  static constexpr int target_blocks_per_sm = 2;
  // Blocks of a segment kernel resident per SM, guaranteed by its launch bounds (ptxas keeps it at
  // <= 65536 / (256 x this) registers; sm_90 ptxas: block groups 64-80 registers for float accumulation of
  // 32- and 8-bit vectors, lane groups 80-95; 16-bit vectors 122-128; scalar loads 64-76; float64 74-108).
  // The plan fills whole waves of them: aiming at 4 per SM with 3 resident ran a second wave of one block
  // per SM (global uint8 32 MB: 528 blocks, 41.6% modelled), and a block per 256 short rows paid the
  // kernel's prologue (parameters, divisions: ~500 issue cycles) for every 32 rows of a warp.
  static constexpr int segment_residency(bool block_group, bool vector_loads, std::size_t elem_bytes,
                                         bool double_accumulation) {
    if (double_accumulation) return 2;
    if (!vector_loads) return 3;
    if (elem_bytes == 2) return 2;
    // uint8 lane groups: 3 (rows of 16 uint8 hold one 16-byte load a lane per round trip: latency-bound
    // at 2 blocks, 8 KB in flight per SM)
    return block_group || elem_bytes == 1 ? 3 : 2;
  }
  // A split must give each thread at least this many vector loads, or the merge costs more than it saves.
  static constexpr std::int64_t min_loads_per_thread = 8;
  // uint8 columns: rows a thread loads (one 4-byte word each) and sums exactly before adding them to its
  // integer states; row ranges are rounded to whole batches of every thread row.
  static constexpr int byte_column_batch_rows = 32;
  // Other vector columns: rows a thread loads before folding them (kColumnRowBatch in column_stats.cuh).
  // Row ranges are whole batches of every thread row too: 124 rows a thread (float16 per-feature, 64 MB)
  // took 15 batches and 4 rows of a round trip each (84.8% modelled, latency-bound).
  static constexpr int column_batch_rows = 8;
  // Column kernels address the rows of a batch from a 32-bit byte pitch (one IMAD.WIDE per row instead of
  // a 64-bit addition: 28 -> 14 of ~390 issue cycles per float16 batch of 8 rows x 4 columns): block_y rows
  // of the (wide) input must span fewer bytes. Inputs whose rows are longer than that run the generic kernel.
  static constexpr std::int64_t column_max_pitch_bytes = (std::int64_t{1} << 31) - 1;
  // 16-bit vector columns of moments-only requests (float accumulation): 16 rows, one Chan step per 16
  // values of a column; converted a column at a time, so the batch's 64 float values never live at once
  // (16 rows converted up front spilled). With extremes they take 8-row batches (kColumnRowBatch).
  static constexpr int half_column_batch_rows = 16;
  // The rows a vector column plan rounds its row ranges to, per thread row (a multiple of every batch the
  // kernels take for that input size).
  static constexpr int column_batch_rows_for(std::size_t elem_bytes) {
    return elem_bytes == 1 ? byte_column_batch_rows : elem_bytes == 2 ? half_column_batch_rows : column_batch_rows;
  }
  // Column blocks span 32 threads across unless their warps then issue for more than this many lanes per
  // busy lane (idle lanes still cost their warp's issue slots); then the block width that wastes least.
  static constexpr double max_column_lane_waste = 1.1;
  // Column kernels hold one Welford state per column a thread owns: at most 4 columns keep registers
  // below ~128 (16-byte loads for float32, 8-byte for 16-bit types, 4-byte for uint8).
  static constexpr int max_column_vector = 4;
  // A partial state (48-80 bytes) must summarise at least 2 KB of input, so that writing and merging
  // partials stays under ~4% of the input traffic (the traffic check allows 10%).
  static constexpr std::int64_t min_partial_input_bytes = 2048;
  // The merge of partial states gives each kept slice a group of lanes (a power of two <= 32 of one warp,
  // or a block of up to merge_max_block threads) with about this many partials per lane: one batch of
  // loads in flight per lane, one round trip (kMergeBatch in merge_partials.cuh). A thread per slice
  // walked every split serially: 1.6 ms modelled for 64 slices x 256 splits (H200); NHWC RGB, 3 slices of
  // 2112 partials, took 9 round trips (7.2 us modelled) with a warp per slice.
  static constexpr std::int64_t merge_partials_per_lane = 8;
  // The merge is issue-bound (Chan merges of 11-field states): its warps spread over as many SMs as
  // there are warps, in blocks of 1-8 warps (64 slices x 32 lanes: 5.2 us modelled in blocks of 8 warps).
  static constexpr int merge_max_block = 256;
  // Spans: samples a part takes at least (a thread's rows: its state set-up and merges are paid once a part),
  // and the blocks resident a SM (span_stats_kernel's launch bounds).
  static constexpr std::int64_t min_span_rows_per_part = 8;
  static constexpr int span_residency = 3;
};

// The share of a GPU's block slots (sm_count x residency per wave) that `blocks` equal blocks keep busy,
// counting the last wave whole.
double wave_efficiency(std::int64_t blocks, int sm_count, int residency);
// A grid for `blocks` blocks' worth of grid-strided work that fits one wave of `slots` resident blocks,
// each block taking the same number of rounds (blocks itself when it already fits).
std::int64_t whole_wave_grid(std::int64_t blocks, std::int64_t slots);
// Work spread of `items` blocks' worth of grid-strided work on whole_wave_grid(items, sm_count x residency)
// blocks: the average SM's rounds over the busiest SM's (1 when every SM gets equal rounds).
double segment_grid_balance(std::int64_t items, int sm_count, int residency);
// Splits per slice (1 .. max_splits) for `segments` slices whose blocks fill whole waves best: the
// segment_block grid. 1 when the slices alone fill the GPU.
std::int64_t wave_filling_splits(std::int64_t segments, std::int64_t max_splits, int sm_count, int residency);

// Elements of a segment's A*B that each of its `splits` work items takes (the last ones may take fewer, or
// none): whole sub-rows when there are at least 8 per split (NCHW per-channel: a cut sub-row cost each
// item a realigning head and a tail of scalar loads, one round trip each), else a multiple of 64
// elements (items of a global reduction start on aligned vectors). Never more than the plan's bound of
// kLocalMomentsMaxValues per item.
constexpr std::int64_t kWholeSubRowsPerSplit = 8;
NORMKIT_HD std::int64_t segment_chunk(std::int64_t a, std::int64_t b, std::int64_t splits) {
  if (splits <= 1) return a * b;
  const std::int64_t rows = (a + splits - 1) / splits;
  if (a >= kWholeSubRowsPerSplit * splits && rows * b <= math::kLocalMomentsMaxValues) return rows * b;
  const std::int64_t even = (a * b + splits - 1) / splits;
  const std::int64_t rounded = (even + 63) / 64 * 64;
  return rounded <= math::kLocalMomentsMaxValues ? rounded : even;
}

struct StatsPlan {
  StatsKernel kernel = StatsKernel::empty;
  int vector_elems = 1;      // elements per vector access (1 = scalar path)
  int block_x = 1;           // threads per block along the fast dimension
  int block_y = 1;           // columns: threads per block along rows (a power of two)
  std::int64_t splits = 1;   // partitions per kept slice; > 1 writes partials merged by a second kernel
  std::int64_t column_fold = 1;  // columns: k rows read as one wide row of k * inner columns (narrow NHWC)
  // Folded columns whose wide row fits one block: the block merges each channel's k wide columns before
  // writing its partial (k times fewer partials to merge; NHWC RGB's merge was 2.6 of 19 us modelled).
  bool column_fold_in_block = false;
  // columns: row ranges per row block (geometry.hpp; the only blocks without row blocks) and row blocks
  // per split: splits = ceil(row blocks / column_block_span) x column_block_splits
  std::int64_t column_block_splits = 1;
  std::int64_t column_block_span = 1;
  std::int64_t grid_x = 1, grid_y = 1, grid_z = 1;
  std::size_t shared_bytes = 0;     // dynamic shared memory
  std::size_t workspace_bytes = 0;  // partial states
  int segment_lanes = 32;           // segment_warp: lanes per (segment, split) (power of two <= 32)
  int segment_sub_lanes = 256;      // segments of several sub-rows: lanes per sub-row (power of two)
  bool segment_short_rows = false;  // segment_warp on <= 2^30 contiguous aligned rows of <= short_row_vectors vectors, a lane each
  int merge_lanes = 1;              // lanes that merge one kept slice's partials (power of two <= 256; > 32: a block)
  int merge_block = 256;            // threads per block of the merge (fewer when its warps would not fill the SMs)
  bool merge_lane_local = false;    // the merge folds a lane's partials in LocalMoments (they fit its float counts)
  bool merge_slice_local = false;   // ... and merges across lanes in it too (a whole slice fits)
  // spans: channels a tile (their sub-rows' span of a row whole vectors), tiles, and samples a part
  // (splits = parts)
  std::int64_t span_channels = 0, span_tiles = 0, span_rows_per_part = 0;
};

// How the merge of partial states counts: the plan's choice, or (tests) a wider form than it needs.
enum class MergeCounts { plan, lane_local, wide };

// Test-only: forces a kernel, a vector width and/or a split count on every later plan of this thread.
struct PlanOverride {
  bool force_kernel = false;
  StatsKernel kernel = StatsKernel::generic;
  int vector_elems = 0;      // 0: the plan's choice; 1: scalar; otherwise the vector width if legal
  std::int64_t splits = 0;   // 0: the plan's choice
  int merge_lanes = 0;       // 0: the plan's choice; else a power of two <= 256
  int segment_lanes = 0;     // segment_warp: 0: the plan's choice; else 1, 2, 4, 8, 16 or 32
  MergeCounts merge_counts = MergeCounts::plan;  // lane_local: tree in MomentState; wide: every partial widened
  bool fold_in_merge = false;  // folded columns: leave the fold to the merge kernel (no column_fold_in_block)
};
void set_plan_override(const PlanOverride* override_or_null) noexcept;
const PlanOverride* plan_override() noexcept;

// Columns: the (wide) rows of each row range, ceil(rows / column_block_splits), rounded for vector plans to
// whole batches of every thread row (column_batch_rows or, uint8, byte_column_batch_rows x block_y; the
// last ranges may be short or empty). Computed once here rather than per block.
std::int64_t column_range_rows(const StatsPlan& p, std::int64_t wide_rows, DType dtype);

// True when the plan's main kernel writes partial states that merge_partials_kernel finishes.
inline bool uses_partials(const StatsPlan& p) { return p.splits > 1 || p.column_fold > 1; }
// Columns: the fold left to the merge kernel (1 when the column kernel's blocks fold each channel): the
// partial states per (split, column).
inline std::int64_t merged_fold(const StatsPlan& p) { return p.column_fold_in_block ? 1 : p.column_fold; }

// Size of the per-slice partial state kernels store in the workspace.
std::size_t partial_state_bytes(bool double_accumulation) noexcept;

// Chooses kernel and launch shape. `input_address` is the data pointer (its alignment decides vector
// access for columns; segment kernels realign per row).
StatsPlan choose_stats_plan(const CanonicalGeometry& geometry, DType dtype, bool double_accumulation,
                            std::uintptr_t input_address, const DeviceInfo& device);

}  // namespace normkit::plan
