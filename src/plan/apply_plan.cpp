#include "plan/apply_plan.hpp"

#include <algorithm>
#include <numeric>

namespace normkit::plan {
namespace {
thread_local const ApplyOverride* g_apply_override = nullptr;
std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }
// Whether both base addresses allow vec-element vector accesses of their types.
bool vectors_aligned(std::uintptr_t in_address, DType in, std::uintptr_t out_address, DType out, int vec) {
  return in_address % static_cast<std::uintptr_t>(vec * dtype_size(in)) == 0 &&
         out_address % static_cast<std::uintptr_t>(vec * dtype_size(out)) == 0;
}
}  // namespace

const char* apply_kernel_name(ApplyKernel kernel) noexcept {
  switch (kernel) {
    case ApplyKernel::rows: return "rows";
    case ApplyKernel::columns: return "columns";
    case ApplyKernel::spans: return "spans";
    case ApplyKernel::generic: return "generic";
  }
  return "unknown";
}

void set_apply_override(const ApplyOverride* override_or_null) noexcept { g_apply_override = override_or_null; }

ApplyPlan choose_apply_plan(const CanonicalGeometry& g, DType in, DType out, std::uintptr_t in_address,
                            std::uintptr_t out_address, int sm_count) {
  const ApplyOverride* force = g_apply_override;
  ApplyPlan p;
  // One vector moves 16 bytes of the wider of the two types: 4 floats, 8 halves, 2 doubles.
  const std::int64_t wide = static_cast<std::int64_t>(std::max(dtype_size(in), dtype_size(out)));
  const int vec = static_cast<int>(16 / wide);
  const bool scalar = force && force->force_scalar;
  // Four-axis generic patterns are rows or columns with one more index step (geometry.hpp).
  const bool segment_form = g.pattern == Pattern::segments || g.seg_outer > 1;
  const bool column_form = g.pattern == Pattern::columns || g.col_row_blocks > 1;
  if (segment_form && !(force && force->force_generic)) {
    p.kernel = ApplyKernel::rows;
    p.rows = g.seg_outer * g.seg_a * g.seg_c;
    p.row_length = g.seg_b;
    p.period = g.seg_c;
    p.repeat = g.seg_outer > 1 ? g.seg_a : 1;  // within one outer slice the kept index is r % period
    // One reduced run per kept index (per-sample rows: seg_a = 1): the kept index is r itself, with no
    // remainder per row (it was a 32-bit remainder a row, ~10% of rows of 16 float32, modelled).
    if (g.seg_a == 1) p.period = p.repeat = 1;
    // Rows realign themselves (scalar head); the vector body needs input and output at the same phase.
    const bool same_phase = (in_address / dtype_size(in)) % vec == (out_address / dtype_size(out)) % vec;
    p.vector_elems = (!scalar && vec > 1 && same_phase && g.seg_b >= 2 * vec) ? vec : 1;
    p.packs_per_chunk = ApplyPolicy::packs_per_chunk;
    p.chunks = std::max<std::int64_t>(1, ceil_div(g.seg_b / vec, p.packs_per_chunk));
    // Lanes per (row, chunk): a warp, or for short rows the smallest power of two that covers the row's
    // packs (elements when scalar), so that a warp reads several whole rows at once.
    const std::int64_t row_units = p.vector_elems > 1 ? ceil_div(g.seg_b, p.vector_elems) : g.seg_b;
    p.group_lanes = 32;
    while (p.group_lanes > 1 && p.group_lanes / 2 >= row_units) p.group_lanes /= 2;
    const bool aligned = vectors_aligned(in_address, in, out_address, out, vec);
    // Spans: rows of at least a vector but not whole vectors, short enough that a tile of rows whose span is
    // whole vectors fits a block (NCHW 7 x 7 bfloat16: 40 rows of 49, 245 vectors; the rows walk took those
    // rows' heads and tails element by element), from 16-byte aligned input and output of one element size.
    const std::int64_t span_step = vec / std::gcd<std::int64_t>(g.seg_b, vec);  // rows whose span is whole vectors
    const std::int64_t span_rows = std::min(ApplyPolicy::max_span_rows, 256 * vec / std::max<std::int64_t>(1, g.seg_b)) / span_step * span_step;
    if (!scalar && vec > 1 && aligned && dtype_size(in) == dtype_size(out) && in != DType::uint8 && in != DType::float64 &&
        g.seg_outer == 1 && g.seg_b % vec != 0 && g.seg_b > vec && (p.rows * g.seg_b) % vec == 0 && span_rows >= span_step) {
      p.kernel = ApplyKernel::spans;
      p.vector_elems = vec;
      p.span_rows = span_rows;
      p.span_packs = span_rows * g.seg_b / vec;
      p.span_tiles = ceil_div(p.rows, span_rows);
      p.block_x = static_cast<int>(ceil_div(p.span_packs, 32) * 32);
      p.grid_x = std::clamp<std::int64_t>(ceil_div(p.span_tiles, ApplyPolicy::span_tiles_per_trip), 1, std::int64_t(sm_count) * 8);
      if (force && force->max_blocks > 0) p.grid_x = std::min(p.grid_x, force->max_blocks);
      return p;
    }
    p.aligned_short_rows = p.vector_elems > 1 && aligned && g.seg_b % vec == 0 && g.seg_b / vec <= 32;
    p.rows_per_trip = p.aligned_short_rows ? apply_short_rows_per_trip(in == DType::float32, out != DType::float64) : 1;
    // Grid-stride, at most 32 blocks of 256 threads per SM.
    p.block_x = 256;
    p.grid_x = std::clamp<std::int64_t>(ceil_div(p.rows * p.chunks, p.block_x / p.group_lanes * p.rows_per_trip), 1,
                                        std::int64_t(sm_count) * 32);
    if (force && force->max_blocks > 0) p.grid_x = std::min(p.grid_x, force->max_blocks);
    return p;
  }
  if (column_form && !(force && force->force_generic)) {
    p.kernel = ApplyKernel::columns;
    p.outer = g.col_row_blocks * g.col_outer;
    p.kept_outer = g.col_outer;
    p.rows_per_outer = g.col_rows;
    p.inner = g.col_inner;
    const bool aligned = vectors_aligned(in_address, in, out_address, out, vec);
    if (!scalar && vec > 1 && aligned) {
      if (g.col_inner % vec == 0) {
        p.vector_elems = vec;
      } else {
        // Fold k rows into one wide row: preferably a whole warp of vectors wide (its loads are then
        // 128-byte aligned), else just a multiple of the vector. Folded rows must tile every outer slice.
        const std::int64_t warp_width = 32 * vec;
        for (std::int64_t k : {warp_width / std::gcd<std::int64_t>(g.col_inner, warp_width),
                               static_cast<std::int64_t>(vec) / std::gcd<std::int64_t>(g.col_inner, vec)}) {
          if (g.col_rows % k == 0 && g.col_inner * k <= 8 * warp_width) {
            p.vector_elems = vec;
            p.fold = k;
            break;
          }
        }
      }
    }
    const std::int64_t wide_inner = g.col_inner * p.fold;
    const std::int64_t threads_x = ceil_div(wide_inner, p.vector_elems);
    p.block_x = static_cast<int>(std::min<std::int64_t>(32, threads_x));
    p.block_y = std::max(1, 256 / p.block_x);
    p.grid_x = ceil_div(threads_x, p.block_x);
    const std::int64_t total_rows = p.outer * g.col_rows / p.fold;
    // Coefficients (32 bytes per column) stay ~3% of a block's input: more rows for narrow types.
    p.rows_per_block = ApplyPolicy::column_rows_per_block * 4 / static_cast<std::int64_t>(dtype_size(in));
    // Fewer rows per block when that is what it takes to give every SM several blocks.
    const std::int64_t target_row_blocks = ceil_div(std::int64_t(sm_count) * ApplyPolicy::column_blocks_per_sm, p.grid_x);
    p.rows_per_block = std::clamp<std::int64_t>(ceil_div(total_rows, target_row_blocks), ApplyPolicy::column_min_rows_per_block,
                                                p.rows_per_block);
    p.grid_y = std::clamp<std::int64_t>(ceil_div(total_rows, p.rows_per_block), 1, 65535);
    if (force && force->max_blocks > 0) p.grid_y = std::min(p.grid_y, force->max_blocks);
    return p;
  }
  p.kernel = ApplyKernel::generic;
  p.vector_elems = 1;
  p.block_x = 256;
  p.grid_x = std::clamp<std::int64_t>(ceil_div(g.numel, 256 * 4), 1, std::int64_t(sm_count) * 32);
  if (force && force->max_blocks > 0) p.grid_x = std::min(p.grid_x, force->max_blocks);
  return p;
}

