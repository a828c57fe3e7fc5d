// LayerNorm / RMSNorm kernels: a group of T threads per row (plan::RowNormLayout: lanes of a warp for short
// rows, up to a 512-thread block for long ones). Thread t of a row owns packs t, t + T, ... of every row it
// walks; the columns being the same in every row, the block keeps w and beta (forward) or w and each
// thread's dgamma/dbeta sums (backward) in shared memory across its rows.
//   row_norm_forward_kernel         rows read once: load -> Σ(x - x₀) -> mean -> Σ(x - mean)² -> rstd -> y
//   row_norm_forward_long_kernel    longer rows: shifted sums in one read, y in a second
//   row_norm_backward_kernel        rows read once, per block of kLayerNormRowsPerPartial rows: for each row
//                                   load x, dy -> Σ w dy, Σ w dy x̂ -> dx; dy x̂ and dy summed per column ->
//                                   one partial row
//   row_norm_backward_long_kernel   longer rows: two reads a row, the partial row updated in place
//   row_norm_param_grad_kernel      dgamma, dbeta = the partials summed in a fixed order
// Every sum runs in the order of plan::RowNormLayout with correctly rounded operations (math/layer_norm.hpp),
// which the host engine reproduces bit for bit.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/common/vector_load.cuh"
#include "math/layer_norm.hpp"
#include "plan/layer_norm_plan.hpp"

namespace normkit::kernels {

// Packs a thread of a long (read-twice) row loads before it uses the first: the forward's x, gamma and beta;
// the backward's x, dy, gamma and two partial sums (more registers a pack).
constexpr int kLongRowBatch = 4;
constexpr int long_row_backward_batch(int vec) { return vec >= 8 ? 1 : 2; }  // (2 packs of 8 spilled)

struct RowNormShape {
  std::int64_t rows, n;
  int thread_shift;  // log2 of the threads per row
  bool vector_access;
  bool centered;     // LayerNorm (RMSNorm: false)
  bool has_gamma, has_beta, gamma_offset, round_xhat;
  float eps;
  float inv_n;       // 1 / n rounded to float (math::row_norm_inverse_count): means are sums times it
};

// p advanced by `bytes` (one 64-bit addition: pointer + int index arithmetic costs a conversion and a shift).
template <typename T>
__device__ __forceinline__ T* byte_offset(T* p, std::int64_t bytes) {
  using Byte = std::conditional_t<std::is_const_v<T>, const char, char>;
  return reinterpret_cast<T*>(reinterpret_cast<Byte*>(p) + bytes);
}

// One pack of a row: a vector load, or VEC scalar loads into the same registers (misaligned pointers).
template <typename T, int VEC>
__device__ __forceinline__ RawPack<T, VEC> load_row_pack(const T* p, bool vector) {
  if constexpr (sizeof(T) * VEC > 16) {
    // (float32 parameters beside 16-bit x: a pack is 32 bytes but the pointers are checked for 16 only)
    constexpr int kHalf = VEC / 2;
    const RawPack<T, kHalf> lo = load_row_pack<T, kHalf>(p, vector), hi = load_row_pack<T, kHalf>(p + kHalf, vector);
    RawPack<T, VEC> raw;
    memcpy(&raw, &lo, sizeof(lo));
    memcpy(reinterpret_cast<char*>(&raw) + sizeof(lo), &hi, sizeof(hi));
    return raw;
  }
  if (vector) return load_raw_pack<T, VEC>(p);
  return load_raw_elements<T, VEC>(p);
}

template <typename T, int VEC>
__device__ __forceinline__ void load_row_values(const T* p, bool vector, float* out) {
  convert_raw_pack<float, T, VEC>(load_row_pack<T, VEC>(p, vector), out);
}

template <typename T, int VEC>
__device__ __forceinline__ void store_row_values(T* p, bool vector, const float* v) {
  if (vector) {
    store_converted<T, VEC>(p, v);
  } else {
    store_elements<T, VEC>(p, v);
  }
}

// VEC floats from shared memory (16-byte aligned: the cache starts aligned and packs are VEC floats).
template <int VEC>
__device__ __forceinline__ void load_cached(const float* p, float* out) {
  if constexpr (VEC % 4 == 0) {
    NORMKIT_UNROLL
    for (int i = 0; i < VEC; i += 4) {
      const float4 q = *reinterpret_cast<const float4*>(p + i);
      out[i] = q.x;
      out[i + 1] = q.y;
      out[i + 2] = q.z;
      out[i + 3] = q.w;
    }
  } else {
    NORMKIT_UNROLL
    for (int i = 0; i < VEC; ++i) out[i] = p[i];
  }
}

// VEC floats to shared or global memory, 16-byte aligned.
template <int VEC>
__device__ __forceinline__ void store_cached(float* p, const float* v) {
  if constexpr (VEC % 4 == 0) {
    NORMKIT_UNROLL
    for (int i = 0; i < VEC; i += 4) *reinterpret_cast<float4*>(p + i) = make_float4(v[i], v[i + 1], v[i + 2], v[i + 3]);
  } else {
    NORMKIT_UNROLL
    for (int i = 0; i < VEC; ++i) p[i] = v[i];
  }
}

// VEC parameter values at p as floats, 0 when the parameter is absent.
template <typename Param, int VEC>
__device__ __forceinline__ void load_param_or_zero(const Param* p, bool present, bool vector, float* out) {
  if (present) {
    load_row_values<Param, VEC>(p, vector, out);
  } else {
    NORMKIT_UNROLL
    for (int i = 0; i < VEC; ++i) out[i] = 0.0f;
  }
}

// The effective weights w of pack p (gamma, + 1 with the offset, 1 without gamma).
template <typename Param, int VEC>
__device__ __forceinline__ void load_weights(const Param* gamma, std::int64_t p, const RowNormShape& s, float* w) {
  load_param_or_zero<Param, VEC>(gamma + p * VEC, s.has_gamma, s.vector_access, w);
  NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) w[i] = math::row_norm_weight(s.has_gamma, w[i], s.gamma_offset);
}

