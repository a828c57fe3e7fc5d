// Value types of image normalize (image.hpp): options only, no operations.
#pragma once

#include <cstdint>
#include <vector>

namespace normkit {

// Axis order of an image batch: [N, H, W, C] or [N, C, H, W].
enum class ImageLayout : std::uint8_t { nhwc, nchw };

// The units mean and std are given in. `unit`: statistics of pixels scaled to [0, 1] (torchvision's
// ToTensor + Normalize, mean 0.485 for ImageNet's red): uint8 values are divided by 255 first. `pixel`: the
// statistics are in the input's own values (DALI's and CV-CUDA's mean 123.675). For float16, bfloat16 and
// float32 input both mean "the input's values", no scaling. There is no default: a uint8 call with
// `unspecified` is an error, since guessing wrong silently scales every output by 255.
enum class PixelUnits : std::uint8_t { unspecified, pixel, unit };

struct ImageNormalizeOptions {
  ImageLayout layout = ImageLayout::nhwc;      // x's axis order
  ImageLayout out_layout = ImageLayout::nchw;  // y's axis order (the layout change runs in the same pass)
  PixelUnits units = PixelUnits::unspecified;
  // Per output channel (after any reversal), C values each; std > 0 unless eps > 0.
  std::vector<double> mean, std;
  // Added to std² under the square root (CV-CUDA's epsilon); finite, >= 0.
  double eps = 0.0;
  // y = normalized * global_scale + global_shift (CV-CUDA's globalScale and globalShift); finite.
  double global_scale = 1.0, global_shift = 0.0;
  // Output channel c reads input channel C - 1 - c (BGR <-> RGB); mean and std stay indexed by output channel.
  bool reverse_channels = false;
  // Crop window of every image, in input pixels: rows [crop_y, crop_y + crop_height), columns [crop_x,
  // crop_x + crop_width). A height or width of -1 runs to the image's edge.
  std::int64_t crop_y = 0, crop_x = 0, crop_height = -1, crop_width = -1;
  // Mirror every image horizontally (after the crop: output column w reads crop column width - 1 - w). For a
  // mirror flag per sample pass image_normalize's mirror_flags instead.
  bool mirror = false;
  // Bytes from one input row to the next (every image padded the same); 0: packed rows (W * C or W elements).
  std::int64_t row_pitch_bytes = 0;
};

}  // namespace normkit
