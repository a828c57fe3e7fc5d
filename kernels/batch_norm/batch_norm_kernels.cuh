// BatchNorm kernels. The forward needs none of its own beyond two per-channel kernels: its statistics come
// from the statistics engine and its apply is the fused apply (transforms). The backward:
//   channel_grad_sums_segments_kernel  channels first, S > 1: partial Σdy, Σdy·(x - mean) of one channel's
//                                      (segment, chunk) items, a lane group per item
//   channel_grad_sums_spans_kernel     channels first, short segments not whole packs: partial sums of a tile
//                                      of channels over a range of rows, a thread a pack of their span
//   channel_grad_sums_columns_kernel   channels last (or S == 1): partial sums of a tile of channels over a
//                                      range of rows, each thread owning a pack of channels
//   channel_partials_sum_kernel        the partials of each channel summed in order
//   batch_norm_dx_segments_kernel /    dx = (dy - grad_mean - (x - mean) * proj) * scale over the same walks,
//   batch_norm_dx_spans_kernel /       the channel's coefficients from the sums (dgamma, dbeta by part 0)
//   batch_norm_dx_columns_kernel
//   batch_norm_finalize_kernel,        per channel: saved and running statistics (and the fused apply's
//   batch_norm_affine_kernel,          coefficients); the fused apply's coefficients; dgamma and dbeta
//   batch_norm_param_grads_kernel      without dx
// Every sum runs in the order plan::choose_channel_plan fixes from the shape: a lane sums its packs in
// order, lanes and groups (or thread rows) combine by fixed trees, partials in part order. Misaligned
// tensors load the same packs element by element.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/common/vector_load.cuh"
#include "math/batch_norm.hpp"
#include "plan/batch_norm_plan.hpp"

