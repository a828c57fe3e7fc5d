// Device buffers of the command line, on the device runtime services of the library (the same calls and
// error text as the API; in a build without CUDA they fail with cuda_unavailable).
#include "cli/device_memory.hpp"

#include "kernels/common/device_runtime.hpp"

namespace normkit::cli {
namespace {
constexpr const char* kOp = "command line";
}  // namespace

DeviceBuffer::~DeviceBuffer() {
  if (ptr_ == nullptr) return;
  kernels::device_free(ptr_, nullptr);
  (void)kernels::synchronize_stream(nullptr, kOp);
}
Status DeviceBuffer::allocate(std::size_t bytes) {
  if (ptr_ != nullptr) {  // (a new size: the old allocation goes first)
    kernels::device_free(ptr_, nullptr);
    ptr_ = nullptr;
    NORMKIT_RETURN_IF_ERROR(kernels::synchronize_stream(nullptr, kOp));
  }
  return kernels::device_allocate(&ptr_, bytes, nullptr, kOp);
}
Status DeviceBuffer::upload(const void* host, std::size_t bytes) {
  NORMKIT_RETURN_IF_ERROR(kernels::copy_to_device(ptr_, host, bytes, nullptr, kOp));
  return kernels::synchronize_stream(nullptr, kOp);  // the host buffer may go away next
}
Status DeviceBuffer::download(void* host, std::size_t bytes) const {
  return kernels::copy_to_host_sync(host, ptr_, bytes, nullptr, kOp);
}
Status select_gpu(int index, std::string* name) { return kernels::select_device(index, "stats", name); }
Status synchronize_device() { return kernels::synchronize_device(kOp); }

}  // namespace normkit::cli
