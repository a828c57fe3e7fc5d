// BatchNorm kernels. The forward needs none of its own beyond two per-channel kernels: its statistics come
// from the statistics engine and its apply is the fused apply (transforms). The backward:
//   channel_grad_sums_segments_kernel  channels first, S > 1: partial Σdy, Σdy·(x - mean) of one channel's
//                                      (segment, chunk) items, a lane group per item
//   channel_grad_sums_columns_kernel   channels last (or S == 1): partial sums of a tile of channels over a
//                                      range of rows, each thread owning a pack of channels
//   channel_partials_sum_kernel        the partials of each channel summed in order
//   batch_norm_dx_segments_kernel /    dx = (dy - grad_mean - (x - mean) * proj) * scale over the same walks
//   batch_norm_dx_columns_kernel
//   batch_norm_finalize_kernel,        per channel: saved and running statistics; the fused apply's
//   batch_norm_affine_kernel,          coefficients; the dx coefficients with dgamma and dbeta
//   batch_norm_grad_coefficients_kernel
// Every sum runs in the order plan::choose_channel_plan fixes from the shape: a lane sums its packs in
// order, lanes and groups (or thread rows) combine by fixed trees, partials in part order. Misaligned
// tensors load the same packs element by element.
#pragma once

#include <cstdint>

#include "kernels/common/vector_load.cuh"
#include "math/batch_norm.hpp"
#include "plan/batch_norm_plan.hpp"

