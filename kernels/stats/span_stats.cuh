// Statistics of channels-first segments whose sub-rows are not whole vectors (NCHW per-channel over 7 x 7 or
// 14 x 14 images of 16-bit values): the segment kernels load those sub-rows element by element. Here a block
// owns a tile of span_channels channels, whose span of every sample's row (C x S values) is whole 16-byte
// vectors, and a part of the samples; thread t owns vector t of the span in each of the part's rows. Its VEC
// positions each belong to one channel (the first `in_a` to channel a = t VEC / S of the tile, the rest to
// a + 1), so a position sums its values over the rows relative to its first value (three operations a value;
// min, max, Σ|x| and the non-zeros per channel when requested), then becomes a LocalMoments state; the
// positions merge into the thread's two channel states in order, and a channel's threads in thread order.
// Rows holding NaN or ±Inf (or sums past float's range) are taken again value by value (the per-value rules
// of LocalMoments::push). The partial state of (part, channel) goes to [part][channel] for
// merge_partials_kernel, or with one part straight to the sink.
#pragma once

#include <cstdint>

#include "kernels/common/partial_states.cuh"
#include "kernels/common/vector_load.cuh"
#include "math/stats_sink.hpp"
#include "plan/stats_plan.hpp"

namespace normkit::kernels {

struct SpanShape {
  std::int64_t n, c, s;                         // sub-rows a segment (samples), channels, values a sub-row
  std::int64_t span_channels, tiles, rows_per_part, parts;
};

// Rows a thread loads before it adds any: 4 x 16 bytes in flight; 2 for 16-bit values with extremes (their
// 8 positions' min, max, Σ|x| and non-zeros spilled at the 85 registers of 3 blocks an SM with 4).
template <typename T, bool EXTREMES>
constexpr int kSpanRowBatch = EXTREMES && sizeof(T) == 2 ? 2 : 4;

template <typename T, int VEC, bool EXTREMES>
__global__ void __launch_bounds__(256, 3) span_stats_kernel(const T* __restrict__ input, SpanShape s, math::StatsSink sink,
                                                            PartialStates<math::LocalMoments<float>> partials) {
  using State = math::LocalMoments<float>;
  __shared__ State thread_states[2][256];  // each thread's first channel's state, then its second's
  const unsigned tiles = static_cast<unsigned>(s.tiles), part = blockIdx.x / tiles;
  const std::int64_t c0 = static_cast<std::int64_t>(blockIdx.x - part * tiles) * s.span_channels;
  const std::int64_t r0 = static_cast<std::int64_t>(part) * s.rows_per_part;
  const std::int64_t r1 = r0 + s.rows_per_part < s.n ? r0 + s.rows_per_part : s.n;
  const int t = static_cast<int>(threadIdx.x), length = static_cast<int>(s.s);
  const int channels = static_cast<int>(s.c - c0 < s.span_channels ? s.c - c0 : s.span_channels);
  const bool owns = t * VEC < channels * length && r0 < r1;
  const int a = t * VEC / length;                          // (one division a thread)
  const int in_a = min(VEC, (a + 1) * length - t * VEC);  // positions of channel a (the rest: a + 1)
  const std::int64_t pitch = s.c * s.s;
  const T* const first_row = input + r0 * pitch + c0 * s.s + t * VEC;
  State sa = State::empty(), sb = State::empty();
  if (owns) {
    float shift[VEC], s1[VEC], s2[VEC];
    // The extremes a position (min, max, Σ|x|, non-zeros), folded into the two channels at the end: a select
    // a value between the channels cost 2.5 times the moments' issue (modelled).
    float mn[EXTREMES ? VEC : 1], mx[EXTREMES ? VEC : 1], abs_sum[EXTREMES ? VEC : 1], nonzero[EXTREMES ? VEC : 1];
    auto extremes = [&](const float (&v)[VEC], bool first) {
      if constexpr (EXTREMES) {
        NORMKIT_UNROLL
        for (int i = 0; i < VEC; ++i) {
          const float x = v[i];
          mn[i] = first ? x : fminf(mn[i], x);
          mx[i] = first ? x : fmaxf(mx[i], x);
          abs_sum[i] = first ? fabsf(x) : abs_sum[i] + fabsf(x);
          nonzero[i] = (first ? 0.0f : nonzero[i]) + (x != 0.0f ? 1.0f : 0.0f);
        }
      }
    };
    {
      float v[VEC];
      convert_raw_pack<float, T, VEC>(load_raw_pack<T, VEC>(first_row), v);
      NORMKIT_UNROLL
      for (int i = 0; i < VEC; ++i) shift[i] = v[i], s1[i] = 0.0f, s2[i] = 0.0f;
      extremes(v, true);
    }
    constexpr int kBatch = kSpanRowBatch<T, EXTREMES>;
    for (std::int64_t r = r0 + 1; r < r1; r += kBatch) {
      const int rows = static_cast<int>(r1 - r < kBatch ? r1 - r : kBatch);
      RawPack<T, VEC> raw[kBatch];
      NORMKIT_UNROLL
      for (int k = 0; k < kBatch; ++k) {
        if (k < rows) raw[k] = load_raw_pack<T, VEC>(first_row + (r - r0 + k) * pitch);
      }
      NORMKIT_UNROLL
      for (int k = 0; k < kBatch; ++k) {
        if (k >= rows) break;
        float v[VEC];
        convert_raw_pack<float, T, VEC>(raw[k], v);
        NORMKIT_UNROLL
        for (int i = 0; i < VEC; ++i) {
          const float d = v[i] - shift[i];
          s1[i] += d;
          s2[i] = fmaf(d, d, s2[i]);
        }
        extremes(v, false);
      }
    }
    bool finite = true;
    NORMKIT_UNROLL
    for (int i = 0; i < VEC; ++i) finite = finite && s1[i] - s1[i] == 0.0f && s2[i] - s2[i] == 0.0f && shift[i] - shift[i] == 0.0f;
    if (finite) {
      // Position i as a state: count n, mean relative to its shift, M2 = Σd² - (Σd)² / n (>= 0).
      const float n = static_cast<float>(r1 - r0), inv_n = 1.0f / n;
      NORMKIT_UNROLL
      for (int i = 0; i < VEC; ++i) {
        State q = State::empty();
        q.count = n;
        q.shift = shift[i];
        q.mean = s1[i] * inv_n;
        q.m2 = fmaxf(0.0f, fmaf(-s1[i], q.mean, s2[i]));
        if (i < in_a) {
          sa.merge(q);
        } else {
          sb.merge(q);
        }
      }
      if constexpr (EXTREMES) {
        NORMKIT_UNROLL
        for (int i = 0; i < VEC; ++i) {
          if (i < in_a) {
            sa.min = fminf(sa.min, mn[i]), sa.max = fmaxf(sa.max, mx[i]), sa.abs_sum += abs_sum[i], sa.nonzero += nonzero[i];
          } else {
            sb.min = fminf(sb.min, mn[i]), sb.max = fmaxf(sb.max, mx[i]), sb.abs_sum += abs_sum[i], sb.nonzero += nonzero[i];
          }
        }
      }
    } else {
      // NaN, ±Inf or a sum past float's range: the rows again, value by value.
      for (std::int64_t r = r0; r < r1; ++r) {
        float v[VEC];
        convert_raw_pack<float, T, VEC>(load_raw_pack<T, VEC>(first_row + (r - r0) * pitch), v);
        NORMKIT_UNROLL
        for (int i = 0; i < VEC; ++i) {
          if (i < in_a) {
            sa.push(v[i]);
          } else {
            sb.push(v[i]);
          }
        }
      }
    }
  }
  thread_states[0][t] = sa;
  thread_states[1][t] = sb;
  __syncthreads();
  // Channel j of the tile: threads j S / VEC (whose vector may begin in channel j - 1: its second state) to
  // (j S + S - 1) / VEC, in order.
  for (int j = t; j < channels; j += static_cast<int>(blockDim.x)) {
    const int t0 = j * length / VEC, t1 = (j * length + length - 1) / VEC;
    State m = State::empty();
    for (int u = t0; u <= t1; ++u) m.merge(thread_states[u * VEC >= j * length ? 0 : 1][u]);
    if (s.parts == 1) {
      math::write_local_slice<EXTREMES>(sink, c0 + j, m);
    } else {
      partials.store(static_cast<std::int64_t>(part) * s.c + c0 + j, m);
    }
  }
}

}  // namespace normkit::kernels
