#include "cli/device_memory.hpp"

#if defined(NORMKIT_WITH_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace normkit::cli {

#if defined(NORMKIT_WITH_CUDA)
namespace {
Status check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::success();
  return Status(StatusCode::cuda_error, std::string("normkit: CUDA error ") + cudaGetErrorName(e) + " (" +
                                            cudaGetErrorString(e) + ") in " + what);
}
}  // namespace

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) (void)cudaFree(ptr_);
}
Status DeviceBuffer::allocate(std::size_t bytes) { return check(cudaMalloc(&ptr_, bytes == 0 ? 1 : bytes), "cudaMalloc"); }
Status DeviceBuffer::upload(const void* host, std::size_t bytes) {
  return bytes == 0 ? Status::success() : check(cudaMemcpy(ptr_, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device");
}
Status DeviceBuffer::download(void* host, std::size_t bytes) const {
  return bytes == 0 ? Status::success() : check(cudaMemcpy(host, ptr_, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
}
Status select_gpu(int index, std::string* name) {
  int count = 0;
  NORMKIT_RETURN_IF_ERROR(check(cudaGetDeviceCount(&count), "cudaGetDeviceCount"));
  if (index < 0 || index >= count) {
    return argument_error(StatusCode::invalid_argument, "stats", "--gpu", "an index in [0, " + std::to_string(count) + ")",
                          std::to_string(index));
  }
  NORMKIT_RETURN_IF_ERROR(check(cudaSetDevice(index), "cudaSetDevice"));
  cudaDeviceProp prop{};
  NORMKIT_RETURN_IF_ERROR(check(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties"));
  *name = prop.name;
  return Status::success();
}
Status synchronize_device() { return check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }
#else
namespace {
Status no_cuda() { return Status(StatusCode::cuda_unavailable, "normkit: built without CUDA"); }
}  // namespace
DeviceBuffer::~DeviceBuffer() = default;
Status DeviceBuffer::allocate(std::size_t) { return no_cuda(); }
Status DeviceBuffer::upload(const void*, std::size_t) { return no_cuda(); }
Status DeviceBuffer::download(void*, std::size_t) const { return no_cuda(); }
Status select_gpu(int, std::string*) { return no_cuda(); }
Status synchronize_device() { return no_cuda(); }
#endif

}  // namespace normkit::cli