// beta of pack p (0 without beta: the output adds it unconditionally).
template <typename Param, int VEC>
__device__ __forceinline__ void load_beta(const Param* beta, std::int64_t p, const RowNormShape& s, float* b) {
  load_param_or_zero<Param, VEC>(beta + p * VEC, s.has_beta, s.vector_access, b);
}

// A block's shared-memory copy of the effective weights w (or of beta, 0 when absent), float32, filled in
// 16-byte loads of the parameter (a pack of x's width in float32 parameters is 32 bytes a thread: two loads
// each touching every other sector of a warp's span, half the sectors wasted).
template <typename Param, int VEC>
__device__ __forceinline__ void fill_param_cache(const Param* param, const RowNormShape& s, float* cache, bool beta = false) {
  constexpr int kFill = VEC == 1 ? 1 : static_cast<int>(16 / sizeof(Param));
  for (std::int64_t q = threadIdx.x; q < s.n / kFill; q += blockDim.x) {
    float v[kFill];
    load_param_or_zero<Param, kFill>(param + q * kFill, beta ? s.has_beta : s.has_gamma, s.vector_access, v);
    NORMKIT_UNROLL
    for (int i = 0; i < kFill; ++i) cache[q * kFill + i] = beta ? v[i] : math::row_norm_weight(s.has_gamma, v[i], s.gamma_offset);
  }
}

// One pack of y: x̂ (rounded to In first with kRound) * w + beta.
template <bool kRound, typename In, int VEC>
__device__ __forceinline__ void store_output_pack(In* y, const float* v, float mean, float rstd, const float* w, const float* b,
                                                  bool vector) {
  float out[VEC];
  NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) {
    out[i] = math::row_norm_output(math::row_norm_cast_xhat<In, kRound>(math::row_norm_xhat(v[i], mean, rstd)), w[i], b[i]);
  }
  store_row_values<In, VEC>(y, vector, out);
}

// The thread's `count` packs of a one-read row of y, `step` elements apart from y (its first), w and beta
// from the block's parameter cache at the same offsets.
template <bool kRound, typename In, int VEC, int K>
__device__ __forceinline__ void store_row(In* y, const float (&v)[K][VEC], float mean, float rstd, const float* w_cache,
                                          const float* b_cache, int step, std::int64_t pack_bytes, int count, bool vector) {
  NORMKIT_UNROLL
  for (int j = 0; j < K; ++j) {
    if (j >= count) break;
    float w[VEC], b[VEC];
    load_cached<VEC>(w_cache + j * step, w);
    load_cached<VEC>(b_cache + j * step, b);
    store_output_pack<kRound, In, VEC>(byte_offset(y, j * pack_bytes), v[j], mean, rstd, w, b, vector);
  }
}

// v + the v of lane ^ kMask (one shfl with immediate operands: __shfl_xor_sync spent four moves a stage).
template <int kMask>
__device__ __forceinline__ float add_xor_lane(float v) {
  float other;
  asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=f"(other) : "f"(v), "n"(kMask));
  return math::add_rn(v, other);
}

// The warp butterfly over the lowest `stages` lane bits (xor 2^(stages-1), ..., 2, 1): all five without a
// test a stage for groups of a warp or more.
__device__ __forceinline__ float lane_sum(float v, int stages) {
  if (stages >= 5) {
    v = add_xor_lane<16>(v);
    v = add_xor_lane<8>(v);
    v = add_xor_lane<4>(v);
    v = add_xor_lane<2>(v);
    return add_xor_lane<1>(v);
  }
  if (stages >= 4) v = add_xor_lane<8>(v);
  if (stages >= 3) v = add_xor_lane<4>(v);
  if (stages >= 2) v = add_xor_lane<2>(v);
  if (stages >= 1) v = add_xor_lane<1>(v);
  return v;
}

// The sum of v over a row's T = 2^shift threads, in math::layer_norm_lane_order: a butterfly within each
// warp, then (T > 32) the warps' sums in warp order through `warp_sums` (one float a warp of the block; every
// thread of the block calls it, as the block's row groups take the same rounds). Every thread of the row
// gets the same bits.
__device__ __forceinline__ float row_sum(float v, int shift, float* warp_sums) {
  v = lane_sum(v, shift);
  if (shift <= 5) return v;
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  const int warps = 1 << (shift - 5);  // of the row's group, which starts at warp `first`
  const float* group = warp_sums + (warp & ~(warps - 1));
  if ((threadIdx.x & 31) == 0) warp_sums[warp] = v;
  __syncthreads();
  float total = group[0];
  NORMKIT_UNROLL
  for (int w = 1; w < plan::kRowNormMaxThreads / 32; ++w) {
    if (w >= warps) break;
    total = math::add_rn(total, group[w]);
  }
  __syncthreads();  // warp_sums is reused by the next sum
  return total;
}

// Two sums at once (Σ g and Σ g x̂ of the backward; the long rows' shifted Σd and Σd²), each in row_sum's
// order; warp_sums holds two floats a warp of the block.
__device__ __forceinline__ void row_sum2(float& a, float& b, int shift, float* warp_sums) {
  a = lane_sum(a, shift);
  b = lane_sum(b, shift);
  if (shift <= 5) return;
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  const int block_warps = static_cast<int>(blockDim.x) >> 5;
  const int warps = 1 << (shift - 5);
  const float* group_a = warp_sums + (warp & ~(warps - 1));
  const float* group_b = group_a + block_warps;
  if ((threadIdx.x & 31) == 0) {
    warp_sums[warp] = a;
    warp_sums[block_warps + warp] = b;
  }
  __syncthreads();
  a = group_a[0];
  b = group_b[0];
  NORMKIT_UNROLL
  for (int w = 1; w < plan::kRowNormMaxThreads / 32; ++w) {
    if (w >= warps) break;
    a = math::add_rn(a, group_a[w]);
    b = math::add_rn(b, group_b[w]);
  }
  __syncthreads();
}

