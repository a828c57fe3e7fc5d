// Storage types for 16-bit floats and their conversion to the accumulation type.
//
// normkit carries its own float16/bfloat16 storage structs (two bytes, no arithmetic) so that public and
// host code need no CUDA header; on the device the conversions use the hardware instructions.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "math/host_device.hpp"
#include "normkit/dtype.hpp"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace normkit::math {

struct alignas(2) float16_bits { std::uint16_t bits; };
struct alignas(2) bfloat16_bits { std::uint16_t bits; };

NORMKIT_HD float bits_to_float(std::uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
#endif
}

NORMKIT_HD std::uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  std::uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
#endif
}

// binary16 -> binary32, exact for every input (subnormals, infinities, NaN payloads).
NORMKIT_HD float half_to_float(float16_bits h) {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(h.bits));
#else
  // Without branches, so that the host engine's conversion loops vectorize (float16 statistics on the host
  // ran at 2 GB/s on 2 cores with the branchy form): exponent and mantissa moved into place and rebiased;
  // infinities and NaN (exponent 31) rebiased once more to 255; zero and subnormals (exponent 0) made
  // 2^-14 * (1 + m/1024) and 2^-14 subtracted, which leaves m * 2^-24 exactly.
  const std::uint32_t shifted = static_cast<std::uint32_t>(h.bits & 0x7fffu) << 13;
  const std::uint32_t exponent = shifted & 0x0f800000u;
  const std::uint32_t rebiased = shifted + 0x38000000u + (exponent == 0x0f800000u ? 0x38000000u : 0u) +
                                 (exponent == 0u ? 0x00800000u : 0u);
  const float placed = bits_to_float(rebiased);
  const float magnitude = exponent == 0u ? placed - 6.103515625e-05f : placed;  // (a select: NaN payloads kept)
  return bits_to_float(float_to_bits(magnitude) | static_cast<std::uint32_t>(h.bits & 0x8000u) << 16);
#endif
}

// binary32 -> binary16 with round-to-nearest-even (used by tests and later by transforms).
NORMKIT_HD float16_bits float_to_half(float f) {
#if defined(__CUDA_ARCH__)
  return float16_bits{__half_as_ushort(__float2half_rn(f))};
#else
  const std::uint32_t x = float_to_bits(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or NaN (keep NaN quiet)
    return float16_bits{static_cast<std::uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u))};
  }
  if (abs >= 0x477ff000u) return float16_bits{static_cast<std::uint16_t>(sign | 0x7c00u)};  // rounds to inf
  if (abs < 0x38800000u) {  // result is subnormal or zero: round abs * 2^24 to an integer
    const float scaled = bits_to_float(abs) * 16777216.0f;
    return float16_bits{static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(std::nearbyint(scaled)))};
  }
  const std::uint32_t rounded = abs + 0xfffu + ((abs >> 13) & 1u);  // round to nearest even at bit 13
  return float16_bits{static_cast<std::uint16_t>(sign | ((rounded - 0x38000000u) >> 13))};
#endif
}

// (sm_90: one cvt.f32.bf16, a single shift; from a 16-bit register the shift form cost a zero-extension and
// a shift: bfloat16 per-sample statistics with every statistic, rows of 65536, 72.7 -> 86.8% modelled)
NORMKIT_HD float bfloat16_to_float(bfloat16_bits b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  float f;
  asm("cvt.f32.bf16 %0, %1;" : "=f"(f) : "h"(b.bits));
  return f;
#else
  return bits_to_float(static_cast<std::uint32_t>(b.bits) << 16);
#endif
}

NORMKIT_HD bfloat16_bits float_to_bfloat16(float f) {
#if defined(__CUDA_ARCH__)
  return bfloat16_bits{__bfloat16_as_ushort(__float2bfloat16_rn(f))};
#endif
  const std::uint32_t x = float_to_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return bfloat16_bits{static_cast<std::uint16_t>((x >> 16) | 0x40u)};
  return bfloat16_bits{static_cast<std::uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16)};
}

// Storing a computed value in an output dtype (float32 or float64 computations).
NORMKIT_HD void store_as(float* p, float v) { *p = v; }
NORMKIT_HD void store_as(float* p, double v) { *p = static_cast<float>(v); }
NORMKIT_HD void store_as(double* p, double v) { *p = v; }
NORMKIT_HD void store_as(double* p, float v) { *p = v; }
NORMKIT_HD void store_as(float16_bits* p, float v) { *p = float_to_half(v); }
NORMKIT_HD void store_as(float16_bits* p, double v) { *p = float_to_half(static_cast<float>(v)); }
NORMKIT_HD void store_as(bfloat16_bits* p, float v) { *p = float_to_bfloat16(v); }
NORMKIT_HD void store_as(bfloat16_bits* p, double v) { *p = float_to_bfloat16(static_cast<float>(v)); }

