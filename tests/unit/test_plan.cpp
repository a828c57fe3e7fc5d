// Canonical geometry and kernel plans: pure host functions.
#include <gtest/gtest.h>

#include <tuple>
#include <vector>

#include "plan/geometry.hpp"
#include "plan/apply_plan.hpp"
#include "plan/stats_plan.hpp"
#include "math/moments.hpp"

using namespace normkit;
using namespace normkit::plan;

namespace {

CanonicalGeometry geometry(std::vector<std::int64_t> shape, ReduceAxes axes) {
  bool reduced[kMaxDims];
  EXPECT_TRUE(resolve_axes(static_cast<int>(shape.size()), axes, reduced, "test").ok());
  return canonicalize(shape.data(), static_cast<int>(shape.size()), reduced);
}

}  // namespace

TEST(Geometry, Patterns) {
  auto g = geometry({8, 1024}, ReduceAxes::of({1}));  // per-sample rows
  EXPECT_EQ(g.pattern, Pattern::segments);
  EXPECT_EQ(g.seg_a, 1);
  EXPECT_EQ(g.seg_c, 8);
  EXPECT_EQ(g.seg_b, 1024);

  g = geometry({1000, 16}, ReduceAxes::of({0}));  // per-feature columns
  EXPECT_EQ(g.pattern, Pattern::columns);
  EXPECT_EQ(g.col_outer, 1);
  EXPECT_EQ(g.col_rows, 1000);
  EXPECT_EQ(g.col_inner, 16);

  g = geometry({4, 5, 6, 3}, ReduceAxes::of({0, 1, 2}));  // NHWC per-channel collapses to columns
  EXPECT_EQ(g.pattern, Pattern::columns);
  EXPECT_EQ(g.col_rows, 120);
  EXPECT_EQ(g.col_inner, 3);

  g = geometry({4, 3, 5, 6}, ReduceAxes::of({0, 2, 3}));  // NCHW per-channel: middle kept
  EXPECT_EQ(g.pattern, Pattern::segments);
  EXPECT_EQ(g.seg_a, 4);
  EXPECT_EQ(g.seg_c, 3);
  EXPECT_EQ(g.seg_b, 30);

  g = geometry({4, 3, 5}, ReduceAxes::every());  // global
  EXPECT_EQ(g.pattern, Pattern::segments);
  EXPECT_EQ(g.seg_c, 1);
  EXPECT_EQ(g.seg_b, 60);

  g = geometry({4, 3, 5, 6}, ReduceAxes::of({0, 2}));  // NCHW axes 0, 2: generic
  EXPECT_EQ(g.pattern, Pattern::generic);
  EXPECT_EQ(g.kept.ndim, 2);
  EXPECT_EQ(g.reduced.ndim, 2);
  EXPECT_EQ(g.kept.stride[0], 30);  // C
  EXPECT_EQ(g.kept.stride[1], 1);   // W
  EXPECT_EQ(g.reduced.stride[0], 90);  // N
  EXPECT_EQ(g.reduced.stride[1], 6);   // H
  EXPECT_EQ(g.seg_outer, 1);  // reduced, kept, reduced, kept: no segment form

  g = geometry({4, 3, 5, 6}, ReduceAxes::of({1, 3}));  // kept, reduced, kept, reduced: outer segments
  EXPECT_EQ(g.pattern, Pattern::generic);
  EXPECT_EQ(g.seg_outer, 4);
  EXPECT_EQ(g.seg_a, 3);
  EXPECT_EQ(g.seg_c, 5);
  EXPECT_EQ(g.seg_b, 6);

  g = geometry({2, 3, 4, 5, 6}, ReduceAxes::of({0, 2, 4}));  // five alternating axes: generic only
  EXPECT_EQ(g.pattern, Pattern::generic);
  EXPECT_EQ(g.seg_outer, 1);
  EXPECT_EQ(g.col_row_blocks, 1);

  g = geometry({7, 3, 5, 6}, ReduceAxes::of({0, 2}));  // reduced, kept, reduced, kept: columns in row blocks
  EXPECT_EQ(g.pattern, Pattern::generic);
  EXPECT_EQ(g.col_row_blocks, 7);
  EXPECT_EQ(g.col_outer, 3);
  EXPECT_EQ(g.col_rows, 5);
  EXPECT_EQ(g.col_inner, 6);
  EXPECT_EQ(g.seg_outer, 1);

  g = geometry({2, 3, 4}, ReduceAxes::of({1}));  // outer and inner kept: batched columns
  EXPECT_EQ(g.pattern, Pattern::columns);
  EXPECT_EQ(g.col_outer, 2);
  EXPECT_EQ(g.col_rows, 3);
  EXPECT_EQ(g.col_inner, 4);

  g = geometry({1, 7, 1}, ReduceAxes::of({0, 2}));  // extent-1 axes vanish: nothing is reduced
  EXPECT_EQ(g.pattern, Pattern::columns);
  EXPECT_EQ(g.col_rows, 1);
  EXPECT_EQ(g.kept_numel, 7);

  g = geometry({3, 0, 2}, ReduceAxes::of({1}));
  EXPECT_EQ(g.pattern, Pattern::empty);
  EXPECT_EQ(g.kept_numel, 6);
}

TEST(Geometry, AxisErrors) {
  bool reduced[kMaxDims];
  EXPECT_EQ(resolve_axes(2, ReduceAxes::of({2}), reduced, "op").code(), StatusCode::invalid_argument);
  EXPECT_EQ(resolve_axes(2, ReduceAxes::of({-3}), reduced, "op").code(), StatusCode::invalid_argument);
  const Status dup = resolve_axes(3, ReduceAxes::of({1, -2}), reduced, "op");
  EXPECT_EQ(dup.code(), StatusCode::invalid_argument);
  EXPECT_NE(dup.message().find("repeated"), std::string::npos) << dup.message();
  EXPECT_TRUE(resolve_axes(3, ReduceAxes::of({-1, 0}), reduced, "op").ok());
  EXPECT_TRUE(reduced[0] && !reduced[1] && reduced[2]);
}

