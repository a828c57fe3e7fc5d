#include "api/validation.hpp"

#include <cstdint>

#include "kernels/common/device_runtime.hpp"
#include "kernels/stats/stats_launch.hpp"

namespace normkit::api {

const char* space_name(MemorySpace space) { return space == MemorySpace::host ? "host" : "device"; }

Status validate_input(const TensorView& input, const std::string& op) {
  if (input.ndim < 0 || input.ndim > kMaxDims) {
    return argument_error(StatusCode::invalid_argument, op, "input.ndim", "0.." + std::to_string(kMaxDims),
                          std::to_string(input.ndim));
  }
  if (!is_input_dtype(input.dtype)) {
    return argument_error(StatusCode::unsupported_dtype, op, "input.dtype", "one of float32, float64, float16, bfloat16, uint8",
                          dtype_name(input.dtype));
  }
  std::int64_t numel = 0;
  if (!checked_numel(input.shape.data(), input.ndim, dtype_size(input.dtype), &numel)) {
    return argument_error(StatusCode::overflow, op, "input.shape",
                          "non-negative extents whose byte size fits in int64", input.shape_string());
  }
  if (numel > 0 && input.data == nullptr) {
    return argument_error(StatusCode::null_pointer, op, "input.data", "a non-null pointer for " + std::to_string(numel) + " elements",
                          "nullptr");
  }
  if (reinterpret_cast<std::uintptr_t>(input.data) % dtype_size(input.dtype) != 0) {
    return argument_error(StatusCode::invalid_argument, op, "input.data",
                          "a pointer aligned to its element size (" + std::to_string(dtype_size(input.dtype)) + " bytes)",
                          "a misaligned pointer");
  }
  if (input.space == MemorySpace::device) {
    if (!cuda_available()) {
      return Status(StatusCode::cuda_unavailable,
                    "normkit::" + op + ": input is in device memory but " +
                        (kernels::device_present() ? std::string("CUDA is unusable") : std::string("no CUDA device is available (or normkit was built without CUDA)")));
    }
    if (numel > 0) NORMKIT_RETURN_IF_ERROR(kernels::check_device_pointer(input.data, op.c_str(), "input.data"));
  }
  return Status::success();
}

Status validate_pointer(const void* p, MemorySpace space, std::size_t alignment, const std::string& op,
                        const std::string& argument) {
  if (p == nullptr) return argument_error(StatusCode::null_pointer, op, argument, "a non-null pointer", "nullptr");
  if (alignment > 1 && reinterpret_cast<std::uintptr_t>(p) % alignment != 0) {
    return argument_error(StatusCode::invalid_argument, op, argument,
                          "a pointer aligned to " + std::to_string(alignment) + " bytes", "a misaligned pointer");
  }
  if (space == MemorySpace::device) return kernels::check_device_pointer(p, op.c_str(), argument.c_str());
  if (cuda_available() && kernels::is_device_only_memory(p)) {
    return argument_error(StatusCode::invalid_argument, op, argument, "host memory for a host call", "a device pointer");
  }
  return Status::success();
}

bool overlaps(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes) {
  const auto x = reinterpret_cast<std::uintptr_t>(a), y = reinterpret_cast<std::uintptr_t>(b);
  return a_bytes > 0 && b_bytes > 0 && x < y + b_bytes && y < x + a_bytes;
}

}  // namespace normkit::api
