// Helpers of the device tests: skip without a device (unless NORMKIT_REQUIRE_DEVICE=1), owning buffers.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "normkit/stats.hpp"

#define REQUIRE_DEVICE()                                                                   \
  do {                                                                                     \
    if (!normkit::cuda_available()) {                                                             \
      const char* require = std::getenv("NORMKIT_REQUIRE_DEVICE");                         \
      if (require && std::string(require) == "1") FAIL() << "no CUDA device (required)";   \
      GTEST_SKIP() << "no CUDA device and no emulator";                                    \
    }                                                                                      \
  } while (0)

#define CUDA_OK(expr) ASSERT_EQ((expr), cudaSuccess) << #expr

namespace {

// Owning device allocation.
struct DeviceBytes {
  void* ptr = nullptr;
  explicit DeviceBytes(std::size_t bytes) { EXPECT_EQ(cudaMalloc(&ptr, bytes ? bytes : 1), cudaSuccess); }
  ~DeviceBytes() { cudaFree(ptr); }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  template <typename T = unsigned char>
  T* as() const { return static_cast<T*>(ptr); }
};

}  // namespace