namespace normkit::kernels {

struct ChannelKernelShape {
  std::int64_t outer, channels, inner;
  std::int64_t parts;
  // segments
  std::int64_t segment_packs, chunk_packs, chunks_per_segment, items_per_channel, items_per_part;
  int group_shift;
  // columns
  std::int64_t channel_packs, channel_tiles, rows_per_part;
  bool aligned;  // dy, x (and dx) 16-byte aligned: packs load and store as one access
};

// A pack of VEC values at p as float: one access when aligned, else element by element (the same values).
template <typename T, int VEC>
__device__ __forceinline__ void load_pack_any(const T* __restrict__ p, bool aligned, float* v) {
  if (VEC > 1 && aligned) {
    load_converted<float, T, VEC>(p, v);
  } else {
    NORMKIT_UNROLL
    for (int i = 0; i < VEC; ++i) v[i] = load_one<float>(p + i);
  }
}

template <typename T, int VEC>
__device__ __forceinline__ void store_pack_any(T* __restrict__ p, bool aligned, const float* v) {
  if (VEC > 1 && aligned) {
    store_converted<T, VEC>(p, v);
  } else {
    NORMKIT_UNROLL
    for (int i = 0; i < VEC; ++i) math::store_as(p + i, v[i]);
  }
}

// Element offset of item `item` of channel c in the segments walk, and its pack count.
__device__ __forceinline__ std::int64_t segment_item_offset(const ChannelKernelShape& s, std::int64_t c, std::int64_t item,
                                                            int vec, int* packs) {
  const std::int64_t segment = s.chunks_per_segment == 1 ? item : item / s.chunks_per_segment;
  const std::int64_t chunk = item - segment * s.chunks_per_segment;
  const std::int64_t first = chunk * s.chunk_packs;
  *packs = static_cast<int>(s.segment_packs - first < s.chunk_packs ? s.segment_packs - first : s.chunk_packs);
  return (segment * s.channels + c) * s.inner + first * vec;
}

// Packs lane, lane + lanes, ... (those below `packs`, at most kChunkPacksPerLane) of one (segment, chunk) item
// of dy and x, every load issued before any value is used.
template <typename T, int VEC>
__device__ __forceinline__ void load_item_packs(const T* __restrict__ dy, const T* __restrict__ x, int packs, int lane, int lanes,
                                                bool aligned, float (&d)[plan::kChunkPacksPerLane][VEC],
                                                float (&v)[plan::kChunkPacksPerLane][VEC]) {
  NORMKIT_UNROLL
  for (int k = 0; k < plan::kChunkPacksPerLane; ++k) {
    const int pack = lane + k * lanes;
    if (pack < packs) {
      load_pack_any<T, VEC>(dy + pack * VEC, aligned, d[k]);
      load_pack_any<T, VEC>(x + pack * VEC, aligned, v[k]);
    }
  }
}

// Rows r, r + stride, ... (those below r1, at most kColumnRowBatch) of channels [c0, c0 + VEC) of dy and x.
template <typename T, int VEC>
__device__ __forceinline__ void load_row_batch(const T* __restrict__ dy, const T* __restrict__ x, std::int64_t r, std::int64_t stride,
                                               std::int64_t r1, const ChannelKernelShape& s, std::int64_t c0,
                                               float (&d)[plan::kColumnRowBatch][VEC], float (&v)[plan::kColumnRowBatch][VEC]) {
  NORMKIT_UNROLL
  for (int k = 0; k < plan::kColumnRowBatch; ++k) {
    if (r + k * stride < r1) {
      const std::int64_t offset = (r + k * stride) * s.channels + c0;
      load_pack_any<T, VEC>(dy + offset, s.aligned, d[k]);
      load_pack_any<T, VEC>(x + offset, s.aligned, v[k]);
    }
  }
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
__global__ void __launch_bounds__(256) channel_grad_sums_segments_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                                                         const float* __restrict__ mean, ChannelKernelShape s,
                                                                         float* __restrict__ partial_dy,
                                                                         float* __restrict__ partial_dy_xmu) {
  __shared__ float group_sums[2][8];
  const std::int64_t c = blockIdx.x / s.parts;
  const std::int64_t part = blockIdx.x - c * s.parts;
  const int lanes = 1 << s.group_shift;
  const int lane = threadIdx.x & (lanes - 1);
  const int group = threadIdx.x >> s.group_shift;
  const int groups = blockDim.x >> s.group_shift;
  const float m = mean[c];
  float sum_dy = 0.0f, sum_dy_xmu = 0.0f;
  const std::int64_t first = part * s.items_per_part;
  const std::int64_t end = first + s.items_per_part < s.items_per_channel ? first + s.items_per_part : s.items_per_channel;
  for (std::int64_t item = first + group; item < end; item += groups) {
    int packs = 0;
    const std::int64_t offset = segment_item_offset(s, c, item, VEC, &packs);
    float d[plan::kChunkPacksPerLane][VEC], v[plan::kChunkPacksPerLane][VEC];
    load_item_packs<T, VEC>(dy + offset, x + offset, packs, lane, lanes, s.aligned, d, v);
    NORMKIT_UNROLL
    for (int k = 0; k < plan::kChunkPacksPerLane; ++k) {
      if (lane + k * lanes < packs) {
        NORMKIT_UNROLL
        for (int i = 0; i < VEC; ++i) {
          sum_dy += d[k][i];
          sum_dy_xmu += d[k][i] * (v[k][i] - m);
        }
      }
    }
  }
  sum_dy = group_sum(sum_dy, lanes);
  sum_dy_xmu = group_sum(sum_dy_xmu, lanes);
  if (lane == 0) {
    group_sums[0][group] = sum_dy;
    group_sums[1][group] = sum_dy_xmu;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float a = group_sums[0][0], b = group_sums[1][0];
    for (int g = 1; g < groups; ++g) {
      a += group_sums[0][g];
      b += group_sums[1][g];
    }
    partial_dy[part * s.channels + c] = a;
    partial_dy_xmu[part * s.channels + c] = b;
  }
}

// Block b: channel tile b % channel_tiles, rows [part * rows_per_part, ...) with part = b / channel_tiles.
// Thread (tx, ty) owns channel pack tile * blockDim.x + tx and rows ty, ty + blockDim.y, ... in batches of
// kColumnRowBatch rows; the thread rows combine by a tree in shared memory.
template <typename T, int VEC>
__global__ void __launch_bounds__(256) channel_grad_sums_columns_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                                                        const float* __restrict__ mean, ChannelKernelShape s,
                                                                        float* __restrict__ partial_dy,
                                                                        float* __restrict__ partial_dy_xmu) {
  __shared__ float row_sums[2][256 * VEC];
  const std::int64_t tile = blockIdx.x % s.channel_tiles;
  const std::int64_t part = blockIdx.x / s.channel_tiles;
  const std::int64_t channel_pack = tile * blockDim.x + threadIdx.x;
  const bool owns = channel_pack < s.channel_packs;
  const std::int64_t c0 = channel_pack * VEC;
  float m[VEC], sum_dy[VEC], sum_dy_xmu[VEC];
  NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) {
    m[i] = owns ? mean[c0 + i] : 0.0f;
    sum_dy[i] = 0.0f;
    sum_dy_xmu[i] = 0.0f;
  }
  const std::int64_t r0 = part * s.rows_per_part;
  const std::int64_t r1 = r0 + s.rows_per_part < s.outer ? r0 + s.rows_per_part : s.outer;
  const std::int64_t stride = blockDim.y;
  if (owns) {
    for (std::int64_t r = r0 + threadIdx.y; r < r1; r += stride * plan::kColumnRowBatch) {
      float d[plan::kColumnRowBatch][VEC], v[plan::kColumnRowBatch][VEC];
      load_row_batch<T, VEC>(dy, x, r, stride, r1, s, c0, d, v);
      NORMKIT_UNROLL
      for (int k = 0; k < plan::kColumnRowBatch; ++k) {
        if (r + k * stride < r1) {
          NORMKIT_UNROLL
          for (int i = 0; i < VEC; ++i) {
            sum_dy[i] += d[k][i];
            sum_dy_xmu[i] += d[k][i] * (v[k][i] - m[i]);
          }
        }
      }
    }
  }
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

