// The elementwise apply y = (fill(x) - center[k]) * scale[k] + offset[k] (+ clip), one read and one write,
// converting dtypes on the way. Three walks over the tensor, chosen by plan::choose_apply_plan:
//   apply_rows_kernel     rows sharing one coefficient (per-sample, NCHW per-channel, global): a lane
//                         group (up to a warp) per row or chunk of a row, 16-byte accesses after a scalar
//                         head, scalar tail
//   apply_columns_kernel  a coefficient per column (per-feature, NHWC): each thread owns VEC columns and
//                         keeps their coefficients in registers while it walks rows; narrow rows are
//                         folded so that loads stay 16 bytes wide
//   apply_spans_kernel    short rows that are not whole vectors (NCHW 7 x 7): tiles of rows whose span is
//                         whole vectors, a thread a vector of each tile, its values in one or two rows
//   apply_generic_kernel  any other axis set, and misaligned columns: per element index arithmetic
#pragma once

#include <cstdint>

#include "kernels/common/vector_load.cuh"
#include "math/dtype_dispatch.hpp"
#include "math/moments.hpp"
#include "math/transform.hpp"
#include "plan/apply_plan.hpp"

namespace normkit::kernels {

// At least 4 resident blocks of 256 threads (<= 64 registers): without a minimum, ptxas squeezes some of
// these kernels into 32 registers and spills (seen with nvcc 13 for sm_80). The columns kernel keeps up
// to 8 columns' coefficients in registers: 2 blocks (<= 128 registers).
constexpr int kApplyMinBlocksPerSm = 4;
// The rows kernel without float64: 6 blocks (<= 40 registers, 48 resident warps). Left at 4, nvcc 13 took
// 46-48 registers for 16-bit outputs once the kept index had its branches (plan::rows_kept_index): 40
// warps, NCHW uint8 -> float16 74% -> 73% modelled. float64 in or out needs the 4 (spills at 40).
template <typename In, typename Out>
constexpr int kApplyRowsMinBlocksPerSm = sizeof(In) == 8 || sizeof(Out) == 8 ? kApplyMinBlocksPerSm : 6;
constexpr int kApplyColumnsMinBlocksPerSm = 2;
// The spans kernel: 4 (<= 64 registers): a thread holds its trip's 4 raw vectors and two rows' coefficients
// (spilled at the rows kernel's 40 registers).
// Columns a block of the columns kernel owns at most: 32 threads x 8 elements.
constexpr int kMaxApplyBlockColumns = 256;
// Rows of its columns a thread of apply_columns_kernel loads before it stores any.
constexpr int kApplyColumnRowBatch = 4;

// Coefficient arrays in device memory (kept-numel float64 each; fill may be null).
struct DeviceAffine {
  const double* center;
  const double* scale;
  const double* offset;
  const double* fill;
  bool clip;
  double clip_min, clip_max;
};

template <typename Compute>
__device__ __forceinline__ math::AffineColumn<Compute> load_affine(const DeviceAffine& c, std::int64_t k) {
  return math::prepare_column<Compute>(math::Affine{c.center[k], c.scale[k], c.offset[k], c.fill ? c.fill[k] : NAN});
}

template <typename Compute>
__device__ __forceinline__ math::AffineFlags<Compute> affine_flags(const DeviceAffine& c) {
  return math::prepare_flags<Compute>(c.fill != nullptr, c.clip, c.clip_min, c.clip_max);
}

template <typename Compute, typename In, typename Out, int VEC>
__device__ __forceinline__ void apply_pack(const In* __restrict__ x, Out* __restrict__ y, const math::AffineColumn<Compute>& a,
                                           const math::AffineFlags<Compute>& f) {
  Compute v[VEC];
  load_converted<Compute, In, VEC>(x, v);
  NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) v[i] = math::apply_affine_value(v[i], a, f);
  store_converted<Out, VEC>(y, v);
}

struct RowsShape {
  std::int64_t rows, length, period, repeat;  // row r uses kept index plan::rows_kept_index(r, period, repeat)
  std::int64_t chunks;                // work items per row: a lane group applies one chunk of packs
  std::int64_t packs_per_chunk;
  int group_shift;                    // log2 of the lanes per work item: 5 (a warp), less for short rows
  bool aligned_short_rows;            // every row 16-byte aligned in and out, at most a group of packs
};