TEST(Plan, SegmentThresholds) {
  const DeviceInfo h100{132};
  auto g = geometry({1000, 4096}, ReduceAxes::of({1}));
  auto p = choose_stats_plan(g, DType::float32, false, 0, h100);
  EXPECT_EQ(p.kernel, StatsKernel::segment_warp);
  EXPECT_EQ(p.vector_elems, 4);
  EXPECT_EQ(p.splits, 1);
  g = geometry({1000, 4097}, ReduceAxes::of({1}));
  p = choose_stats_plan(g, DType::float32, false, 0, h100);
  EXPECT_EQ(p.kernel, StatsKernel::segment_block);
  EXPECT_EQ(p.splits, 1);  // 1000 rows fill 528 block slots
  g = geometry({4, 1 << 22}, ReduceAxes::of({1}));  // few very long rows: split across blocks
  p = choose_stats_plan(g, DType::float16, false, 0, h100);
  EXPECT_EQ(p.kernel, StatsKernel::segment_block);
  EXPECT_EQ(p.vector_elems, 8);
  EXPECT_EQ(p.splits, 66);  // 2 float16 blocks resident per SM: one wave of 264
  EXPECT_EQ(p.grid_x, 2 * 132);
  EXPECT_EQ(p.workspace_bytes % 256, 0u);
  EXPECT_GE(p.workspace_bytes, 2 * 132 * partial_state_bytes(false));
  g = geometry({100, 16}, ReduceAxes::of({1}));  // rows of one vector: vector loads when they start aligned
  EXPECT_EQ(choose_stats_plan(g, DType::uint8, false, 0, h100).vector_elems, 16);
  EXPECT_EQ(choose_stats_plan(g, DType::uint8, false, 8, h100).vector_elems, 1);
  g = geometry({100, 24}, ReduceAxes::of({1}));
  EXPECT_EQ(choose_stats_plan(g, DType::uint8, false, 0, h100).vector_elems, 1);  // every other row misaligned
  g = geometry({100, 7}, ReduceAxes::of({1}));  // short rows: scalar
  EXPECT_EQ(choose_stats_plan(g, DType::float32, false, 0, h100).vector_elems, 1);
}

TEST(Plan, Columns) {
  const DeviceInfo h100{132};
  auto g = geometry({1 << 20, 256}, ReduceAxes::of({0}));
  auto p = choose_stats_plan(g, DType::float32, false, 0, h100);
  EXPECT_EQ(p.kernel, StatsKernel::columns);
  EXPECT_EQ(p.vector_elems, 4);
  EXPECT_EQ(p.block_x, 32);
  EXPECT_EQ(p.block_y, 8);
  EXPECT_EQ(p.grid_x, 2);
  EXPECT_EQ(p.splits, 132);  // 264 target blocks (2 per SM) / 2 column blocks
  EXPECT_EQ(p.grid_y, p.splits);
  // Misaligned base pointer or a width not multiple of the vector: scalar.
  EXPECT_EQ(choose_stats_plan(g, DType::float32, false, 4, h100).vector_elems, 1);
  g = geometry({1000, 3}, ReduceAxes::of({0}));  // NHWC RGB: 4 rows fold into 12 wide columns
  p = choose_stats_plan(g, DType::uint8, false, 0, h100);
  EXPECT_EQ(p.vector_elems, 4);
  EXPECT_EQ(p.column_fold, 4);
  EXPECT_EQ(p.block_x, 3);
  EXPECT_EQ(p.block_y, 64);  // power of two for the tree merge
  EXPECT_EQ(p.shared_bytes, 32u * 3 * 4 * partial_state_bytes(false));
  EXPECT_TRUE(uses_partials(p));
  // The block folds the 4 wide columns of each channel (its wide row fits one block): one partial per
  // (split, channel).
  EXPECT_TRUE(p.column_fold_in_block);
  EXPECT_GE(p.workspace_bytes, 3 * p.splits * partial_state_bytes(false));
  EXPECT_LT(p.workspace_bytes, 3 * p.splits * partial_state_bytes(false) + 256);  // (not sized for 4 a channel)
  {
    PlanOverride o;
    o.fold_in_merge = true;
    set_plan_override(&o);
    const StatsPlan merged = choose_stats_plan(g, DType::uint8, false, 0, h100);
    set_plan_override(nullptr);
    EXPECT_EQ(merged.column_fold, 4);
    EXPECT_FALSE(merged.column_fold_in_block);
    EXPECT_GE(merged.workspace_bytes, 3 * 4 * merged.splits * partial_state_bytes(false));
  }
  // 33 float32 columns fold into 132 wide ones, 33 threads: one block 33 threads across (32 across left
  // the second block's warps one busy lane each), 4 rows of them, folding in the block.
  p = choose_stats_plan(geometry({1 << 20, 33}, ReduceAxes::of({0})), DType::float32, false, 0, h100);
  EXPECT_EQ(p.column_fold, 4);
  EXPECT_EQ(p.block_x, 33);
  EXPECT_EQ(p.block_y, 4);
  EXPECT_EQ(p.grid_x, 1);
  EXPECT_TRUE(p.column_fold_in_block);
  // 129 columns: 129 threads, 26 across in 5 blocks of 8 rows (7 warps for 208 threads: 8.5% idle lanes,
  // against 24% at 32 across); 1025 columns: 1025 threads, 32 across is 3% idle. Several blocks across:
  // the merge kernel folds.
  p = choose_stats_plan(geometry({1 << 20, 129}, ReduceAxes::of({0})), DType::float32, false, 0, h100);
  EXPECT_EQ(p.block_x, 26);
  EXPECT_EQ(p.block_y, 8);
  EXPECT_EQ(p.grid_x, 5);
  EXPECT_FALSE(p.column_fold_in_block);
  EXPECT_EQ(p.splits, 105);  // 525 blocks: two whole waves of 2 an SM (ceil(264 / 5) = 53: 265, one block over)
  // 300 columns, 75 threads: 75 or 38 across would leave fewer blocks than the GPU holds (the splits
  // stop at 2 KB of input a partial); 25 across fills it with 12% idle lanes (32 across: 28%).
  p = choose_stats_plan(geometry({55924, 300}, ReduceAxes::of({0})), DType::float32, false, 0, h100);
  EXPECT_EQ(p.block_x, 25);
  EXPECT_EQ(p.grid_x * p.splits, 3 * 88);
  // (the device tests' 70 x 37 columns: 37 threads, 19 across in 2 blocks of 8 rows)
  p = choose_stats_plan(geometry({70, 37}, ReduceAxes::of({0})), DType::float32, false, 0, h100);
  EXPECT_EQ(p.block_x, 19);
  EXPECT_EQ(p.block_y, 8);
  p = choose_stats_plan(geometry({1000, 1025}, ReduceAxes::of({0})), DType::float32, false, 0, h100);
  EXPECT_EQ(p.column_fold, 4);
  EXPECT_EQ(p.block_x, 32);
  EXPECT_EQ(p.grid_x, 33);
  EXPECT_FALSE(p.column_fold_in_block);
  // Misaligned: no fold, scalar loads, no partials when the grid is full enough.
  p = choose_stats_plan(g, DType::uint8, false, 1, h100);
  EXPECT_EQ(p.vector_elems, 1);
  EXPECT_EQ(p.column_fold, 1);
  // Splits keep at least 2 KB of input per partial state.
  g = geometry({4096, 256}, ReduceAxes::of({0}));
  p = choose_stats_plan(g, DType::float32, false, 0, h100);
  EXPECT_EQ(p.splits, 4096 / 512);
}

