// Host-side entry point of the image normalize kernel (plain C++: included by the API layer; a build without
// CUDA links stubs that fail cleanly).
#pragma once

#include <cstdint>

#include "math/image.hpp"
#include "normkit/status.hpp"
#include "normkit/tensor.hpp"
#include "plan/image_plan.hpp"

namespace normkit::kernels {

struct ImageLaunch {
  const void* x = nullptr;
  void* y = nullptr;
  const std::uint8_t* mirror_flags = nullptr;
  const std::int64_t* crop_origins = nullptr;  // [N, 2] (row, column) per image, clamped; nullptr: the geometry's
  DType in = DType::uint8, out = DType::float32;
  plan::ImageGeometry geometry;
  bool mirror_all = false, reverse_channels = false;
  math::ImageCoefficients coefficients;
};

Status launch_image_normalize(const ImageLaunch& call, const plan::ImagePlan& plan, Stream stream);

}  // namespace normkit::kernels