// One group of lanes per (row, chunk) work item, grid-stride: chunks keep every warp busy on few long rows
// (global, NCHW) while a chunk's 4 coefficient loads stay a few percent of its traffic; groups narrower
// than a warp keep every lane busy on short rows (a warp reads 32 / group_lanes consecutive rows). Chunk 0
// also does the row's scalar head (until 16-byte aligned), the last chunk its scalar tail.
template <typename In, typename Out, int VEC>
__global__ void __launch_bounds__(256, kApplyRowsMinBlocksPerSm<In, Out>) apply_rows_kernel(const In* __restrict__ in,
                                                                               Out* __restrict__ out, RowsShape shape,
                                                                               DeviceAffine coefficients) {
  using Compute = math::compute_type_t<In, Out>;
  const auto flags = affine_flags<Compute>(coefficients);
  const int lanes = 1 << shape.group_shift;
  const int lane = static_cast<int>(threadIdx.x) & (lanes - 1);
  const std::int64_t groups = static_cast<std::int64_t>(gridDim.x) * (blockDim.x >> shape.group_shift);
  const std::int64_t first_group = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x >> shape.group_shift) +
                                    (threadIdx.x >> shape.group_shift);
  if (shape.aligned_short_rows) {
    // One pack a lane, no head, tail or chunks: a row's bookkeeping was ~4x its work on rows of 16 float32.
    // Float32 inputs: two rows a lane group per trip (plan: ApplyPlan::rows_per_trip), both rows' loads
    // issued before either row's values are used (only the coefficients' float conversions come between).
    // With one row a trip too few bytes were in flight (rows of 12 float32, a lane of 4 idle: 78%
    // modelled, latency); other inputs spill at 40 registers with two rows (16-bit and uint8 rows of 16
    // reach 85% with one).
    const int row_packs = static_cast<int>(shape.length / VEC);
    if (lane >= row_packs) return;
    constexpr int kRows = plan::apply_short_rows_per_trip(std::is_same_v<In, float>, std::is_same_v<Compute, float>);
    for (std::int64_t r = first_group; r < shape.rows; r += kRows * groups) {
      std::int64_t offset[kRows];
      math::AffineColumn<Compute> a[kRows];
      RawPack<In, VEC> raw[kRows];
      NORMKIT_UNROLL
      for (int k = 0; k < kRows; ++k) {
        const std::int64_t row = r + k * groups < shape.rows ? r + k * groups : r;  // (past the end: r again)
        a[k] = load_affine<Compute>(coefficients, plan::rows_kept_index(row, shape.period, shape.repeat));
        offset[k] = row * shape.length + lane * VEC;
        raw[k] = load_raw_pack<In, VEC>(in + offset[k]);
      }
      NORMKIT_UNROLL
      for (int k = 0; k < kRows; ++k) {
        if (k > 0 && r + k * groups >= shape.rows) break;
        Compute v[VEC];
        convert_raw_pack<Compute, In, VEC>(raw[k], v);
        NORMKIT_UNROLL
        for (int i = 0; i < VEC; ++i) v[i] = math::apply_affine_value(v[i], a[k], flags);
        store_converted<Out, VEC>(out + offset[k], v);
      }
    }
    return;
  }
  const std::int64_t items = shape.rows * shape.chunks;
  for (std::int64_t item = first_group; item < items; item += groups) {
    // (no 64-bit division where a row is one chunk, or where kept indices do not repeat: each cost a
    // work item of 16 packs a lane ~2% modelled)
    const std::int64_t r = shape.chunks == 1 ? item : item / shape.chunks;
    const std::int64_t chunk = item - r * shape.chunks;
    const auto a = load_affine<Compute>(coefficients, plan::rows_kept_index(r, shape.period, shape.repeat));
    const In* x = in + r * shape.length;
    Out* y = out + r * shape.length;
    const std::int64_t n = shape.length;
    // Vector body only when input and output reach 16-byte boundaries at the same element.
    const int head_in = elements_to_alignment<In, VEC>(x);
    const bool vector = VEC > 1 && head_in == elements_to_alignment<Out, VEC>(y) && n >= head_in + VEC;
    const int head = vector ? head_in : 0;
    const std::int64_t packs = vector ? (n - head) / VEC : 0;
    const std::int64_t tail = head + packs * VEC;  // scalar from here (everything when !vector)
    if (chunk == 0) {
      for (int i = lane; i < head; i += lanes) math::store_as(y + i, math::apply_affine_value(load_one<Compute>(x + i), a, flags));
    }
    // The chunk's packs from one 64-bit offset, counted in 32 bits (packs_per_chunk is small) with a
    // power-of-two stride: no 64-bit arithmetic and no division in the loop.
    const std::int64_t first = chunk * shape.packs_per_chunk;
    const int count = static_cast<int>(first + shape.packs_per_chunk < packs ? shape.packs_per_chunk : packs - first);
    const In* xc = x + head + first * VEC;
    Out* yc = y + head + first * VEC;
    const auto pack_at = [&](int i) { apply_pack<Compute, In, Out, VEC>(xc + i * VEC, yc + i * VEC, a, flags); };
    if (lanes == 32) {  // (a constant stride unrolls better: NCHW uint8 -> float16 72% -> 76% modelled)
      for (int i = lane; i < count; i += 32) pack_at(i);
    } else {
      for (int i = lane; i < count; i += lanes) pack_at(i);
    }
    if (chunk == shape.chunks - 1) {
      // (the tail is shorter than a vector, or the whole row when scalar)
      for (std::int64_t i = tail + lane; i < n; i += lanes) math::store_as(y + i, math::apply_affine_value(load_one<Compute>(x + i), a, flags));
    }
  }
}