// The column kernels address a batch's rows from a 32-bit byte pitch: block_y rows stay under 2^31 bytes,
// and rows longer than that go to the generic kernel.
TEST(Plan, ColumnPitchFitsInt32) {
  const DeviceInfo h100{132};
  const auto pitch_bytes = [](const StatsPlan& p, std::int64_t inner, std::int64_t elem) {
    return p.block_y * inner * p.column_fold * elem;
  };
  // 8 rows of 2^26 float32 columns would span 2^31 bytes: 4 rows a block.
  std::int64_t inner = std::int64_t{1} << 26;
  auto p = choose_stats_plan(geometry({4, inner}, ReduceAxes::of({0})), DType::float32, false, 0, h100);
  EXPECT_EQ(p.kernel, StatsKernel::columns);
  EXPECT_EQ(p.block_y, 4);
  EXPECT_LE(pitch_bytes(p, inner, 4), StatsPolicy::column_max_pitch_bytes);
  // Just under the limit: 8 rows of (2^31 - 1) / 64 float32 columns.
  inner = StatsPolicy::column_max_pitch_bytes / 64 / 4 * 4;
  p = choose_stats_plan(geometry({4, inner}, ReduceAxes::of({0})), DType::float32, false, 0, h100);
  EXPECT_EQ(p.block_y, 8);
  EXPECT_LE(pitch_bytes(p, inner, 4), StatsPolicy::column_max_pitch_bytes);
  // A row of 2^31 bytes: the generic kernel; one of 2^29 uint8 columns (a multiple of the vector) still
  // fits one thread row.
  p = choose_stats_plan(geometry({2, std::int64_t{1} << 31}, ReduceAxes::of({0})), DType::uint8, false, 0, h100);
  EXPECT_EQ(p.kernel, StatsKernel::generic);
  inner = std::int64_t{1} << 29;
  p = choose_stats_plan(geometry({2, inner}, ReduceAxes::of({0})), DType::uint8, false, 0, h100);
  EXPECT_EQ(p.kernel, StatsKernel::columns);
  EXPECT_LE(pitch_bytes(p, inner, 1), StatsPolicy::column_max_pitch_bytes);
  // Not a multiple of the vector (a fold may make a row 16 bytes a column): 2^27 - 1 columns fit, 2^27 + 1
  // do not.
  inner = (std::int64_t{1} << 27) - 1;
  p = choose_stats_plan(geometry({2, inner}, ReduceAxes::of({0})), DType::float64, false, 0, h100);
  EXPECT_EQ(p.kernel, StatsKernel::columns);
  EXPECT_LE(pitch_bytes(p, inner, 8), StatsPolicy::column_max_pitch_bytes);
  p = choose_stats_plan(geometry({2, inner + 2}, ReduceAxes::of({0})), DType::uint8, false, 0, h100);
  EXPECT_EQ(p.kernel, StatsKernel::generic);
}

TEST(Plan, OverrideForcesKernelVectorAndSplits) {
  const DeviceInfo info{4};
  auto g = geometry({3, 5000}, ReduceAxes::of({1}));
  PlanOverride force;
  force.force_kernel = true;
  force.kernel = StatsKernel::segment_warp;
  force.splits = 3;
  force.vector_elems = 1;
  set_plan_override(&force);
  auto p = choose_stats_plan(g, DType::float32, false, 0, info);
  EXPECT_EQ(p.kernel, StatsKernel::segment_warp);
  EXPECT_EQ(p.splits, 3);
  EXPECT_EQ(p.vector_elems, 1);
  EXPECT_GT(p.workspace_bytes, 0u);
  force.kernel = StatsKernel::generic;
  p = choose_stats_plan(g, DType::float32, false, 0, info);
  EXPECT_EQ(p.kernel, StatsKernel::generic);
  EXPECT_EQ(p.splits, 1);
  force.kernel = StatsKernel::columns;  // not applicable to segments: ignored
  p = choose_stats_plan(g, DType::float32, false, 0, info);
  EXPECT_EQ(p.kernel, StatsKernel::segment_block);
  set_plan_override(nullptr);
}

TEST(ApplyPlan, SpansOfShortOddRows) {
  // ResNet-50's 7 x 7 stage, NCHW bfloat16, per channel: tiles of 40 rows of 49 (245 vectors of 8).
  const auto g = geometry({334, 2048, 7, 7}, ReduceAxes::of({0, 2, 3}));
  ApplyPlan p = choose_apply_plan(g, DType::bfloat16, DType::bfloat16, 0, 0, 132);
  EXPECT_EQ(p.kernel, ApplyKernel::spans);
  EXPECT_EQ(p.span_rows, 40);
  EXPECT_EQ(p.span_packs, 245);
  EXPECT_EQ(p.span_tiles, (334 * 2048 + 39) / 40);
  EXPECT_EQ(p.block_x, 256);
  EXPECT_EQ(p.period, 2048);
  // Different element sizes, uint8 input, misaligned pointers, forced scalar accesses, or rows whose total is
  // not whole vectors: the rows walk.
  EXPECT_EQ(choose_apply_plan(g, DType::bfloat16, DType::float32, 0, 0, 132).kernel, ApplyKernel::rows);
  EXPECT_EQ(choose_apply_plan(g, DType::uint8, DType::float16, 0, 0, 132).kernel, ApplyKernel::rows);
  EXPECT_EQ(choose_apply_plan(g, DType::bfloat16, DType::bfloat16, 2, 0, 132).kernel, ApplyKernel::rows);
  EXPECT_EQ(choose_apply_plan(geometry({3, 3, 7, 7}, ReduceAxes::of({0, 2, 3})), DType::bfloat16, DType::bfloat16, 0, 0, 132).kernel,
            ApplyKernel::rows);  // (9 x 49 values: not whole vectors of 8)
  const ApplyOverride scalar{false, true, 0};
  set_apply_override(&scalar);
  EXPECT_EQ(choose_apply_plan(g, DType::bfloat16, DType::bfloat16, 0, 0, 132).kernel, ApplyKernel::rows);
  set_apply_override(nullptr);
}

