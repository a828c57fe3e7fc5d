// Device buffers for the command line (owning, freed on scope exit). Without CUDA every call fails.
#pragma once

#include <cstddef>
#include <string>

#include "normkit/status.hpp"

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
// Waits for all work on the device and reports any error it raised.
Status synchronize_device();

}  // namespace normkit::cli