// a or b, field by field (a conditional between the two structs put them in local memory).
template <typename Compute>
__device__ __forceinline__ math::AffineColumn<Compute> select_column(bool first, const math::AffineColumn<Compute>& a,
                                                                      const math::AffineColumn<Compute>& b) {
  math::AffineColumn<Compute> k;
  k.pre = first ? a.pre : b.pre;
  k.center_hi = first ? a.center_hi : b.center_hi;
  k.center_lo = first ? a.center_lo : b.center_lo;
  k.scale = first ? a.scale : b.scale;
  k.offset = first ? a.offset : b.offset;
  k.fill = first ? a.fill : b.fill;
  return k;
}

struct SpansShape {
  std::int64_t rows, length, period;  // row r uses kept index r % period (period 1: r)
  std::int64_t span_rows, span_packs, tiles;
};

// Block b takes the trips of kTrip consecutive tiles b, b + grid, ...: the trip's rows' coefficients go to
// shared memory (a thread a row), then thread t loads vector t of each tile (all loads before any value is
// used) and applies to each value its own row's coefficients (the first `in_a` values: row a = t VEC / length
// of the tile, the rest row a + 1).
template <typename In, typename Out, int VEC>
__global__ void __launch_bounds__(256, kApplyMinBlocksPerSm) apply_spans_kernel(const In* __restrict__ in, Out* __restrict__ out,
                                                                                  SpansShape shape, DeviceAffine coefficients) {
  using Compute = math::compute_type_t<In, Out>;
  constexpr int kTrip = plan::ApplyPolicy::span_tiles_per_trip;
  __shared__ math::AffineColumn<Compute> trip_coefficients[kTrip * plan::ApplyPolicy::max_span_rows];
  const auto flags = affine_flags<Compute>(coefficients);
  const int t = static_cast<int>(threadIdx.x);
  const int span_rows = static_cast<int>(shape.span_rows), length = static_cast<int>(shape.length);
  const bool owns = t < shape.span_packs;
  const int a = t * VEC / length;                          // (one division a thread)
  const int in_a = min(VEC, (a + 1) * length - t * VEC);  // values of row a (the rest: row a + 1)
  const std::int64_t total = shape.rows * shape.length, tile_elements = shape.span_rows * shape.length;
  for (std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * kTrip; first < shape.tiles;
       first += static_cast<std::int64_t>(gridDim.x) * kTrip) {
    __syncthreads();  // (the previous trip's coefficients are no longer read)
    const std::int64_t row0 = first * shape.span_rows;
    for (int j = t; j < kTrip * span_rows; j += blockDim.x) {
      const std::int64_t row = row0 + j;
      if (row < shape.rows) trip_coefficients[j] = load_affine<Compute>(coefficients, shape.period == 1 ? row : row % shape.period);
    }
    __syncthreads();
    if (!owns) continue;
    RawPack<In, VEC> raw[kTrip];
    const std::int64_t offset0 = row0 * shape.length + t * VEC;
    NORMKIT_UNROLL
    for (int u = 0; u < kTrip; ++u) {
      if (offset0 + u * tile_elements < total) raw[u] = load_raw_pack<In, VEC>(in + offset0 + u * tile_elements);
    }
    NORMKIT_UNROLL
    for (int u = 0; u < kTrip; ++u) {
      if (offset0 + u * tile_elements >= total) break;
      const math::AffineColumn<Compute> ka = trip_coefficients[u * span_rows + a];
      const math::AffineColumn<Compute> kb = trip_coefficients[u * span_rows + (in_a < VEC ? a + 1 : a)];
      Compute v[VEC];
      convert_raw_pack<Compute, In, VEC>(raw[u], v);
      NORMKIT_UNROLL
      for (int i = 0; i < VEC; ++i) v[i] = math::apply_affine_value(v[i], select_column(i < in_a, ka, kb), flags);
      store_converted<Out, VEC>(out + offset0 + u * tile_elements, v);
    }
  }
}

