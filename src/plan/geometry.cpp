#include "plan/geometry.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace normkit::plan {

const char* pattern_name(Pattern pattern) noexcept {
  switch (pattern) {
    case Pattern::empty: return "empty";
    case Pattern::segments: return "segments";
    case Pattern::columns: return "columns";
    case Pattern::generic: return "generic";
  }
  return "unknown";
}

Status resolve_axes(int ndim, const ReduceAxes& axes, bool is_reduced[kMaxDims], const std::string& operation) {
  if (ndim < 0 || ndim > kMaxDims) {
    return argument_error(StatusCode::invalid_argument, operation, "input.ndim", "0.." + std::to_string(kMaxDims),
                          std::to_string(ndim));
  }
  for (int i = 0; i < kMaxDims; ++i) is_reduced[i] = axes.all && i < ndim;
  if (axes.all) return Status::success();
  if (axes.count < 0 || axes.count > kMaxDims) {
    return argument_error(StatusCode::invalid_argument, operation, "axis",
                          "at most " + std::to_string(kMaxDims) + " axes, each in range (ReduceAxes::keeping checks its kept axes too)",
                          axes.count < 0 ? "an axis out of range" : std::to_string(axes.count) + " axes");
  }
  for (int i = 0; i < axes.count; ++i) {
    const int axis = axes.axes[i];
    if (axis < -ndim || axis >= ndim) {
      return argument_error(StatusCode::invalid_argument, operation, "axis",
                            "each axis in [" + std::to_string(-ndim) + ", " + std::to_string(ndim - 1) +
                                "] for a " + std::to_string(ndim) + "-dimensional input",
                            std::to_string(axis));
    }
    const int a = axis < 0 ? axis + ndim : axis;
    if (is_reduced[a]) {
      return argument_error(StatusCode::invalid_argument, operation, "axis", "each axis at most once",
                            "axis " + std::to_string(axis) + " repeated");
    }
    is_reduced[a] = true;
  }
  return Status::success();
}

CanonicalGeometry canonicalize(const std::int64_t* shape, int ndim, const bool is_reduced[kMaxDims]) {
  CanonicalGeometry g;
  g.numel = 1;
  g.kept_numel = 1;
  g.reduce_numel = 1;
  for (int i = 0; i < ndim; ++i) {
    g.numel *= shape[i];
    (is_reduced[i] ? g.reduce_numel : g.kept_numel) *= shape[i];
  }
  if (g.numel == 0) {
    g.pattern = Pattern::empty;
    return g;
  }
  // Collapse: drop extent-1 axes, merge runs of the same kind.
  std::int64_t extent[kMaxDims];
  bool reduced[kMaxDims];
  int n = 0;
  for (int i = 0; i < ndim; ++i) {
    if (shape[i] == 1) continue;
    if (n > 0 && reduced[n - 1] == is_reduced[i]) {
      extent[n - 1] *= shape[i];
    } else {
      extent[n] = shape[i];
      reduced[n] = is_reduced[i];
      ++n;
    }
  }
  auto set_segments = [&](std::int64_t a, std::int64_t c, std::int64_t b) {
    g.pattern = Pattern::segments;
    g.seg_a = a;
    g.seg_c = c;
    g.seg_b = b;
  };
  auto set_columns = [&](std::int64_t o, std::int64_t r, std::int64_t i) {
    g.pattern = Pattern::columns;
    g.col_outer = o;
    g.col_rows = r;
    g.col_inner = i;
  };
  if (n == 0) {
    set_segments(1, 1, 1);  // a single element
  } else if (n == 1) {
    if (reduced[0]) set_segments(1, 1, extent[0]);  // global
    else set_columns(1, 1, extent[0]);              // nothing reduced: one value per slice
  } else if (n == 2) {
    if (reduced[1]) set_segments(1, extent[0], extent[1]);  // rows
    else set_columns(1, extent[0], extent[1]);              // per-feature columns
  } else if (n == 3 && reduced[0]) {
    set_segments(extent[0], extent[1], extent[2]);  // middle axis kept
  } else if (n == 3) {
    set_columns(extent[0], extent[1], extent[2]);  // outer and inner kept
  } else {
    g.pattern = Pattern::generic;
    if (n == 4 && !reduced[0]) {
      g.seg_outer = extent[0], g.seg_a = extent[1], g.seg_c = extent[2], g.seg_b = extent[3];
    } else if (n == 4) {
      g.col_row_blocks = extent[0], g.col_outer = extent[1], g.col_rows = extent[2], g.col_inner = extent[3];
    }
  }
  // Strided kept/reduced dims: what the generic kernel walks (any pattern may be forced onto it).
  std::int64_t stride = 1;
  for (int i = n - 1; i >= 0; --i) {
    StridedDims& dims = reduced[i] ? g.reduced : g.kept;
    dims.extent[dims.ndim] = extent[i];  // collected fastest-first, reversed below
    dims.stride[dims.ndim] = stride;
    ++dims.ndim;
    stride *= extent[i];
  }
  for (StridedDims* dims : {&g.kept, &g.reduced}) {
    for (int i = 0, j = dims->ndim - 1; i < j; ++i, --j) {
      std::swap(dims->extent[i], dims->extent[j]);
      std::swap(dims->stride[i], dims->stride[j]);
    }
  }
  return g;
}

int split_element_range(const std::int64_t* shape, int ndim, const bool is_reduced[kMaxDims], std::int64_t first,
                        std::int64_t count, ElementBlock blocks[kMaxElementBlocks]) {
  std::int64_t inner[kMaxDims];        // elements of one index step along each axis
  std::int64_t kept_stride[kMaxDims];  // kept slices of one index step along each kept axis
  std::int64_t elements = 1, kept = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    inner[d] = elements;
    elements *= shape[d];
    kept_stride[d] = kept;
    if (!is_reduced[d]) kept *= shape[d];
  }
  int n = 0;
  const std::int64_t end = first + count;
  for (std::int64_t pos = first; pos < end; ++n) {
    if (n == kMaxElementBlocks) return -1;  // (cannot happen: the bound is proved in geometry.hpp; a bug if seen)
    // The outermost axis whose index steps start at pos (every later index 0) and of which one step fits.
    int axis = ndim - 1;
    while (axis > 0 && pos % inner[axis - 1] == 0 && inner[axis - 1] <= end - pos) --axis;
    ElementBlock& b = blocks[n];
    b = ElementBlock{};
    b.offset = pos - first;
    b.axis = axis;
    b.kept_offset = 0;
    std::int64_t rest = pos;
    for (int d = 0; d <= axis; ++d) {  // the block's first index on the fixed axes and on `axis`
      const std::int64_t index = rest / inner[d];
      rest -= index * inner[d];
      if (!is_reduced[d]) b.kept_offset += index * kept_stride[d];
      if (d == axis) b.shape[0] = std::min(shape[d] - index, (end - pos) / inner[d]);
    }
    b.ndim = ndim - axis;
    b.kept_numel = 1;
    for (int d = axis; d < ndim; ++d) {
      if (d > axis) b.shape[d - axis] = shape[d];
      b.is_reduced[d - axis] = is_reduced[d];
      if (!is_reduced[d]) b.kept_numel *= b.shape[d - axis];
    }
    pos += b.shape[0] * inner[axis];
  }
  return n;
}

}  // namespace normkit::plan