// Forward of rows read once (plan::RowNormLayout::one_read). A block holds blockDim / T row groups; a group's
// rows are r, r + grid * groups, ... The groups of a warp (of a block, for groups wider than a warp) run the
// same rounds: an idle group joins the sums. The thread's K packs stay in registers, w and beta in the
// block's shared memory.
// kResidual: the row normalized is h = x + residual (rounded to In), written to h_out; the residual's packs
// are loaded once x's are converted, into the same registers (loaded beside x's they spilled).
template <typename In, typename Param, int VEC, bool kResidual>
__global__ void __launch_bounds__(plan::kRowNormMaxThreads, 1) row_norm_forward_kernel(
    const In* __restrict__ x, const In* __restrict__ residual, In* __restrict__ h_out, const Param* __restrict__ gamma,
    const Param* __restrict__ beta, In* __restrict__ y, float* __restrict__ mean_out, float* __restrict__ rstd_out, RowNormShape s) {
  constexpr int K = plan::row_norm_values_per_thread(false, VEC) / VEC;
  __shared__ float warp_sums[2 * plan::kRowNormMaxThreads / 32];
  const int T = 1 << s.thread_shift;
  const int lane = static_cast<int>(threadIdx.x) & (T - 1);
  const std::int64_t groups = blockDim.x >> s.thread_shift;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * groups;
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * groups + (threadIdx.x >> s.thread_shift);
  // (the rounds a group takes follow the first row of its warp, or of its block where a row is wider than a
  // warp and its sums meet at the block's barriers: every group of a warp / block takes the same rounds)
  const std::int64_t round_first = T > 32 ? static_cast<std::int64_t>(blockIdx.x) * groups
                                          : first - ((threadIdx.x & 31) >> s.thread_shift);
  const std::int64_t packs = s.n / VEC;
  // One-read rows: the block's copy of the effective weights w and of beta in shared memory, loaded once
  // (float32, n each; plan::row_norm_param_cache_bytes), read by every row the block normalizes. (In
  // registers they cost 32 of them and a load per thread per block: more than the rows of a 2112-block grid.)
  extern __shared__ float param_cache[];  // [w: n][beta (0 when absent): n]
  // One-read rows: the thread's packs lane, lane + T, ... (at most K), `step` elements apart.
  const int step = T * VEC;
  const int my_packs = lane < packs ? min(K, static_cast<int>((packs - lane + T - 1) / T)) : 0;
  float* w_cache = param_cache;
  float* b_cache = param_cache + s.n;
  {
    fill_param_cache<Param, VEC>(gamma, s, w_cache);
    fill_param_cache<Param, VEC>(beta, s, b_cache, /*beta=*/true);
    __syncthreads();
  }
  // (row pointers stepped, pack offsets in bytes computed once: the per-pack index arithmetic of the
  // first version cost more issue slots than the values' arithmetic)
  const std::int64_t row_step = stride * s.n;
  const std::int64_t pack_bytes = static_cast<std::int64_t>(step) * static_cast<std::int64_t>(sizeof(In));
  const In* xr = x + first * s.n;
  In* yr = y + first * s.n;
  const In* rr = kResidual ? residual + first * s.n : nullptr;
  In* hr = kResidual ? h_out + first * s.n : nullptr;
  for (std::int64_t r = first, base = round_first; base < s.rows; r += stride, base += stride, xr += row_step, yr += row_step) {
    const bool active = r < s.rows;
    float mean = 0.0f, rstd;
    {
      const int count = active ? my_packs : 0;
      const In* xt = xr + lane * VEC;
      // (every load issued before the first conversion: one round trip a row; the values converted once, as
      // floats: converting them in each of the three passes cost more issue slots than the registers)
      RawPack<In, VEC> raw[K];
      NORMKIT_UNROLL
      for (int j = 0; j < K; ++j) {
        if (j < count) raw[j] = load_row_pack<In, VEC>(byte_offset(xt, j * pack_bytes), s.vector_access);
      }
      // (every thread of the row reads its first value, the shift of the mean's sum: one broadcast load)
      float shift = s.centered && active ? math::to_acc<float>(xr[0]) : 0.0f;
      float v[K][VEC];
      NORMKIT_UNROLL
      for (int j = 0; j < K; ++j) {
        if (j < count) convert_raw_pack<float, In, VEC>(raw[j], v[j]);
      }
      if constexpr (kResidual) {
        const In* rt = rr + lane * VEC;
        In* ht = hr + lane * VEC;
        NORMKIT_UNROLL
        for (int j = 0; j < K; ++j) {
          if (j < count) raw[j] = load_row_pack<In, VEC>(byte_offset(rt, j * pack_bytes), s.vector_access);
        }
        if (s.centered && active) shift = math::row_norm_residual_sum<In>(shift, math::to_acc<float>(rr[0]));
        NORMKIT_UNROLL
        for (int j = 0; j < K; ++j) {
          if (j >= count) break;
          float res[VEC];
          convert_raw_pack<float, In, VEC>(raw[j], res);
          NORMKIT_UNROLL
          for (int i = 0; i < VEC; ++i) v[j][i] = math::row_norm_residual_sum<In>(v[j][i], res[i]);
          store_row_values<In, VEC>(byte_offset(ht, j * pack_bytes), s.vector_access, v[j]);
        }
        rr += row_step;
        hr += row_step;
      }
      float acc = 0.0f;
      if (s.centered) {
        NORMKIT_UNROLL
        for (int j = 0; j < K; ++j) {
          if (j >= count) break;
          NORMKIT_UNROLL
          for (int i = 0; i < VEC; ++i) acc = math::add_rn(acc, math::sub_rn(v[j][i], shift));
        }
        mean = math::row_norm_shifted_mean(shift, row_sum(acc, s.thread_shift, warp_sums), s.inv_n);
        acc = 0.0f;
      }
      NORMKIT_UNROLL
      for (int j = 0; j < K; ++j) {
        if (j >= count) break;
        NORMKIT_UNROLL
        for (int i = 0; i < VEC; ++i) {
          const float d = math::sub_rn(v[j][i], mean);  // (mean 0 for RMSNorm)
          acc = math::add_rn(acc, math::mul_rn(d, d));
        }
      }
      rstd = math::row_norm_rstd(math::mul_rn(row_sum(acc, s.thread_shift, warp_sums), s.inv_n), s.eps);
      In* yt = yr + lane * VEC;
      // (the cast mode tested once a row, not a value)
      if (s.round_xhat) {
        store_row<true, In, VEC, K>(yt, v, mean, rstd, w_cache + lane * VEC, b_cache + lane * VEC, step, pack_bytes, count, s.vector_access);
      } else {
        store_row<false, In, VEC, K>(yt, v, mean, rstd, w_cache + lane * VEC, b_cache + lane * VEC, step, pack_bytes, count, s.vector_access);
      }
    }
    if (active && lane == 0) {
      if (mean_out != nullptr) mean_out[r] = mean;
      if (rstd_out != nullptr) rstd_out[r] = rstd;
    }
  }
}