TEST(StatsPlan, SpansOfShortOddSubRows) {
  // The same shape's per-channel statistics: tiles of 40 channels (245 vectors), parts of the samples in whole
  // waves, each at least 8 samples.
  const auto g = geometry({334, 2048, 7, 7}, ReduceAxes::of({0, 2, 3}));
  DeviceInfo info;
  StatsPlan p = choose_stats_plan(g, DType::bfloat16, false, 0, info);
  EXPECT_EQ(p.kernel, StatsKernel::spans);
  EXPECT_EQ(p.span_channels, 40);
  EXPECT_EQ(p.span_tiles, 52);
  EXPECT_EQ(p.block_x, 256);
  EXPECT_GE(p.span_rows_per_part, StatsPolicy::min_span_rows_per_part);
  EXPECT_EQ(p.splits, (334 + p.span_rows_per_part - 1) / p.span_rows_per_part);
  EXPECT_EQ(p.grid_x, 52 * p.splits);
  EXPECT_EQ(p.workspace_bytes, (static_cast<std::size_t>(2048) * p.splits * 48 + 255) / 256 * 256);
  // float64 accumulation, uint8, misaligned input, forced scalar loads and odd totals keep the segment kernels.
  EXPECT_NE(choose_stats_plan(g, DType::bfloat16, true, 0, info).kernel, StatsKernel::spans);
  EXPECT_NE(choose_stats_plan(g, DType::uint8, false, 0, info).kernel, StatsKernel::spans);
  EXPECT_NE(choose_stats_plan(g, DType::bfloat16, false, 2, info).kernel, StatsKernel::spans);
  EXPECT_NE(choose_stats_plan(geometry({3, 3, 7, 7}, ReduceAxes::of({0, 2, 3})), DType::bfloat16, false, 0, info).kernel, StatsKernel::spans);
  PlanOverride force;
  force.force_kernel = true;
  force.kernel = StatsKernel::segment_block;
  set_plan_override(&force);
  EXPECT_EQ(choose_stats_plan(g, DType::bfloat16, false, 0, info).kernel, StatsKernel::segment_block);
  force.kernel = StatsKernel::spans;
  force.splits = 3;
  EXPECT_EQ(choose_stats_plan(g, DType::bfloat16, false, 0, info).splits, 3);
  set_plan_override(nullptr);
}

TEST(ApplyPlan, WalksVectorsAndFolds) {
  auto g = geometry({64, 4096}, ReduceAxes::of({1}));  // per-sample rows
  auto p = choose_apply_plan(g, DType::float16, DType::float16, 0, 0, 132);
  EXPECT_EQ(p.kernel, ApplyKernel::rows);
  EXPECT_EQ(p.vector_elems, 8);
  EXPECT_EQ(p.chunks, 1);  // 512 packs per chunk
  EXPECT_EQ(p.group_lanes, 32);
  EXPECT_EQ(p.period, 1);  // kept index = row: no remainder
  EXPECT_EQ(p.repeat, 1);
  // Short rows: a lane group per row, the smallest power of two covering its packs (or elements).
  for (auto [length, in, lanes] : std::vector<std::tuple<int, DType, int>>{{16, DType::float32, 4}, {12, DType::float32, 4}, {17, DType::float32, 8},
                                   {64, DType::float16, 8}, {16, DType::uint8, 2}, {2, DType::float32, 2}, {3, DType::float32, 4},
                                   {5, DType::float32, 8}, {128, DType::float32, 32}, {124, DType::float32, 32}}) {
    g = geometry({1000, length}, ReduceAxes::of({1}));
    const DType out = in == DType::uint8 ? DType::float16 : in;
    p = choose_apply_plan(g, in, out, 0, 0, 132);
    if (p.kernel == ApplyKernel::spans) {
      // (rows of 17 and 5 float32: at least a vector, not whole ones: tiles of rows whose span is whole vectors)
      EXPECT_TRUE(length % 4 != 0 && length > 4 && in == DType::float32) << "rows of " << length;
      EXPECT_EQ(p.span_rows * length % 4, 0) << "rows of " << length;
      EXPECT_EQ(p.span_packs, p.span_rows * length / 4);
      EXPECT_LE(p.span_packs, 256);
      continue;
    }
    EXPECT_EQ(p.group_lanes, lanes) << "rows of " << length << " " << dtype_name(in);
    // Whole aligned vectors a row, at most a group of them: one vector a lane.
    EXPECT_EQ(p.aligned_short_rows, length % p.vector_elems == 0 && p.vector_elems > 1 && length / p.vector_elems <= 32)
        << "rows of " << length;
    // A group per row, or per two rows where float32 aligned short rows take two a trip.
    const int per_trip = p.aligned_short_rows && in == DType::float32 ? 2 : 1;
    EXPECT_EQ(p.rows_per_trip, per_trip) << "rows of " << length;
    const int rows_per_block = 256 / lanes * per_trip;
    EXPECT_EQ(p.grid_x, (1000 + rows_per_block - 1) / rows_per_block) << "rows of " << length;
  }
  // Two rows a trip only where the kernel computes in float (not to float64).
  EXPECT_EQ(choose_apply_plan(geometry({1000, 16}, ReduceAxes::of({1})), DType::float32, DType::float16, 0, 0, 132).rows_per_trip, 2);
  EXPECT_EQ(choose_apply_plan(geometry({1000, 16}, ReduceAxes::of({1})), DType::float32, DType::float64, 0, 0, 132).rows_per_trip, 1);
  EXPECT_TRUE(choose_apply_plan(geometry({1000, 16}, ReduceAxes::of({1})), DType::float32, DType::float32, 16, 32, 132)
                  .aligned_short_rows);
  p = choose_apply_plan(geometry({1000, 16}, ReduceAxes::of({1})), DType::float32, DType::float32, 4, 4, 132);
  EXPECT_EQ(p.vector_elems, 4);  // same phase: vectors after a head of 3 ...
  EXPECT_FALSE(p.aligned_short_rows);  // ... but not from the row's start
  EXPECT_FALSE(choose_apply_plan(geometry({1000, 256}, ReduceAxes::of({1})), DType::float32, DType::float32, 0, 0, 132)
                   .aligned_short_rows);  // 64 vectors: a warp walks the row
  g = geometry({1000, 16}, ReduceAxes::of({1}));  // scalar (forced by the phases): 16 elements, 16 lanes
  EXPECT_EQ(choose_apply_plan(g, DType::float32, DType::float32, 0, 4, 132).group_lanes, 16);
  g = geometry({1 << 22}, ReduceAxes::every());
  p = choose_apply_plan(g, DType::uint8, DType::float32, 0, 0, 132);
  EXPECT_EQ(p.vector_elems, 4);  // 16 bytes of the wider (output) type
  EXPECT_EQ(p.chunks, (1 << 20) / 512);
  // Input and output at different phases: the rows kernel's scalar loop.
  EXPECT_EQ(choose_apply_plan(g, DType::float32, DType::float32, 0, 4, 132).vector_elems, 1);
  g = geometry({4096, 3}, ReduceAxes::of({0}));  // NHWC RGB: warp-wide fold
  p = choose_apply_plan(g, DType::uint8, DType::float32, 0, 0, 132);
  EXPECT_EQ(p.kernel, ApplyKernel::columns);
  EXPECT_EQ(p.fold, 128);
  EXPECT_EQ(p.inner * p.fold % (32 * p.vector_elems), 0);
  g = geometry({36, 3}, ReduceAxes::of({0}));  // 36 rows: fold by 4 only
  EXPECT_EQ(choose_apply_plan(g, DType::float32, DType::float32, 0, 0, 132).fold, 4);
  g = geometry({35, 3}, ReduceAxes::of({0}));  // no fold tiles 35 rows: scalar (the generic walk)
  EXPECT_EQ(choose_apply_plan(g, DType::float32, DType::float32, 0, 0, 132).vector_elems, 1);
  // Four-axis generic patterns: reduced, kept, reduced, kept walks columns whose outer slices repeat
  // every kept_outer; kept, reduced, kept, reduced walks rows whose kept index repeats.
  g = geometry({3, 4, 8, 6}, ReduceAxes::of({0, 2}));
  p = choose_apply_plan(g, DType::float32, DType::float32, 0, 0, 132);
  EXPECT_EQ(p.kernel, ApplyKernel::columns);
  EXPECT_EQ(p.outer, 12);
  EXPECT_EQ(p.kept_outer, 4);
  EXPECT_EQ(p.rows_per_outer, 8);
  EXPECT_EQ(p.fold, 2);  // 8 rows of 6 columns read as 4 rows of 12
  g = geometry({5, 2, 3, 6}, ReduceAxes::of({1, 3}));
  p = choose_apply_plan(g, DType::float32, DType::float32, 0, 0, 132);
  EXPECT_EQ(p.kernel, ApplyKernel::rows);
  EXPECT_EQ(p.rows, 30);
  EXPECT_EQ(p.period, 3);
  EXPECT_EQ(p.repeat, 2);
  EXPECT_EQ(rows_kept_index(7, 3, 2), 4);   // row 7 = (o 1, a 0, c 1): kept 1 * 3 + 1
  EXPECT_EQ(rows_kept_index(29, 3, 2), 14);
  g = geometry({2, 3, 4, 5, 6}, ReduceAxes::of({0, 2, 4}));
  EXPECT_EQ(choose_apply_plan(g, DType::float32, DType::float32, 0, 0, 132).kernel, ApplyKernel::generic);
}

