// Launchers of the statistics kernels and their explicit instantiations (the only translation unit that
// instantiates them: 4 float input dtypes x {float, double} accumulation x vector widths, uint8 in exact
// integers once, and moments-only vector kernels for float accumulation).
#include <cuda_runtime.h>

#include <algorithm>

#include "kernels/common/cuda_check.hpp"
#include "kernels/stats/column_stats.cuh"
#include "kernels/stats/generic_stats.cuh"
#include "kernels/stats/merge_partials.cuh"
#include "kernels/stats/segment_stats.cuh"
#include "kernels/stats/span_stats.cuh"
#include "kernels/stats/stats_launch.hpp"
#include "math/dtype_dispatch.hpp"

namespace normkit::kernels {
namespace {

constexpr const char* kOp = "compute_stats";
constexpr std::int64_t kMaxGrid = 0x7fffffff;

unsigned grid_dim(std::int64_t blocks) { return static_cast<unsigned>(std::clamp<std::int64_t>(blocks, 1, kMaxGrid)); }

// Whether the request needs min, max, Σ|x| or the non-zero count (summaries do unless the caller asked for
// moments only: StatsSink::summary_extremes).
bool needs_extremes(const math::StatsSink& sink) {
  if (sink.integer_summaries != nullptr) return true;
  if (sink.summaries != nullptr) return sink.summary_extremes;
  for (int i = 0; i < kNumStats; ++i) {
    if (math::needs_extremes(i) && sink.outputs[i] != nullptr) return true;
  }
  return false;
}

template <typename T, typename Acc>
Status launch_merge(const DeviceStatsCall& call, const MergeShape& shape, cudaStream_t stream) {
  const PartialStates<typename math::KernelState<T, Acc>::local> partials{call.workspace, shape.splits * (shape.kept_numel / shape.inner) * shape.wide_inner};
  const int block = call.plan.merge_block;
  merge_partials_kernel<T, Acc><<<grid_dim((shape.kept_numel * shape.lanes + block - 1) / block), block, 0, stream>>>(
      partials, shape, static_cast<const T*>(call.input), call.sink);
  return cuda::check_launch(kOp, "merge_partials_kernel");
}

// Partial states of the segment kernels: [split][segment]; of the column kernels: [split][outer][wide column].
template <typename T, typename Acc>
Status launch_partial_merge(const DeviceStatsCall& call, cudaStream_t stream) {
  const auto& g = call.geometry;
  const auto& p = call.plan;
  MergeShape m{g.kept_numel, p.splits, 1, g.kept_numel, g.kept_numel, 0, 0, 0, p.merge_lanes, p.merge_lane_local,
               p.merge_slice_local};
  if (p.kernel == plan::StatsKernel::columns) {
    m.fold = plan::merged_fold(p);
    m.inner = g.col_inner;
    m.wide_inner = g.col_inner * m.fold;
    m.rows = g.col_rows;
    m.folded_rows = g.col_rows / p.column_fold * p.column_fold;
    m.outer_stride = g.col_rows * g.col_inner;
  }
  return launch_merge<T, Acc>(call, m, stream);
}

template <typename T, typename Acc, int VEC, bool EXTREMES>
Status launch_segments(const DeviceStatsCall& call, cudaStream_t stream) {
  const auto& g = call.geometry;
  const auto& p = call.plan;
  const SegmentShape shape{g.seg_a,      g.seg_c,           g.seg_b, p.splits, p.segment_lanes, g.seg_outer, p.segment_sub_lanes,
                           plan::segment_chunk(g.seg_a, g.seg_b, p.splits), p.segment_short_rows};
  const PartialStates<typename math::KernelState<T, Acc>::local> partials{call.workspace, g.seg_outer * g.seg_c * p.splits};
  const T* input = static_cast<const T*>(call.input);
  if (p.kernel == plan::StatsKernel::segment_warp) {
    segment_stats_kernel<T, Acc, VEC, false, EXTREMES><<<grid_dim(p.grid_x), p.block_x, 0, stream>>>(input, shape, call.sink, partials);
  } else {
    segment_stats_kernel<T, Acc, VEC, true, EXTREMES><<<grid_dim(p.grid_x), p.block_x, 0, stream>>>(input, shape, call.sink, partials);
  }
  return cuda::check_launch(kOp, "segment_stats_kernel");
}

template <typename T, int VEC, bool EXTREMES>
Status launch_spans(const DeviceStatsCall& call, cudaStream_t stream) {
  const auto& g = call.geometry;
  const auto& p = call.plan;
  const SpanShape shape{g.seg_a, g.seg_c, g.seg_b, p.span_channels, p.span_tiles, p.span_rows_per_part, p.splits};
  const PartialStates<math::LocalMoments<float>> partials{call.workspace, g.seg_c * p.splits};
  span_stats_kernel<T, VEC, EXTREMES><<<grid_dim(p.grid_x), p.block_x, 0, stream>>>(static_cast<const T*>(call.input), shape, call.sink,
                                                                                     partials);
  return cuda::check_launch(kOp, "span_stats_kernel");
}

template <typename T, typename Acc, int VEC, bool EXTREMES>
Status launch_columns(const DeviceStatsCall& call, cudaStream_t stream) {
  const auto& g = call.geometry;
  const auto& p = call.plan;
  const ColumnShape shape{g.col_outer,
                          g.col_rows / p.column_fold,
                          g.col_inner * p.column_fold,
                          g.col_rows * g.col_inner,
                          p.splits,
                          g.col_row_blocks,
                          g.col_outer * g.col_rows * g.col_inner,
                          p.column_block_span,
                          p.column_block_splits,
                          plan::column_range_rows(p, g.col_rows / p.column_fold, call.dtype),
                          plan::uses_partials(p),
                          p.column_fold_in_block ? g.col_inner : 0};
  const PartialStates<typename math::KernelState<T, Acc>::local> partials{call.workspace,
                                                                          p.splits * g.col_outer * g.col_inner * plan::merged_fold(p)};
  const dim3 grid(grid_dim(p.grid_x), static_cast<unsigned>(p.grid_y), static_cast<unsigned>(p.grid_z));
  const dim3 block(static_cast<unsigned>(p.block_x), static_cast<unsigned>(p.block_y));
  column_stats_kernel<T, Acc, VEC, EXTREMES><<<grid, block, p.shared_bytes, stream>>>(static_cast<const T*>(call.input), shape,
                                                                          call.sink, partials);
  return cuda::check_launch(kOp, "column_stats_kernel");
}

// Launches the plan's main kernel.
template <typename T, typename Acc>
Status launch_main(const DeviceStatsCall& call, cudaStream_t stream) {
  const auto& g = call.geometry;
  const auto& p = call.plan;
  constexpr int kSegmentVec = static_cast<int>(16 / sizeof(T));
  constexpr int kColumnVec = std::min(kSegmentVec, plan::StatsPolicy::max_column_vector);
  switch (p.kernel) {
    case plan::StatsKernel::empty:
      return launch_merge<T, Acc>(call, MergeShape{g.kept_numel, 0, 1, g.kept_numel, g.kept_numel, 0, 0, 0, 1, true, true}, stream);
    // Moments-only requests get their own vector kernels with float accumulation (the paths that carry
    // bench-sized data); scalar and float64 paths always keep the extremes (bounded instantiations).
    case plan::StatsKernel::segment_warp:
    case plan::StatsKernel::segment_block:
      if (p.vector_elems == 1) return launch_segments<T, Acc, 1, true>(call, stream);
      if constexpr (std::is_same_v<Acc, float>) {
        if (!needs_extremes(call.sink)) return launch_segments<T, Acc, kSegmentVec, false>(call, stream);
      }
      return launch_segments<T, Acc, kSegmentVec, true>(call, stream);
    case plan::StatsKernel::spans:
      // (the plan's: float32, float16 or bfloat16 input accumulated in float)
      if constexpr (std::is_same_v<Acc, float> && (std::is_same_v<T, float> || sizeof(T) == 2)) {
        if (!needs_extremes(call.sink)) return launch_spans<T, kSegmentVec, false>(call, stream);
        return launch_spans<T, kSegmentVec, true>(call, stream);
      }
      break;
    case plan::StatsKernel::columns:
      if (p.vector_elems == 1) return launch_columns<T, Acc, 1, true>(call, stream);
      if constexpr (std::is_same_v<Acc, float>) {
        if (!needs_extremes(call.sink)) return launch_columns<T, Acc, kColumnVec, false>(call, stream);
      }
      return launch_columns<T, Acc, kColumnVec, true>(call, stream);
    case plan::StatsKernel::generic:
      generic_stats_kernel<T, Acc><<<grid_dim(p.grid_x), p.block_x, 0, stream>>>(
          static_cast<const T*>(call.input), g.kept, g.reduced, g.kept_numel, g.reduce_numel, call.sink);
      return cuda::check_launch(kOp, "generic_stats_kernel");
  }
  return Status(StatusCode::internal, "normkit::compute_stats: unknown kernel in plan");
}

// The main kernel, then the merge of the partial states when slices were split.
template <typename T, typename Acc>
Status launch_typed(const DeviceStatsCall& call, cudaStream_t stream) {
  const Status status = launch_main<T, Acc>(call, stream);
  if (!status.ok() || !plan::uses_partials(call.plan) || call.plan.kernel == plan::StatsKernel::empty) return status;
  return launch_partial_merge<T, Acc>(call, stream);
}

}  // namespace

Status launch_stats(const DeviceStatsCall& call, Stream stream) {
  return math::visit_input_dtype(call.dtype, kOp, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, double>) {
      return launch_typed<T, double>(call, stream);
    } else if constexpr (std::is_same_v<T, std::uint8_t>) {
      return launch_typed<T, float>(call, stream);  // exact integer states: no accumulation type to choose
    } else {
      if (call.double_accumulation) return launch_typed<T, double>(call, stream);
      return launch_typed<T, float>(call, stream);
    }
  });
}