// Forward of rows longer than one read holds (T = kRowNormMaxThreads, a block a row): shifted sums (shift =
// the row's first value) in one pass, then a second read for y (an L2 hit for rows of a few 100 KB), w and
// beta loaded with it. A kernel of its own: in the one-read kernel its batches of loads made ptxas spill.
// kResidual: the first pass loads x and the residual, writes h = x + residual (rounded to In) and sums h;
// the second reads h back (the thread's own packs) in x's place.
template <typename In, typename Param, int VEC, bool kResidual>
__global__ void __launch_bounds__(plan::kRowNormMaxThreads, 1) row_norm_forward_long_kernel(
    const In* __restrict__ x, const In* __restrict__ residual, In* h_out, const Param* __restrict__ gamma,
    const Param* __restrict__ beta, In* __restrict__ y, float* __restrict__ mean_out, float* __restrict__ rstd_out, RowNormShape s) {
  __shared__ float warp_sums[2 * plan::kRowNormMaxThreads / 32];
  const int T = 1 << s.thread_shift;
  const int lane = static_cast<int>(threadIdx.x) & (T - 1);
  const std::int64_t packs = s.n / VEC;
  for (std::int64_t r = blockIdx.x; r < s.rows; r += gridDim.x) {  // (uniform over the block)
    const In* xr = x + r * s.n;
    In* yr = y + r * s.n;
    const In* rr = kResidual ? residual + r * s.n : nullptr;
    In* hr = kResidual ? h_out + r * s.n : nullptr;
    float mean = 0.0f, rstd;
    float shift = s.centered ? math::to_acc<float>(xr[0]) : 0.0f;
    if (kResidual && s.centered) shift = math::row_norm_residual_sum<In>(shift, math::to_acc<float>(rr[0]));
    // (kLongRowBatch packs a thread in flight per step, visited in the same order as one at a time)
    constexpr int kBatch = kLongRowBatch;
    float s1 = 0.0f, s2 = 0.0f;
    // (with the residual, half the packs a step: x's and the residual's together are as many loads in flight,
    // and 4 of each spilled; the sums' order is the packs', whatever the batch)
    constexpr int kBatch1 = kResidual ? kBatch / 2 : kBatch;
    for (std::int64_t p0 = lane; p0 < packs; p0 += kBatch1 * T) {
      RawPack<In, VEC> raw[kBatch1], raw_r[kResidual ? kBatch1 : 1];
      NORMKIT_UNROLL
      for (int u = 0; u < kBatch1; ++u) {
        if (p0 + u * T < packs) raw[u] = load_row_pack<In, VEC>(xr + (p0 + u * T) * VEC, s.vector_access);
        if (kResidual && p0 + u * T < packs) raw_r[kResidual ? u : 0] = load_row_pack<In, VEC>(rr + (p0 + u * T) * VEC, s.vector_access);
      }
      NORMKIT_UNROLL
      for (int u = 0; u < kBatch1; ++u) {
        if (p0 + u * T >= packs) break;
        float v[VEC];
        convert_raw_pack<float, In, VEC>(raw[u], v);
        if constexpr (kResidual) {
          float res[VEC];
          convert_raw_pack<float, In, VEC>(raw_r[u], res);
          NORMKIT_UNROLL
          for (int i = 0; i < VEC; ++i) v[i] = math::row_norm_residual_sum<In>(v[i], res[i]);
          store_row_values<In, VEC>(hr + (p0 + u * T) * VEC, s.vector_access, v);
        }
        NORMKIT_UNROLL
        for (int i = 0; i < VEC; ++i) {
          const float d = math::sub_rn(v[i], shift);
          s1 = math::add_rn(s1, d);
          s2 = math::add_rn(s2, math::mul_rn(d, d));
        }
      }
    }
    row_sum2(s1, s2, s.thread_shift, warp_sums);
    float var;
    if (s.centered) {
      math::row_norm_shifted_moments(shift, s1, s2, s.inv_n, &mean, &var);
    } else {
      var = math::mul_rn(s2, s.inv_n);
    }
    rstd = math::row_norm_rstd(var, s.eps);
    const In* vr = kResidual ? hr : xr;  // (the second pass reads h, the thread's own stores)
    for (std::int64_t p0 = lane; p0 < packs; p0 += kBatch * T) {
      // (x, gamma and beta of the batch loaded before any is used)
      RawPack<In, VEC> raw[kBatch];
      RawPack<Param, VEC> raw_w[kBatch], raw_b[kBatch];
      NORMKIT_UNROLL
      for (int u = 0; u < kBatch; ++u) {
        const std::int64_t p = p0 + u * T;
        if (p >= packs) break;
        raw[u] = load_row_pack<In, VEC>(vr + p * VEC, s.vector_access);
        if (s.has_gamma) raw_w[u] = load_row_pack<Param, VEC>(gamma + p * VEC, s.vector_access);
        if (s.has_beta) raw_b[u] = load_row_pack<Param, VEC>(beta + p * VEC, s.vector_access);
      }
      NORMKIT_UNROLL
      for (int u = 0; u < kBatch; ++u) {
        const std::int64_t p = p0 + u * T;
        if (p >= packs) break;
        float v[VEC], w[VEC], b[VEC];
        convert_raw_pack<float, In, VEC>(raw[u], v);
        NORMKIT_UNROLL
        for (int i = 0; i < VEC; ++i) w[i] = b[i] = 0.0f;
        if (s.has_gamma) convert_raw_pack<float, Param, VEC>(raw_w[u], w);
        if (s.has_beta) convert_raw_pack<float, Param, VEC>(raw_b[u], b);
        NORMKIT_UNROLL
        for (int i = 0; i < VEC; ++i) w[i] = math::row_norm_weight(s.has_gamma, w[i], s.gamma_offset);
        if (s.round_xhat) {
          store_output_pack<true, In, VEC>(yr + p * VEC, v, mean, rstd, w, b, s.vector_access);
        } else {
          store_output_pack<false, In, VEC>(yr + p * VEC, v, mean, rstd, w, b, s.vector_access);
        }
      }
    }
    if (lane == 0) {
      if (mean_out != nullptr) mean_out[r] = mean;
      if (rstd_out != nullptr) rstd_out[r] = rstd;
    }
  }
}