// One-read Lp: a lane group per row, the smallest power of two covering its vectors, at most a warp.
TEST(ApplyPlan, LpGroupLanes) {
  EXPECT_EQ(lp_group_lanes(16, 4), 4);
  EXPECT_EQ(lp_group_lanes(17, 4), 8);
  EXPECT_EQ(lp_group_lanes(3, 4), 1);
  EXPECT_EQ(lp_group_lanes(64, 8), 8);
  EXPECT_EQ(lp_group_lanes(128, 4), 32);
  EXPECT_EQ(lp_group_lanes(1024, 4), 32);
  EXPECT_EQ(lp_group_lanes(0, 4), 1);
}

// The one-read Lp launch: vector of the wider type, the short-rows kernel up to 32 packs a row (two rows a
// group per trip), at most 16 blocks per SM, fewer when a test forces it.
TEST(ApplyPlan, LpRowsPlan) {
  LpRowsPlan p = choose_lp_rows_plan(1 << 20, 16, 4, 4, 132);
  EXPECT_EQ(p.vector_elems, 4);
  EXPECT_EQ(p.group_lanes, 4);
  EXPECT_TRUE(p.one_pack_per_lane);
  EXPECT_EQ(p.blocks, 132 * 16);
  p = choose_lp_rows_plan(300, 16, 4, 4, 132);
  EXPECT_EQ(p.blocks, 3);  // 64 groups of 4 lanes, 2 rows each a trip: 128 rows a block
  p = choose_lp_rows_plan(300, 128, 4, 2, 132);  // 32 packs of 4: the last length with one pack a lane
  EXPECT_TRUE(p.one_pack_per_lane);
  EXPECT_EQ(p.group_lanes, 32);
  p = choose_lp_rows_plan(300, 132, 4, 4, 132);
  EXPECT_FALSE(p.one_pack_per_lane);
  EXPECT_EQ(p.blocks, 38);  // 8 rows a block
  p = choose_lp_rows_plan(300, 64, 2, 2, 132);
  EXPECT_EQ(p.vector_elems, 8);
  EXPECT_EQ(p.group_lanes, 8);
  EXPECT_EQ(choose_lp_rows_plan(300, 64, 1, 8, 132).vector_elems, 2);
  ApplyOverride o;
  o.max_blocks = 1;
  set_apply_override(&o);
  EXPECT_EQ(choose_lp_rows_plan(1 << 20, 16, 4, 4, 132).blocks, 1);
  set_apply_override(nullptr);
}

// Split block grids fill whole waves of the resident blocks (StatsPolicy::segment_block_residency).
TEST(Plan, SplitSegmentsFillWholeWaves) {
  EXPECT_DOUBLE_EQ(wave_efficiency(396, 132, 3), 1.0);
  EXPECT_DOUBLE_EQ(wave_efficiency(528, 132, 3), 528.0 / 792);  // a second wave of one block per SM
  EXPECT_EQ(wave_filling_splits(1, 1000, 132, 3), 396);
  EXPECT_EQ(wave_filling_splits(3, 1000, 132, 3), 132);
  EXPECT_EQ(wave_filling_splits(64, 1000, 132, 3), 6);   // 384 of 396 slots (12 with 7: two waves)
  EXPECT_EQ(wave_filling_splits(64, 4, 132, 3), 4);      // the work per block bounds it
  EXPECT_EQ(wave_filling_splits(396, 1000, 132, 3), 1);  // the slices fill the GPU
  EXPECT_EQ(wave_filling_splits(300, 1000, 132, 3), 1);  // 600 blocks would not fill two waves better
  for (std::int64_t segments : {1, 2, 5, 7, 33, 64, 100, 131, 133, 395}) {
    for (int residency : {1, 2, 3, 4}) {
      const std::int64_t s = wave_filling_splits(segments, 1 << 20, 132, residency);
      EXPECT_GE(s, 1);
      EXPECT_GE(wave_efficiency(segments * s, 132, residency), wave_efficiency(segments, 132, residency));
      EXPECT_GE(wave_efficiency(segments * s, 132, residency), 0.5) << segments << " " << residency;
    }
  }
  // The plan uses the residency of the instantiation it launches.
  const DeviceInfo h200{132};
  // NCHW with 7 channels of 585 images: splits of whole sub-rows (<= 585 / 8 = 73 a channel; 56 fill 392 of
  // 396 slots) rather than 113 cut across sub-rows in two waves; 2 images keep cut splits (a global-like fill).
  StatsPlan nchw = choose_stats_plan(geometry({585, 7, 64, 64}, ReduceAxes::of({0, 2, 3})), DType::float32, false, 0, h200);
  EXPECT_EQ(nchw.kernel, StatsKernel::segment_block);
  EXPECT_EQ(nchw.splits, 56);
  EXPECT_EQ(segment_chunk(585, 4096, 56), 11 * 4096);
  nchw = choose_stats_plan(geometry({2, 7, 512, 512}, ReduceAxes::of({0, 2, 3})), DType::float32, false, 0, h200);
  EXPECT_GT(nchw.splits, 2);
  EXPECT_EQ(choose_stats_plan(geometry({1 << 24}, ReduceAxes::every()), DType::uint8, false, 0, h200).grid_x, 396);
  EXPECT_EQ(choose_stats_plan(geometry({1 << 24}, ReduceAxes::every()), DType::bfloat16, false, 0, h200).grid_x, 264);
  EXPECT_EQ(choose_stats_plan(geometry({1 << 24}, ReduceAxes::every()), DType::float32, true, 0, h200).grid_x, 264);
  EXPECT_EQ(choose_stats_plan(geometry({1 << 24}, ReduceAxes::every()), DType::float64, false, 0, h200).grid_x, 264);
}