namespace {

template <typename Summary>
Status launch_summary_merge(Summary* into, const Summary* from, std::int64_t n, Stream stream, const char* op) {
  if (n == 0) return Status::success();
  merge_summaries_kernel<Summary><<<grid_dim((n + 255) / 256), 256, 0, stream>>>(into, from, n);
  return cuda::check_launch(op, "merge_summaries_kernel");
}

template <typename Summary>
Status launch_summary_finalize(const Summary* summaries, std::int64_t n, const math::StatsSink& sink, Stream stream,
                               const char* op) {
  if (n == 0) return Status::success();
  finalize_summaries_kernel<Summary><<<grid_dim((n + 255) / 256), 256, 0, stream>>>(summaries, n, sink);
  return cuda::check_launch(op, "finalize_summaries_kernel");
}

}  // namespace

Status launch_merge_summaries(StatsSummary* into, const StatsSummary* from, std::int64_t n, Stream stream) {
  return launch_summary_merge(into, from, n, stream, "merge_summaries");
}

Status launch_finalize_summaries(const StatsSummary* summaries, std::int64_t n, const math::StatsSink& sink,
                                 Stream stream) {
  return launch_summary_finalize(summaries, n, sink, stream, "finalize_stats");
}

Status launch_merge_integer_summaries(IntegerSummary* into, const IntegerSummary* from, std::int64_t n, Stream stream) {
  return launch_summary_merge(into, from, n, stream, "merge_integer_summaries");
}

Status launch_finalize_integer_summaries(const IntegerSummary* summaries, std::int64_t n, const math::StatsSink& sink,
                                         Stream stream) {
  return launch_summary_finalize(summaries, n, sink, stream, "finalize_integer_stats");
}

}  // namespace normkit::kernels
