// Exact integer sums of uint8 values read as little-endian 32-bit words (4 values a word): the uint8 fast
// path of the statistics kernels. One definition for the device (byte dot products, byte permutes and
// packed half-precision min/max: about 5 issue cycles per value with extremes, 1 without) and the host
// (the same integers computed value by value), so host tests check what the kernels compute.
#pragma once

#include <cstdint>

#include "math/element_types.hpp"
#include "math/host_device.hpp"

namespace normkit::math {

// Σx, Σx², the non-zero count and the extremes of up to kByteSumsMaxValues uint8 values.
// Extremes are kept as two 16-bit lanes holding x (0x00xx): on the device these are the half-precision
// subnormals x·2^-24, so one min.f16x2 compares two values (half a cycle each; integer byte min/max expand
// to several instructions on sm_80/sm_90) and set.neu.f16x2 against zero flags two non-zero values; on
// the host the same lanes are compared as integers, which order the same way. Non-zeros are counted from
// byte flags, or on the device in two half-precision lanes (exact up to 2048 each; kHalfCounts): nonzero()
// is the same number either way.
struct ByteSums {
  std::uint32_t sum;           // Σx
  std::uint32_t sum_sq;        // Σx²
  std::uint32_t nonzero_x128;  // 128 x the non-zeros counted from byte flags (the host counts all here)
  std::uint32_t nonzero_halves;  // device: non-zeros counted in two half-precision lanes
  std::uint32_t min_lanes;     // two lanes holding a minimum each
  std::uint32_t max_lanes;     // two lanes holding a maximum each

  static constexpr std::uint32_t kEmptyMinLanes = 0x00ff00ffu;
  static constexpr std::uint32_t kEmptyMaxLanes = 0u;
  NORMKIT_HD static ByteSums empty() { return ByteSums{0u, 0u, 0u, 0u, kEmptyMinLanes, kEmptyMaxLanes}; }

  // Adds the 4 bytes of w. kExtremes = false leaves the non-zero count and the extremes out.
  // kHalfCounts: the device counts non-zeros with set.neu/add.f16x2 on the extremes' lanes (4 half
  // cycles a word) rather than byte flags and a dot product (8): the segment and column kernels. (The
  // host counts with the flags.)
  template <bool kExtremes = true, bool kHalfCounts = false>
  NORMKIT_HD void add_word(std::uint32_t w);

  NORMKIT_HD std::uint32_t min_value() const { return lane_min(min_lanes) & 0xffu; }
  NORMKIT_HD std::uint32_t max_value() const { return lane_max(max_lanes) & 0xffu; }
  // (kHalfCounts: as add_word counted them; the half lanes' conversion is not folded away otherwise.)
  template <bool kHalfCounts = false>
  NORMKIT_HD std::uint32_t nonzero() const;

