#include "plan/stats_plan.hpp"

#include <algorithm>
#include <numeric>

#include "math/moments.hpp"

namespace normkit::plan {
namespace {
thread_local const PlanOverride* g_override = nullptr;

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

constexpr std::int64_t kMaxGridY = 65535;

int floor_pow2(int v) {
  int p = 1;
  while (p * 2 <= v) p *= 2;
  return p;
}
}  // namespace

double wave_efficiency(std::int64_t blocks, int sm_count, int residency) {
  const std::int64_t per_sm = ceil_div(blocks, sm_count);
  const std::int64_t waves = ceil_div(per_sm, residency);
  return static_cast<double>(blocks) / static_cast<double>(waves * sm_count * residency);
}

std::int64_t whole_wave_grid(std::int64_t blocks, std::int64_t slots) {
  if (blocks <= slots) return blocks;
  return ceil_div(blocks, ceil_div(blocks, slots));
}

double segment_grid_balance(std::int64_t items, int sm_count, int residency) {
  const std::int64_t sms = std::max(sm_count, 1);
  const std::int64_t grid = whole_wave_grid(items, sms * residency);
  const std::int64_t rounds = ceil_div(items, grid);
  return static_cast<double>(items) / static_cast<double>(sms * ceil_div(grid, sms) * rounds);
}

std::int64_t wave_filling_splits(std::int64_t segments, std::int64_t max_splits, int sm_count, int residency) {
  const std::int64_t slots = static_cast<std::int64_t>(sm_count) * residency;
  if (segments >= slots || max_splits <= 1) return 1;
  // Up to two waves' worth: beyond that more splits only add partial states.
  const std::int64_t limit = std::min(max_splits, ceil_div(2 * slots, segments));
  std::int64_t best = 1;
  double best_efficiency = wave_efficiency(segments, sm_count, residency);
  for (std::int64_t s = 2; s <= limit; ++s) {
    const double e = wave_efficiency(segments * s, sm_count, residency);
    if (e > best_efficiency + 1e-9) best = s, best_efficiency = e;  // ties keep fewer splits
  }
  return best;
}

const char* stats_kernel_name(StatsKernel kernel) noexcept {
  switch (kernel) {
    case StatsKernel::empty: return "empty";
    case StatsKernel::segment_warp: return "segment_warp";
    case StatsKernel::segment_block: return "segment_block";
    case StatsKernel::spans: return "spans";
    case StatsKernel::columns: return "columns";
    case StatsKernel::generic: return "generic";
  }
  return "unknown";
}

void set_plan_override(const PlanOverride* override_or_null) noexcept { g_override = override_or_null; }
const PlanOverride* plan_override() noexcept { return g_override; }

std::size_t partial_state_bytes(bool double_accumulation) noexcept {
  return double_accumulation ? math::kStoredMomentsBytes<double> : math::kStoredMomentsBytes<float>;
}

std::int64_t column_range_rows(const StatsPlan& p, std::int64_t wide_rows, DType dtype) {
  const std::int64_t rows = ceil_div(wide_rows, p.column_block_splits);
  if (p.vector_elems == 1) return rows;
  const std::int64_t batch = StatsPolicy::column_batch_rows_for(dtype_size(dtype)) * p.block_y;
  return ceil_div(rows, batch) * batch;
}

StatsPlan choose_stats_plan(const CanonicalGeometry& g, DType dtype, bool double_accumulation,
                            std::uintptr_t input_address, const DeviceInfo& device) {
  using P = StatsPolicy;
  const PlanOverride* force = g_override;
  const std::int64_t elem = static_cast<std::int64_t>(dtype_size(dtype));
  const int sms = std::max(device.sm_count, 1);
  StatsPlan p;

  if (g.pattern == Pattern::empty) {
    p.kernel = StatsKernel::empty;
    p.block_x = P::block_threads;
    p.grid_x = std::max<std::int64_t>(1, ceil_div(g.kept_numel, P::block_threads));
    return p;
  }
  // Four-axis generic patterns run the dedicated kernels with their extra loop (geometry.hpp).
  const bool segment_form = g.pattern == Pattern::segments || g.seg_outer > 1;
  const std::int64_t segments = g.seg_outer * g.seg_c;  // kept slices of a segment form
  StatsKernel kernel = StatsKernel::generic;
  if (segment_form) {
    // Longer rows too while a warp's lanes get at most segment_loads_per_lane vectors each and the rows
    // give every SM a block of warps: a block per row of 8192 bfloat16 had 4 loads a thread and paid a
    // block-wide merge per row (1.2 issue cycles an element, 34% modelled).
    // (Plain rows of at least two vectors only: sub-rows and scalar loads keep the block.)
    const std::int64_t row_loads = ceil_div(g.seg_a * g.seg_b, 16 / elem);
    const bool vector_rows = g.seg_a == 1 && g.seg_b >= 2 * (16 / elem) && !(force && force->vector_elems == 1);
    const bool warp_rows = g.seg_a * g.seg_b <= P::warp_segment_max ||
                           (vector_rows && row_loads <= 32 * P::segment_loads_per_lane &&
                            segments >= static_cast<std::int64_t>(sms) * (P::block_threads / 32));
    kernel = warp_rows ? StatsKernel::segment_warp : StatsKernel::segment_block;
  } else if ((g.pattern == Pattern::columns || g.col_row_blocks > 1) &&
             g.col_inner * (g.col_inner % (16 / elem) == 0 ? elem : 16) <= P::column_max_pitch_bytes) {
    // (A row of the column kernels holds inner * elem bytes, or with a fold of k rows - only where inner
    // is not a multiple of the vector - k * inner * elem <= 16 * inner.)
    kernel = StatsKernel::columns;
  }
  // Spans: channels-first segments (NCHW per-channel) whose sub-rows are at least a vector but not whole ones,
  // in rows of C x S values that are whole vectors, from a 16-byte aligned float input accumulated in float
  // (ResNet-50's 7 x 7 bfloat16 stage took 140 us in element-wise segment loads, 18% modelled, for a 67 MB input).
  if (segment_form && g.seg_outer == 1 && g.seg_a > 1 && !double_accumulation &&
      (dtype == DType::float32 || dtype == DType::float16 || dtype == DType::bfloat16) && input_address % 16 == 0 &&
      !(force && force->vector_elems == 1)) {
    const std::int64_t vec = 16 / elem, s = g.seg_b;
    const std::int64_t step = vec / std::gcd(s, vec);  // channels whose sub-rows' span is whole vectors
    const std::int64_t most = P::block_threads * vec / std::max<std::int64_t>(s, 1) / step * step;
    if (s % vec != 0 && s > vec && (g.seg_c * s) % vec == 0 && most >= step &&
        !(force && force->force_kernel && force->kernel != StatsKernel::spans)) {
      kernel = StatsKernel::spans;
    }
  }
  if (force && force->force_kernel && kernel != StatsKernel::spans) {
    // Segment kernels are interchangeable; any pattern may run the generic kernel.
    const bool segment_pair = (force->kernel == StatsKernel::segment_warp || force->kernel == StatsKernel::segment_block) &&
                              segment_form;
    if (segment_pair || force->kernel == StatsKernel::generic) kernel = force->kernel;
  }
  p.kernel = kernel;

  const int full_vector = static_cast<int>(16 / elem);
  const bool force_scalar = force && force->vector_elems == 1;
  switch (kernel) {
    case StatsKernel::segment_warp:
    case StatsKernel::segment_block: {
      const std::int64_t segment = g.seg_a * g.seg_b;
      // Rows shorter than two vectors spend more on realignment than they gain, unless every row starts
      // aligned (rows of 16 uint8 values: one 16-byte load each instead of 16 byte loads).
      const bool rows_aligned = g.seg_b % full_vector == 0 &&
                                input_address % static_cast<std::uintptr_t>(full_vector * elem) == 0;
      const bool vector_rows = g.seg_b >= 2 * full_vector || (g.seg_b >= full_vector && rows_aligned);
      p.vector_elems = (full_vector > 1 && vector_rows && !force_scalar) ? full_vector : 1;
      p.block_x = P::block_threads;
      const bool wide = double_accumulation || dtype == DType::float64;  // float64 input accumulates in float64
      if (kernel == StatsKernel::segment_warp) {
        p.splits = 1;
        const std::int64_t loads = ceil_div(segment, p.vector_elems);
        int lanes = 1;
        while (lanes < 32 && lanes * P::segment_loads_per_lane < loads) lanes *= 2;
        // ... but enough blocks to fill the GPU: fewer rows per warp when the rows are few.
        const std::int64_t min_blocks = static_cast<std::int64_t>(sms) * P::segment_warp_blocks_per_sm;
        while (lanes < 32 && 2 * lanes <= loads && ceil_div(segments, P::block_threads / lanes) < min_blocks) lanes *= 2;
        p.segment_lanes = (force && force->segment_lanes > 0) ? force->segment_lanes : lanes;
        // Smaller blocks when 256 threads' worth of rows spread unevenly over the SMs (rows of 3000 float16,
        // 8 lanes a row: 350 blocks' worth in 175 blocks of 2 rounds, the busiest SM 4 rounds against 2.65
        // on average, 66% modelled); the same warps resident per SM in more, smaller blocks.
        const int residency = P::segment_residency(false, p.vector_elems > 1, static_cast<std::size_t>(elem), wide);
        const auto balance = [&](int block) {
          return segment_grid_balance(ceil_div(segments, block / p.segment_lanes), sms,
                                      residency * (P::block_threads / block));
        };
        double best = balance(P::block_threads);
        for (int block = P::block_threads / 2; block >= P::min_segment_warp_block && best < P::min_grid_balance; block /= 2) {
          if (block < p.segment_lanes) break;
          const double b = balance(block);
          if (b > best + 1e-9) best = b, p.block_x = block;
        }
        p.grid_x = ceil_div(segments, p.block_x / p.segment_lanes);
      } else {
        const int residency = P::segment_residency(true, p.vector_elems > 1, static_cast<std::size_t>(elem), wide);
        const std::int64_t per_block_min = P::block_threads * p.vector_elems * P::min_loads_per_thread;
        const std::int64_t max_splits = std::max<std::int64_t>(1, segment / per_block_min);
        p.splits = wave_filling_splits(segments, max_splits, sms, residency);
        // Splits of whole sub-rows (segment_chunk) where they still fill most of a wave: NCHW with 7
        // channels took 113 splits a channel (2 waves), items cut across sub-rows, 79.5% modelled.
        const std::int64_t whole = std::min(max_splits, g.seg_a / kWholeSubRowsPerSplit);
        if (g.seg_a > 1 && whole >= 1) {
          const std::int64_t s = wave_filling_splits(segments, whole, sms, residency);
          if (wave_efficiency(segments * s, sms, residency) >= P::min_whole_sub_row_fill) p.splits = s;
        }
        p.grid_x = segments * p.splits;
      }
      const int group = kernel == StatsKernel::segment_warp ? p.segment_lanes : p.block_x;
      const std::int64_t sub_row_loads = ceil_div(g.seg_b, p.vector_elems);
      int sub_lanes = 1;
      while (sub_lanes < group && 2 * sub_lanes * P::segment_loads_per_sub_row <= sub_row_loads) sub_lanes *= 2;
      p.segment_sub_lanes = g.seg_a > 1 ? sub_lanes : group;
      break;
    }
    case StatsKernel::columns: {
      const int vec = std::min(full_vector, P::max_column_vector);
      const bool aligned = input_address % static_cast<std::uintptr_t>(vec * elem) == 0;
      p.vector_elems = 1;
      if (vec > 1 && aligned && !force_scalar) {
        if (g.col_inner % vec == 0) {
          p.vector_elems = vec;
        } else {
          // Fold k rows into one wide row of k * inner columns, a multiple of the vector width; every
          // outer slice must start aligned too.
          const std::int64_t k = vec / std::gcd<std::int64_t>(g.col_inner, vec);
          // (Not in row blocks: the rows a fold leaves over are read by the merge from one block only.)
          if (g.col_rows >= k && (g.col_outer == 1 || (g.col_rows * g.col_inner) % vec == 0) && g.col_row_blocks == 1) {
            p.vector_elems = vec;
            p.column_fold = k;
          }
        }
      }
      const std::int64_t wide_inner = g.col_inner * p.column_fold;
      const std::int64_t wide_rows = g.col_rows / p.column_fold;
      const std::int64_t threads_x = ceil_div(wide_inner, p.vector_elems);
      // Rows a split takes at least: min_loads_per_thread a thread row, min_partial_input_bytes a column.
      const auto min_split_rows = [&](std::int64_t by) {
        return std::max<std::int64_t>(by * P::min_loads_per_thread, ceil_div(P::min_partial_input_bytes, elem));
      };
      p.block_x = static_cast<int>(std::min<std::int64_t>(32, threads_x));
      p.block_y = floor_pow2(P::block_threads / p.block_x);
      if (threads_x > 32) {
        // Blocks 32 threads across leave the last one mostly idle when the row is a little over a multiple
        // of 32 threads (129 float32 columns fold into 129 threads: 5 blocks across, the fifth with one
        // busy lane a warp, whose loop costs a whole warp's issue: 72% modelled; 26 across in 5 blocks, with
        // whole waves of splits: 84.7%). Blocks whose warps run on across rows (still contiguous) waste less.
        const auto height = [&](std::int64_t bx) { return static_cast<std::int64_t>(floor_pow2(static_cast<int>(P::block_threads / bx))); };
        const auto lane_waste = [&](std::int64_t bx) {
          const std::int64_t by = height(bx);
          return static_cast<double>(ceil_div(threads_x, bx) * ceil_div(bx * by, 32) * 32) / static_cast<double>(threads_x * by);
        };
        // (Only widths whose grid fills the GPU as well as 32 across: fewer blocks across mean fewer blocks,
        // and the splits of a few rows stop at min_partial_input_bytes; 300 float32 columns 75 across: 109
        // blocks of 150 threads, 5 warps an SM, 54% modelled.)
        const auto max_blocks = [&](std::int64_t bx) {
          const std::int64_t max_splits = wide_rows * g.col_row_blocks / min_split_rows(height(bx));
          return ceil_div(threads_x, bx) * g.col_outer * std::max<std::int64_t>(max_splits, 1);
        };
        const std::int64_t wanted = std::min(static_cast<std::int64_t>(sms) * P::target_blocks_per_sm, max_blocks(32));
        const auto fills = [&](std::int64_t bx) { return max_blocks(bx) >= wanted; };
        double best = lane_waste(32);
        if (best > P::max_column_lane_waste) {
          for (std::int64_t across = 1; across <= ceil_div(threads_x, 32); ++across) {
            const std::int64_t bx = ceil_div(threads_x, across);
            if (bx > P::block_threads || !fills(bx)) continue;
            const double waste = lane_waste(bx);
            if (waste < best - 1e-9) best = waste, p.block_x = static_cast<int>(bx);
          }
          p.block_y = floor_pow2(P::block_threads / p.block_x);
        }
      }
      while (p.block_y > 1 && p.block_y * wide_inner * elem > P::column_max_pitch_bytes) p.block_y /= 2;
      p.grid_x = ceil_div(threads_x, p.block_x);
      p.grid_z = std::min<std::int64_t>(g.col_outer, 65535);
      // (The block parks its wide row's states in the tree's shared memory: block_y / 2 rows of them.)
      p.column_fold_in_block = p.column_fold > 1 && p.grid_x == 1 && p.block_y >= 2 && !(force && force->fold_in_merge);
      // Row blocks (geometry.hpp) are walked by the threads of a split, one after the other: the rows of
      // every block are one column to them.
      const std::int64_t blocks = p.grid_x * g.col_outer;
      // Splits that fill whole waves (ceil(264 / 5) = 53 splits of 5 blocks across ran 265 blocks: a third
      // block on one SM, two waves; 52 run one).
      p.splits = wave_filling_splits(blocks, std::max<std::int64_t>(1, wide_rows * g.col_row_blocks / min_split_rows(p.block_y)),
                                     sms, P::target_blocks_per_sm);
      // Tree merge over block_y: the upper half of the rows parks its states while the lower half merges.
      p.shared_bytes = static_cast<std::size_t>(std::max(p.block_y / 2, 1)) * p.block_x * p.vector_elems *
                       partial_state_bytes(double_accumulation);
      break;
    }
    case StatsKernel::spans: {
      const std::int64_t vec = 16 / elem, s = g.seg_b;
      const std::int64_t step = vec / std::gcd(s, vec);
      const std::int64_t most = P::block_threads * vec / s / step * step;
      p.vector_elems = static_cast<int>(vec);
      p.span_channels = std::min(most, ceil_div(g.seg_c, step) * step);
      p.span_tiles = ceil_div(g.seg_c, p.span_channels);
      p.block_x = static_cast<int>(ceil_div(p.span_channels * s / vec, 32) * 32);
      // Parts of the samples that fill whole waves of resident blocks, each at least min_span_rows_per_part
      // samples and within LocalMoments' float counts (a thread's position counts its part's samples).
      const std::int64_t max_parts = std::max<std::int64_t>(1, g.seg_a / P::min_span_rows_per_part);
      std::int64_t parts = wave_filling_splits(p.span_tiles, max_parts, sms, P::span_residency);
      if (force && force->splits > 0) parts = force->splits;
      // (a part's values within LocalMoments' float counts: at most kLocalMomentsMaxValues / S samples)
      p.span_rows_per_part = std::min(ceil_div(g.seg_a, std::clamp<std::int64_t>(parts, 1, g.seg_a)), math::kLocalMomentsMaxValues / s);
      p.splits = ceil_div(g.seg_a, p.span_rows_per_part);
      p.grid_x = p.span_tiles * p.splits;
      break;
    }
    case StatsKernel::generic:
      p.vector_elems = 1;
      p.block_x = P::block_threads;
      p.grid_x = g.kept_numel;
      p.splits = 1;
      break;
    case StatsKernel::empty:
      break;
  }
  if (force && force->splits > 0 && kernel != StatsKernel::segment_warp && kernel != StatsKernel::generic && kernel != StatsKernel::spans) {
    p.splits = force->splits;
    if (kernel == StatsKernel::segment_block) p.grid_x = segments * p.splits;
  }
  if (kernel == StatsKernel::segment_warp && force && force->splits > 0) {
    p.splits = force->splits;
    p.grid_x = ceil_div(segments * p.splits, p.block_x / p.segment_lanes);
  }
  // Main kernels count in Acc (LocalMoments): no partial state may summarise more than
  // kLocalMomentsMaxValues values.
  if (kernel == StatsKernel::columns) {
    // Splits over row blocks first (a span of whole blocks each), then over the rows of each block; a
    // split's rows (span x rows per range) within the count limit.
    const std::int64_t rows = g.col_rows / p.column_fold, row_blocks = g.col_row_blocks;
    if (p.splits <= row_blocks) {
      p.column_block_span = ceil_div(row_blocks, p.splits);
      p.column_block_splits = 1;
    } else {
      p.column_block_span = 1;
      p.column_block_splits = ceil_div(p.splits, row_blocks);
    }
    // (Ranges rounded to whole batches, column_range_rows, stay within the limit: it is a multiple of every
    // batch. Spans are 1 whenever a block's rows are split, so a span's rows are span x rows.)
    // A fold merged in the block makes each partial k times a range: the limit per range is k times lower.
    const std::int64_t max_values = math::kLocalMomentsMaxValues / (p.column_fold_in_block ? p.column_fold : 1);
    p.column_block_splits = std::max(p.column_block_splits, ceil_div(rows, max_values));
    const std::int64_t range_rows = ceil_div(rows, p.column_block_splits);
    p.column_block_span = std::clamp<std::int64_t>(p.column_block_span, 1, std::max<std::int64_t>(1, max_values / std::max<std::int64_t>(range_rows, 1)));
    // A grid y of at most 65535 splits (wider spans; the count limit could only bind past 2^40 rows).
    const std::int64_t max_groups = std::max<std::int64_t>(1, kMaxGridY / p.column_block_splits);
    p.column_block_span = std::max(p.column_block_span, ceil_div(row_blocks, max_groups));
    p.splits = ceil_div(row_blocks, p.column_block_span) * p.column_block_splits;
    p.grid_y = p.splits;
  } else if (kernel == StatsKernel::segment_block) {
    p.splits = std::max(p.splits, ceil_div(g.seg_a * g.seg_b, math::kLocalMomentsMaxValues));
    p.grid_x = segments * p.splits;
  } else if (kernel == StatsKernel::segment_warp && g.seg_a * g.seg_b > math::kLocalMomentsMaxValues) {
    // (only when forced onto long segments; its 32-bit indices rely on this bound too)
    p.splits = std::max(p.splits, ceil_div(g.seg_a * g.seg_b, math::kLocalMomentsMaxValues));
    p.grid_x = ceil_div(segments * p.splits, p.block_x / p.segment_lanes);
  }
  // (after the forced splits: a split row is not a short row)
  p.segment_short_rows = kernel == StatsKernel::segment_warp && p.vector_elems > 1 && p.segment_lanes == 1 && p.splits == 1 &&
                         g.seg_a == 1 && g.seg_b % p.vector_elems == 0 && g.seg_b / p.vector_elems <= P::short_row_vectors &&
                         input_address % 16 == 0 && segments <= (std::int64_t{1} << 30);
  // Segment kernels stride over their work items: a grid of at most one wave of resident blocks, each
  // taking an equal number of rounds, pays the prologue once per block rather than once per 256 rows.
  if (kernel == StatsKernel::segment_warp || kernel == StatsKernel::segment_block) {
    const bool wide = double_accumulation || dtype == DType::float64;
    const int residency = P::segment_residency(kernel == StatsKernel::segment_block, p.vector_elems > 1,
                                               static_cast<std::size_t>(elem), wide);
    // (smaller segment_warp blocks: as many more of them resident)
    p.grid_x = whole_wave_grid(p.grid_x, static_cast<std::int64_t>(sms) * residency * (P::block_threads / p.block_x));
  }
  if (uses_partials(p)) {
    const std::int64_t stored_fold = merged_fold(p);
    const std::int64_t per_slice = p.splits * stored_fold;
    int lanes = 1;
    while (lanes < P::merge_max_block && lanes * P::merge_partials_per_lane < per_slice) lanes *= 2;
    p.merge_lanes = lanes;
    // (a forced count must be a power of two <= merge_max_block, as the merge kernel assumes)
    const int forced = force ? force->merge_lanes : 0;
    if (forced > 0 && (forced & (forced - 1)) == 0 && forced <= P::merge_max_block) p.merge_lanes = forced;
    if (p.merge_lanes > 32) {
      p.merge_block = p.merge_lanes;  // a block per slice
    } else {
      const std::int64_t merge_warps = ceil_div(g.kept_numel * p.merge_lanes, 32);
      const std::int64_t warps_per_block = std::clamp<std::int64_t>(merge_warps / sms, 1, P::merge_max_block / 32);
      p.merge_block = static_cast<int>(32 * warps_per_block);
    }
    // Values behind one partial, a lane's partials and a whole slice, against LocalMoments' float counts.
    const std::int64_t slice_values = kernel == StatsKernel::columns ? g.col_rows * g.col_row_blocks : g.seg_a * g.seg_b;
    const std::int64_t per_partial = kernel == StatsKernel::columns
                                         ? column_range_rows(p, g.col_rows / p.column_fold, dtype) * p.column_block_span *
                                               (p.column_fold / stored_fold)
                                         : kernel == StatsKernel::spans ? p.span_rows_per_part * g.seg_b
                                                                        : segment_chunk(g.seg_a, g.seg_b, p.splits);
    p.merge_lane_local = ceil_div(per_slice, p.merge_lanes) * per_partial <= math::kLocalMomentsMaxValues;
    p.merge_slice_local = slice_values <= math::kLocalMomentsMaxValues;
    p.merge_lane_local = p.merge_lane_local || p.merge_slice_local;
    if (force && force->merge_counts == MergeCounts::lane_local) p.merge_slice_local = false;
    if (force && force->merge_counts == MergeCounts::wide) p.merge_lane_local = p.merge_slice_local = false;
    // One state per (split, kept slice), or per (split, wide column) for columns folded by the merge.
    const std::size_t raw = static_cast<std::size_t>(g.kept_numel) * static_cast<std::size_t>(stored_fold) *
                            static_cast<std::size_t>(p.splits) * partial_state_bytes(double_accumulation);
    p.workspace_bytes = (raw + 255) / 256 * 256;
  }
  return p;
}

}  // namespace normkit::plan
