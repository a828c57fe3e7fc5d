// Status, dtype and tensor-view helpers of the public headers.
#include <cstring>
#include <limits>

#include "normkit/dtype.hpp"
#include "normkit/status.hpp"
#include "normkit/tensor.hpp"

namespace normkit {

const char* status_code_name(StatusCode code) noexcept {
  switch (code) {
    case StatusCode::ok: return "ok";
    case StatusCode::invalid_argument: return "invalid_argument";
    case StatusCode::shape_mismatch: return "shape_mismatch";
    case StatusCode::unsupported_dtype: return "unsupported_dtype";
    case StatusCode::null_pointer: return "null_pointer";
    case StatusCode::overflow: return "overflow";
    case StatusCode::workspace_too_small: return "workspace_too_small";
    case StatusCode::cuda_error: return "cuda_error";
    case StatusCode::cuda_unavailable: return "cuda_unavailable";
    case StatusCode::io_error: return "io_error";
    case StatusCode::bad_file: return "bad_file";
    case StatusCode::internal: return "internal";
  }
  return "unknown";
}

Status argument_error(StatusCode code, const std::string& operation, const std::string& argument,
                      const std::string& expected, const std::string& got) {
  return Status(code, "normkit::" + operation + ": argument '" + argument + "': expected " + expected +
                          ", got " + got);
}

const char* dtype_name(DType dtype) noexcept {
  switch (dtype) {
    case DType::float32: return "float32";
    case DType::float64: return "float64";
    case DType::float16: return "float16";
    case DType::bfloat16: return "bfloat16";
    case DType::uint8: return "uint8";
    case DType::int64: return "int64";
  }
  return "unknown";
}

bool parse_dtype(const std::string& name, DType* dtype) noexcept {
  for (DType d : {DType::float32, DType::float64, DType::float16, DType::bfloat16, DType::uint8, DType::int64}) {
    if (name == dtype_name(d)) {
      *dtype = d;
      return true;
    }
  }
  return false;
}

TensorView::TensorView(void* data_, DType dtype_, std::initializer_list<std::int64_t> shape_, MemorySpace space_)
    : data(data_), dtype(dtype_), space(space_), ndim(static_cast<int>(shape_.size())) {
  int i = 0;
  for (std::int64_t e : shape_) {
    if (i < kMaxDims) shape[i] = e;
    ++i;
  }
}

TensorView::TensorView(void* data_, DType dtype_, const std::int64_t* shape_, int ndim_, MemorySpace space_)
    : data(data_), dtype(dtype_), space(space_), ndim(ndim_) {
  for (int i = 0; i < ndim_ && i < kMaxDims; ++i) shape[i] = shape_[i];
}

std::int64_t TensorView::numel() const noexcept {
  std::int64_t n = 0;
  if (!checked_numel(shape.data(), ndim < kMaxDims ? ndim : kMaxDims, 1, &n)) return std::numeric_limits<std::int64_t>::max();
  return n;
}

std::string TensorView::shape_string() const {
  std::string s = "[";
  for (int i = 0; i < ndim && i < kMaxDims; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (ndim > kMaxDims ? ", ...]" : "]");
}

bool checked_numel(const std::int64_t* shape, int ndim, std::size_t element_size, std::int64_t* numel) noexcept {
  std::int64_t n = 1;
  for (int i = 0; i < ndim; ++i) {
    if (shape[i] < 0) return false;
    if (shape[i] != 0 && n > std::numeric_limits<std::int64_t>::max() / shape[i]) return false;
    n *= shape[i];
  }
  if (element_size > 1 && n > std::numeric_limits<std::int64_t>::max() / static_cast<std::int64_t>(element_size)) return false;
  *numel = n;
  return true;
}

}  // namespace normkit