struct ColumnsShape {
  std::int64_t outer, rows_per_outer, inner, fold;  // fold rows per wide row; rows_per_outer % fold == 0
  std::int64_t rows_per_block;                      // contiguous wide rows a block walks
  std::int64_t kept_outer;                          // outer slice o uses the coefficients of o % kept_outer
};

// Each block owns blockDim.x * VEC (wide) columns and a contiguous range of wide rows. The block loads its
// columns' coefficients once per outer slice into shared memory (coalesced, one load per column), then
// each thread keeps its VEC columns' coefficients in registers while it walks rows with 16-byte accesses.
template <typename In, typename Out, int VEC>
__global__ void __launch_bounds__(256, kApplyColumnsMinBlocksPerSm) apply_columns_kernel(const In* __restrict__ in,
                                                                                        Out* __restrict__ out,
                                                                                        ColumnsShape shape,
                                                                                        DeviceAffine coefficients) {
  using Compute = math::compute_type_t<In, Out>;
  __shared__ math::AffineColumn<Compute> block_coefficients[kMaxApplyBlockColumns];
  const auto flags = affine_flags<Compute>(coefficients);
  const std::int64_t wide_inner = shape.inner * shape.fold;
  const std::int64_t block_col0 = static_cast<std::int64_t>(blockIdx.x) * blockDim.x * VEC;
  const std::int64_t col0 = block_col0 + threadIdx.x * VEC;
  const bool owns_columns = col0 < wide_inner;  // with VEC > 1, wide_inner % VEC == 0
  const int thread = threadIdx.y * blockDim.x + threadIdx.x;
  const int block_columns = blockDim.x * VEC;
  const std::int64_t wide_rows_per_outer = shape.rows_per_outer / shape.fold;
  const std::int64_t wide_rows = shape.outer * wide_rows_per_outer;
  for (std::int64_t r0 = static_cast<std::int64_t>(blockIdx.y) * shape.rows_per_block; r0 < wide_rows;
       r0 += static_cast<std::int64_t>(gridDim.y) * shape.rows_per_block) {
    const std::int64_t r1 = r0 + shape.rows_per_block < wide_rows ? r0 + shape.rows_per_block : wide_rows;
    // The block's rows may cross outer slices: one coefficient load per slice crossed.
    for (std::int64_t start = r0; start < r1;) {
      const std::int64_t o = start / wide_rows_per_outer;
      const std::int64_t end = (o + 1) * wide_rows_per_outer < r1 ? (o + 1) * wide_rows_per_outer : r1;
      __syncthreads();  // the previous slice's coefficients are no longer read
      for (int c = thread; c < block_columns; c += blockDim.x * blockDim.y) {
        if (block_col0 + c < wide_inner) {
          block_coefficients[c] = load_affine<Compute>(coefficients, o % shape.kept_outer * shape.inner + (block_col0 + c) % shape.inner);
        }
      }
      __syncthreads();
      if (owns_columns) {
        math::AffineColumn<Compute> a[VEC];
        NORMKIT_UNROLL
        for (int j = 0; j < VEC; ++j) a[j] = block_coefficients[threadIdx.x * VEC + j];
        const std::int64_t step = blockDim.y;
        std::int64_t r = start + threadIdx.y;
        // kApplyColumnRowBatch rows at a time: all their loads in flight before the first store.
        for (; r + (kApplyColumnRowBatch - 1) * step < end; r += kApplyColumnRowBatch * step) {
          RawPack<In, VEC> x[kApplyColumnRowBatch];
          NORMKIT_UNROLL
          for (int b = 0; b < kApplyColumnRowBatch; ++b) x[b] = load_raw_pack<In, VEC>(in + (r + b * step) * wide_inner + col0);
          NORMKIT_UNROLL
          for (int b = 0; b < kApplyColumnRowBatch; ++b) {
            Compute v[VEC];
            convert_raw_pack<Compute, In, VEC>(x[b], v);
            NORMKIT_UNROLL
            for (int j = 0; j < VEC; ++j) v[j] = math::apply_affine_value(v[j], a[j], flags);
            store_converted<Out, VEC>(out + (r + b * step) * wide_inner + col0, v);
          }
        }
        for (; r < end; r += step) {
          const std::int64_t offset = r * wide_inner + col0;
          Compute v[VEC];
          load_converted<Compute, In, VEC>(in + offset, v);
          NORMKIT_UNROLL
          for (int j = 0; j < VEC; ++j) v[j] = math::apply_affine_value(v[j], a[j], flags);
          store_converted<Out, VEC>(out + offset, v);
        }
      }
      start = end;
    }
  }
}

