// Statistics throughput: per-feature, per-sample, global, NHWC and NCHW per-channel patterns x dtypes x
// small and large shapes, on the host and (when a GPU is present) on the device. Each group first times
// a copy of the same bytes in the same run (memcpy on the host, device-to-device on the GPU) and every
// statistics benchmark reports `of_copy`: its input bytes/s over the copy's read bytes/s.
//
//   bench_normkit --benchmark_filter=host/...
//
// Benchmarks measure; nothing here asserts a speed.
#include "bench_common.hpp"

using namespace normkit;
using namespace normkit::bench;

namespace {

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

#if defined(NORMKIT_WITH_CUDA)
void device_stats(benchmark::State& state, Pattern pattern, DType dtype) {
  const std::size_t bytes = static_cast<std::size_t>(numel(pattern.shape)) * dtype_size(dtype);
  auto host = random_bytes(bytes, dtype);
  DeviceRotation inputs(bytes, host.data());
  if (!inputs.ok()) {
    state.SkipWithError("cudaMalloc");
    return;
  }
  const auto input_view = [&](std::int64_t call) {
    return TensorView(inputs.at(call), dtype, pattern.shape.data(), static_cast<int>(pattern.shape.size()), MemorySpace::device);
  };
  const TensorView input = input_view(0);
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
  std::int64_t call = 0;
  Status s = Status::success();
  for (auto _ : state) {
    const TensorView rotated = input_view(call++);
    t.time(state, [&] { s = compute_stats(rotated, options, out, ws, ws_bytes, nullptr); });
    if (!s.ok()) state.SkipWithError(s.message().c_str());
  }
  report(state, bytes, "device/" + std::to_string(bytes));
  cudaFree(mean);
  cudaFree(var);
  cudaFree(ws);
}
#endif

}  // namespace

void register_stats_benchmarks() {
  // A call's fixed cost (validation, plan, launches), next to a copy's: a 4 KB input, float32.
  {
    const Pattern tiny{"per_sample16", {64, 16}, ReduceAxes::of({1})};
    register_copies(64 * 16 * 4);
    benchmark::RegisterBenchmark("host/per_sample16/float32/tiny", [tiny](benchmark::State& st) { host_stats(st, tiny, DType::float32); })
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
#if defined(NORMKIT_WITH_CUDA)
    if (cuda_available()) {
      benchmark::RegisterBenchmark("device/per_sample16/float32/tiny", [tiny](benchmark::State& st) { device_stats(st, tiny, DType::float32); })
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    }
#endif
  }
  const DType dtypes[] = {DType::float32, DType::float16, DType::bfloat16, DType::uint8};
  for (bool large : {false, true}) {
    const char* size = large ? "large" : "small";
    for (DType dtype : dtypes) {
      for (const Pattern& p : patterns(large)) {
        const std::size_t bytes = static_cast<std::size_t>(numel(p.shape)) * dtype_size(dtype);
        register_copies(bytes);  // the copy of the same size runs just before
        benchmark::RegisterBenchmark((std::string("host/") + p.name + "/" + dtype_name(dtype) + "/" + size).c_str(),
                                     [p, dtype](benchmark::State& st) { host_stats(st, p, dtype); })
            ->UseRealTime()  // the host engine runs on several threads
            ->Unit(benchmark::kMillisecond);
#if defined(NORMKIT_WITH_CUDA)
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


