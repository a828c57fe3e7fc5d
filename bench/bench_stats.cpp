// Statistics throughput: per-feature, per-sample, global, NHWC and NCHW per-channel patterns x dtypes x
// small and large shapes, on the host and (when a GPU is present) on the device. Each group first times
// a copy of the same bytes in the same run (memcpy on the host, device-to-device on the GPU) and every
// statistics benchmark reports `of_copy`: its input bytes/s over the copy's read bytes/s.
//
//   bench_stats [--benchmark_filter=host/...] [--benchmark_format=json]
//
// Benchmarks measure; nothing here asserts a speed.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "normkit/stats.hpp"

#if defined(NORMKIT_WITH_CUDA)
#include <cuda_runtime_api.h>
#endif

using namespace normkit;

namespace {

struct Pattern {
  const char* name;
  std::vector<std::int64_t> shape;
  ReduceAxes axes;
};

// Small: ~4 MB of float32; large: 256 MB of float32 (>= 4x the 50 MB L2 of H100/H200).
std::vector<Pattern> patterns(bool large) {
  const std::int64_t s = large ? 64 : 1;
  return {
      {"per_feature", {4096 * s, 256}, ReduceAxes::of({0})},
      {"per_sample", {256 * s, 4096}, ReduceAxes::of({1})},
      {"global", {1 << 20, s}, ReduceAxes::every()},
      {"nhwc_c3", {16 * s, 128, 128, 3}, ReduceAxes::of({0, 1, 2})},
      {"nchw_c3", {16 * s, 3, 128, 128}, ReduceAxes::of({0, 2, 3})},
  };
}

std::int64_t numel(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto e : shape) n *= e;
  return n;
}

// Copy bytes/s per (space, byte size), filled by the copy benchmark that runs first in each group.
std::map<std::string, double>& copy_rates() {
  static std::map<std::string, double> rates;
  return rates;
}

std::vector<unsigned char> random_bytes(std::size_t n, DType dtype) {
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

void report(benchmark::State& state, std::size_t input_bytes, const std::string& copy_key) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(input_bytes));
  const auto it = copy_rates().find(copy_key);
  if (it != copy_rates().end()) {
    state.counters["of_copy"] = benchmark::Counter(static_cast<double>(input_bytes) * state.iterations() / it->second,
                                                   benchmark::Counter::kIsRate);
  }
}

// ---- host ----

void host_copy(benchmark::State& state, std::size_t bytes) {
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

void host_stats(benchmark::State& state, Pattern pattern, DType dtype) {
  const std::size_t bytes = static_cast<std::size_t>(numel(pattern.shape)) * dtype_size(dtype);
  auto data = random_bytes(bytes, dtype);
  TensorView input(data.data(), dtype, pattern.shape.data(), static_cast<int>(pattern.shape.size()));
  StatsOptions options;
  options.axes = pattern.axes;
  options.stats = StatSet{Stat::mean, Stat::var};
  std::array<std::int64_t, kMaxDims> kept{};
  int kept_ndim = 0;
  if (!kept_shape(input, options.axes, &kept, &kept_ndim).ok()) state.SkipWithError("kept_shape");
  std::int64_t kept_numel = 1;
  for (int d = 0; d < kept_ndim; ++d) kept_numel *= kept[d];
  std::vector<float> mean(static_cast<std::size_t>(kept_numel)), var(static_cast<std::size_t>(kept_numel));
  StatsOutputs out;
  out[Stat::mean] = TensorView(mean.data(), DType::float32, kept.data(), kept_ndim);
  out[Stat::var] = TensorView(var.data(), DType::float32, kept.data(), kept_ndim);
  for (auto _ : state) {
    const Status s = compute_stats(input, options, out, nullptr, 0);
    if (!s.ok()) state.SkipWithError(s.message().c_str());
    benchmark::DoNotOptimize(mean.data());
  }
  report(state, bytes, "host/" + std::to_string(bytes));
}

// ---- device ----
#if defined(NORMKIT_WITH_CUDA)
struct DeviceTimer {
  cudaEvent_t start{}, stop{};
  DeviceTimer() { cudaEventCreate(&start); cudaEventCreate(&stop); }
  ~DeviceTimer() { cudaEventDestroy(start); cudaEventDestroy(stop); }
};

void device_copy(benchmark::State& state, std::size_t bytes) {
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) {
    state.SkipWithError("cudaMalloc");
    return;
  }
  cudaMemset(a, 1, bytes);
  DeviceTimer t;
  double total = 0;
  for (auto _ : state) {
    cudaEventRecord(t.start);
    cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice);
    cudaEventRecord(t.stop);
    cudaEventSynchronize(t.stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, t.start, t.stop);
    state.SetIterationTime(ms / 1e3);
    total += ms / 1e3;
  }
  // A copy reads and writes each byte: its read rate is bytes / time.
  copy_rates()["device/" + std::to_string(bytes)] = static_cast<double>(bytes) * state.iterations() / total;
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes) * 2);
  cudaFree(a);
  cudaFree(b);
}