// sum[c] = Σ_part partial[part][c], parts in order.
__global__ void __launch_bounds__(256) channel_partials_sum_kernel(const float* __restrict__ partial_dy,
                                                                   const float* __restrict__ partial_dy_xmu,
                                                                   std::int64_t parts, std::int64_t channels,
                                                                   float* __restrict__ sum_dy, float* __restrict__ sum_dy_xmu) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  float a = 0.0f, b = 0.0f;
  for (std::int64_t p = 0; p < parts; ++p) {
    a += partial_dy[p * channels + c];
    b += partial_dy_xmu[p * channels + c];
  }
  sum_dy[c] = a;
  sum_dy_xmu[c] = b;
}

// ---- dx -----------------------------------------------------------------------------------------------

__device__ __forceinline__ math::BatchNormGradCoefficients load_grad_coefficients(const float4* coefficients, std::int64_t c) {
  const float4 q = coefficients[c];
  return math::BatchNormGradCoefficients{q.x, q.y, q.z, q.w};
}

// The reduce's segments walk, every item's packs loaded, transformed and stored.
template <typename T, int VEC>
__global__ void __launch_bounds__(256) batch_norm_dx_segments_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                                                     const float4* __restrict__ coefficients,
                                                                     ChannelKernelShape s, T* __restrict__ dx) {
  const std::int64_t c = blockIdx.x / s.parts;
  const std::int64_t part = blockIdx.x - c * s.parts;
  const int lanes = 1 << s.group_shift;
  const int lane = threadIdx.x & (lanes - 1);
  const int groups = blockDim.x >> s.group_shift;
  const auto q = load_grad_coefficients(coefficients, c);
  const std::int64_t first = part * s.items_per_part;
  const std::int64_t end = first + s.items_per_part < s.items_per_channel ? first + s.items_per_part : s.items_per_channel;
  for (std::int64_t item = first + (threadIdx.x >> s.group_shift); item < end; item += groups) {
    int packs = 0;
    const std::int64_t offset = segment_item_offset(s, c, item, VEC, &packs);
    float d[plan::kChunkPacksPerLane][VEC], v[plan::kChunkPacksPerLane][VEC];
    load_item_packs<T, VEC>(dy + offset, x + offset, packs, lane, lanes, s.aligned, d, v);
    NORMKIT_UNROLL
    for (int k = 0; k < plan::kChunkPacksPerLane; ++k) {
      const int pack = lane + k * lanes;
      if (pack < packs) {
        NORMKIT_UNROLL
        for (int i = 0; i < VEC; ++i) d[k][i] = math::batch_norm_dx(d[k][i], v[k][i], q);
        store_pack_any<T, VEC>(dx + offset + pack * VEC, s.aligned, d[k]);
      }
    }
  }
}

