// Host engine of image normalize: the kernel's formula (math/image.hpp) and tables over host memory, the same
// bits.
#pragma once

#include "kernels/image/image_launch.hpp"

namespace normkit::cpu {

Status image_normalize(const kernels::ImageLaunch& call, int threads);

}  // namespace normkit::cpu