namespace normkit::kernels {

// Resident blocks of 256 threads the walks ask for: without a minimum ptxas spent 246 registers on the
// segments sums (8 warps an SM: latency bound, 17% modelled). Segments and the spans sums: 3 (<= 80
// registers; at 4 the 16-bit dx spilled). Columns and the spans dx: 2 (<= 128), a thread keeps its channels'
// mean (sums) or 4 coefficients (dx) in registers besides its batch of raw packs (at 4 the 16-bit columns dx
// spilled 424 bytes; at 3 the 16-bit spans dx, holding two channels' coefficients, 4).
constexpr int kChannelMinBlocksPerSm = 3;
constexpr int kChannelColumnsMinBlocksPerSm = 2;

// x as [samples, outer, channels, inner] (plan::ChannelGeometry); a "flat channel" k = n * channels + c is
// channel c of sample n, the unit the sums and the dx coefficients are kept for (BatchNorm: samples = 1).
struct ChannelKernelShape {
  std::int64_t outer, channels, inner, samples;
  std::int64_t flat_channels;  // samples * channels
  std::int64_t mean_group;     // flat channels a saved mean is shared by (GroupNorm's channels a group; 1)
  std::int64_t parts;          // partials a flat channel
  // segments
  std::int64_t segment_packs, chunk_packs, chunks_per_segment, items_per_channel, items_per_part;
  std::int64_t segment_stride;  // channels * inner: from a channel's segment to its next
  int group_shift, groups_per_channel, channels_per_block;
  // spans
  std::int64_t span_channels, span_packs;
  // columns (and spans: channel_tiles, rows_per_part)
  std::int64_t channel_packs, channel_tiles, rows_per_part;
  bool aligned;  // dy, x (and dx) 16-byte aligned: packs load and store as one access
};

// A pack of VEC values at p as the words it loads in: one access when aligned, else element by element (the
// same bytes), converted only when used (convert_raw_pack), so that a batch's loads are all issued first.
template <typename T, int VEC, bool Aligned>
__device__ __forceinline__ RawPack<T, VEC> load_raw_any(const T* __restrict__ p) {
  if constexpr (VEC > 1 && Aligned) {
    return load_raw_pack<T, VEC>(p);
  } else {
    return load_raw_elements<T, VEC>(p);
  }
}

template <typename T, int VEC, bool Aligned>
__device__ __forceinline__ void store_pack_any(T* __restrict__ p, const float* v) {
  if constexpr (VEC > 1 && Aligned) {
    store_converted<T, VEC>(p, v);
  } else {
    store_elements<T, VEC>(p, v);
  }
}

// walk(std::true_type) when packs are one 16-byte access (VEC > 1 and every tensor aligned), else
// walk(std::false_type): the choice is made once a kernel, outside its loops (a branch at each load put a
// round trip behind every load: 37 us instead of 22 for an NHWC dx, modelled).
template <int VEC, typename Walk>
__device__ __forceinline__ void with_alignment(bool aligned, Walk& walk) {
  if (VEC > 1 && aligned) {
    walk(std::true_type{});
  } else {
    walk(std::false_type{});
  }
}

// The segments walks: walk(aligned, one_chunk) with both choices made outside the item loop (the division of
// an item index by chunks_per_segment inside it cost the short segments of 7 x 7 NCHW 60% more issue).
template <int VEC, typename Walk>
__device__ __forceinline__ void with_segment_variant(bool aligned, bool one_chunk, Walk& walk) {
  auto by_chunking = [&](auto a) {
    if (one_chunk) {
      walk(a, std::true_type{});
    } else {
      walk(a, std::false_type{});
    }
  };
  with_alignment<VEC>(aligned, by_chunking);
}

// Element offset of the first segment of flat channel k (sample k / channels, channel k % channels).
// (No division where a sample has one segment a channel (GroupNorm channels first) or there is one
// sample: every division of a block's prologue costs its warps about as much as a chunk's loads, modelled.)
__device__ __forceinline__ std::int64_t flat_channel_base(const ChannelKernelShape& s, std::int64_t k) {
  if (s.outer == 1) return k * s.inner;
  const std::int64_t n = s.samples == 1 ? 0 : k / s.channels;
  return (n * s.outer * s.channels + (k - n * s.channels)) * s.inner;
}

// Element offset of item `item` of a flat channel (first segment at `base`) in the segments walk, and its
// pack count. OneChunk: a segment is one item (no division; else a branch picks it at each item).
template <bool OneChunk>
__device__ __forceinline__ std::int64_t segment_item_offset(const ChannelKernelShape& s, std::int64_t base, std::int64_t item,
                                                            int vec, int* packs) {
  if constexpr (OneChunk) {
    *packs = static_cast<int>(s.segment_packs);
    return base + item * s.segment_stride;
  }
  const std::int64_t segment = s.chunks_per_segment == 1 ? item : item / s.chunks_per_segment;
  const std::int64_t chunk = item - segment * s.chunks_per_segment;
  const std::int64_t first = chunk * s.chunk_packs;
  *packs = static_cast<int>(s.segment_packs - first < s.chunk_packs ? s.segment_packs - first : s.chunk_packs);
  return base + segment * s.segment_stride + first * vec;
}

// v, computed once: the backend otherwise recomputed a lane index from %tid at every load of the segments
// walks (50% more issue for 7 x 7 segments, modelled) rather than keep it in a register.
__device__ __forceinline__ int pinned(int v) {
  asm volatile("" : "+r"(v));
  return v;
}

// The segments walk's lane group: block b holds part b % parts of flat channels
// (b / parts) * channels_per_block + ..., a channel's groups_per_channel groups side by side.
struct SegmentGroup {
  std::int64_t first_channel, channel, part;  // the block's first channel, the group's
  int in_channel;               // the group's index in its channel
  bool owns;                    // a channel of the block's, below flat_channels (else the group idles)
};

__device__ __forceinline__ SegmentGroup segment_group(const ChannelKernelShape& s) {
  SegmentGroup q;
  const int group = threadIdx.x >> s.group_shift;
  const int local = s.channels_per_block == 1 ? 0 : group / s.groups_per_channel;
  q.in_channel = group - local * s.groups_per_channel;
  const std::int64_t block_channels = s.parts == 1 ? blockIdx.x : blockIdx.x / s.parts;
  q.part = blockIdx.x - block_channels * s.parts;
  q.first_channel = block_channels * s.channels_per_block;
  q.channel = q.first_channel + local;
  q.owns = local < s.channels_per_block && q.channel < s.flat_channels;
  return q;
}

// The columns walk's block b: channel tile b % channel_tiles, partial p = b / channel_tiles of sample
// p % samples, which owns rows [r0, r1) of x's samples * outer rows (part p / samples of the sample's).
struct ColumnPart {
  std::int64_t tile, part, sample, r0, r1;
};

__device__ __forceinline__ ColumnPart column_part(const ChannelKernelShape& s) {
  ColumnPart q;
  // (32-bit divisions: the block index, tile and sample counts all fit a grid)
  const unsigned tiles = static_cast<unsigned>(s.channel_tiles), part = blockIdx.x / tiles;
  q.tile = blockIdx.x - part * tiles;
  q.part = part;
  q.sample = s.samples == 1 ? 0 : part % static_cast<unsigned>(s.samples);
  const std::int64_t first = q.sample * s.outer;
  q.r0 = first + (q.part / s.samples) * s.rows_per_part;
  q.r1 = q.r0 + s.rows_per_part < first + s.outer ? q.r0 + s.rows_per_part : first + s.outer;
  return q;
}

// B packs first, first + lanes, ... (those below `packs`) of one (segment, chunk) item of dy and x, every load
// issued before any value is used.
template <typename T, int VEC, bool Aligned, int B>
__device__ __forceinline__ void load_item_packs(const T* __restrict__ dy, const T* __restrict__ x, int packs, int first, int lanes,
                                                RawPack<T, VEC> (&d)[B], RawPack<T, VEC> (&v)[B]) {
  NORMKIT_UNROLL
  for (int k = 0; k < B; ++k) {
    const int pack = first + k * lanes;
    if (pack < packs) {
      d[k] = load_raw_any<T, VEC, Aligned>(dy + pack * VEC);
      v[k] = load_raw_any<T, VEC, Aligned>(x + pack * VEC);
    }
  }
}

// Packs a lane of the segments walk loads at once: kChunkPacksPerLane of 16-byte accesses or single
// elements; one where a misaligned pack of VEC > 1 is loaded element by element (16-bit packs of 8 elements
// x 4 x 2 inputs spilled).
template <bool Aligned, int VEC>
constexpr int kSegmentBatch = Aligned || VEC == 1 ? plan::kChunkPacksPerLane : 1;

// The packs at offset, offset + pitch, ... (the first `rows`, at most kColumnRowBatch) of dy and x, every
// load issued before any value is used.
template <typename T, int VEC, bool Aligned>
__device__ __forceinline__ void load_rows(const T* __restrict__ dy, const T* __restrict__ x, std::int64_t offset, std::int64_t pitch, int rows,
                                          RawPack<T, VEC> (&d)[plan::kColumnRowBatch], RawPack<T, VEC> (&v)[plan::kColumnRowBatch]) {
  if (rows == plan::kColumnRowBatch) {  // (a whole batch: no branch between the loads)
    NORMKIT_UNROLL
    for (int k = 0; k < plan::kColumnRowBatch; ++k) {
      d[k] = load_raw_any<T, VEC, Aligned>(dy + offset + k * pitch);
      v[k] = load_raw_any<T, VEC, Aligned>(x + offset + k * pitch);
    }
    return;
  }
  NORMKIT_UNROLL
  for (int k = 0; k < plan::kColumnRowBatch; ++k) {
    if (k < rows) {
      d[k] = load_raw_any<T, VEC, Aligned>(dy + offset + k * pitch);
      v[k] = load_raw_any<T, VEC, Aligned>(x + offset + k * pitch);
    }
  }
}

// Rows r, r + stride, ... (those below r1, at most kColumnRowBatch) of channels [c0, c0 + VEC) of dy and x.
template <typename T, int VEC, bool Aligned>
__device__ __forceinline__ void load_row_batch(const T* __restrict__ dy, const T* __restrict__ x, std::int64_t r, std::int64_t stride,
                                               std::int64_t r1, const ChannelKernelShape& s, std::int64_t c0,
                                               RawPack<T, VEC> (&d)[plan::kColumnRowBatch], RawPack<T, VEC> (&v)[plan::kColumnRowBatch]) {
  int rows = 0;
  while (rows < plan::kColumnRowBatch && r + rows * stride < r1) ++rows;
  load_rows<T, VEC, Aligned>(dy, x, r * s.channels + c0, stride * s.channels, rows, d, v);
}

// Fixed-order sum over the lanes of a group (xor tree: every lane ends with the same value).
__device__ __forceinline__ float group_sum(float v, int lanes) {
  for (int offset = lanes / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// ---- Backward sums ------------------------------------------------------------------------------------

// Block b: channel b / parts, partial b % parts: items [part * items_per_part, ...) of the channel, group g
// taking items g, g + groups, ...; a lane sums its (up to kChunkPacksPerLane) packs of an item, all loaded
// before the first is added.
template <typename T, int VEC>
__global__ void __launch_bounds__(256, kChannelMinBlocksPerSm) channel_grad_sums_segments_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                                                         const float* __restrict__ mean, ChannelKernelShape s,
                                                                         float* __restrict__ partial_dy,
                                                                         float* __restrict__ partial_dy_xmu) {
  __shared__ float group_sums[2][256];  // (a group a lane at the narrowest: plan::ChannelPlan::group_lanes)
  const SegmentGroup q = segment_group(s);
  const std::int64_t c = q.owns ? q.channel : s.flat_channels - 1;  // (idle groups past the end: no items)
  const int lanes = 1 << s.group_shift;
  const int lane = pinned(static_cast<int>(threadIdx.x) & (lanes - 1));
  const int groups = s.groups_per_channel;
  const float m = mean[c / s.mean_group];
  const std::int64_t base = flat_channel_base(s, c);
  float sum_dy = 0.0f, sum_dy_xmu = 0.0f;
  const std::int64_t first = q.part * s.items_per_part;
  const std::int64_t end = !q.owns ? first : (first + s.items_per_part < s.items_per_channel ? first + s.items_per_part : s.items_per_channel);
  auto walk = [&](auto aligned, auto one_chunk) {
    for (std::int64_t item = first + q.in_channel; item < end; item += groups) {
      int packs = 0;
      const std::int64_t offset = segment_item_offset<decltype(one_chunk)::value>(s, base, item, VEC, &packs);
      constexpr int kBatch = kSegmentBatch<decltype(aligned)::value, VEC>;
      for (int k0 = 0; k0 < plan::kChunkPacksPerLane; k0 += kBatch) {
        RawPack<T, VEC> rd[kBatch], rx[kBatch];
        load_item_packs<T, VEC, decltype(aligned)::value, kBatch>(dy + offset, x + offset, packs, lane + k0 * lanes, lanes, rd, rx);
        NORMKIT_UNROLL
        for (int k = 0; k < kBatch; ++k) {
          if (lane + (k0 + k) * lanes < packs) {
            float d[VEC], v[VEC];
            convert_raw_pack<float, T, VEC>(rd[k], d);
            convert_raw_pack<float, T, VEC>(rx[k], v);
            NORMKIT_UNROLL
            for (int i = 0; i < VEC; ++i) {
              sum_dy += d[i];
              sum_dy_xmu += d[i] * (v[i] - m);
            }
          }
        }
      }
    }
  };
  with_segment_variant<VEC>(s.aligned, s.chunks_per_segment == 1, walk);
  sum_dy = group_sum(sum_dy, lanes);
  sum_dy_xmu = group_sum(sum_dy_xmu, lanes);
  const int group = threadIdx.x >> s.group_shift;
  if (lane == 0) {
    group_sums[0][group] = sum_dy;
    group_sums[1][group] = sum_dy_xmu;
  }
  __syncthreads();
  // Thread t < channels_per_block: channel t's groups in order.
  const std::int64_t k = q.first_channel + threadIdx.x;
  if (threadIdx.x < s.channels_per_block && k < s.flat_channels) {
    const int g0 = threadIdx.x * groups;
    float a = group_sums[0][g0], b = group_sums[1][g0];
    for (int g = 1; g < groups; ++g) {
      a += group_sums[0][g0 + g];
      b += group_sums[1][g0 + g];
    }
    partial_dy[q.part * s.flat_channels + k] = a;
    partial_dy_xmu[q.part * s.flat_channels + k] = b;
  }
}

// The spans walk's block b: channel tile b % channel_tiles (channels c0 = tile * span_channels, ...) and
// partial p = b / channel_tiles, rows [p * rows_per_part, ...). Thread t owns pack t of the tile's span in
// every row: its VEC values are channel a = t VEC / S's (the first `in_a`) and channel a + 1's (the rest).
struct SpanPart {
  std::int64_t part, c0, r0, r1;
  int a, in_a;  // the thread's first channel (of the tile) and its values in it
  bool owns;    // a pack of the tile's span (the last tile may hold fewer channels)
};

__device__ __forceinline__ SpanPart span_part(const ChannelKernelShape& s, int vec) {
  SpanPart q;
  const unsigned tiles = static_cast<unsigned>(s.channel_tiles), part = blockIdx.x / tiles;
  q.part = part;
  q.c0 = static_cast<std::int64_t>(blockIdx.x - part * tiles) * s.span_channels;
  q.r0 = q.part * s.rows_per_part;
  q.r1 = q.r0 + s.rows_per_part < s.outer ? q.r0 + s.rows_per_part : s.outer;
  const std::int64_t channels = s.channels - q.c0 < s.span_channels ? s.channels - q.c0 : s.span_channels;
  const int first = static_cast<int>(threadIdx.x) * vec;  // the thread's first value in the span
  q.owns = first < channels * s.inner;
  q.a = first / static_cast<int>(s.inner);
  q.in_a = min(vec, (q.a + 1) * static_cast<int>(s.inner) - first);
  return q;
}

// A thread sums each of its pack's positions over its rows in order, then the positions of each of its two
// channels in order; a channel's threads (those whose packs hold its values) combine in thread order.
template <typename T, int VEC>
__global__ void __launch_bounds__(256, kChannelMinBlocksPerSm) channel_grad_sums_spans_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                                                      const float* __restrict__ mean, ChannelKernelShape s,
                                                                      float* __restrict__ partial_dy,
                                                                      float* __restrict__ partial_dy_xmu) {
  __shared__ float thread_sums[4][256];  // Σdy and Σdy·(x - mean) of the thread's first channel, then of its second
  const SpanPart q = span_part(s, VEC);
  float m[VEC], sum_dy[VEC], sum_dy_xmu[VEC];
  {
    const float ma = q.owns ? mean[q.c0 + q.a] : 0.0f, mb = q.owns && q.in_a < VEC ? mean[q.c0 + q.a + 1] : 0.0f;
    NORMKIT_UNROLL
    for (int i = 0; i < VEC; ++i) {
      m[i] = i < q.in_a ? ma : mb;
      sum_dy[i] = 0.0f;
      sum_dy_xmu[i] = 0.0f;
    }
  }
  const std::int64_t pitch = s.channels * s.inner;
  const std::int64_t offset0 = q.c0 * s.inner + static_cast<std::int64_t>(threadIdx.x) * VEC;
  auto walk = [&](auto aligned) {
    for (std::int64_t r = q.r0; r < q.r1; r += plan::kColumnRowBatch) {
      const int rows = static_cast<int>(q.r1 - r < plan::kColumnRowBatch ? q.r1 - r : plan::kColumnRowBatch);
      RawPack<T, VEC> rd[plan::kColumnRowBatch], rx[plan::kColumnRowBatch];
      load_rows<T, VEC, decltype(aligned)::value>(dy, x, r * pitch + offset0, pitch, rows, rd, rx);
      NORMKIT_UNROLL
      for (int k = 0; k < plan::kColumnRowBatch; ++k) {
        if (k < rows) {
          float d[VEC], v[VEC];
          convert_raw_pack<float, T, VEC>(rd[k], d);
          convert_raw_pack<float, T, VEC>(rx[k], v);
          NORMKIT_UNROLL
          for (int i = 0; i < VEC; ++i) {
            sum_dy[i] += d[i];
            sum_dy_xmu[i] += d[i] * (v[i] - m[i]);
          }
        }
      }
    }
  };
  if (q.owns) with_alignment<VEC>(s.aligned, walk);
  float a_dy = 0.0f, a_xmu = 0.0f, b_dy = 0.0f, b_xmu = 0.0f;
  NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) {
    if (i < q.in_a) {
      a_dy += sum_dy[i], a_xmu += sum_dy_xmu[i];
    } else {
      b_dy += sum_dy[i], b_xmu += sum_dy_xmu[i];
    }
  }
  thread_sums[0][threadIdx.x] = a_dy;
  thread_sums[1][threadIdx.x] = a_xmu;
  thread_sums[2][threadIdx.x] = b_dy;
  thread_sums[3][threadIdx.x] = b_xmu;
  __syncthreads();
  // Channel j of the tile: the threads from j S / VEC (whose pack may begin in channel j - 1: its second
  // channel's sums) to (j S + S - 1) / VEC.
  const int inner = static_cast<int>(s.inner);
  for (int j = threadIdx.x; j < s.span_channels && q.c0 + j < s.channels; j += blockDim.x) {
    const int t0 = j * inner / VEC, t1 = (j * inner + inner - 1) / VEC;
    float sd = 0.0f, sx = 0.0f;
    for (int u = t0; u <= t1; ++u) {
      const int half = u * VEC >= j * inner ? 0 : 2;
      sd += thread_sums[half][u];
      sx += thread_sums[half + 1][u];
    }
    partial_dy[q.part * s.flat_channels + q.c0 + j] = sd;
    partial_dy_xmu[q.part * s.flat_channels + q.c0 + j] = sx;
  }
}

