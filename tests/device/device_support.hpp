// Helpers of the device tests: skip without a device (unless NORMKIT_REQUIRE_DEVICE=1), owning buffers.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

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

// A device copy of a host buffer (empty when the buffer is), `offset` bytes past a cudaMalloc'd start (a
// misaligned caller), and the copy back.
struct DeviceCopy {
  std::unique_ptr<DeviceBytes> bytes;
  std::size_t offset = 0;
  void* ptr() const { return bytes ? static_cast<char*>(bytes->ptr) + offset : nullptr; }
};

DeviceCopy to_device(const void* host, std::size_t n, std::size_t offset = 0) {
  DeviceCopy d;
  if (n == 0) return d;
  d.bytes = std::make_unique<DeviceBytes>(n + offset);
  d.offset = offset;
  EXPECT_EQ(cudaMemcpy(d.ptr(), host, n, cudaMemcpyHostToDevice), cudaSuccess);
  return d;
}

template <typename T>
void from_device(std::vector<T>& host, const DeviceCopy& d) {
  if (!host.empty()) EXPECT_EQ(cudaMemcpy(host.data(), d.ptr(), host.size() * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
}

// Runs enqueue(stream) on a new stream and waits for it. With replays > 0 the work is captured in a CUDA
// graph instead, which is launched `replays` times.
template <typename F>
void run_on_new_stream(int replays, F&& enqueue) {
  cudaStream_t stream = nullptr;
  EXPECT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  if (replays > 0) EXPECT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal), cudaSuccess);
  enqueue(stream);
  if (replays > 0) {
    cudaGraph_t graph = nullptr;
    EXPECT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
    cudaGraphExec_t exec = nullptr;
    EXPECT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    for (int replay = 0; replay < replays; ++replay) EXPECT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  cudaStreamDestroy(stream);
}

}  // namespace
