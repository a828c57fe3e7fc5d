// Device buffers for the command line (owning, freed on scope exit). Without CUDA every call fails.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "normkit/status.hpp"
#include "normkit/tensor.hpp"

namespace normkit::cli {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();
  Status allocate(std::size_t bytes);  // (frees an earlier allocation first)
  Status upload(const void* host, std::size_t bytes);
  Status download(void* host, std::size_t bytes) const;
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
};

// Selects GPU `index`; `name` receives its name.
Status select_gpu(int index, std::string* name);
// The number of CUDA devices.
Status gpu_count(int* count);
// Waits for all work on the device and reports any error it raised.
Status synchronize_device();

// The tensors of a command's calls: host vectors, or device buffers (uploaded from, downloaded to the host).
class Arena {
 public:
  explicit Arena(bool device) : device_(device) {}
  MemorySpace space() const { return device_ ? MemorySpace::device : MemorySpace::host; }
  // `bytes` bytes holding a copy of `host` (null: zeros on the host, uninitialised on the device).
  Status make(const void* host, std::size_t bytes, void** out);
  // Copies `bytes` of a buffer `make` gave back to the host (after the device's work).
  Status fetch(const void* p, void* host, std::size_t bytes) const;
  Status finish() const { return device_ ? synchronize_device() : Status::success(); }

 private:
  bool device_;
  std::vector<std::vector<unsigned char>> host_;
  std::vector<std::unique_ptr<DeviceBuffer>> device_buffers_;
};

}  // namespace normkit::cli