// Block b: a channel tile and a range of one sample's rows (column_part). Thread (tx, ty) owns channel pack
// tile * blockDim.x + tx and rows r0 + ty, r0 + ty + blockDim.y, ... in batches of kColumnRowBatch rows; the
// thread rows combine by a tree in shared memory. Partial p of channel c is flat channel
// (sample, c)'s partial p / samples: at p * channels + c = (p / samples) * flat_channels + sample * channels + c.
template <typename T, int VEC>
__global__ void __launch_bounds__(256, kChannelColumnsMinBlocksPerSm) channel_grad_sums_columns_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                                                        const float* __restrict__ mean, ChannelKernelShape s,
                                                                        float* __restrict__ partial_dy,
                                                                        float* __restrict__ partial_dy_xmu) {
  __shared__ float row_sums[2][256 * VEC];
  const ColumnPart q = column_part(s);
  const std::int64_t part = q.part, r0 = q.r0, r1 = q.r1;
  const std::int64_t channel_pack = q.tile * blockDim.x + threadIdx.x;
  const bool owns = channel_pack < s.channel_packs;
  const std::int64_t c0 = channel_pack * VEC;
  const std::int64_t k0 = q.sample * s.channels + c0;  // the first flat channel
  float m[VEC], sum_dy[VEC], sum_dy_xmu[VEC];
  NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) {
    m[i] = owns ? mean[(k0 + i) / s.mean_group] : 0.0f;
    sum_dy[i] = 0.0f;
    sum_dy_xmu[i] = 0.0f;
  }
  const std::int64_t stride = blockDim.y;
  auto walk = [&](auto aligned) {
    for (std::int64_t r = r0 + threadIdx.y; r < r1; r += stride * plan::kColumnRowBatch) {
      RawPack<T, VEC> rd[plan::kColumnRowBatch], rx[plan::kColumnRowBatch];
      load_row_batch<T, VEC, decltype(aligned)::value>(dy, x, r, stride, r1, s, c0, rd, rx);
      NORMKIT_UNROLL
      for (int k = 0; k < plan::kColumnRowBatch; ++k) {
        if (r + k * stride < r1) {
          float d[VEC], v[VEC];
          convert_raw_pack<float, T, VEC>(rd[k], d);
          convert_raw_pack<float, T, VEC>(rx[k], v);
          NORMKIT_UNROLL
          for (int i = 0; i < VEC; ++i) {
            sum_dy[i] += d[i];
            sum_dy_xmu[i] += d[i] * (v[i] - m[i]);
          }
        }
      }
    }
  };
  if (owns) with_alignment<VEC>(s.aligned, walk);
  const int slot = (threadIdx.y * blockDim.x + threadIdx.x) * VEC;
  NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) {
    row_sums[0][slot + i] = sum_dy[i];
    row_sums[1][slot + i] = sum_dy_xmu[i];
  }
  for (int half = blockDim.y / 2; half > 0; half /= 2) {
    __syncthreads();
    if (threadIdx.y < half) {
      const int other = slot + half * blockDim.x * VEC;
      NORMKIT_UNROLL
      for (int i = 0; i < VEC; ++i) {
        row_sums[0][slot + i] += row_sums[0][other + i];
        row_sums[1][slot + i] += row_sums[1][other + i];
      }
    }
  }
  if (threadIdx.y == 0 && owns) {
    NORMKIT_UNROLL
    for (int i = 0; i < VEC; ++i) {
      partial_dy[part * s.channels + c0 + i] = row_sums[0][slot + i];
      partial_dy_xmu[part * s.channels + c0 + i] = row_sums[1][slot + i];
    }
  }
}

