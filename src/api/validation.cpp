#include "api/validation.hpp"

#include <cstdint>
#include <cstdio>
#include <string>

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

Status validate_like(const TensorView& t, const TensorView& x, bool empty, const std::string& op, const std::string& name) {
  bool same = t.ndim == x.ndim;
  for (int d = 0; same && d < x.ndim; ++d) same = t.shape[d] == x.shape[d];
  if (!same) return argument_error(StatusCode::shape_mismatch, op, name + ".shape", "x's shape " + x.shape_string(), t.shape_string());
  if (t.dtype != x.dtype) {
    return argument_error(StatusCode::unsupported_dtype, op, name + ".dtype", std::string("x's dtype ") + dtype_name(x.dtype), dtype_name(t.dtype));
  }
  if (t.space != x.space) return argument_error(StatusCode::invalid_argument, op, name + ".space", space_name(x.space), space_name(t.space));
  if (empty) return Status::success();
  return validate_pointer(t.data, t.space, dtype_size(t.dtype), op, name + ".data");
}

std::string number(double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.17g", v);
  return buffer;
}

bool is_layer_dtype(DType d) { return d == DType::float32 || d == DType::float16 || d == DType::bfloat16; }

std::size_t bytes_of(const TensorView& t) { return static_cast<std::size_t>(t.numel()) * dtype_size(t.dtype); }

Status check_apart(const std::vector<Buffer>& outputs, const std::vector<Buffer>& inputs, const std::string& op) {
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i].data == nullptr || outputs[i].bytes == 0) continue;
    for (const Buffer& other : inputs) {
      if (other.data && overlaps(outputs[i].data, outputs[i].bytes, other.data, other.bytes)) {
        return argument_error(StatusCode::invalid_argument, op, std::string(outputs[i].name) + ".data",
                              std::string("a buffer apart from ") + other.name, "a buffer overlapping it");
      }
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (outputs[j].data && overlaps(outputs[i].data, outputs[i].bytes, outputs[j].data, outputs[j].bytes)) {
        return argument_error(StatusCode::invalid_argument, op, std::string(outputs[i].name) + ".data",
                              std::string("a buffer apart from ") + outputs[j].name, "a buffer overlapping it");
      }
    }
  }
  return Status::success();
}

bool aligned16(std::initializer_list<const void*> pointers) {
  for (const void* p : pointers) {
    if (reinterpret_cast<std::uintptr_t>(p) % 16 != 0) return false;
  }
  return true;
}

Status validate_float_array(const TensorView& t, std::int64_t count, const std::string& what, MemorySpace space, const std::string& op,
                            const std::string& name) {
  if (t.dtype != DType::float32) return argument_error(StatusCode::unsupported_dtype, op, name + ".dtype", "float32", dtype_name(t.dtype));
  if (t.ndim < 0 || t.ndim > kMaxDims) {
    return argument_error(StatusCode::invalid_argument, op, name + ".ndim", "0.." + std::to_string(kMaxDims), std::to_string(t.ndim));
  }
  std::int64_t numel = 0;
  if (!checked_numel(t.shape.data(), t.ndim, 4, &numel) || numel != count) {
    return argument_error(StatusCode::shape_mismatch, op, name + ".shape", std::to_string(count) + " elements (" + what + ")", t.shape_string());
  }
  if (t.space != space) return argument_error(StatusCode::invalid_argument, op, name + ".space", space_name(space), space_name(t.space));
  if (count == 0) return Status::success();
  return validate_pointer(t.data, t.space, 4, op, name + ".data");
}

Status validate_float_arrays(std::initializer_list<std::pair<const TensorView*, const char*>> tensors, std::int64_t count,
                             const std::string& what, MemorySpace space, const std::string& op) {
  for (const auto& [t, name] : tensors) {
    if (t->data) NORMKIT_RETURN_IF_ERROR(validate_float_array(*t, count, what, space, op, name));
  }
  return Status::success();
}

Status require(const TensorView& t, const char* name, const char* what, const std::string& op) {
  if (t.data == nullptr) return argument_error(StatusCode::null_pointer, op, name, what, "nullptr");
  return Status::success();
}

Status check_call_buffers(const std::vector<Buffer>& outputs, const std::vector<Buffer>& inputs, MemorySpace space, void* workspace,
                          std::size_t bytes, std::size_t needed, const char* size_query, const std::string& op) {
  NORMKIT_RETURN_IF_ERROR(check_apart(outputs, inputs, op));
  if (space == MemorySpace::host) return Status::success();
  if (bytes < needed) {
    return argument_error(StatusCode::workspace_too_small, op, "workspace_bytes",
                          "at least " + std::to_string(needed) + " (" + size_query + ")", std::to_string(bytes));
  }
  if (needed == 0) return Status::success();
  NORMKIT_RETURN_IF_ERROR(validate_pointer(workspace, MemorySpace::device, 16, op, "workspace"));
  std::vector<Buffer> others = inputs;
  others.insert(others.end(), outputs.begin(), outputs.end());
  return check_apart({{"workspace", workspace, needed}}, others, op);
}

AffineCoefficients affine_arrays(void* base, std::int64_t count, std::vector<double>* host) {
  AffineCoefficients a;
  if (base == nullptr) {
    host->assign(3 * static_cast<std::size_t>(count), 0.0);
    a.center = host->data();
    a.scale = a.center + count;
    a.offset = a.scale + count;
    return a;
  }
  const std::size_t stride = (static_cast<std::size_t>(count) * sizeof(double) + 255) / 256 * 256;
  auto* bytes = static_cast<char*>(base);
  a.center = reinterpret_cast<double*>(bytes);
  a.scale = reinterpret_cast<double*>(bytes + stride);
  a.offset = reinterpret_cast<double*>(bytes + 2 * stride);
  return a;
}

}  // namespace normkit::api
