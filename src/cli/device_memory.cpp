// Device buffers of the command line, on the device runtime services of the library (the same calls and
// error text as the API; in a build without CUDA they fail with cuda_unavailable).
#include "cli/device_memory.hpp"

#include <algorithm>

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
Status gpu_count(int* count) { return kernels::device_count(count, "stats"); }
Status synchronize_device() { return kernels::synchronize_device(kOp); }

Status Arena::make(const void* host, std::size_t bytes, void** out) {
  if (!device_) {
    host_.emplace_back(bytes, 0);
    if (host) std::copy_n(static_cast<const unsigned char*>(host), bytes, host_.back().begin());
    *out = host_.back().data();
    return Status::success();
  }
  device_buffers_.push_back(std::make_unique<DeviceBuffer>());
  NORMKIT_RETURN_IF_ERROR(device_buffers_.back()->allocate(bytes));
  if (host) NORMKIT_RETURN_IF_ERROR(device_buffers_.back()->upload(host, bytes));
  *out = device_buffers_.back()->get();
  return Status::success();
}

Status Arena::fetch(const void* p, void* host, std::size_t bytes) const {
  if (!device_) {
    std::copy_n(static_cast<const unsigned char*>(p), bytes, static_cast<unsigned char*>(host));
    return Status::success();
  }
  NORMKIT_RETURN_IF_ERROR(synchronize_device());
  for (const auto& b : device_buffers_) {
    if (b->get() == p) return b->download(host, bytes);
  }
  return Status(StatusCode::internal, "normkit: fetch of a buffer the arena did not make");
}

}  // namespace normkit::cli