// sum[c] = Σ_part partial[part][c]: thread (tx, strand) of a block of (lanes, 1024 / lanes) sums parts strand,
// strand + strands, ... of channel blockIdx.x * lanes + tx, then the strands combine by a tree in shared memory.
__global__ void __launch_bounds__(1024) channel_partials_sum_kernel(const float* __restrict__ partial_dy,
                                                                   const float* __restrict__ partial_dy_xmu,
                                                                   std::int64_t parts, std::int64_t channels,
                                                                   float* __restrict__ sum_dy, float* __restrict__ sum_dy_xmu) {
  __shared__ float strand_sums[2][1024];
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int slot = threadIdx.y * blockDim.x + threadIdx.x;
  float a = 0.0f, b = 0.0f;
  if (c < channels) {
    // A batch of kPartialSumBatch parts loaded before any is added (past the end: zeros, which add nothing).
    constexpr int kPartialSumBatch = 8;
    for (std::int64_t p0 = threadIdx.y; p0 < parts; p0 += kPartialSumBatch * blockDim.y) {
      float pa[kPartialSumBatch], pb[kPartialSumBatch];
      NORMKIT_UNROLL
      for (int k = 0; k < kPartialSumBatch; ++k) {
        const std::int64_t p = p0 + k * blockDim.y;
        pa[k] = p < parts ? partial_dy[p * channels + c] : 0.0f;
        pb[k] = p < parts ? partial_dy_xmu[p * channels + c] : 0.0f;
      }
      NORMKIT_UNROLL
      for (int k = 0; k < kPartialSumBatch; ++k) {
        a += pa[k];
        b += pb[k];
      }
    }
  }
  strand_sums[0][slot] = a;
  strand_sums[1][slot] = b;
  for (int half = blockDim.y / 2; half > 0; half /= 2) {
    __syncthreads();
    if (threadIdx.y < half) {
      strand_sums[0][slot] += strand_sums[0][slot + half * blockDim.x];
      strand_sums[1][slot] += strand_sums[1][slot + half * blockDim.x];
    }
  }
  if (threadIdx.y == 0 && c < channels) {
    sum_dy[c] = strand_sums[0][slot];
    sum_dy_xmu[c] = strand_sums[1][slot];
  }
}