  // Lane-wise min / max of two words of lanes (one min/max.f16x2 on the device).
  NORMKIT_HD static std::uint32_t min_lanes_of(std::uint32_t a, std::uint32_t b);
  NORMKIT_HD static std::uint32_t max_lanes_of(std::uint32_t a, std::uint32_t b);
  // The smaller / larger of a word's two lanes.
  NORMKIT_HD static std::uint32_t lane_min(std::uint32_t l) { return (l & 0xffffu) < (l >> 16) ? (l & 0xffffu) : (l >> 16); }
  NORMKIT_HD static std::uint32_t lane_max(std::uint32_t l) { return (l & 0xffffu) > (l >> 16) ? (l & 0xffffu) : (l >> 16); }
};

NORMKIT_HD std::uint32_t ByteSums::min_lanes_of(std::uint32_t a, std::uint32_t b) {
#if defined(__CUDA_ARCH__)
  std::uint32_t r;
  asm("min.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
#else
  const std::uint32_t lo = (a & 0xffffu) < (b & 0xffffu) ? (a & 0xffffu) : (b & 0xffffu);
  const std::uint32_t hi = (a >> 16) < (b >> 16) ? (a >> 16) : (b >> 16);
  return lo | (hi << 16);
#endif
}

NORMKIT_HD std::uint32_t ByteSums::max_lanes_of(std::uint32_t a, std::uint32_t b) {
#if defined(__CUDA_ARCH__)
  std::uint32_t r;
  asm("max.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
  return r;
#else
  const std::uint32_t lo = (a & 0xffffu) > (b & 0xffffu) ? (a & 0xffffu) : (b & 0xffffu);
  const std::uint32_t hi = (a >> 16) > (b >> 16) ? (a >> 16) : (b >> 16);
  return lo | (hi << 16);
#endif
}

// The device's half-precision non-zero counts are exact up to 2048 per lane (Σx² < 2^32 up to 66051
// values): the kernels fold at most kByteSumsMaxValues values into one ByteSums (2048 a lane).
constexpr int kByteSumsMaxValues = 4096;

template <bool kHalfCounts>
NORMKIT_HD std::uint32_t ByteSums::nonzero() const {
#if defined(__CUDA_ARCH__)
  if constexpr (kHalfCounts) {
    // The two half counts as floats, summed, and read back as an integer through the 2^23 bias (no
    // conversion instruction).
    const float halves = half_to_float(float16_bits{static_cast<std::uint16_t>(nonzero_halves)}) +
                         half_to_float(float16_bits{static_cast<std::uint16_t>(nonzero_halves >> 16)}) + 8388608.0f;
    return __float_as_uint(halves) - 0x4b000000u;
  }
#endif
  return nonzero_x128 >> 7;
}

// 0x80 in each byte of w that is not zero: (b & 0x7f) + 0x7f sets bit 7 for b & 0x7f != 0 without a carry
// into the next byte, and b's own bit 7 covers the rest.
NORMKIT_HD std::uint32_t nonzero_byte_flags(std::uint32_t w) {
  const std::uint32_t carries = (w & 0x7f7f7f7fu) + 0x7f7f7f7fu;
#if defined(__CUDA_ARCH__)
  // (carries | w) & 0x80808080 as one LOP3 (nvcc's PTX had an or and an and); its table is that function
  // of the operand tables 0xf0, 0xcc, 0xaa: (0xf0 | 0xcc) & 0xaa = 0xa8.
  std::uint32_t flags;
  asm("lop3.b32 %0, %1, %2, %3, 0xa8;" : "=r"(flags) : "r"(carries), "r"(w), "r"(0x80808080u));
  return flags;
#else
  return (carries | w) & 0x80808080u;
#endif
}

template <bool kExtremes, bool kHalfCounts>
NORMKIT_HD void ByteSums::add_word(std::uint32_t w) {
#if defined(__CUDA_ARCH__)
  sum = __dp4a(w, 0x01010101u, sum);
  sum_sq = __dp4a(w, w, sum_sq);
  if constexpr (kExtremes) {
    // Bytes 0 and 2, and 1 and 3, as the low bytes of two halves (selector 4: byte 0 of the zero operand).
    const std::uint32_t even = __byte_perm(w, 0u, 0x4240u);
    const std::uint32_t odd = __byte_perm(w, 0u, 0x4341u);
    std::uint32_t lo, hi, even_flags, odd_flags;
    asm("min.f16x2 %0, %1, %2;" : "=r"(lo) : "r"(even), "r"(odd));
    asm("max.f16x2 %0, %1, %2;" : "=r"(hi) : "r"(even), "r"(odd));
    asm("min.f16x2 %0, %0, %1;" : "+r"(min_lanes) : "r"(lo));
    asm("max.f16x2 %0, %0, %1;" : "+r"(max_lanes) : "r"(hi));
    if constexpr (kHalfCounts) {
      asm("set.neu.f16x2.f16x2 %0, %1, %2;" : "=r"(even_flags) : "r"(even), "r"(0u));
      asm("set.neu.f16x2.f16x2 %0, %1, %2;" : "=r"(odd_flags) : "r"(odd), "r"(0u));
      asm("add.f16x2 %0, %0, %1;" : "+r"(nonzero_halves) : "r"(even_flags));
      asm("add.f16x2 %0, %0, %1;" : "+r"(nonzero_halves) : "r"(odd_flags));
    } else {
      nonzero_x128 = __dp4a(nonzero_byte_flags(w), 0x01010101u, nonzero_x128);
    }
  }
#else
  for (int i = 0; i < 4; ++i) {
    const std::uint32_t b = (w >> (8 * i)) & 0xffu;
    sum += b;
    sum_sq += b * b;
    if constexpr (kExtremes) {
      nonzero_x128 += b != 0u ? 128u : 0u;
      // The low lane takes bytes 0 and 1, the high lane bytes 2 and 3, as min.f16x2 of the device's
      // permutes (bytes 0 and 2 against 1 and 3) does.
      const int shift = 16 * (i >> 1);
      const std::uint32_t mn = (min_lanes >> shift) & 0xffffu, mx = (max_lanes >> shift) & 0xffffu;
      min_lanes = (min_lanes & ~(0xffffu << shift)) | ((b < mn ? b : mn) << shift);
      max_lanes = (max_lanes & ~(0xffffu << shift)) | ((b > mx ? b : mx) << shift);
    }
  }
#endif
}

}  // namespace normkit::math