// The backward's row sums Σ g and Σ g x̂ (g = w dy) of one pack, in element order; xv becomes x̂ (the second
// phase uses it rather than computing it again).
template <int VEC>
__device__ __forceinline__ void add_grad_sums(float* xv, const float* dv, const float* w, float mean, float rstd, float& sum_g,
                                              float& sum_gx) {
  NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) {
    const float g = math::mul_rn(w[i], dv[i]);
    xv[i] = math::row_norm_xhat(xv[i], mean, rstd);
    sum_g = math::add_rn(sum_g, g);
    sum_gx = math::add_rn(sum_gx, math::mul_rn(g, xv[i]));
  }
}

// The dx coefficients of a row (math::row_norm_dx_coefficients) from its threads' sums: mean(g) (0 for
// RMSNorm) and mean(g x̂).
__device__ __forceinline__ math::RowNormDxCoefficients grad_coefficients(float sum_g, float sum_gx, const RowNormShape& s,
                                                                         float rstd, float* warp_sums) {
  if (s.centered) {
    row_sum2(sum_g, sum_gx, s.thread_shift, warp_sums);
  } else {
    sum_gx = row_sum(sum_gx, s.thread_shift, warp_sums);
  }
  return math::row_norm_dx_coefficients(s.centered ? math::mul_rn(sum_g, s.inv_n) : 0.0f, math::mul_rn(sum_gx, s.inv_n), rstd);
}

// dx of one pack from x̂ and dy, and its values' dgamma (dy x̂, x̂ rounded to In with kRound) and dbeta (dy)
// contributions added to acc_g / acc_b.
template <bool kRound, typename In, int VEC>
__device__ __forceinline__ void grad_pack(const float* xhat, const float* dv, const float* w, math::RowNormDxCoefficients c,
                                          float rstd, float* out, float* acc_g, float* acc_b) {
  NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) {
    out[i] = math::row_norm_dx(math::mul_rn(w[i], dv[i]), xhat[i], c, rstd);
    acc_g[i] = math::add_rn(acc_g[i], math::mul_rn(dv[i], math::row_norm_cast_xhat<In, kRound>(xhat[i])));
    acc_b[i] = math::add_rn(acc_b[i], dv[i]);
  }
}