// ---- dx -----------------------------------------------------------------------------------------------

// What dx needs per flat channel. BatchNorm: the forward's statistics, gamma, the (merged) sums and their
// count, the coefficients computed where they are used; dgamma and dbeta are written by the first part's
// threads. GroupNorm: `coefficients`, computed beforehand from its groups' sums (the rest unused).
struct GradInputs {
  const float* mean;
  const float* rstd;
  const float* gamma;  // may be null (1)
  const float* sum_dy;
  const float* sum_dy_xmu;
  double count;
  float* dgamma;  // may be null
  float* dbeta;   // may be null
  const math::ChannelGradCoefficients* coefficients;  // null: computed from the above
};

// A channel's inputs of the gradient, loaded together (before any store: the arrays may alias as far as the
// compiler knows, and a load after a store waits for it).
struct ChannelGrad {
  float mean, rstd, gamma, sum_dy, sum_dy_xmu;
};

__device__ __forceinline__ ChannelGrad load_channel_grad(const GradInputs& g, std::int64_t c) {
  return ChannelGrad{g.mean[c], g.rstd[c], g.gamma ? g.gamma[c] : 1.0f, g.sum_dy[c], g.sum_dy_xmu[c]};
}

__device__ __forceinline__ void write_param_grads(const GradInputs& g, std::int64_t c, const ChannelGrad& v) {
  if (g.dgamma) g.dgamma[c] = math::batch_norm_dgamma(v.sum_dy_xmu, v.rstd);
  if (g.dbeta) g.dbeta[c] = v.sum_dy;
}

