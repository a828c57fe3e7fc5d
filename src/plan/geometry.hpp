// Canonical geometry of a reduction: the input shape and reduced axes reduced to one of a few patterns,
// each with a dedicated kernel family. Pure host code.
#pragma once

#include <cstdint>
#include <string>

#include "math/host_device.hpp"
#include "normkit/stats_types.hpp"
#include "normkit/status.hpp"

namespace normkit::plan {

enum class Pattern {
  empty,     // the input has no elements: every kept slice is empty
  segments,  // kept index c owns A sub-rows of B contiguous elements at offset (a*C + c)*B:
             //   rows (per-sample) A = 1; global A = C = 1; middle axis kept (NCHW per-channel) A = N, B = H*W
  columns,   // kept index (o, i) owns R elements at offset (o*R + r)*I + i: per-feature, NHWC per-channel
  generic,   // anything else (e.g. axes 0 and 2 of NCHW): index arithmetic per element
};

const char* pattern_name(Pattern pattern) noexcept;

// A collapsed dimension list for the generic path: kept and reduced dims separately, with strides into
// the input (in elements), fastest last.
struct StridedDims {
  int ndim = 0;
  std::int64_t extent[kMaxDims] = {};
  std::int64_t stride[kMaxDims] = {};
};

// Offset (in elements) of the index-th element of `dims`, row-major over its extents.
NORMKIT_HD std::int64_t strided_offset(const StridedDims& dims, std::int64_t index) {
  std::int64_t offset = 0;
  for (int d = dims.ndim - 1; d >= 0; --d) {
    offset += (index % dims.extent[d]) * dims.stride[d];
    index /= dims.extent[d];
  }
  return offset;
}

struct CanonicalGeometry {
  Pattern pattern = Pattern::empty;
  std::int64_t numel = 0;         // input elements
  std::int64_t kept_numel = 0;    // number of statistics slices
  std::int64_t reduce_numel = 0;  // elements per slice
  // segments
  std::int64_t seg_a = 0, seg_c = 0, seg_b = 0;
  // columns
  std::int64_t col_outer = 0, col_rows = 0, col_inner = 0;
  // generic
  StridedDims kept, reduced;
  // Generic patterns of four collapsed axes kept, reduced, kept, reduced [O, A, C, B] are segments
  // (seg_a, seg_c, seg_b) in seg_outer > 1 kept outer slices of A*C*B elements, kept index o*C + c: the
  // segment kernels take them with one more division (the pattern stays `generic`; the host engine and
  // the apply plans walk them as such).
  std::int64_t seg_outer = 1;
  // Generic patterns reduced, kept, reduced, kept [R, O, S, I] are columns (col_outer O, col_rows S,
  // col_inner I) in col_row_blocks = R > 1 blocks of O*S*I elements whose rows all belong to every kept
  // slice (NCHW statistics over axes 0 and 2): the column kernel takes them with a split per row block.
  std::int64_t col_row_blocks = 1;
};

// Checks the axes against the input's rank (range, duplicates) and sets is_reduced[axis].
// `operation` names the caller in error messages.
Status resolve_axes(int ndim, const ReduceAxes& axes, bool is_reduced[kMaxDims], const std::string& operation);

// Canonicalizes (shape, reduced axes): drops extent-1 axes, merges adjacent axes of the same kind and
// names the pattern. The shape must already be validated (non-negative, numel fits int64).
CanonicalGeometry canonicalize(const std::int64_t* shape, int ndim, const bool is_reduced[kMaxDims]);

// ---- Element ranges (streamed data read in chunks that may split a row or an image) -----------------

// One block of a run of a tensor's elements in flat (row-major) order: contiguous in memory and a box of
// the index space (fixed indices on the axes before `axis`, `extent` consecutive indices on `axis`, every
// index of the axes after it), so the engine summarises it as a tensor of its own whose kept slices are
// consecutive in the whole tensor's kept order.
struct ElementBlock {
  std::int64_t offset = 0;  // the block's first element, relative to the range's first
  int axis = 0;             // the whole tensor's axis the block starts on
  int ndim = 0;             // the block as a tensor: [extent, shape[axis + 1], ..., shape[ndim - 1]]
  std::int64_t shape[kMaxDims] = {};
  bool is_reduced[kMaxDims] = {};  // the block's axes
  std::int64_t kept_offset = 0;    // its first kept slice, in the whole tensor's kept order
  std::int64_t kept_numel = 0;     // its kept slices
};

// At most 2 * ndim - 1 blocks: up to one per axis finishing the first row's tails, one run of whole
// sub-tensors, and up to one per axis starting the last.
constexpr int kMaxElementBlocks = 2 * kMaxDims - 1;

// Cuts the elements [first, first + count) of a tensor of `shape` (validated, 1 <= ndim) into blocks, in
// flat order; returns how many (-1 would be a bug: more than the bound). Requires 0 <= first and
// first + count <= numel.
int split_element_range(const std::int64_t* shape, int ndim, const bool is_reduced[kMaxDims], std::int64_t first,
                        std::int64_t count, ElementBlock blocks[kMaxElementBlocks]);

}  // namespace normkit::plan