// A double factor s as Compute factors pre x rest, pre a power of two: x * pre is exact (for pre >= 1;
// below 1 it may lose bits under FLT_MIN that the result could not hold anyway), so (x * pre) * rest rounds
// like x * float(s) where s fits, and stays finite and accurate where s itself is outside Compute's
// normal range (1 / std or 1 / norm of subnormal float32 or bfloat16 data exceeds FLT_MAX; the 1 / std of
// data near FLT_MAX is below FLT_MIN). pre is 1 whenever s fits, for zero, infinite and NaN s, and for
// |s| beyond 2^+-252, which no split into two floats holds (y is then Inf or 0, as x * float(s) gives).
template <typename Compute>
struct ScaleSplit {
  Compute pre, rest;
};

template <typename Compute>
NORMKIT_HD ScaleSplit<Compute> split_scale(double s) {
  const Compute fitted = static_cast<Compute>(s);
  if constexpr (sizeof(Compute) == 4) {
    // (one float test on the conversion the fast path needs anyway: double tests cost short-row applies,
    // which prepare a row's coefficients in every lane, up to 7% modelled)
    const float a = fabsf(fitted);
    if (!(a >= 1.17549435e-38f && a <= 3.40282347e38f)) {  // zero, subnormal, infinite or NaN as a float
      const double d = s < 0.0 ? -s : s;
      const int exponent = d > 0.0 && d <= 1.7976931348623157e308 ? ilogb(d) : 0;
      if (exponent != 0 && exponent >= -252 && exponent <= 252) {
        const int half = exponent / 2;  // half the exponent to each factor: both are normal floats
        return ScaleSplit<Compute>{static_cast<Compute>(ldexp(1.0, half)), static_cast<Compute>(ldexp(s, -half))};
      }
    }
  }
  return ScaleSplit<Compute>{Compute(1), fitted};
}

// Two floats -> two 16-bit floats in one word (lo in the low half), each rounded to nearest even as by
// float_to_half / float_to_bfloat16: on the device one packed conversion (cvt.rn.f16x2.f32, one F2FP)
// instead of one per value, a quarter of the issue rate each.
NORMKIT_HD std::uint32_t float_pair_to_half_bits(float lo, float hi) {
#if defined(__CUDA_ARCH__)
  std::uint32_t pair;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(pair) : "f"(hi), "f"(lo));
  return pair;
#else
  return static_cast<std::uint32_t>(float_to_half(lo).bits) | (static_cast<std::uint32_t>(float_to_half(hi).bits) << 16);
#endif
}
NORMKIT_HD std::uint32_t float_pair_to_bfloat16_bits(float lo, float hi) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  std::uint32_t pair;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(pair) : "f"(hi), "f"(lo));
  return pair;
#else
  return static_cast<std::uint32_t>(float_to_bfloat16(lo).bits) |
         (static_cast<std::uint32_t>(float_to_bfloat16(hi).bits) << 16);
#endif
}

// Converts one stored element to the accumulation type Acc (float or double).
template <typename Acc> NORMKIT_HD Acc to_acc(float v) { return static_cast<Acc>(v); }
template <typename Acc> NORMKIT_HD Acc to_acc(double v) { return static_cast<Acc>(v); }
// An unsigned integer below 2^23 -> float on the device as (2^23 + v) - 2^23 from the bit pattern
// 0x4B000000 | v: an OR and a subtraction, exact, instead of an integer-to-float conversion (a quarter of
// the issue rate).
template <typename Acc> NORMKIT_HD Acc small_uint_to_acc(std::uint32_t v) {
#if defined(__CUDA_ARCH__)
  if constexpr (sizeof(Acc) == 4) return __uint_as_float(0x4B000000u | v) - 8388608.0f;
#endif
  return static_cast<Acc>(v);
}
template <typename Acc> NORMKIT_HD Acc to_acc(std::uint8_t v) { return small_uint_to_acc<Acc>(v); }
template <typename Acc> NORMKIT_HD Acc to_acc(float16_bits v) { return static_cast<Acc>(half_to_float(v)); }
template <typename Acc> NORMKIT_HD Acc to_acc(bfloat16_bits v) { return static_cast<Acc>(bfloat16_to_float(v)); }

// The C++ storage type of each input dtype.
template <DType D> struct storage_of;
template <> struct storage_of<DType::float32> { using type = float; };
template <> struct storage_of<DType::float64> { using type = double; };
template <> struct storage_of<DType::float16> { using type = float16_bits; };
template <> struct storage_of<DType::bfloat16> { using type = bfloat16_bits; };
template <> struct storage_of<DType::uint8> { using type = std::uint8_t; };

}  // namespace normkit::math
