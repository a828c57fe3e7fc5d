// Launcher of the image normalize kernel: 12 instantiations (uint8, float16, bfloat16, float32 input x
// float32, float16, bfloat16 output; layouts, crop, mirror and reversal are run-time choices of a block).
#include <cuda_runtime.h>

#include <string>

#include "kernels/common/cuda_check.hpp"
#include "kernels/image/image_kernels.cuh"
#include "kernels/image/image_launch.hpp"
#include "math/dtype_dispatch.hpp"

namespace normkit::kernels {

Status launch_image_normalize(const ImageLaunch& call, const plan::ImagePlan& plan, Stream stream) {
  constexpr const char* kOp = "image_normalize";
  if (plan.grid == 0) return Status::success();
  if (plan.grid > 0x7fffffff) {
    return Status(StatusCode::invalid_argument, std::string("normkit::") + kOp + ": argument 'x.shape': " + std::to_string(plan.grid) +
                                                    " tiles exceed a grid of 2^31 - 1 blocks");
  }
  const plan::ImageGeometry& g = call.geometry;
  ImageKernelArgs a;
  a.x = static_cast<const unsigned char*>(call.x);
  a.y = call.y;
  a.mirror_flags = call.mirror_flags;
  a.crop_origins = call.crop_origins;
  a.max_crop_y = g.max_crop_y();
  a.max_crop_x = g.max_crop_x();
  a.x_origin = call.crop_origins == nullptr ? a.x + g.origin_bytes() : a.x;
  a.x_bytes = g.batch * g.image_bytes();
  a.batch = g.batch;
  a.image_bytes = g.image_bytes();
  a.plane_bytes = g.plane_bytes();
  a.row_pitch = g.row_pitch;
  a.channels = static_cast<int>(g.channels);
  a.pixel_bytes = static_cast<int>(g.pixel_bytes());
  a.in_element_bytes = g.in_element_bytes;
  a.out_height = static_cast<int>(g.out_height);
  a.out_width = static_cast<int>(g.out_width);
  a.tile_rows = static_cast<int>(plan.tile_rows);
  a.tile_cols = static_cast<int>(plan.tile_cols);
  a.row_tiles = static_cast<int>(plan.row_tiles);
  a.col_tiles = static_cast<int>(plan.col_tiles);
  a.table_bytes = static_cast<int>(plan.table_bytes);
  a.buffer_bytes = static_cast<int>(plan.buffer_bytes);
  a.tiles = plan.tiles;
  a.in_nhwc = g.in_nhwc;
  a.out_nhwc = g.out_nhwc;
  a.mirror_all = call.mirror_all;
  a.reverse_channels = call.reverse_channels;
  a.coefficients = call.coefficients;
  return math::visit_image_dtypes(call.in, call.out, kOp, [&](auto in_tag, auto out_tag) -> Status {
    using In = typename decltype(in_tag)::type;
    using Out = typename decltype(out_tag)::type;
    image_normalize_kernel<In, Out><<<static_cast<unsigned>(plan.grid), plan.threads, plan.shared_bytes, stream>>>(a);
    return cuda::check_launch(kOp, "image_normalize_kernel");
  });
}

}  // namespace normkit::kernels
