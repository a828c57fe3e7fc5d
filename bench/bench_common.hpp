// Shared pieces of the benchmarks: copies measured in the same run, inputs, reporting.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "normkit/stats.hpp"

#if defined(NORMKIT_WITH_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace normkit::bench {

inline std::int64_t numel(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto e : shape) n *= e;
  return n;
}

// The benchmark shapes (shared by statistics and apply), one axis pattern each.
struct Pattern {
  const char* name;
  std::vector<std::int64_t> shape;
  ReduceAxes axes;
};

// Small: ~4 MB of float32; large: 256 MB of float32 (>= 4x the 50 MB L2 of H100/H200).
inline std::vector<Pattern> patterns(bool large) {
  const std::int64_t s = large ? 64 : 1;
  return {
      {"per_feature", {4096 * s, 256}, ReduceAxes::of({0})},
      {"per_sample", {256 * s, 4096}, ReduceAxes::of({1})},
      {"per_sample16", {65536 * s, 16}, ReduceAxes::of({1})},  // feature vectors: short rows
      {"per_sample64", {16384 * s, 64}, ReduceAxes::of({1})},
      {"global", {1 << 20, s}, ReduceAxes::every()},
      {"nhwc_c3", {16 * s, 128, 128, 3}, ReduceAxes::of({0, 1, 2})},
      {"nchw_c3", {16 * s, 3, 128, 128}, ReduceAxes::of({0, 2, 3})},
  };
}

// A 2-D view of a statistics pattern for the peers: [rows, cols] reducing axis 0 (per_feature) or 1.
struct Matrix {
  std::int64_t rows, cols;
  bool per_feature;
};

// Copy bytes/s per (space, byte size), filled by the copy benchmark that runs first in each group.
inline std::map<std::string, double>& copy_rates() {
  static std::map<std::string, double> rates;
  return rates;
}

inline std::vector<unsigned char> random_bytes(std::size_t n, DType dtype) {
  std::vector<unsigned char> bytes(n);
  std::mt19937 rng(42);
  if (dtype == DType::uint8) {
    for (auto& b : bytes) b = static_cast<unsigned char>(rng());
    return bytes;
  }
  // Finite values of any float dtype: fill with a float32 pattern converted per type would cost time; use
  // small positive values whose bit patterns are finite in every float format.
  std::uniform_real_distribution<float> dist(0.5f, 2.0f);
  const std::size_t elem = dtype_size(dtype);
  for (std::size_t i = 0; i + elem <= n; i += elem) {
    const float f = dist(rng);
    if (dtype == DType::float32) std::memcpy(&bytes[i], &f, 4);
    else if (dtype == DType::float64) { const double d = f; std::memcpy(&bytes[i], &d, 8); }
    else if (dtype == DType::bfloat16) { std::uint32_t u; std::memcpy(&u, &f, 4); const std::uint16_t h = u >> 16; std::memcpy(&bytes[i], &h, 2); }
    else { const std::uint16_t h = static_cast<std::uint16_t>(0x3c00 + (rng() & 0x3ff)); std::memcpy(&bytes[i], &h, 2); }
  }
  return bytes;
}

inline void report(benchmark::State& state, std::size_t input_bytes, const std::string& copy_key) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(input_bytes));
  const auto it = copy_rates().find(copy_key);
  if (it != copy_rates().end()) {
    state.counters["of_copy"] = benchmark::Counter(static_cast<double>(input_bytes) * state.iterations() / it->second,
                                                   benchmark::Counter::kIsRate);
  }
}

// The same for a call that reads input_bytes and writes output_bytes, against a copy's read + write of
// the input size (the copy rates store read bytes/s): the apply and Lp normalization.
inline void report_read_write(benchmark::State& state, std::size_t input_bytes, std::size_t output_bytes,
                              const std::string& copy_key) {
  const std::size_t moved = input_bytes + output_bytes;
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(moved));
  const auto it = copy_rates().find(copy_key);
  if (it != copy_rates().end()) {
    state.counters["of_copy"] = benchmark::Counter(static_cast<double>(moved) * state.iterations() / (2 * it->second),
                                                   benchmark::Counter::kIsRate);
  }
}

// ---- host ----