// The reduce's columns walk: each thread keeps its channels' coefficients in registers.
template <typename T, int VEC>
__global__ void __launch_bounds__(256) batch_norm_dx_columns_kernel(const T* __restrict__ dy, const T* __restrict__ x,
                                                                    const float4* __restrict__ coefficients,
                                                                    ChannelKernelShape s, T* __restrict__ dx) {
  const std::int64_t tile = blockIdx.x % s.channel_tiles;
  const std::int64_t part = blockIdx.x / s.channel_tiles;
  const std::int64_t channel_pack = tile * blockDim.x + threadIdx.x;
  if (channel_pack >= s.channel_packs) return;
  const std::int64_t c0 = channel_pack * VEC;
  math::BatchNormGradCoefficients q[VEC];
  NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) q[i] = load_grad_coefficients(coefficients, c0 + i);
  const std::int64_t r0 = part * s.rows_per_part;
  const std::int64_t r1 = r0 + s.rows_per_part < s.outer ? r0 + s.rows_per_part : s.outer;
  const std::int64_t stride = blockDim.y;
  for (std::int64_t r = r0 + threadIdx.y; r < r1; r += stride * plan::kColumnRowBatch) {
    float d[plan::kColumnRowBatch][VEC], v[plan::kColumnRowBatch][VEC];
    load_row_batch<T, VEC>(dy, x, r, stride, r1, s, c0, d, v);
    NORMKIT_UNROLL
    for (int k = 0; k < plan::kColumnRowBatch; ++k) {
      if (r + k * stride < r1) {
        NORMKIT_UNROLL
        for (int i = 0; i < VEC; ++i) d[k][i] = math::batch_norm_dx(d[k][i], v[k][i], q[i]);
        store_pack_any<T, VEC>(dx + (r + k * stride) * s.channels + c0, s.aligned, d[k]);
      }
    }
  }
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
};

__global__ void __launch_bounds__(256) batch_norm_finalize_kernel(FinalizeArgs a) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= a.channels) return;
  const math::ChannelFinalize f = math::batch_norm_finalize_channel(a.summaries[c], a.eps, a.update.unbiased);
  if (a.saved_mean) a.saved_mean[c] = f.mean;
  if (a.saved_rstd) a.saved_rstd[c] = f.rstd;
  if (a.running_mean) a.running_mean[c] = math::running_updated(a.running_mean[c], f.batch_mean, a.update);
  if (a.running_var) a.running_var[c] = math::running_updated(a.running_var[c], f.running_var_take, a.update);
}

struct AffineArgs {
  const float* mean;
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

__global__ void __launch_bounds__(256) batch_norm_affine_kernel(AffineArgs a) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= a.channels) return;
  const double rstd = a.from_variance ? math::batch_norm_inference_rstd(a.rstd_or_var[c], a.eps)
                                      : static_cast<double>(a.rstd_or_var[c]);
  const math::Affine f = math::batch_norm_affine(a.mean[c], rstd, a.gamma ? a.gamma[c] : 1.0f, a.beta ? a.beta[c] : 0.0f);
  a.center[c] = f.center;
  a.scale[c] = f.scale;
  a.offset[c] = f.offset;
}

struct GradCoefficientArgs {
  const float* mean;
  const float* rstd;
  const float* gamma;  // may be null (1)
  const float* sum_dy;
  const float* sum_dy_xmu;
  double count;
  std::int64_t channels;
  float4* coefficients;  // may be null (no dx)
  float* dgamma;         // may be null
  float* dbeta;          // may be null
};

__global__ void __launch_bounds__(256) batch_norm_grad_coefficients_kernel(GradCoefficientArgs a) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= a.channels) return;
  if (a.coefficients) {
    const auto q = math::batch_norm_grad_coefficients(a.mean[c], a.rstd[c], a.gamma ? a.gamma[c] : 1.0f, a.sum_dy[c],
                                                      a.sum_dy_xmu[c], a.count);
    a.coefficients[c] = make_float4(q.mean, q.grad_mean, q.proj, q.scale);
  }
  if (a.dgamma) a.dgamma[c] = math::batch_norm_dgamma(a.sum_dy_xmu[c], a.rstd[c]);
  if (a.dbeta) a.dbeta[c] = a.sum_dy[c];
}

}  // namespace normkit::kernels