// Flat channel k's coefficients (stored, or from its BatchNorm inputs, then its dgamma and dbeta when
// write_params).
__device__ __forceinline__ math::ChannelGradCoefficients channel_coefficients(const GradInputs& g, std::int64_t k, bool write_params) {
  if (g.coefficients) return g.coefficients[k];
  const ChannelGrad v = load_channel_grad(g, k);
  const math::ChannelGradCoefficients q = math::batch_norm_grad_coefficients(v.mean, v.rstd, v.gamma, v.sum_dy, v.sum_dy_xmu, g.count);
  if (write_params) write_param_grads(g, k, v);
  return q;
}

// The reduce's segments walk, every item's packs loaded, transformed and stored.
template <typename T, int VEC>
__global__ void __launch_bounds__(256, kChannelMinBlocksPerSm) batch_norm_dx_segments_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                                                     GradInputs grad, ChannelKernelShape s,
                                                                     T* __restrict__ dx) {
  const SegmentGroup g = segment_group(s);
  if (!g.owns) return;
  const std::int64_t c = g.channel;
  const int lanes = 1 << s.group_shift;
  const int lane = pinned(static_cast<int>(threadIdx.x) & (lanes - 1));
  const int groups = s.groups_per_channel;
  const math::ChannelGradCoefficients q = channel_coefficients(grad, c, g.part == 0 && g.in_channel == 0 && lane == 0);
  const std::int64_t base = flat_channel_base(s, c);
  const std::int64_t first = g.part * s.items_per_part;
  const std::int64_t end = first + s.items_per_part < s.items_per_channel ? first + s.items_per_part : s.items_per_channel;
  auto walk = [&](auto aligned) {
    constexpr bool kAligned = decltype(aligned)::value;
    for (std::int64_t item = first + g.in_channel; item < end; item += groups) {
      int packs = 0;
      // (the chunking chosen at each item: outside the loop, as the sums do, dx took 25% more issue at 7 x 7)
      const std::int64_t offset = segment_item_offset<false>(s, base, item, VEC, &packs);
      constexpr int kBatch = kSegmentBatch<kAligned, VEC>;
      for (int k0 = 0; k0 < plan::kChunkPacksPerLane; k0 += kBatch) {
        RawPack<T, VEC> rd[kBatch], rx[kBatch];
        load_item_packs<T, VEC, kAligned, kBatch>(dy + offset, x + offset, packs, lane + k0 * lanes, lanes, rd, rx);
        NORMKIT_UNROLL
        for (int k = 0; k < kBatch; ++k) {
          const int pack = lane + (k0 + k) * lanes;
          if (pack < packs) {
            float d[VEC], v[VEC];
            convert_raw_pack<float, T, VEC>(rd[k], d);
            convert_raw_pack<float, T, VEC>(rx[k], v);
            NORMKIT_UNROLL
            for (int i = 0; i < VEC; ++i) d[i] = math::channel_dx(d[i], v[i], q);
            store_pack_any<T, VEC, kAligned>(dx + offset + pack * VEC, d);
          }
        }
      }
    }
  };
  with_alignment<VEC>(s.aligned, walk);
}