TEST(Plan, MergeLanesGiveEachLaneAFewPartials) {
  const DeviceInfo h200{132};
  // 64 columns, 256 splits: a whole warp per column, 8 partials per lane.
  auto p = choose_stats_plan(geometry({131072, 64}, ReduceAxes::of({0})), DType::float32, false, 0, h200);
  ASSERT_TRUE(uses_partials(p));
  EXPECT_EQ(p.merge_lanes, 32);
  EXPECT_EQ(p.merge_block, 32);  // 64 warps: one per SM
  // A folded NHWC RGB view with no row split: 1 partial per channel (folded in the block), one lane.
  p = choose_stats_plan(geometry({64, 3}, ReduceAxes::of({0})), DType::uint8, false, 0, h200);
  EXPECT_EQ(p.column_fold, 4);
  EXPECT_EQ(p.splits, 1);
  EXPECT_EQ(p.merge_lanes, 1);
  // Global statistics split over many blocks; the override wins.
  p = choose_stats_plan(geometry({1 << 24}, ReduceAxes::every()), DType::float32, false, 0, h200);
  EXPECT_EQ(p.splits, 396);  // 3 blocks per SM, one wave
  EXPECT_EQ(p.merge_lanes, 64);  // a block of 64 threads, at most 7 partials each
  EXPECT_EQ(p.merge_block, 64);
  p = choose_stats_plan(geometry({4096, 4096}, ReduceAxes::of({0})), DType::float32, false, 0, h200);
  EXPECT_EQ(p.splits, 8);  // 32 column blocks; 512 rows per split at least
  EXPECT_EQ(p.merge_lanes, 1);  // 8 partials: one lane's batch

  PlanOverride force;
  force.merge_lanes = 2;
  set_plan_override(&force);
  p = choose_stats_plan(geometry({131072, 64}, ReduceAxes::of({0})), DType::float32, false, 0, h200);
  set_plan_override(nullptr);
  EXPECT_EQ(p.merge_lanes, 2);
}

// The main kernels count in Acc (math::LocalMoments): no partial state may summarise more than
// kLocalMomentsMaxValues values, whatever the plan would pick or a test forces.
TEST(StatsPlan, PartialStatesStayWithinTheLocalCountLimit) {
  const DeviceInfo device{132};
  const std::int64_t limit = math::kLocalMomentsMaxValues;
  PlanOverride one_split;
  one_split.splits = 1;
  const PlanOverride* forces[] = {nullptr, &one_split};
  for (const PlanOverride* force : forces) {
    set_plan_override(force);
    // Per-feature: 5 * 2^24 + 3 rows of 4096 columns.
    auto g = geometry({5 * limit + 3, 4096}, ReduceAxes::of({0}));
    StatsPlan p = choose_stats_plan(g, DType::float32, false, 0, device);
    ASSERT_EQ(p.kernel, StatsKernel::columns);
    EXPECT_LE((g.col_rows / p.column_fold + p.splits - 1) / p.splits, limit);
    EXPECT_LE(column_range_rows(p, g.col_rows / p.column_fold, DType::float32), limit);  // rounded to whole batches
    EXPECT_EQ(p.grid_y, p.splits);
    // NHWC RGB folded in the block: a partial holds 4 ranges of wide rows.
    g = geometry({4 * limit + 7, 3}, ReduceAxes::of({0}));
    p = choose_stats_plan(g, DType::float32, false, 0, device);
    ASSERT_TRUE(p.column_fold_in_block);
    EXPECT_LE(column_range_rows(p, g.col_rows / p.column_fold, DType::float32) * p.column_block_span * p.column_fold, limit);
    // Row blocks: 700 blocks of 65536 rows (spans of at most 256 blocks), and 3 blocks of 2^24 + 5 rows.
    for (auto shape : {std::vector<std::int64_t>{700, 2, 65536, 4}, std::vector<std::int64_t>{3, 2, limit + 5, 4}}) {
      g = geometry(shape, ReduceAxes::of({0, 2}));
      p = choose_stats_plan(g, DType::float32, false, 0, device);
      ASSERT_EQ(p.kernel, StatsKernel::columns);
      EXPECT_LE(p.column_block_span * ((g.col_rows + p.column_block_splits - 1) / p.column_block_splits), limit);
      EXPECT_LE(p.column_block_span * column_range_rows(p, g.col_rows, DType::float32), limit);
      EXPECT_EQ(p.splits, (g.col_row_blocks + p.column_block_span - 1) / p.column_block_span * p.column_block_splits);
    }
    // Global: 3 * 2^24 + 1 elements, and NCHW-like with sub-rows of 3 elements.
    for (auto shape : {std::vector<std::int64_t>{3 * limit + 1}, std::vector<std::int64_t>{limit + 1, 2, 3}}) {
      g = geometry(shape, shape.size() == 1 ? ReduceAxes::every() : ReduceAxes::of({0, 2}));
      p = choose_stats_plan(g, DType::uint8, false, 0, device);
      ASSERT_EQ(p.kernel, StatsKernel::segment_block);
      EXPECT_LE((g.seg_a * g.seg_b + p.splits - 1) / p.splits, limit);
      EXPECT_EQ(p.grid_x, g.seg_c * p.splits);
    }
  }
  set_plan_override(nullptr);
}