inline void host_copy(benchmark::State& state, std::size_t bytes) {
  std::vector<unsigned char> a(bytes, 1), b(bytes);
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    std::memcpy(b.data(), a.data(), bytes);
    benchmark::DoNotOptimize(b.data());
    benchmark::ClobberMemory();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // A copy reads and writes each byte; its read rate is what a one-read statistics pass compares with.
  copy_rates()["host/" + std::to_string(bytes)] = static_cast<double>(bytes) * state.iterations() / seconds;
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes) * 2);
}

// ---- device ----
#if defined(NORMKIT_WITH_CUDA)
struct DeviceTimer {
  cudaEvent_t start{}, stop{};
  DeviceTimer() { cudaEventCreate(&start); cudaEventCreate(&stop); }
  ~DeviceTimer() { cudaEventDestroy(start); cudaEventDestroy(stop); }
  DeviceTimer(const DeviceTimer&) = delete;
  DeviceTimer& operator=(const DeviceTimer&) = delete;

  // Times one call between two events on the default stream as the iteration's time; returns seconds.
  template <typename Call>
  double time(benchmark::State& state, Call&& call) {
    cudaEventRecord(start);
    call();
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    state.SetIterationTime(ms / 1e3);
    return ms / 1e3;
  }
};

// Device buffers used in turn, so that at least kRotationBytes of other buffers pass between two uses of
// one: the L2 (50 MB on an H100, 60 MB on an H200) never still holds a call's input from the call before
// (a 4 MB input read over and over was served from L2). Every buffer holds the same bytes.
constexpr std::size_t kRotationBytes = std::size_t(256) << 20;

struct DeviceRotation {
  std::vector<void*> buffers;
  DeviceRotation(std::size_t bytes, const void* host_bytes) {
    // (at most 256 buffers: a tiny case measures a call's fixed cost, which the L2 does not change)
    const std::size_t count = std::clamp<std::size_t>((kRotationBytes + bytes - 1) / std::max<std::size_t>(bytes, 1), 2, 256);
    for (std::size_t i = 0; i < count; ++i) {
      void* p = nullptr;
      if (cudaMalloc(&p, bytes) != cudaSuccess) break;
      if (host_bytes) cudaMemcpy(p, host_bytes, bytes, cudaMemcpyHostToDevice);
      else cudaMemset(p, 1, bytes);
      buffers.push_back(p);
    }
    if (buffers.size() < count) release();  // empty: the caller skips the case
  }
  ~DeviceRotation() { release(); }
  DeviceRotation(const DeviceRotation&) = delete;
  DeviceRotation& operator=(const DeviceRotation&) = delete;
  bool ok() const { return !buffers.empty(); }
  void* at(std::int64_t call) const { return buffers[static_cast<std::size_t>(call) % buffers.size()]; }
  void release() {
    for (void* p : buffers) cudaFree(p);
    buffers.clear();
  }
};

inline void device_copy(benchmark::State& state, std::size_t bytes) {
  DeviceRotation from(bytes, nullptr), to(bytes, nullptr);
  if (!from.ok() || !to.ok()) {
    state.SkipWithError("cudaMalloc");
    return;
  }
  DeviceTimer t;
  double total = 0;
  std::int64_t call = 0;
  for (auto _ : state) {
    total += t.time(state, [&] { cudaMemcpyAsync(to.at(call), from.at(call), bytes, cudaMemcpyDeviceToDevice); });
    ++call;
  }
  // A copy reads and writes each byte: its read rate is bytes / time.
  copy_rates()["device/" + std::to_string(bytes)] = static_cast<double>(bytes) * state.iterations() / total;
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes) * 2);
}

#endif

// Registers the host copy (and the device copy when a GPU is present) of `bytes`, once per size, so that
// the benchmarks registered after it can report their fraction of copy bandwidth.
inline void register_copies(std::size_t bytes) {
  static std::map<std::size_t, bool> registered;
  if (registered[bytes]) return;
  registered[bytes] = true;
  const std::string key = std::to_string(bytes);
  benchmark::RegisterBenchmark(("host/copy/" + key + "B").c_str(), [bytes](benchmark::State& st) { host_copy(st, bytes); })
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
#if defined(NORMKIT_WITH_CUDA)
  if (cuda_available()) {
    benchmark::RegisterBenchmark(("device/copy/" + key + "B").c_str(), [bytes](benchmark::State& st) { device_copy(st, bytes); })
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  }
#endif
}

}  // namespace normkit::bench
