// Image normalize's formula, written once for the kernels and the host engine.
//
// The options' y = (u x - mean) * global_scale / sqrt(std² + eps) + global_shift is evaluated as
// y = (x - center) * scale + shift with the pixel-unit factor folded into the per-channel coefficients
// (center = mean / u, scale = global_scale * u / sqrt(std² + eps), computed once in float64 on the host).
// Every operation is rounded as written (rounded_ops.hpp), so the host engine gives the kernels' bits.
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "math/element_types.hpp"
#include "math/host_device.hpp"
#include "math/rounded_ops.hpp"

namespace normkit::math {

constexpr int kImageMaxChannels = 16;

// Per output channel c: y = (x - center[c]) * scale[c] + shift. `units_divisor` is 1 / u: 255 for uint8
// input in unit units, else 1.
struct ImageCoefficients {
  int channels = 0;
  double center[kImageMaxChannels] = {};
  double scale[kImageMaxChannels] = {};
  double shift = 0.0;
};

inline ImageCoefficients image_coefficients(int channels, const double* mean, const double* std, double eps, double global_scale,
                                            double global_shift, double units_divisor) {
  ImageCoefficients k;
  k.channels = channels;
  for (int c = 0; c < channels; ++c) {
    k.center[c] = mean[c] * units_divisor;
    k.scale[c] = global_scale / (units_divisor * std::sqrt(std[c] * std[c] + eps));
  }
  k.shift = global_shift;
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

// Entry v of channel c's table for uint8 input: the value of pixel v rounded to Out.
template <typename Out>
NORMKIT_HD Out image_table_entry(int v, double center, double scale, double shift) {
  Out out;
  store_as(&out, image_value<double>(static_cast<double>(v), center, scale, shift));
  return out;
}

}  // namespace normkit::math
