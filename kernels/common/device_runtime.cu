// Device runtime services (see device_runtime.hpp).
#include <cuda_runtime.h>

#include <algorithm>
#include <mutex>

#include "kernels/common/cuda_check.hpp"
#include "kernels/common/device_runtime.hpp"

namespace normkit::kernels {

bool device_present() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return count > 0;
}

Status current_device_info(plan::DeviceInfo* info) {
  constexpr const char* kOp = "compute_stats";
  constexpr int kMaxDevices = 64;
  static std::mutex mutex;
  static plan::DeviceInfo cached[kMaxDevices] = {};
  static bool known[kMaxDevices] = {};
  int device = 0;
  NORMKIT_RETURN_IF_ERROR(cuda::cuda_status(cudaGetDevice(&device), kOp, "cudaGetDevice"));
  std::lock_guard<std::mutex> lock(mutex);
  if (device >= 0 && device < kMaxDevices && known[device]) {
    *info = cached[device];
    return Status::success();
  }
  plan::DeviceInfo d;
  NORMKIT_RETURN_IF_ERROR(cuda::cuda_status(cudaDeviceGetAttribute(&d.sm_count, cudaDevAttrMultiProcessorCount, device), kOp,
                                            "cudaDeviceGetAttribute(cudaDevAttrMultiProcessorCount)"));
  int shared = 0;
  if (cudaDeviceGetAttribute(&shared, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device) == cudaSuccess && shared > 0) {
    d.shared_per_sm = shared;
  } else {
    (void)cudaGetLastError();  // (keep the default: an sm_90 SM)
  }
  if (device >= 0 && device < kMaxDevices) cached[device] = d, known[device] = true;
  *info = d;
  return Status::success();
}

Status check_device_pointer(const void* p, const char* operation, const char* argument) {
  cudaPointerAttributes attributes{};
  const cudaError_t error = cudaPointerGetAttributes(&attributes, p);
  if (error != cudaSuccess) {
    (void)cudaGetLastError();  // not sticky: clear it
    return cuda::cuda_status(error, operation, std::string("cudaPointerGetAttributes of ") + argument);
  }
  if (attributes.type != cudaMemoryTypeDevice && attributes.type != cudaMemoryTypeManaged) {
    return argument_error(StatusCode::invalid_argument, operation, argument,
                          "a device (or managed) pointer since its space is MemorySpace::device",
                          "a host pointer");
  }
  return Status::success();
}

bool is_device_only_memory(const void* p) noexcept {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, p) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return attributes.type == cudaMemoryTypeDevice;
}

Status device_allocate(void** ptr, std::size_t bytes, Stream stream, const char* operation) {
  return cuda::cuda_status(cudaMallocAsync(ptr, bytes == 0 ? 1 : bytes, stream), operation, "cudaMallocAsync");
}

void device_free(void* ptr, Stream stream) noexcept {
  if (ptr) (void)cudaFreeAsync(ptr, stream);
}

Status copy_to_device(void* dst, const void* src, std::size_t bytes, Stream stream, const char* operation) {
  if (bytes == 0) return Status::success();
  return cuda::cuda_status(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream), operation, "cudaMemcpyAsync");
}

Status copy_on_device(void* dst, const void* src, std::size_t bytes, Stream stream, const char* operation) {
  if (bytes == 0) return Status::success();
  return cuda::cuda_status(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream), operation, "cudaMemcpyAsync");
}

Status current_device(int* index, const char* operation) {
  return cuda::cuda_status(cudaGetDevice(index), operation, "cudaGetDevice");
}
Status set_current_device(int index, const char* operation) {
  return cuda::cuda_status(cudaSetDevice(index), operation, "cudaSetDevice");
}
Status stream_create(Stream* stream, const char* operation) {
  return cuda::cuda_status(cudaStreamCreate(stream), operation, "cudaStreamCreate");
}
void stream_destroy(Stream stream) noexcept {
  if (stream) (void)cudaStreamDestroy(stream);
}
Status event_create(Event* event, const char* operation) {
  return cuda::cuda_status(cudaEventCreateWithFlags(event, cudaEventDisableTiming), operation, "cudaEventCreateWithFlags");
}
void event_destroy(Event event) noexcept {
  if (event) (void)cudaEventDestroy(event);
}
Status event_record(Event event, Stream stream, const char* operation) {
  return cuda::cuda_status(cudaEventRecord(event, stream), operation, "cudaEventRecord");
}
Status stream_wait_event(Stream stream, Event event, const char* operation) {
  return cuda::cuda_status(cudaStreamWaitEvent(stream, event, 0), operation, "cudaStreamWaitEvent");
}
Status event_synchronize(Event event, const char* operation) {
  return cuda::cuda_status(cudaEventSynchronize(event), operation, "cudaEventSynchronize");
}
Status pinned_allocate(void** ptr, std::size_t bytes, const char* operation) {
  return cuda::cuda_status(cudaMallocHost(ptr, bytes == 0 ? 1 : bytes), operation, "cudaMallocHost");
}
void pinned_free(void* ptr) noexcept {
  if (ptr) (void)cudaFreeHost(ptr);
}

__global__ void __launch_bounds__(256) add_floats_kernel(float* __restrict__ into, const float* __restrict__ from, std::int64_t n) {
  for (std::int64_t k = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n; k += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    into[k] += from[k];
  }
}

Status add_on_device(float* into, const float* from, std::int64_t n, Stream stream, const char* operation) {
  if (n <= 0) return Status::success();
  const std::int64_t blocks = std::min<std::int64_t>((n + 255) / 256, 4096);
  add_floats_kernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(into, from, n);
  return cuda::check_launch(operation, "add_floats_kernel");
}

Status copy_to_host_sync(void* dst, const void* src, std::size_t bytes, Stream stream, const char* operation) {
  if (bytes == 0) return Status::success();
  NORMKIT_RETURN_IF_ERROR(
      cuda::cuda_status(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream), operation, "cudaMemcpyAsync"));
  return synchronize_stream(stream, operation);
}

Status synchronize_stream(Stream stream, const char* operation) {
  return cuda::cuda_status(cudaStreamSynchronize(stream), operation, "cudaStreamSynchronize");
}

Status select_device(int index, const char* operation, std::string* name) {
  int count = 0;
  NORMKIT_RETURN_IF_ERROR(cuda::cuda_status(cudaGetDeviceCount(&count), operation, "cudaGetDeviceCount"));
  if (index < 0 || index >= count) {
    return argument_error(StatusCode::invalid_argument, operation, "--gpu", "an index in [0, " + std::to_string(count) + ")",
                          std::to_string(index));
  }
  NORMKIT_RETURN_IF_ERROR(cuda::cuda_status(cudaSetDevice(index), operation, "cudaSetDevice"));
  cudaDeviceProp prop{};
  NORMKIT_RETURN_IF_ERROR(cuda::cuda_status(cudaGetDeviceProperties(&prop, index), operation, "cudaGetDeviceProperties"));
  *name = prop.name;
  return Status::success();
}

Status device_count(int* count, const char* operation) {
  *count = 0;
  return cuda::cuda_status(cudaGetDeviceCount(count), operation, "cudaGetDeviceCount");
}

Status synchronize_device(const char* operation) {
  return cuda::cuda_status(cudaDeviceSynchronize(), operation, "cudaDeviceSynchronize");
}

}  // namespace normkit::kernels