// The reduce's spans walk: a thread holds its two channels' coefficients (the tile's computed once a block,
// one channel a thread, and the first part's dgamma and dbeta written).
template <typename T, int VEC>
__global__ void __launch_bounds__(256, kChannelColumnsMinBlocksPerSm) batch_norm_dx_spans_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                                                  GradInputs grad, ChannelKernelShape s, T* __restrict__ dx) {
  __shared__ math::ChannelGradCoefficients tile_coefficients[256];
  const SpanPart q = span_part(s, VEC);
  for (int j = threadIdx.x; j < s.span_channels; j += blockDim.x) {
    if (q.c0 + j < s.channels) tile_coefficients[j] = channel_coefficients(grad, q.c0 + j, q.part == 0);
  }
  __syncthreads();
  if (!q.owns) return;
  // (the two channels' coefficients, chosen at each value; 2 blocks an SM as the columns walk: the 16-bit
  // walk spilled at 85 registers)
  const math::ChannelGradCoefficients ka = tile_coefficients[q.a], kb = tile_coefficients[q.in_a < VEC ? q.a + 1 : q.a];
  const std::int64_t pitch = s.channels * s.inner;
  const std::int64_t offset0 = q.c0 * s.inner + static_cast<std::int64_t>(threadIdx.x) * VEC;
  auto walk = [&](auto aligned) {
    constexpr bool kAligned = decltype(aligned)::value;
    for (std::int64_t r = q.r0; r < q.r1; r += plan::kColumnRowBatch) {
      const int rows = static_cast<int>(q.r1 - r < plan::kColumnRowBatch ? q.r1 - r : plan::kColumnRowBatch);
      RawPack<T, VEC> rd[plan::kColumnRowBatch], rx[plan::kColumnRowBatch];
      const std::int64_t offset = r * pitch + offset0;
      load_rows<T, VEC, kAligned>(dy, x, offset, pitch, rows, rd, rx);
      NORMKIT_UNROLL
      for (int b = 0; b < plan::kColumnRowBatch; ++b) {
        if (b < rows) {
          float d[VEC], v[VEC];
          convert_raw_pack<float, T, VEC>(rd[b], d);
          convert_raw_pack<float, T, VEC>(rx[b], v);
          NORMKIT_UNROLL
          for (int i = 0; i < VEC; ++i) d[i] = math::channel_dx(d[i], v[i], i < q.in_a ? ka : kb);
          store_pack_any<T, VEC, kAligned>(dx + offset + b * pitch, d);
        }
      }
    }
  };
  with_alignment<VEC>(s.aligned, walk);
}

// The reduce's columns walk: each thread keeps its channels' coefficients in registers.
template <typename T, int VEC>
__global__ void __launch_bounds__(256, kChannelColumnsMinBlocksPerSm) batch_norm_dx_columns_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                                                    GradInputs grad, ChannelKernelShape s,
                                                                    T* __restrict__ dx) {
  __shared__ math::ChannelGradCoefficients tile_coefficients[256];
  const ColumnPart part = column_part(s);
  const std::int64_t r0 = part.r0, r1 = part.r1;
  // The tile's coefficients, one channel a thread (one round trip; a thread computing its own VEC channels
  // waited for each channel's loads in turn: 37 us instead of 22 for a bfloat16 NHWC dx, modelled), and
  // the first part's dgamma and dbeta.
  const int tile_channels = blockDim.x * VEC;
  for (int j = threadIdx.y * blockDim.x + threadIdx.x; j < tile_channels; j += blockDim.x * blockDim.y) {
    const std::int64_t c = part.tile * tile_channels + j;
    if (c < s.channels) tile_coefficients[j] = channel_coefficients(grad, part.sample * s.channels + c, part.part == 0);
  }
  __syncthreads();
  const std::int64_t channel_pack = part.tile * blockDim.x + threadIdx.x;
  if (channel_pack >= s.channel_packs) return;
  const std::int64_t c0 = channel_pack * VEC;
  math::ChannelGradCoefficients q[VEC];
  NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) q[i] = tile_coefficients[threadIdx.x * VEC + i];
  const std::int64_t stride = blockDim.y;
  auto walk = [&](auto aligned) {
    constexpr bool kAligned = decltype(aligned)::value;
    for (std::int64_t r = r0 + threadIdx.y; r < r1; r += stride * plan::kColumnRowBatch) {
      RawPack<T, VEC> rd[plan::kColumnRowBatch], rx[plan::kColumnRowBatch];
      load_row_batch<T, VEC, kAligned>(dy, x, r, stride, r1, s, c0, rd, rx);
      NORMKIT_UNROLL
      for (int k = 0; k < plan::kColumnRowBatch; ++k) {
        if (r + k * stride < r1) {
          float d[VEC], v[VEC];
          convert_raw_pack<float, T, VEC>(rd[k], d);
          convert_raw_pack<float, T, VEC>(rx[k], v);
          NORMKIT_UNROLL
          for (int i = 0; i < VEC; ++i) d[i] = math::channel_dx(d[i], v[i], q[i]);
          store_pack_any<T, VEC, kAligned>(dx + (r + k * stride) * s.channels + c0, d);
        }
      }
    }
  };
  with_alignment<VEC>(s.aligned, walk);
}