TEST(Plan, SubRowsGetSubGroupsAndFourAxisGenericPatternsTheDedicatedKernels) {
  const DeviceInfo h200{132};
  // NCHW per-channel, 64x64 images: 1024 vectors per sub-row, 16 per lane -> 64 lanes per image.
  auto p = choose_stats_plan(geometry({32, 64, 64, 64}, ReduceAxes::of({0, 2, 3})), DType::float32, false, 0, h200);
  EXPECT_EQ(p.kernel, StatsKernel::segment_block);
  EXPECT_EQ(p.segment_sub_lanes, 64);
  // kept, reduced, kept, reduced [8, 64, 8, 256]: segments in 8 outer slices, sub-rows of 64 vectors.
  p = choose_stats_plan(geometry({8, 64, 8, 256}, ReduceAxes::of({1, 3})), DType::float32, false, 0, h200);
  EXPECT_EQ(p.kernel, StatsKernel::segment_block);
  EXPECT_EQ(p.segment_sub_lanes, 4);
  EXPECT_EQ(p.grid_x, 64 * p.splits);  // 64 kept slices
  // reduced, kept, reduced, kept: the column kernel, whose threads walk a span of row blocks per split
  // (and split the rows of each block when the blocks are fewer than the splits); five alternating axes
  // keep the generic kernel.
  p = choose_stats_plan(geometry({128, 8, 64, 256}, ReduceAxes::of({0, 2})), DType::float32, false, 0, h200);
  EXPECT_EQ(p.kernel, StatsKernel::columns);
  EXPECT_EQ(p.vector_elems, 4);
  EXPECT_EQ(p.grid_z, 8);
  EXPECT_EQ(p.splits, 16);  // 2 x 8 blocks of columns, 16 splits of 8 row blocks each: 256 blocks
  EXPECT_EQ(p.column_block_span, 8);
  EXPECT_EQ(p.column_block_splits, 1);
  EXPECT_EQ(p.grid_y, 16);
  p = choose_stats_plan(geometry({2, 8, 4096, 256}, ReduceAxes::of({0, 2})), DType::float32, false, 0, h200);
  EXPECT_EQ(p.kernel, StatsKernel::columns);
  EXPECT_EQ(p.column_block_span, 1);
  EXPECT_EQ(p.column_block_splits, 8);  // few long blocks: each block's rows split 8 ways
  EXPECT_EQ(p.splits, 16);
  EXPECT_EQ(p.grid_y, 16);
  p = choose_stats_plan(geometry({70000, 2, 3, 4}, ReduceAxes::of({0, 2})), DType::float32, false, 0, h200);
  EXPECT_EQ(p.kernel, StatsKernel::columns);  // many row blocks: spans of 687 blocks
  EXPECT_EQ(p.grid_z, 2);
  EXPECT_EQ(p.column_block_span, 687);
  EXPECT_EQ(p.splits, 102);
  p = choose_stats_plan(geometry({4, 2, 5, 3}, ReduceAxes::of({0, 2})), DType::float32, false, 0, h200);
  EXPECT_EQ(p.column_fold, 1);  // narrow columns in row blocks are not folded
  EXPECT_EQ(p.vector_elems, 1);
  EXPECT_EQ(column_range_rows(p, 5, DType::float32), 5);  // scalar plans: no row batches to round to
  p = choose_stats_plan(geometry({2, 3, 4, 5, 6}, ReduceAxes::of({0, 2, 4})), DType::float32, false, 0, h200);
  EXPECT_EQ(p.kernel, StatsKernel::generic);
}

// Row ranges of vector column plans are whole batches of every thread row (the last may be short).
TEST(Plan, ColumnRowRangesAreWholeBatches) {
  const DeviceInfo h200{132};
  for (DType dtype : {DType::float32, DType::float16, DType::uint8}) {
    const auto g = geometry({524288, 64}, ReduceAxes::of({0}));
    const StatsPlan p = choose_stats_plan(g, dtype, false, 0, h200);
    ASSERT_EQ(p.kernel, StatsKernel::columns);
    ASSERT_GT(p.vector_elems, 1);
    const std::int64_t batch = (dtype == DType::uint8 ? StatsPolicy::byte_column_batch_rows
                                : dtype_size(dtype) == 2 ? StatsPolicy::half_column_batch_rows
                                                         : StatsPolicy::column_batch_rows) * p.block_y;
    const std::int64_t range = column_range_rows(p, g.col_rows, dtype);
    EXPECT_EQ(range % batch, 0) << dtype_name(dtype);
    EXPECT_GE(range * p.column_block_splits, g.col_rows);
    EXPECT_LT(range - batch, (g.col_rows + p.column_block_splits - 1) / p.column_block_splits);
  }
}

TEST(Plan, ShortAlignedRowsTakeALaneEachWithoutHeadOrTail) {
  const DeviceInfo h200{132};
  const auto plan_of = [&](std::vector<std::int64_t> shape, DType dtype, std::uintptr_t address = 0) {
    return choose_stats_plan(geometry(std::move(shape), ReduceAxes::of({1})), dtype, false, address, h200);
  };
  EXPECT_TRUE(plan_of({524288, 16}, DType::float32).segment_short_rows);   // 4 vectors
  EXPECT_TRUE(plan_of({524288, 16}, DType::float16).segment_short_rows);   // 2
  EXPECT_TRUE(plan_of({524288, 32}, DType::bfloat16).segment_short_rows);  // 4
  EXPECT_TRUE(plan_of({524288, 64}, DType::uint8).segment_short_rows);     // 4
  EXPECT_FALSE(plan_of({524288, 20}, DType::float32).segment_short_rows);  // 5 vectors
  EXPECT_FALSE(plan_of({524288, 12}, DType::float16).segment_short_rows);  // rows not whole vectors
  EXPECT_FALSE(plan_of({524288, 16}, DType::uint8, 4).segment_short_rows);  // misaligned start
  EXPECT_FALSE(plan_of({524288, 16}, DType::float64).segment_short_rows);  // 8 vectors of 2
  EXPECT_FALSE(choose_stats_plan(geometry({3, 4, 16}, ReduceAxes::of({0, 2})), DType::float32, false, 0, h200).segment_short_rows);
  EXPECT_FALSE(plan_of({(std::int64_t{1} << 30) + 1, 16}, DType::uint8).segment_short_rows);  // rows counted in 32 bits
  plan::PlanOverride o;
  o.splits = 2;
  o.force_kernel = true;
  o.kernel = StatsKernel::segment_warp;
  set_plan_override(&o);
  EXPECT_FALSE(plan_of({524288, 16}, DType::float32).segment_short_rows);  // a split row is not a row
  o.splits = 0;
  o.segment_lanes = 2;
  EXPECT_FALSE(plan_of({524288, 16}, DType::float32).segment_short_rows);
  set_plan_override(nullptr);
}