bool lp_one_read_applies(std::int64_t length, std::uintptr_t in_address, std::size_t in_element_bytes,
                         std::uintptr_t out_address, std::size_t out_element_bytes) noexcept {
  const auto aligned = [length](std::uintptr_t address, std::size_t element_bytes) {
    return address % 16 == 0 && (length * static_cast<std::int64_t>(element_bytes)) % 16 == 0;
  };
  return length <= kLpOneReadMaxRow && aligned(in_address, in_element_bytes) && aligned(out_address, out_element_bytes);
}

int lp_group_lanes(std::int64_t length, int vector_elems) noexcept {
  const std::int64_t packs = ceil_div(std::max<std::int64_t>(length, 1), vector_elems);
  int lanes = 1;
  while (lanes < 32 && lanes < packs) lanes *= 2;
  return lanes;
}

LpRowsPlan choose_lp_rows_plan(std::int64_t rows, std::int64_t length, std::size_t in_element_bytes,
                               std::size_t out_element_bytes, int sm_count) noexcept {
  LpRowsPlan p;
  p.vector_elems = static_cast<int>(16 / std::max(in_element_bytes, out_element_bytes));
  p.group_lanes = lp_group_lanes(length, p.vector_elems);
  p.one_pack_per_lane = ceil_div(std::max<std::int64_t>(length, 1), p.vector_elems) <= 32;
  const std::int64_t rows_per_block = 256 / p.group_lanes * (p.one_pack_per_lane ? 2 : 1);  // (short rows: 2 a trip)
  p.blocks = std::clamp<std::int64_t>(ceil_div(rows, rows_per_block), 1, std::int64_t(sm_count) * 16);
  const ApplyOverride* force = g_apply_override;
  if (force && force->max_blocks > 0) p.blocks = std::min(p.blocks, force->max_blocks);
  return p;
}

}  // namespace normkit::plan
