// Image normalize: a batch of images to normalized float, with crop, mirror, channel reversal and the layout
// change in one pass (torchvision's ToTensor + Normalize, DALI's crop_mirror_normalize, CV-CUDA's Normalize).
//
// x: [N, H, W, C] (options.layout nhwc) or [N, C, H, W] (nchw), uint8, float16, bfloat16 or float32, 1 <= C <=
// kMaxImageChannels. y: [N, C, h, w] (options.out_layout nchw) or [N, h, w, C] (nhwc), float32, float16 or
// bfloat16, with h, w the crop window's extent (H, W without a crop). For every sample n, output channel c,
// output row i and column j:
//   c'  = options.reverse_channels ? C - 1 - c : c
//   j'  = mirrored(n) ? w - 1 - j : j
//   y[n, c, i, j] = (u * x[n, crop_y + i, crop_x + j', c'] - mean[c]) * global_scale / sqrt(std[c]² + eps)
//                   + global_shift
// with u = 1/255 for uint8 input and options.units == unit, u = 1 otherwise (see PixelUnits). mean and std
// are indexed by output channel. mirrored(n) = options.mirror, or mirror_flags[n] != 0 when mirror_flags
// (uint8 [N], in x's memory space) is given.
//
// Rounding: within 1 ulp of y's dtype of the exact value (x max(1, |y|) below 1): uint8 input through a table
// of each channel's 256 values computed in float64 and rounded once; float32 input to float32 output in
// float64; float16/bfloat16 input to float32 output in float32 with the coefficients split in two floats
// each (y = fma(x, s_hi, b_hi) + fma(x, s_lo, b_lo), x * s_hi exact); 16-bit output in float32. NaN and Inf
// inputs propagate as the formula gives them.
//
// Row pitch: with options.row_pitch_bytes = P > 0 each input row (W * C elements in nhwc, W in nchw) starts P
// bytes after the previous one, images and channel planes too (H * P bytes an image in nhwc, a plane in
// nchw); x.shape stays the logical [N, H, W, C] and the buffer must hold every padded row, the last one's
// padding included. P must be a multiple of the element size and at least a row.
//
// Errors (Status, nothing written): dtypes outside the lists; x not 4-D or C outside 1..kMaxImageChannels;
// units unspecified with uint8 input; mean or std not C values; a std < 0, or 0 with eps = 0; a non-finite
// mean, std, eps, scale or shift; eps < 0; a crop window outside the image (an empty one gives an empty y, a
// no-op); y's shape not the crop's in out_layout; mirror_flags not uint8 [N] in x's space, or given with
// options.mirror; a bad row pitch; null, misaligned or overlapping pointers.
//
// Device calls only enqueue work on `stream`: no allocation, no synchronization, capturable in a CUDA graph
// (the per-channel coefficients travel as kernel arguments). Host calls run on the calling thread's cores.
// Determinism: every element is a pure function of its input value and the options.
#pragma once

#include "normkit/image_types.hpp"
#include "normkit/status.hpp"
#include "normkit/tensor.hpp"

namespace normkit {

constexpr int kMaxImageChannels = 16;

Status image_normalize(const TensorView& x, const TensorView& y, const ImageNormalizeOptions& options,
                       const TensorView& mirror_flags = TensorView(), Stream stream = nullptr);

// The same with a crop window of its own for every image (random crops: DALI's per-sample crop_pos): crop_origins
// int64 [N, 2] in x's memory space holds image n's window origin (row, column); every window has
// options.crop_height x options.crop_width (-1: the image's extent), and options.crop_y and crop_x must be 0.
// An origin is clamped into [0, H - crop_height] x [0, W - crop_width], so a window never reaches outside its
// image (device origins cannot be checked before the kernel reads them; the host engine clamps alike). Mirror
// flags and everything else as above. Errors as above, and crop_origins not int64 with 2 N values in x's space,
// or a nonzero options.crop_y / crop_x. (crop_origins must be exactly [N, 2]: a [2, N] array is an error.)
Status image_normalize_crops(const TensorView& x, const TensorView& y, const ImageNormalizeOptions& options, const TensorView& crop_origins,
                             const TensorView& mirror_flags = TensorView(), Stream stream = nullptr);

}  // namespace normkit
