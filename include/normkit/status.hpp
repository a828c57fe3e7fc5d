// normkit error model.
//
// Every public entry point returns a `Status`. No exception crosses the library boundary and none is
// thrown from device code. A failed status carries a code and a message that names the operation, the
// argument, what was expected and what was got, e.g.
//
//   normkit::compute_stats: argument 'axis': expected each axis in [-4, 3], got 7
//   normkit::compute_stats: CUDA error cudaErrorIllegalAddress (an illegal memory access ...) in launch of ...
#pragma once

#include <string>
#include <utility>

namespace normkit {

enum class StatusCode {
  ok = 0,
  invalid_argument,   // a value outside its domain (axis out of range, ddof < 0, ...)
  shape_mismatch,     // a tensor's shape does not match what another argument implies
  unsupported_dtype,  // a dtype the operation does not handle
  null_pointer,       // a null data pointer for a non-empty tensor
  overflow,           // an element count or byte size that does not fit in 64 bits
  workspace_too_small,
  cuda_error,         // a CUDA runtime call or kernel launch failed (message has the CUDA error name)
  cuda_unavailable,   // device memory passed but normkit was built without CUDA / no device present
  io_error,           // a file could not be opened, read, written or renamed
  bad_file,           // a file is truncated, corrupt or of an unsupported format
  internal,           // a bug in normkit: please report it
};

// Name of a status code, e.g. "invalid_argument".
const char* status_code_name(StatusCode code) noexcept;

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status success() { return Status(); }

  bool ok() const noexcept { return code_ == StatusCode::ok; }
  StatusCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

  // Marks a status as deliberately ignored.
  void ignore() const noexcept {}

 private:
  StatusCode code_ = StatusCode::ok;
  std::string message_;
};

// Builds "normkit::<operation>: argument '<argument>': expected <expected>, got <got>".
Status argument_error(StatusCode code, const std::string& operation, const std::string& argument,
                      const std::string& expected, const std::string& got);

}  // namespace normkit

// Returns early from the enclosing function when `expr` yields a failed Status.
#define NORMKIT_RETURN_IF_ERROR(expr)            \
  do {                                           \
    ::normkit::Status normkit_status_ = (expr);  \
    if (!normkit_status_.ok()) return normkit_status_; \
  } while (0)
