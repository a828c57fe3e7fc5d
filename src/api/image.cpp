// Public image normalize API: validate, resolve the geometry and per-channel coefficients, then run the host
// engine or the kernel.
#include "normkit/image.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "api/validation.hpp"
#include "cpu/image_cpu.hpp"
#include "kernels/common/device_runtime.hpp"
#include "kernels/image/image_launch.hpp"
#include "plan/image_plan.hpp"

namespace normkit {
namespace {

constexpr const char* kOp = "image_normalize";

Status invalid(const std::string& argument, const std::string& expected, const std::string& got) {
  return argument_error(StatusCode::invalid_argument, kOp, argument, expected, got);
}

bool is_image_input_dtype(DType d) { return d == DType::uint8 || api::is_layer_dtype(d); }

const char* layout_name(ImageLayout l) { return l == ImageLayout::nhwc ? "nhwc" : "nchw"; }

std::string shape_text(std::int64_t a, std::int64_t b, std::int64_t c, std::int64_t d) {
  return "[" + std::to_string(a) + ", " + std::to_string(b) + ", " + std::to_string(c) + ", " + std::to_string(d) + "]";
}

Status check_finite(double v, const char* argument, bool non_negative) {
  if (std::isfinite(v) && (!non_negative || v >= 0.0)) return Status::success();
  return invalid(argument, non_negative ? "a finite value >= 0" : "a finite value", api::number(v));
}

// A crop extent along one axis: [origin, origin + extent) inside [0, size); extent -1 runs to the edge.
Status resolve_crop(std::int64_t origin, std::int64_t extent, std::int64_t size, const char* origin_name, const char* extent_name,
                    std::int64_t* out) {
  if (origin < 0 || origin > size) return invalid(origin_name, "0.." + std::to_string(size) + " (inside the image)", std::to_string(origin));
  const std::int64_t e = extent == -1 ? size - origin : extent;
  if (e < 0 || e > size - origin) {
    return invalid(extent_name, "-1 or 0.." + std::to_string(size - origin) + " (the window inside the image)", std::to_string(extent));
  }
  *out = e;
  return Status::success();
}

Status check_options(const ImageNormalizeOptions& o, DType in, std::int64_t channels) {
  if (!(o.layout == ImageLayout::nhwc || o.layout == ImageLayout::nchw)) {
    return invalid("options.layout", "nhwc or nchw", std::to_string(static_cast<int>(o.layout)));
  }
  if (!(o.out_layout == ImageLayout::nhwc || o.out_layout == ImageLayout::nchw)) {
    return invalid("options.out_layout", "nhwc or nchw", std::to_string(static_cast<int>(o.out_layout)));
  }
  if (!(o.units == PixelUnits::unspecified || o.units == PixelUnits::pixel || o.units == PixelUnits::unit)) {
    return invalid("options.units", "unspecified, pixel or unit", std::to_string(static_cast<int>(o.units)));
  }
  if (in == DType::uint8 && o.units == PixelUnits::unspecified) {
    return invalid("options.units", "pixel or unit for uint8 input (mean and std in 0..255 or in 0..1)", "unspecified");
  }
  if (static_cast<std::int64_t>(o.mean.size()) != channels) {
    return invalid("options.mean", std::to_string(channels) + " values (one a channel)", std::to_string(o.mean.size()) + " values");
  }
  if (static_cast<std::int64_t>(o.std.size()) != channels) {
    return invalid("options.std", std::to_string(channels) + " values (one a channel)", std::to_string(o.std.size()) + " values");
  }
  NORMKIT_RETURN_IF_ERROR(check_finite(o.eps, "options.eps", true));
  NORMKIT_RETURN_IF_ERROR(check_finite(o.global_scale, "options.global_scale", false));
  NORMKIT_RETURN_IF_ERROR(check_finite(o.global_shift, "options.global_shift", false));
  for (std::int64_t c = 0; c < channels; ++c) {
    const std::string at = "[" + std::to_string(c) + "]";
    NORMKIT_RETURN_IF_ERROR(check_finite(o.mean[c], ("options.mean" + at).c_str(), false));
    const double s = o.std[c];
    if (!std::isfinite(s) || s < 0.0 || (s == 0.0 && o.eps == 0.0)) {
      return invalid("options.std" + at, o.eps == 0.0 ? "a finite value > 0 (eps is 0)" : "a finite value >= 0", api::number(s));
    }
  }
  return Status::success();
}

}  // namespace

Status image_normalize(const TensorView& x, const TensorView& y, const ImageNormalizeOptions& options, const TensorView& mirror_flags,
                       Stream stream) {
  return image_normalize_crops(x, y, options, TensorView(), mirror_flags, stream);
}

Status image_normalize_crops(const TensorView& x, const TensorView& y, const ImageNormalizeOptions& options, const TensorView& crop_origins,
                             const TensorView& mirror_flags, Stream stream) {
  // ---- x and the options -------------------------------------------------------------------------------------
  if (x.ndim != 4) {
    return invalid("x.ndim", std::string("4 (") + (options.layout == ImageLayout::nhwc ? "[N, H, W, C]" : "[N, C, H, W]") + ")",
                   std::to_string(x.ndim));
  }
  if (!is_image_input_dtype(x.dtype)) {
    return argument_error(StatusCode::unsupported_dtype, kOp, "x.dtype", "one of uint8, float16, bfloat16, float32", dtype_name(x.dtype));
  }
  std::int64_t numel = 0;
  if (!checked_numel(x.shape.data(), 4, dtype_size(x.dtype), &numel)) {
    return argument_error(StatusCode::overflow, kOp, "x.shape", "non-negative extents whose byte size fits in int64", x.shape_string());
  }
  const bool in_nhwc = options.layout == ImageLayout::nhwc;
  plan::ImageGeometry g;
  g.batch = x.shape[0];
  g.channels = in_nhwc ? x.shape[3] : x.shape[1];
  g.in_height = in_nhwc ? x.shape[1] : x.shape[2];
  g.in_width = in_nhwc ? x.shape[2] : x.shape[3];
  if (g.channels < 1 || g.channels > kMaxImageChannels) {
    return invalid("x.shape", "C in 1.." + std::to_string(kMaxImageChannels) + " (layout " + layout_name(options.layout) + ")",
                   x.shape_string());
  }
  NORMKIT_RETURN_IF_ERROR(check_options(options, x.dtype, g.channels));
  NORMKIT_RETURN_IF_ERROR(resolve_crop(options.crop_y, options.crop_height, g.in_height, "options.crop_y", "options.crop_height", &g.out_height));
  NORMKIT_RETURN_IF_ERROR(resolve_crop(options.crop_x, options.crop_width, g.in_width, "options.crop_x", "options.crop_width", &g.out_width));
  g.crop_y = options.crop_y;
  g.crop_x = options.crop_x;
  g.in_nhwc = in_nhwc;
  g.out_nhwc = options.out_layout == ImageLayout::nhwc;
  g.in_element_bytes = static_cast<int>(dtype_size(x.dtype));
  g.out_element_bytes = static_cast<int>(dtype_size(y.dtype));
  constexpr std::int64_t kMaxExtent = std::numeric_limits<std::int32_t>::max();
  if (g.in_height > kMaxExtent || g.in_width > kMaxExtent) {
    return invalid("x.shape", "H and W below 2^31", x.shape_string());
  }

  // ---- rows: packed or pitched -------------------------------------------------------------------------------
  const std::int64_t row_bytes = g.in_width * g.pixel_bytes();
  if (options.row_pitch_bytes < 0 || (options.row_pitch_bytes > 0 && (options.row_pitch_bytes < row_bytes ||
                                                                      options.row_pitch_bytes % g.in_element_bytes != 0))) {
    return invalid("options.row_pitch_bytes",
                   "0 (packed) or a multiple of " + std::to_string(g.in_element_bytes) + " bytes >= a row's " + std::to_string(row_bytes),
                   std::to_string(options.row_pitch_bytes));
  }
  g.row_pitch = options.row_pitch_bytes > 0 ? options.row_pitch_bytes : row_bytes;
  // The bytes x spans: every padded row of every image and plane.
  std::int64_t x_bytes = 0;
  if (__builtin_mul_overflow(g.row_pitch, g.in_height, &x_bytes) || __builtin_mul_overflow(x_bytes, in_nhwc ? 1 : g.channels, &x_bytes) ||
      __builtin_mul_overflow(x_bytes, g.batch, &x_bytes)) {
    return argument_error(StatusCode::overflow, kOp, "options.row_pitch_bytes", "a pitched batch whose byte size fits in int64",
                          std::to_string(options.row_pitch_bytes));
  }

  // ---- y and the mirror flags --------------------------------------------------------------------------------
  if (!api::is_layer_dtype(y.dtype)) {
    return argument_error(StatusCode::unsupported_dtype, kOp, "y.dtype", "one of float32, float16, bfloat16", dtype_name(y.dtype));
  }
  const std::string y_shape = g.out_nhwc ? shape_text(g.batch, g.out_height, g.out_width, g.channels)
                                         : shape_text(g.batch, g.channels, g.out_height, g.out_width);
  bool y_ok = y.ndim == 4 && y.shape[0] == g.batch;
  if (y_ok) {
    y_ok = g.out_nhwc ? (y.shape[1] == g.out_height && y.shape[2] == g.out_width && y.shape[3] == g.channels)
                      : (y.shape[1] == g.channels && y.shape[2] == g.out_height && y.shape[3] == g.out_width);
  }
  if (!y_ok) {
    return argument_error(StatusCode::shape_mismatch, kOp, "y.shape", y_shape + " (the crop in layout " + layout_name(options.out_layout) + ")",
                          y.shape_string());
  }
  if (y.space != x.space) return invalid("y.space", std::string(api::space_name(x.space)) + " (x's)", api::space_name(y.space));
  const bool flags = mirror_flags.data != nullptr;
  if (flags) {
    if (options.mirror) return invalid("mirror_flags", "absent when options.mirror mirrors every image", "a tensor");
    if (mirror_flags.dtype != DType::uint8) {
      return argument_error(StatusCode::unsupported_dtype, kOp, "mirror_flags.dtype", "uint8", dtype_name(mirror_flags.dtype));
    }
    if (mirror_flags.numel() != g.batch) {
      return argument_error(StatusCode::shape_mismatch, kOp, "mirror_flags.shape", std::to_string(g.batch) + " values (one an image)",
                            mirror_flags.shape_string());
    }
    if (mirror_flags.space != x.space) {
      return invalid("mirror_flags.space", std::string(api::space_name(x.space)) + " (x's)", api::space_name(mirror_flags.space));
    }
  }
  const bool origins = crop_origins.data != nullptr;
  if (origins) {
    if (options.crop_y != 0 || options.crop_x != 0) {
      return invalid("options.crop_y, options.crop_x", "0 (crop_origins gives every image's origin)",
                     std::to_string(options.crop_y) + ", " + std::to_string(options.crop_x));
    }
    if (crop_origins.dtype != DType::int64) {
      return argument_error(StatusCode::unsupported_dtype, kOp, "crop_origins.dtype", "int64", dtype_name(crop_origins.dtype));
    }
    if (crop_origins.ndim != 2 || crop_origins.shape[0] != g.batch || crop_origins.shape[1] != 2) {
      return argument_error(StatusCode::shape_mismatch, kOp, "crop_origins.shape", "[" + std::to_string(g.batch) + ", 2] (row, column an image)",
                            crop_origins.shape_string());
    }
    if (crop_origins.space != x.space) {
      return invalid("crop_origins.space", std::string(api::space_name(x.space)) + " (x's)", api::space_name(crop_origins.space));
    }
  }
  if (x.space == MemorySpace::device && !cuda_available()) {
    return Status(StatusCode::cuda_unavailable, std::string("normkit::") + kOp + ": x is in device memory but no CUDA device is usable");
  }
  if (g.out_numel() == 0) return Status::success();
  NORMKIT_RETURN_IF_ERROR(api::validate_pointer(x.data, x.space, dtype_size(x.dtype), kOp, "x.data"));
  NORMKIT_RETURN_IF_ERROR(api::validate_pointer(y.data, y.space, dtype_size(y.dtype), kOp, "y.data"));
  if (flags) NORMKIT_RETURN_IF_ERROR(api::validate_pointer(mirror_flags.data, mirror_flags.space, 1, kOp, "mirror_flags.data"));
  if (origins) NORMKIT_RETURN_IF_ERROR(api::validate_pointer(crop_origins.data, crop_origins.space, 8, kOp, "crop_origins.data"));
  NORMKIT_RETURN_IF_ERROR(api::check_apart({api::buffer("y", y)},
                                           {api::Buffer{"x", x.data, static_cast<std::size_t>(x_bytes)}, api::buffer("mirror_flags", mirror_flags),
                                            api::buffer("crop_origins", crop_origins)},
                                           kOp));

  // ---- run ---------------------------------------------------------------------------------------------------
  kernels::ImageLaunch call;
  call.x = x.data;
  call.y = y.data;
  call.mirror_flags = static_cast<const std::uint8_t*>(mirror_flags.data);
  call.crop_origins = static_cast<const std::int64_t*>(crop_origins.data);
  call.in = x.dtype;
  call.out = y.dtype;
  call.geometry = g;
  call.mirror_all = options.mirror;
  call.reverse_channels = options.reverse_channels;
  const double units_divisor = x.dtype == DType::uint8 && options.units == PixelUnits::unit ? 255.0 : 1.0;
  call.coefficients = math::image_coefficients(static_cast<int>(g.channels), options.mean.data(), options.std.data(), options.eps,
                                               options.global_scale, options.global_shift, units_divisor);
  if (x.space == MemorySpace::host) return cpu::image_normalize(call, host_threads());
  const bool uint8_input = x.dtype == DType::uint8;
  const int compute_bytes = y.dtype == DType::float32 || uint8_input ? 8 : 4;
  plan::DeviceInfo device;
  NORMKIT_RETURN_IF_ERROR(kernels::current_device_info(&device));
  return kernels::launch_image_normalize(call, plan::choose_image_plan(g, uint8_input, compute_bytes, device.sm_count, device.shared_per_sm), stream);
}

}  // namespace normkit