// Backward of rows read once. Block b takes the partial blocks c = b, b + grid, ...: kLayerNormRowsPerPartial
// rows each, shared by the block's G row groups (group g: rows g, g + G, ...). A thread's columns' dgamma /
// dbeta sums stay in shared memory over its group's rows, then the groups' sums are added in group order
// into partial row c.
// kResidual: dres (the gradient arriving at the pre-norm block's residual stream) is added to dx, its packs
// loaded once x's and dy's are converted.
template <typename In, typename Param, int VEC, bool kResidual>
__global__ void __launch_bounds__(plan::kRowNormMaxThreads, 1) row_norm_backward_kernel(
    const In* __restrict__ dy, const In* __restrict__ x, const In* __restrict__ dres, const float* __restrict__ mean_in,
    const float* __restrict__ rstd_in, const Param* __restrict__ gamma, In* __restrict__ dx, float* __restrict__ partial_gamma,
    float* __restrict__ partial_beta, RowNormShape s, std::int64_t partials) {
  constexpr int K = plan::row_norm_values_per_thread(true, VEC) / VEC;
  constexpr int kValues = K * VEC;
  // Dynamic shared memory (plan::row_norm_backward_shared_bytes): one-read rows keep the effective weights w
  // (n floats, rounded up to 4), then each thread's dgamma and dbeta sums of its columns (kValues each, 4
  // floats of padding: threads 36 floats apart meet no bank conflict in 16-byte accesses). In registers the
  // sums cost 2 x kValues of them: 16 values a thread spilled.
  constexpr int kAccStride = plan::row_norm_backward_accumulator_floats(VEC);
  extern __shared__ float backward_shared[];
  float* w_cache = backward_shared;
  float* sums = backward_shared + (s.n + 3) / 4 * 4;
  float* my_sums = sums + threadIdx.x * kAccStride;
  __shared__ float warp_sums[2 * plan::kRowNormMaxThreads / 32];
  const int T = 1 << s.thread_shift;
  const int lane = static_cast<int>(threadIdx.x) & (T - 1);
  const int group = static_cast<int>(threadIdx.x) >> s.thread_shift;
  const int G = static_cast<int>(blockDim.x) >> s.thread_shift;
  const std::int64_t packs = s.n / VEC;
  const bool param_grads = partial_gamma != nullptr;
  constexpr std::int64_t R = kLayerNormRowsPerPartial;
  // One-read rows: the thread's packs lane, lane + T, ... (at most K), `step` elements apart.
  const int step = T * VEC;
  const std::int64_t pack_bytes = static_cast<std::int64_t>(step) * static_cast<std::int64_t>(sizeof(In));
  const int my_packs = lane < packs ? min(K, static_cast<int>((packs - lane + T - 1) / T)) : 0;
  fill_param_cache<Param, VEC>(gamma, s, w_cache);
  __syncthreads();
  for (std::int64_t c = blockIdx.x; c < partials; c += gridDim.x) {
    float* pg = param_grads ? partial_gamma + c * s.n : nullptr;
    float* pb = param_grads ? partial_beta + c * s.n : nullptr;
    NORMKIT_UNROLL
    for (int k = 0; k < 2 * kValues; k += 4) *reinterpret_cast<float4*>(my_sums + k) = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    {
      // Each group's rows g, g + G, ...: the row pointers step by G rows; x and dy are converted once.
      const std::int64_t row_bytes = s.n * static_cast<std::int64_t>(sizeof(In));
      const std::int64_t group_step = G * row_bytes;
      const std::int64_t first_row = c * R + group;
      const In* xt = byte_offset(x, first_row * row_bytes) + lane * VEC;
      const In* dyt = byte_offset(dy, first_row * row_bytes) + lane * VEC;
      In* dxt = dx == nullptr ? nullptr : byte_offset(dx, first_row * row_bytes) + lane * VEC;
      const In* drt = kResidual ? byte_offset(dres, first_row * row_bytes) + lane * VEC : nullptr;
      // (32-bit row indices within the partial block and stepped statistics pointers: 64-bit index
      // arithmetic a row cost ~10 issue cycles a value)
      const int rows_here = static_cast<int>(s.rows - c * R < R ? s.rows - c * R : R);
      const float* mean_p = s.centered ? mean_in + first_row : nullptr;
      const float* rstd_p = rstd_in + first_row;
      for (int i_row = group; i_row - group < static_cast<int>(R); i_row += G) {  // (every group the same rounds)
        const int count = i_row < rows_here ? my_packs : 0;
        float mean = 0.0f, rstd = 0.0f;
        if (count > 0) {
          mean = s.centered ? *mean_p : 0.0f;
          rstd = *rstd_p;
        }
        if (s.centered) mean_p += G;
        rstd_p += G;
        RawPack<In, VEC> raw_x[K], raw_dy[K];
        NORMKIT_UNROLL
        for (int j = 0; j < K; ++j) {
          if (j >= count) break;
          raw_x[j] = load_row_pack<In, VEC>(byte_offset(xt, j * pack_bytes), s.vector_access);
          raw_dy[j] = load_row_pack<In, VEC>(byte_offset(dyt, j * pack_bytes), s.vector_access);
        }
        float xv[K][VEC], dv[K][VEC];
        float sum_g = 0.0f, sum_gx = 0.0f;
        NORMKIT_UNROLL
        for (int j = 0; j < K; ++j) {
          if (j >= count) break;
          float w[VEC];
          convert_raw_pack<float, In, VEC>(raw_x[j], xv[j]);
          convert_raw_pack<float, In, VEC>(raw_dy[j], dv[j]);
          load_cached<VEC>(w_cache + lane * VEC + j * step, w);
          add_grad_sums<VEC>(xv[j], dv[j], w, mean, rstd, sum_g, sum_gx);
        }
        if constexpr (kResidual) {  // (into x's registers, free once converted)
          NORMKIT_UNROLL
          for (int j = 0; j < K; ++j) {
            if (j < count) raw_x[j] = load_row_pack<In, VEC>(byte_offset(drt, j * pack_bytes), s.vector_access);
          }
        }
        const math::RowNormDxCoefficients dxc = grad_coefficients(sum_g, sum_gx, s, rstd, warp_sums);
        // (the cast mode tested once a row, not a value)
        auto phase2 = [&](auto round) {
          NORMKIT_UNROLL
          for (int j = 0; j < K; ++j) {
            if (j >= count) break;
            float w[VEC], out[VEC], acc_g[VEC], acc_b[VEC];
            load_cached<VEC>(w_cache + lane * VEC + j * step, w);
            load_cached<VEC>(my_sums + j * VEC, acc_g);
            load_cached<VEC>(my_sums + kValues + j * VEC, acc_b);
            grad_pack<decltype(round)::value, In, VEC>(xv[j], dv[j], w, dxc, rstd, out, acc_g, acc_b);
            store_cached<VEC>(my_sums + j * VEC, acc_g);
            store_cached<VEC>(my_sums + kValues + j * VEC, acc_b);
            if constexpr (kResidual) {
              float d[VEC];
              convert_raw_pack<float, In, VEC>(raw_x[j], d);
              NORMKIT_UNROLL
              for (int i = 0; i < VEC; ++i) out[i] = math::add_rn(out[i], d[i]);
            }
            if (dxt != nullptr) store_row_values<In, VEC>(byte_offset(dxt, j * pack_bytes), s.vector_access, out);
          }
        };
        if (s.round_xhat) {
          phase2(std::true_type{});
        } else {
          phase2(std::false_type{});
        }
        xt = byte_offset(xt, group_step);
        dyt = byte_offset(dyt, group_step);
        if (dxt != nullptr) dxt = byte_offset(dxt, group_step);
        if (kResidual) drt = byte_offset(drt, group_step);
      }
    }
    if (!param_grads) continue;
    // The groups' sums, added in group order into partial row c by group 0; the sums are zeroed for the next
    // partial block only after every group has read them.
    __syncthreads();
    if (group == 0) {
      NORMKIT_UNROLL
      for (int j = 0; j < K; ++j) {
        const int p = lane + T * j;  // (32-bit: one-read rows are short)
        if (p >= packs) break;
        float acc_g[VEC], acc_b[VEC];
        load_cached<VEC>(my_sums + j * VEC, acc_g);
        load_cached<VEC>(my_sums + kValues + j * VEC, acc_b);
        for (int other = 1; other < G; ++other) {
          const float* theirs = sums + (other * T + lane) * kAccStride;
          float g[VEC], b[VEC];
          load_cached<VEC>(theirs + j * VEC, g);
          load_cached<VEC>(theirs + kValues + j * VEC, b);
          NORMKIT_UNROLL
          for (int i = 0; i < VEC; ++i) {
            acc_g[i] = math::add_rn(acc_g[i], g[i]);
            acc_b[i] = math::add_rn(acc_b[i], b[i]);
          }
        }
        store_cached<VEC>(my_sums + j * VEC, acc_g);
        store_cached<VEC>(my_sums + kValues + j * VEC, acc_b);
      }
    }
    __syncthreads();
    // Partial row c written by the whole block from group 0's sums, consecutive threads on consecutive 16
    // bytes (a thread's own 32-byte packs left every store instruction half its sectors).
    constexpr int kOut = VEC % 4 == 0 ? 4 : 1;
    for (std::int64_t q = threadIdx.x; q < s.n / kOut; q += blockDim.x) {
      const std::int64_t e = q * kOut, p = e / VEC;
      const float* slot = sums + (p % T) * kAccStride + (p / T) * VEC + e % VEC;
      float g[kOut], b[kOut];
      load_cached<kOut>(slot, g);
      load_cached<kOut>(slot + kValues, b);
      store_cached<kOut>(pg + e, g);  // (16-byte stores: the workspace and every partial row are aligned)
      store_cached<kOut>(pb + e, b);
    }
    __syncthreads();
  }
}