TEST(Plan, ShortSegmentsShareAWarp) {
  const DeviceInfo h200{132};
  auto p = choose_stats_plan(geometry({524288, 16}, ReduceAxes::of({1})), DType::float32, false, 0, h200);
  EXPECT_EQ(p.kernel, StatsKernel::segment_warp);
  EXPECT_EQ(p.vector_elems, 4);
  EXPECT_EQ(p.segment_lanes, 1);  // 4 vectors per row: a lane per row, 32 rows per warp
  EXPECT_EQ(p.grid_x, 256);  // 2048 blocks' worth in one wave of 2 per SM: 8 rounds per warp
  EXPECT_EQ(whole_wave_grid(2048, 264), 256);
  EXPECT_EQ(whole_wave_grid(264, 264), 264);
  EXPECT_EQ(whole_wave_grid(300, 264), 150);  // 2 rounds each
  EXPECT_EQ(whole_wave_grid(7, 264), 7);
  p = choose_stats_plan(geometry({32768, 1024}, ReduceAxes::of({1})), DType::float32, false, 0, h200);
  EXPECT_EQ(p.segment_lanes, 4);  // 256 vectors, 64 per lane: 8 rows per warp, 512 blocks
  p = choose_stats_plan(geometry({8192, 1024}, ReduceAxes::of({1})), DType::float32, false, 0, h200);
  EXPECT_EQ(p.segment_lanes, 8);  // 4 lanes would leave 128 blocks for 132 SMs
  EXPECT_EQ(p.grid_x, 256);
  p = choose_stats_plan(geometry({100, 4096}, ReduceAxes::of({1})), DType::uint8, false, 0, h200);
  EXPECT_EQ(p.segment_lanes, 32);  // 100 rows: a warp each (8 loads per lane) rather than 2 blocks
  p = choose_stats_plan(geometry({100, 3}, ReduceAxes::of({1})), DType::float32, false, 0, h200);
  EXPECT_EQ(p.vector_elems, 1);
  EXPECT_EQ(p.segment_lanes, 2);  // 3 scalar loads: more lanes would idle
  // Rows of 3000 float16, 8 lanes each: 256-thread blocks hold 32 rows, 350 blocks' worth for 264 slots
  // (the busiest SM 4 rounds, the average 2.65: 0.66); blocks of 128 threads, 4 an SM: 699 blocks' worth
  // in 350 blocks of 2 rounds, the busiest SM 6 rounds against 5.3.
  p = choose_stats_plan(geometry({11184, 3000}, ReduceAxes::of({1})), DType::float16, false, 0, h200);
  EXPECT_EQ(p.segment_lanes, 8);
  EXPECT_EQ(p.block_x, 128);
  EXPECT_EQ(p.grid_x, 350);
  EXPECT_NEAR(segment_grid_balance(350, 132, 2), 350.0 / 528, 1e-12);
  EXPECT_NEAR(segment_grid_balance(699, 132, 4), 699.0 / 792, 1e-12);
  // Rows longer than warp_segment_max stay on warps while a warp's lanes get at most 64 vectors each and
  // the rows give every SM 8 warps: 4096 rows of 8192 bfloat16 (1024 vectors, 16 lanes of 64); 100 rows
  // (or rows of 65536) take blocks.
  p = choose_stats_plan(geometry({4096, 8192}, ReduceAxes::of({1})), DType::bfloat16, false, 0, h200);
  EXPECT_EQ(p.kernel, StatsKernel::segment_warp);
  EXPECT_EQ(p.segment_lanes, 16);
  EXPECT_EQ(choose_stats_plan(geometry({100, 8192}, ReduceAxes::of({1})), DType::bfloat16, false, 0, h200).kernel,
            StatsKernel::segment_block);
  EXPECT_EQ(choose_stats_plan(geometry({4096, 65536}, ReduceAxes::of({1})), DType::float32, false, 0, h200).kernel,
            StatsKernel::segment_block);
  // Sub-rows (NCHW-like segments of 1100 sub-rows of 3) keep the block too.
  EXPECT_EQ(choose_stats_plan(geometry({2000, 1100, 3}, ReduceAxes::of({0, 2})), DType::float32, false, 0, h200).kernel,
            StatsKernel::segment_block);
  // Even grids keep 256 threads (rows of 16 above: 2048 blocks' worth, 0.97).
  EXPECT_EQ(choose_stats_plan(geometry({524288, 16}, ReduceAxes::of({1})), DType::float32, false, 0, h200).block_x, 256);
}

// Element ranges: the blocks cover the run in flat order, each a box whose kept slices are consecutive in
// the whole tensor's kept order (checked element by element against the flat index arithmetic).
TEST(Geometry, ElementRangeBlocks) {
  struct Case {
    std::vector<std::int64_t> shape;
    std::vector<bool> reduced;
  };
  const std::vector<Case> cases = {{{7}, {true}},
                                   {{5, 6}, {true, false}},
                                   {{5, 6}, {false, true}},
                                   {{3, 4, 5, 3}, {true, true, true, false}},   // NHWC per-channel
                                   {{3, 4, 5, 2}, {true, false, true, true}},   // NCHW per-channel
                                   {{2, 3, 1, 4, 3}, {false, true, false, true, false}},
                                   {{4, 3, 5}, {true, true, true}}};
  for (const Case& c : cases) {
    const int ndim = static_cast<int>(c.shape.size());
    bool is_reduced[kMaxDims] = {};
    std::int64_t numel = 1, kept_numel = 1;
    for (int d = 0; d < ndim; ++d) {
      is_reduced[d] = c.reduced[d];
      numel *= c.shape[d];
      if (!c.reduced[d]) kept_numel *= c.shape[d];
    }
    const auto kept_index_of = [&](std::int64_t flat) {  // the whole tensor's kept slice of element `flat`
      std::int64_t kept = 0, kept_stride = 1;
      for (int d = ndim - 1; d >= 0; --d) {
        const std::int64_t index = flat % c.shape[d];
        flat /= c.shape[d];
        if (!c.reduced[d]) {
          kept += index * kept_stride;
          kept_stride *= c.shape[d];
        }
      }
      return kept;
    };
    for (std::int64_t first = 0; first <= numel; ++first) {
      for (std::int64_t count = 0; first + count <= numel; ++count) {
        ElementBlock blocks[kMaxElementBlocks];
        const int n = split_element_range(c.shape.data(), ndim, is_reduced, first, count, blocks);
        ASSERT_LE(n, 2 * ndim - 1);
        std::int64_t next = 0;
        for (int i = 0; i < n; ++i) {
          const ElementBlock& b = blocks[i];
          ASSERT_EQ(b.offset, next) << "blocks in flat order, without gaps";
          ASSERT_EQ(b.ndim, ndim - b.axis);
          std::int64_t block_numel = 1, block_kept = 1;
          for (int d = 0; d < b.ndim; ++d) {
            if (d > 0) ASSERT_EQ(b.shape[d], c.shape[b.axis + d]);
            ASSERT_EQ(b.is_reduced[d], c.reduced[b.axis + d]);
            block_numel *= b.shape[d];
            if (!b.is_reduced[d]) block_kept *= b.shape[d];
          }
          ASSERT_GE(b.shape[0], 1);
          ASSERT_EQ(b.kept_numel, block_kept);
          ASSERT_LE(b.kept_offset + b.kept_numel, kept_numel);
          for (std::int64_t e = 0; e < block_numel; ++e) {  // the block's own kept index of its element e
            std::int64_t rest = e, kept = 0, kept_stride = 1;
            for (int d = b.ndim - 1; d >= 0; --d) {
              const std::int64_t index = rest % b.shape[d];
              rest /= b.shape[d];
              if (!b.is_reduced[d]) {
                kept += index * kept_stride;
                kept_stride *= b.shape[d];
              }
            }
            ASSERT_EQ(b.kept_offset + kept, kept_index_of(first + b.offset + e))
                << "element " << first + b.offset + e << " of a run [" << first << ", " << first + count << ")";
          }
          next += block_numel;
        }
        ASSERT_EQ(next, count);
      }
    }
  }
}