void device_stats(benchmark::State& state, Pattern pattern, DType dtype) {
  const std::size_t bytes = static_cast<std::size_t>(numel(pattern.shape)) * dtype_size(dtype);
  auto host = random_bytes(bytes, dtype);
  void* input_ptr = nullptr;
  if (cudaMalloc(&input_ptr, bytes) != cudaSuccess) {
    state.SkipWithError("cudaMalloc");
    return;
  }
  cudaMemcpy(input_ptr, host.data(), bytes, cudaMemcpyHostToDevice);
  TensorView input(input_ptr, dtype, pattern.shape.data(), static_cast<int>(pattern.shape.size()), MemorySpace::device);
  StatsOptions options;
  options.axes = pattern.axes;
  options.stats = StatSet{Stat::mean, Stat::var};
  std::array<std::int64_t, kMaxDims> kept{};
  int kept_ndim = 0;
  (void)kept_shape(input, options.axes, &kept, &kept_ndim).ok();
  std::int64_t kept_numel = 1;
  for (int d = 0; d < kept_ndim; ++d) kept_numel *= kept[d];
  void *mean = nullptr, *var = nullptr, *ws = nullptr;
  cudaMalloc(&mean, static_cast<std::size_t>(kept_numel) * 4);
  cudaMalloc(&var, static_cast<std::size_t>(kept_numel) * 4);
  StatsOutputs out;
  out[Stat::mean] = TensorView(mean, DType::float32, kept.data(), kept_ndim, MemorySpace::device);
  out[Stat::var] = TensorView(var, DType::float32, kept.data(), kept_ndim, MemorySpace::device);
  std::size_t ws_bytes = 0;
  (void)stats_workspace_size(input, options, &ws_bytes).ok();
  if (ws_bytes) cudaMalloc(&ws, ws_bytes);
  DeviceTimer t;
  for (auto _ : state) {
    cudaEventRecord(t.start);
    const Status s = compute_stats(input, options, out, ws, ws_bytes, nullptr);
    cudaEventRecord(t.stop);
    cudaEventSynchronize(t.stop);
    if (!s.ok()) state.SkipWithError(s.message().c_str());
    float ms = 0;
    cudaEventElapsedTime(&ms, t.start, t.stop);
    state.SetIterationTime(ms / 1e3);
  }
  report(state, bytes, "device/" + std::to_string(bytes));
  cudaFree(input_ptr);
  cudaFree(mean);
  cudaFree(var);
  cudaFree(ws);
}
#endif

void register_all() {
  const DType dtypes[] = {DType::float32, DType::float16, DType::bfloat16, DType::uint8};
  for (bool large : {false, true}) {
    const char* size = large ? "large" : "small";
    for (DType dtype : dtypes) {
      for (const Pattern& p : patterns(large)) {
        const std::size_t bytes = static_cast<std::size_t>(numel(p.shape)) * dtype_size(dtype);
        const std::string key = std::to_string(bytes);
        // The host copy of the same size runs just before (registered once per size).
        static std::map<std::string, bool> host_copy_registered;
        if (!host_copy_registered[key]) {
          host_copy_registered[key] = true;
          benchmark::RegisterBenchmark(("host/copy/" + key + "B").c_str(), [bytes](benchmark::State& st) { host_copy(st, bytes); })
              ->UseRealTime()
              ->Unit(benchmark::kMillisecond);
        }
        benchmark::RegisterBenchmark((std::string("host/") + p.name + "/" + dtype_name(dtype) + "/" + size).c_str(),
                                     [p, dtype](benchmark::State& st) { host_stats(st, p, dtype); })
            ->UseRealTime()  // the host engine runs on several threads
            ->Unit(benchmark::kMillisecond);
#if defined(NORMKIT_WITH_CUDA)
        static std::map<std::string, bool> device_copy_registered;
        if (cuda_available() && !device_copy_registered[key]) {
          device_copy_registered[key] = true;
          benchmark::RegisterBenchmark(("device/copy/" + key + "B").c_str(), [bytes](benchmark::State& st) { device_copy(st, bytes); })
              ->UseManualTime()->Unit(benchmark::kMicrosecond);
        }
        if (cuda_available()) {
          benchmark::RegisterBenchmark((std::string("device/") + p.name + "/" + dtype_name(dtype) + "/" + size).c_str(),
                                       [p, dtype](benchmark::State& st) { device_stats(st, p, dtype); })
              ->UseManualTime()->Unit(benchmark::kMicrosecond);
        }
#endif
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