template <typename In, typename Out>
__global__ void __launch_bounds__(256, kApplyMinBlocksPerSm) apply_generic_kernel(const In* __restrict__ in, Out* __restrict__ out,
                                                            plan::StridedDims kept, std::int64_t numel,
                                                            DeviceAffine coefficients) {
  using Compute = math::compute_type_t<In, Out>;
  const auto flags = affine_flags<Compute>(coefficients);
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < numel; i += stride) {
    const auto a = load_affine<Compute>(coefficients, plan::kept_index_of(kept, i));
    math::store_as(out + i, math::apply_affine_value(load_one<Compute>(in + i), a, flags));
  }
}

// Coefficients from summaries, one thread per kept slice (float64).
__global__ void coefficients_kernel(const StatsSummary* summaries, std::int64_t n, NormalizerOptions options, bool inverse,
                                    AffineCoefficients out) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += stride) {
    math::write_coefficients(summaries[k], options, inverse, out, k);
  }
}

// One block: the first kept index whose fit holds +-Inf (math::fit_has_infinity), or -1. A block-wide
// minimum rather than atomics: the answer is the same on every run.
constexpr int kFirstInfiniteBlock = 256;
__global__ void __launch_bounds__(kFirstInfiniteBlock)
    first_infinite_fit_kernel(const StatsSummary* summaries, std::int64_t n, NormalizerOptions options, std::int64_t* first) {
  __shared__ std::int64_t lowest[kFirstInfiniteBlock];
  std::int64_t mine = n;
  for (std::int64_t k = threadIdx.x; k < n && mine == n; k += kFirstInfiniteBlock) {
    if (math::fit_has_infinity(summaries[k], options)) mine = k;
  }
  lowest[threadIdx.x] = mine;
  __syncthreads();
  for (int half = kFirstInfiniteBlock / 2; half > 0; half /= 2) {
    if (threadIdx.x < half && lowest[threadIdx.x + half] < lowest[threadIdx.x]) lowest[threadIdx.x] = lowest[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) *first = lowest[0] < n ? lowest[0] : -1;
}

}  // namespace normkit::kernels