// ---- Per-channel kernels ------------------------------------------------------------------------------

struct FinalizeArgs {
  const StatsSummary* summaries;
  std::int64_t channels;
  float* running_mean;
  float* running_var;
  float* saved_mean;
  float* saved_rstd;
  float eps;
  math::RunningUpdate update;
  // The one-call forward also writes the fused apply's coefficients here (center null: not).
  const float* gamma;
  const float* beta;
  double* center;
  double* scale;
  double* offset;
};

// Every load first, then the stores: the arrays may alias as far as the compiler knows, and loads after a
// store would each wait for it (two round trips more a thread).
__global__ void __launch_bounds__(256) batch_norm_finalize_kernel(FinalizeArgs a) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= a.channels) return;
  const StatsSummary summary = a.summaries[c];
  const float running_mean = a.running_mean ? a.running_mean[c] : 0.0f;
  const float running_var = a.running_var ? a.running_var[c] : 0.0f;
  const float gamma = a.gamma ? a.gamma[c] : 1.0f;
  const float beta = a.beta ? a.beta[c] : 0.0f;
  const math::ChannelFinalize f = math::batch_norm_finalize_channel(summary, a.eps, a.update.unbiased);
  if (a.saved_mean) a.saved_mean[c] = f.mean;
  if (a.saved_rstd) a.saved_rstd[c] = f.rstd;
  if (a.running_mean) a.running_mean[c] = math::running_updated(running_mean, f.batch_mean, a.update, f.count);
  if (a.running_var) a.running_var[c] = math::running_updated(running_var, f.running_var_take, a.update, f.count);
  if (a.center) {
    const math::Affine q = math::batch_norm_affine(f.mean, static_cast<double>(f.rstd), gamma, beta);
    a.center[c] = q.center;
    a.scale[c] = q.scale;
    a.offset[c] = q.offset;
  }
}

struct AffineArgs {
  const float* mean;         // may be null (0: the eval-mode backward's dx = dy * scale)
  const float* rstd_or_var;  // saved rstd (training) or running variance (inference)
  const float* gamma;        // may be null (1)
  const float* beta;         // may be null (0)
  bool from_variance;
  float eps;
  std::int64_t channels;
  double* center;
  double* scale;
  double* offset;
};

// What absent arrays read: mean and beta 0, gamma 1.
__device__ const float kAffineDefaults[2] = {0.0f, 1.0f};

// (every load issued at once from pointers chosen first: a branch for each optional array while loads were in
// flight cost a round trip each, 3.2 us instead of 2.4 before a 30 us inference apply, modelled)
__global__ void __launch_bounds__(256) batch_norm_affine_kernel(AffineArgs a) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= a.channels) return;
  const float* mean = a.mean ? a.mean + c : &kAffineDefaults[0];
  const float* gamma = a.gamma ? a.gamma + c : &kAffineDefaults[1];
  const float* beta = a.beta ? a.beta + c : &kAffineDefaults[0];
  const float m = *mean, g = *gamma, b = *beta, v = a.rstd_or_var[c];
  const double rstd = a.from_variance ? math::batch_norm_inference_rstd(v, a.eps) : static_cast<double>(v);
  const math::Affine f = math::batch_norm_affine(m, rstd, g, b);
  a.center[c] = f.center;
  a.scale[c] = f.scale;
  a.offset[c] = f.offset;
}

// The eval-mode backward's dgamma and dbeta from the sums over the running mean.
__global__ void __launch_bounds__(256) batch_norm_eval_param_grads_kernel(const float* __restrict__ sum_dy,
                                                                          const float* __restrict__ sum_dy_xmu,
                                                                          const float* __restrict__ running_var, float eps,
                                                                          std::int64_t channels, float* dgamma, float* dbeta) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  const float a = sum_dy[c], b = sum_dy_xmu[c], v = running_var[c];
  if (dgamma) dgamma[c] = math::batch_norm_eval_dgamma(b, v, eps);
  if (dbeta) dbeta[c] = a;
}

// dgamma and dbeta alone (a backward without dx).
__global__ void __launch_bounds__(256) batch_norm_param_grads_kernel(GradInputs grad, std::int64_t channels) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c < channels) write_param_grads(grad, c, load_channel_grad(grad, c));
}

}  // namespace normkit::kernels