// Backward of rows longer than one read holds (T = kRowNormMaxThreads, a block a row, G = 1): two passes
// over x and dy a row; the thread adds each row's dgamma/dbeta contributions to its own columns of partial
// row c in global memory (no race). A kernel of its own: beside the one-read path it made ptxas spill.
template <typename In, typename Param, int VEC, bool kResidual>
__global__ void __launch_bounds__(plan::kRowNormMaxThreads, 1) row_norm_backward_long_kernel(
    const In* __restrict__ dy, const In* __restrict__ x, const In* __restrict__ dres, const float* __restrict__ mean_in,
    const float* __restrict__ rstd_in, const Param* __restrict__ gamma, In* __restrict__ dx, float* __restrict__ partial_gamma,
    float* __restrict__ partial_beta, RowNormShape s, std::int64_t partials) {
  __shared__ float warp_sums[2 * plan::kRowNormMaxThreads / 32];
  const int T = 1 << s.thread_shift;
  const int lane = static_cast<int>(threadIdx.x) & (T - 1);
  const std::int64_t packs = s.n / VEC;
  const bool param_grads = partial_gamma != nullptr;
  constexpr std::int64_t R = kLayerNormRowsPerPartial;
  for (std::int64_t c = blockIdx.x; c < partials; c += gridDim.x) {
    float* pg = param_grads ? partial_gamma + c * s.n : nullptr;
    float* pb = param_grads ? partial_beta + c * s.n : nullptr;
    if (param_grads) {
      for (std::int64_t p = lane; p < packs; p += T) {
        NORMKIT_UNROLL
        for (int i = 0; i < VEC; ++i) pg[p * VEC + i] = pb[p * VEC + i] = 0.0f;
      }
    }
    for (std::int64_t i_row = 0; i_row < R; ++i_row) {
      const std::int64_t r = c * R + i_row;
      if (r >= s.rows) break;  // (uniform over the block)
      const In* xr = x + r * s.n;
      const In* dyr = dy + r * s.n;
      In* dxr = dx == nullptr ? nullptr : dx + r * s.n;
      const In* drr = kResidual ? dres + r * s.n : nullptr;
      const float mean = s.centered ? mean_in[r] : 0.0f;
      const float rstd = rstd_in[r];
      // (kBatch packs of x, dy, gamma and the partial sums loaded before any is used, in the order of one
      // pack at a time: one at a time, a row of 16384 bfloat16 took 2.3 ms for 2048 rows, latency-bound)
      constexpr int kBatch = long_row_backward_batch(VEC);
      float sum_g = 0.0f, sum_gx = 0.0f;
      // (x, dy and w of the batch of packs p0, p0 + T, ...)
      auto load_batch = [&](std::int64_t p0, RawPack<In, VEC> (&raw_x)[kBatch], RawPack<In, VEC> (&raw_dy)[kBatch],
                            float (&w)[kBatch][VEC]) {
        NORMKIT_UNROLL
        for (int u = 0; u < kBatch; ++u) {
          const std::int64_t p = p0 + u * T;
          if (p >= packs) break;
          raw_x[u] = load_row_pack<In, VEC>(xr + p * VEC, s.vector_access);
          raw_dy[u] = load_row_pack<In, VEC>(dyr + p * VEC, s.vector_access);
          load_weights<Param, VEC>(gamma, p, s, w[u]);
        }
      };
      for (std::int64_t p0 = lane; p0 < packs; p0 += kBatch * T) {
        RawPack<In, VEC> raw_x[kBatch], raw_dy[kBatch];
        float w[kBatch][VEC];
        load_batch(p0, raw_x, raw_dy, w);
        NORMKIT_UNROLL
        for (int u = 0; u < kBatch; ++u) {
          if (p0 + u * T >= packs) break;
          float xv[VEC], dv[VEC];
          convert_raw_pack<float, In, VEC>(raw_x[u], xv);
          convert_raw_pack<float, In, VEC>(raw_dy[u], dv);
          add_grad_sums<VEC>(xv, dv, w[u], mean, rstd, sum_g, sum_gx);
        }
      }
      const math::RowNormDxCoefficients dxc = grad_coefficients(sum_g, sum_gx, s, rstd, warp_sums);
      auto phase2 = [&](auto round) {
        for (std::int64_t p0 = lane; p0 < packs; p0 += kBatch * T) {
          RawPack<In, VEC> raw_x[kBatch], raw_dy[kBatch];
          float w[kBatch][VEC], acc_g[kBatch][VEC], acc_b[kBatch][VEC];
          load_batch(p0, raw_x, raw_dy, w);
          NORMKIT_UNROLL
          for (int u = 0; u < kBatch; ++u) {
            const std::int64_t p = p0 + u * T;
            if (p >= packs || !param_grads) break;
            load_cached<VEC>(pg + p * VEC, acc_g[u]);
            load_cached<VEC>(pb + p * VEC, acc_b[u]);
          }
          NORMKIT_UNROLL
          for (int u = 0; u < kBatch; ++u) {
            const std::int64_t p = p0 + u * T;
            if (p >= packs) break;
            float xv[VEC], dv[VEC], out[VEC];
            convert_raw_pack<float, In, VEC>(raw_x[u], xv);
            convert_raw_pack<float, In, VEC>(raw_dy[u], dv);
            NORMKIT_UNROLL
            for (int i = 0; i < VEC; ++i) xv[i] = math::row_norm_xhat(xv[i], mean, rstd);
            if (!param_grads) {
              NORMKIT_UNROLL
              for (int i = 0; i < VEC; ++i) acc_g[u][i] = acc_b[u][i] = 0.0f;
            }
            grad_pack<decltype(round)::value, In, VEC>(xv, dv, w[u], dxc, rstd, out, acc_g[u], acc_b[u]);
            if constexpr (kResidual) {  // (x's registers hold the pack's residual gradient now)
              raw_x[u] = load_row_pack<In, VEC>(drr + p * VEC, s.vector_access);
              float d[VEC];
              convert_raw_pack<float, In, VEC>(raw_x[u], d);
              NORMKIT_UNROLL
              for (int i = 0; i < VEC; ++i) out[i] = math::add_rn(out[i], d[i]);
            }
            if (param_grads) {
              // (this row's contributions added to the thread's own columns of the partial row: no race)
              store_cached<VEC>(pg + p * VEC, acc_g[u]);
              store_cached<VEC>(pb + p * VEC, acc_b[u]);
            }
            if (dxr != nullptr) store_row_values<In, VEC>(dxr + p * VEC, s.vector_access, out);
          }
        }
      };
      if (s.round_xhat) {
        phase2(std::true_type{});
      } else {
        phase2(std::false_type{});
      }
    }
  }
}

