// How an elementwise apply with per-kept-index coefficients walks the tensor: pure host functions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "normkit/dtype.hpp"
#include "plan/geometry.hpp"

namespace normkit::plan {

enum class ApplyKernel {
  rows,     // contiguous rows sharing one coefficient: row r uses kept index (r / (period * repeat)) * period +
            // r % period (per-sample, NCHW, global; repeat > 1: kept, reduced, kept, reduced axes)
  columns,  // rows of `inner` columns, coefficient per column: kept index ((r / rows_per_outer) % kept_outer) *
            // inner + j (kept_outer < outer: reduced, kept, reduced, kept axes, e.g. NCHW over axes 0 and 2)
  spans,    // rows shorter than a block's span and not whole vectors (NCHW 7 x 7): tiles of span_rows rows
            // whose span is whole vectors, a thread a vector of each (its values in one or two rows)
  generic,  // kept index from the flat index, per element
};

const char* apply_kernel_name(ApplyKernel kernel) noexcept;

struct ApplyPlan {
  ApplyKernel kernel = ApplyKernel::rows;
  // rows: each row split into chunks of packs_per_chunk vectors, a group of group_lanes lanes each (a warp;
  // fewer for rows shorter than a warp of vectors: rows of 16 float32 with a warp each ran at 0.15 of a
  // copy on an H100, measured, 28 of 32 lanes idle)
  std::int64_t rows = 0, row_length = 0, period = 1, repeat = 1, chunks = 1, packs_per_chunk = 1;
  int group_lanes = 32;
  // Every row starts 16-byte aligned in input and output and holds at most group_lanes whole vectors: one
  // vector a lane, no head, tail or chunk bookkeeping.
  bool aligned_short_rows = false;
  int rows_per_trip = 1;  // aligned short rows: rows a lane group takes per trip (apply_short_rows_per_trip)
  // spans (rows, row_length, period as the rows walk): tiles of span_rows consecutive rows, span_rows *
  // row_length a multiple of the vector (span_packs vectors, at most a block's 256 threads)
  std::int64_t span_rows = 0, span_packs = 0, span_tiles = 0;
  // columns: outer slices of rows_per_outer rows of inner columns; fold > 1 reads `fold` rows as one
  std::int64_t outer = 0, rows_per_outer = 0, inner = 0, fold = 1, rows_per_block = 1, kept_outer = 0;
  int vector_elems = 1;  // elements per vector access
  int block_x = 256, block_y = 1;
  std::int64_t grid_x = 1, grid_y = 1;
};

// Rows the aligned-short-rows walk gives a lane group per trip: 2 for float32 input computed in float
// (any output but float64; more bytes in flight), else 1 (two rows spill at the kernel's 40 registers).
// The kernel's instantiations and the plan's grid both follow it.
constexpr int apply_short_rows_per_trip(bool float32_input, bool float_compute) { return float32_input && float_compute ? 2 : 1; }

// Policies of the apply kernels (see the traffic check: coefficient loads must stay a few percent of the
// data a warp or block moves).
struct ApplyPolicy {
  // A warp's chunk of a row: 16 vectors per lane (8 KB of float32): its 4 coefficient loads are ~3%.
  static constexpr std::int64_t packs_per_chunk = 32 * 16;
  // Wide rows per block of the columns kernel for 4-byte inputs (scaled by 4 / input size): 512 rows of
  // 128 float32 columns (256 KB) per 4 KB of coefficients.
  static constexpr std::int64_t column_rows_per_block = 512;
  // ... but at least this many blocks per SM where the rows allow (NHWC uint8 -> float32: 129 blocks of
  // one 8-warp block per SM were latency-bound at 19% modelled), and no fewer rows per block than this.
  static constexpr std::int64_t column_blocks_per_sm = 4;
  static constexpr std::int64_t column_min_rows_per_block = 64;
  // Spans: rows a tile holds at most (their coefficients staged in shared memory, kApplySpanTiles tiles at a
  // time), and the tiles a thread loads before it converts any (4 x 16 bytes in flight a thread).
  static constexpr std::int64_t max_span_rows = 64;
  static constexpr int span_tiles_per_trip = 4;
};

// Test-only: forces the generic kernel, scalar accesses or a smaller grid (max_blocks > 0: at most that
// many blocks along the grid-stride dimension, so that small tests walk it) on later plans of this thread.
struct ApplyOverride {
  bool force_generic = false;
  bool force_scalar = false;
  std::int64_t max_blocks = 0;
};
void set_apply_override(const ApplyOverride* override_or_null) noexcept;

// in_address/out_address decide vector access (their alignment must match for 16-byte paths).
ApplyPlan choose_apply_plan(const CanonicalGeometry& geometry, DType in, DType out, std::uintptr_t in_address,
                            std::uintptr_t out_address, int sm_count);

// Kept index of row r of the rows walk (ApplyKernel::rows).
NORMKIT_HD std::int64_t rows_kept_index(std::int64_t r, std::int64_t period, std::int64_t repeat) {
  if (period == 1) return repeat == 1 ? r : r / repeat;
  if (repeat == 1) return r % period;
  return r / (period * repeat) * period + r % period;
}

// Kept index of flat element `index` for the generic path (row-major over the kept dims of `kept`).
NORMKIT_HD std::int64_t kept_index_of(const StridedDims& kept, std::int64_t index) {
  std::int64_t k = 0;
  for (int d = 0; d < kept.ndim; ++d) k = k * kept.extent[d] + (index / kept.stride[d]) % kept.extent[d];
  return k;
}

// Per-sample Lp normalization on the device: rows of at most kLpOneReadMaxRow elements take one read (a
// warp holds the row in registers, 32 lanes x 32 values) when every row starts 16-byte aligned in input
// and output; other rows take two (norms from the statistics engine, then the apply).
constexpr std::int64_t kLpOneReadMaxRow = 1024;
bool lp_one_read_applies(std::int64_t length, std::uintptr_t in_address, std::size_t in_element_bytes,
                         std::uintptr_t out_address, std::size_t out_element_bytes) noexcept;
// Lanes per row of the one-read Lp kernel: the smallest power of two covering the row's vectors of
// vector_elems, at most a warp (rows of 16 float32 held a warp each with 28 lanes masked).
int lp_group_lanes(std::int64_t length, int vector_elems) noexcept;

// Launch shape of the one-read Lp kernels: 16-byte vectors of the wider type, a lane group per row; rows
// of at most 32 packs take the short-rows kernel (one pack a lane, two rows a group per trip: the long-row
// kernel's registers for 32 values a lane cost them half their resident warps, rows of 16 float32 77% ->
// 63% modelled); a grid-stride grid of at most 16 blocks per SM (ApplyOverride::max_blocks lowers it).
struct LpRowsPlan {
  int vector_elems = 1;
  int group_lanes = 1;
  bool one_pack_per_lane = false;
  std::int64_t blocks = 1;
};
LpRowsPlan choose_lp_rows_plan(std::int64_t rows, std::int64_t length, std::size_t in_element_bytes,
                               std::size_t out_element_bytes, int sm_count) noexcept;

}  // namespace normkit::plan
