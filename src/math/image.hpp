// Image normalize's formula, written once for the kernels and the host engine.
//
// The options' y = (u x - mean) * global_scale / sqrt(std² + eps) + global_shift is evaluated as
// y = (x - center) * scale + shift with the pixel-unit factor folded into the per-channel coefficients
// (center = mean / u, scale = global_scale * u / sqrt(std² + eps), computed once in float64 on the host).
// Every operation is rounded as written (rounded_ops.hpp), so the host engine gives the kernels' bits.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "math/element_types.hpp"
#include "math/host_device.hpp"
#include "math/rounded_ops.hpp"

namespace normkit::math {

constexpr int kImageMaxChannels = 16;

// y = x * S + B (S = scale, B = shift - center * scale) in float32 for 16-bit input to float32 output, with S
// and B split in two floats: S = s_hi + s_lo with s_hi of 12 significant bits, so that x * s_hi is exact for
// the 11 (float16) or 8 (bfloat16) bits of x, and B = b_hi + b_lo. y = fma(x, s_hi, b_hi) + fma(x, s_lo, b_lo):
// within about 1 ulp of the exact value x max(1, |y|) (the first fma's rounding, the last addition's, and the
// second fma's, 2^-35 |x S|, which |B| <= 256 bounds where y cancels): two fmas and an add where float64 took
// two conversions a quarter of the rate each. Calls with |B| > 256 keep the float64 formula.
struct ImageSplit {
  float s_hi, s_lo, b_hi, b_lo;
};

// Per output channel c: y = (x - center[c]) * scale[c] + shift. `units_divisor` is 1 / u: 255 for uint8
// input in unit units, else 1. `split`, `split_bfloat16`: every channel's ImageSplit keeps its bound for
// float16 / bfloat16 input (else the float64 formula).
struct ImageCoefficients {
  int channels = 0;
  double center[kImageMaxChannels] = {};
  double scale[kImageMaxChannels] = {};
  double shift = 0.0;
  bool split = false;           // float16 input may take the split formula
  bool split_bfloat16 = false;  // bfloat16 input may
  ImageSplit splits[kImageMaxChannels] = {};
};

inline ImageSplit image_split(double center, double scale, double shift) {
  const double b = shift - center * scale;
  float s_hi = static_cast<float>(scale);
  std::uint32_t bits;
  std::memcpy(&bits, &s_hi, sizeof bits);
  bits &= 0xfffff000u;  // 12 significant bits (the implicit one and 11 stored), toward zero: s_lo has S's sign
  std::memcpy(&s_hi, &bits, sizeof bits);
  if (static_cast<double>(s_hi) == scale && bits & 0x7fffffffu) {
    // S itself has 12 bits: one 12-bit step moves to s_lo, so that s_lo is never 0 and an infinite x gives
    // inf + inf of one sign (inf * 0 would be NaN)
    bits -= 0x1000u;
    std::memcpy(&s_hi, &bits, sizeof bits);
  }
  const float b_hi = static_cast<float>(b);
  return ImageSplit{s_hi, static_cast<float>(scale - static_cast<double>(s_hi)), b_hi, static_cast<float>(b - static_cast<double>(b_hi))};
}

inline ImageCoefficients image_coefficients(int channels, const double* mean, const double* std, double eps, double global_scale,
                                            double global_shift, double units_divisor) {
  ImageCoefficients k;
  k.channels = channels;
  for (int c = 0; c < channels; ++c) {
    k.center[c] = mean[c] * units_divisor;
    k.scale[c] = global_scale / (units_divisor * std::sqrt(std[c] * std[c] + eps));
  }
  k.shift = global_shift;
  k.split = k.split_bfloat16 = true;
  for (int c = 0; c < channels; ++c) {
    k.splits[c] = image_split(k.center[c], k.scale[c], k.shift);
    const ImageSplit& p = k.splits[c];
    // (finite halves, a normal s_hi: x * s_hi is then exact short of underflow; |B| <= 256: where y cancels to
    // below 1, |x S| is then below 257 and the second fma's rounding, 2^-35 |x S|, stays under 2^-27. float16's
    // |x| <= 65504 keeps x * s_hi + b_hi finite; bfloat16's x reaches 2^128, so it also needs |S| <= 1/2, else
    // x * s_hi + b_hi could overflow where y, 2^-12 smaller, is finite)
    const bool ok = std::isfinite(p.s_hi) && std::isfinite(p.s_lo) && std::isfinite(p.b_hi) && std::isfinite(p.b_lo) &&
                    std::fabs(p.s_hi) >= 1.17549435e-38f && std::fabs(static_cast<double>(p.b_hi) + p.b_lo) <= 256.0 &&
                    std::fabs(k.scale[c]) <= 1e30;
    k.split = k.split && ok;
    k.split_bfloat16 = k.split_bfloat16 && ok && std::fabs(k.scale[c]) <= 0.5;
  }
  return k;
}

// The arithmetic type of a call: float64 for float32 output (the value rounded once: within half an ulp)
// and for uint8 input (a table of each channel's 256 values, built in float64); float32 for the others
// (16-bit output, whose ulp dwarfs float32's rounding).
template <typename In, typename Out>
using image_compute_t = std::conditional_t<std::is_same_v<Out, float> || std::is_same_v<In, std::uint8_t>, double, float>;

template <typename Compute>
NORMKIT_HD Compute image_value(Compute x, Compute center, Compute scale, Compute shift) {
  return add_rn(mul_rn(sub_rn(x, center), scale), shift);
}

// Whether In -> Out takes the split float32 formula (when the call's coefficients allow it: image_split_allowed).
template <typename In, typename Out>
constexpr bool image_uses_split = std::is_same_v<Out, float> && (std::is_same_v<In, float16_bits> || std::is_same_v<In, bfloat16_bits>);

// The offset of an image's crop window (its first pixel, channel 0's plane) from the image's start, for a
// per-image origin (row, column) clamped into [0, max_y] x [0, max_x] (the positions that keep the window inside
// the image): device origins cannot be checked before the kernel reads them, so none can point outside.
NORMKIT_HD std::int64_t clamped_crop_origin_bytes(const std::int64_t* origin, std::int64_t max_y, std::int64_t max_x,
                                                  std::int64_t row_pitch, std::int64_t pixel_bytes) {
  const std::int64_t y = origin[0] < 0 ? 0 : (origin[0] > max_y ? max_y : origin[0]);
  const std::int64_t x = origin[1] < 0 ? 0 : (origin[1] > max_x ? max_x : origin[1]);
  return y * row_pitch + x * pixel_bytes;
}

template <typename In, typename Out>
NORMKIT_HD bool image_split_allowed(const ImageCoefficients& k) {
  if constexpr (!image_uses_split<In, Out>) return false;
  return std::is_same_v<In, bfloat16_bits> ? k.split_bfloat16 : k.split;
}

NORMKIT_HD float image_value_split(float x, const ImageSplit& k) {
  // (x = +-Inf: both fmas give the same infinity, s_lo having s_hi's sign and never 0; NaN stays NaN)
  return add_rn(fma_rn(x, k.s_hi, k.b_hi), fma_rn(x, k.s_lo, k.b_lo));
}// Entry v of channel c's table for uint8 input: the value of pixel v rounded to Out.
template <typename Out>
NORMKIT_HD Out image_table_entry(int v, double center, double scale, double shift) {
  Out out;
  store_as(&out, image_value<double>(static_cast<double>(v), center, scale, shift));
  return out;
}

}  // namespace normkit::math