// dgamma (blockIdx.y 0) and dbeta (1) of 32 columns a block: strand ty of plan::kRowNormGradStrands adds partial
// rows ty, ty + S, ... in order (eight loads issued before their additions), then the strands are added in
// order (the host engine does the same).
template <typename Param>
__global__ void __launch_bounds__(32 * plan::kRowNormGradStrands) row_norm_param_grad_kernel(
    const float* __restrict__ partial_gamma, const float* __restrict__ partial_beta, std::int64_t partials, std::int64_t n,
    Param* __restrict__ dgamma, Param* __restrict__ dbeta) {
  constexpr int S = plan::kRowNormGradStrands;
  constexpr int kBatch = 8;
  __shared__ float strands[S][32];
  const float* partial = blockIdx.y == 0 ? partial_gamma : partial_beta;
  Param* out = blockIdx.y == 0 ? dgamma : dbeta;
  if (out == nullptr) return;  // (uniform over the block)
  const std::int64_t col = static_cast<std::int64_t>(blockIdx.x) * 32 + threadIdx.x;
  float acc = 0.0f;
  if (col < n) {
    const float* p = partial + static_cast<std::int64_t>(threadIdx.y) * n + col;
    const std::int64_t stride = S * n;
    // (the last batch partial: its missing loads predicated off, not a loop of single round trips)
    for (std::int64_t c = threadIdx.y; c < partials; c += kBatch * S, p += kBatch * stride) {
      float v[kBatch];
      NORMKIT_UNROLL
      for (int k = 0; k < kBatch; ++k) v[k] = c + k * S < partials ? p[k * stride] : 0.0f;
      asm volatile("" ::: "memory");  // (keeps the loads ahead of the additions in the PTX: one round trip)
      NORMKIT_UNROLL
      for (int k = 0; k < kBatch; ++k) {
        if (c + k * S < partials) acc = math::add_rn(acc, v[k]);
      }
    }
  }
  strands[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && col < n) {
    float total = strands[0][threadIdx.x];
    NORMKIT_UNROLL
    for (int strand = 1; strand < S; ++strand) total = math::add_rn(total, strands[strand][threadIdx.x]);
    math::store_as(out + col, total);
  }
}

}  // namespace normkit::kernels
