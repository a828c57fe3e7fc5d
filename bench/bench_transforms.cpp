// Apply throughput: the fused affine apply (z-score coefficients) per-feature, per-sample, NHWC and NCHW
// per-channel, over input x output dtype pairs, on the host and (when present) the GPU; bytes moved are
// input read + output written, reported against a copy of the same bytes measured in the same run.
// Also host fit + apply (adapt, then transform) for bench/compare_sklearn.py.
#include <memory>

#include "bench_common.hpp"
#include "normkit/normalize.hpp"

using namespace normkit;
using namespace normkit::bench;

namespace {

// Fits a normalizer on the data once (not timed), then times transform().
void apply_bench(benchmark::State& state, Pattern c, DType in, DType out, MemorySpace space) {
  const std::int64_t n = numel(c.shape);
  const std::size_t in_bytes = static_cast<std::size_t>(n) * dtype_size(in), out_bytes = static_cast<std::size_t>(n) * dtype_size(out);
  auto host_in = random_bytes(in_bytes, in);
  std::vector<unsigned char> host_out(space == MemorySpace::host ? out_bytes : 0);
  void* in_ptr = host_in.data();
  void* out_ptr = host_out.data();
#if defined(NORMKIT_WITH_CUDA)
  // Device inputs and outputs rotate (DeviceRotation): L2 never holds the previous call's bytes.
  std::unique_ptr<DeviceRotation> inputs, outputs;
  if (space == MemorySpace::device) {
    inputs = std::make_unique<DeviceRotation>(in_bytes, host_in.data());
    outputs = std::make_unique<DeviceRotation>(out_bytes, nullptr);
    if (!inputs->ok() || !outputs->ok()) {
      state.SkipWithError("cudaMalloc");
      return;
    }
    in_ptr = inputs->at(0);
    out_ptr = outputs->at(0);
  }
#endif
  const int nd = static_cast<int>(c.shape.size());
  TensorView input(in_ptr, in, c.shape.data(), nd, space), output(out_ptr, out, c.shape.data(), nd, space);
  NormalizerOptions o;
  o.axes = c.axes;
  Normalizer normalizer;
  Status s = normalizer.init(o, space);
  if (s.ok()) s = normalizer.adapt(input);
  if (s.ok()) s = normalizer.transform(input, output);  // warm-up: computes the coefficients
  if (!s.ok()) {
    state.SkipWithError(s.message().c_str());
    return;
  }
#if defined(NORMKIT_WITH_CUDA)
  if (space == MemorySpace::device) {
    DeviceTimer t;
    std::int64_t call = 0;
    for (auto _ : state) {
      const TensorView in_view(inputs->at(call), in, c.shape.data(), nd, space);
      const TensorView out_view(outputs->at(call), out, c.shape.data(), nd, space);
      ++call;
      t.time(state, [&] { s = normalizer.transform(in_view, out_view); });
    }
  }
#endif
  if (space == MemorySpace::host) {
    for (auto _ : state) {
      s = normalizer.transform(input, output);
      benchmark::DoNotOptimize(out_ptr);
    }
  }
  if (!s.ok()) state.SkipWithError(s.message().c_str());
  report_read_write(state, in_bytes, out_bytes, (space == MemorySpace::host ? "host/" : "device/") + std::to_string(in_bytes));
}

// Lp normalization of each row (sklearn's Normalizer): input read once, output written once (rows of up
// to 1024 aligned elements; longer rows read twice, counted once).
void lp_bench(benchmark::State& state, Pattern c, DType dtype, MemorySpace space) {
  const std::size_t bytes = static_cast<std::size_t>(numel(c.shape)) * dtype_size(dtype);
  auto host_in = random_bytes(bytes, dtype);
  std::vector<unsigned char> host_out(space == MemorySpace::host ? bytes : 0);
  const int nd = static_cast<int>(c.shape.size());
  const auto view = [&](void* p) { return TensorView(p, dtype, c.shape.data(), nd, space); };
  Status s = Status::success();
  if (space == MemorySpace::host) {
    for (auto _ : state) {
      s = normalize_lp(view(host_in.data()), LpNorm::l2, view(host_out.data()), nullptr, 0);
      benchmark::DoNotOptimize(host_out.data());
    }
  }
#if defined(NORMKIT_WITH_CUDA)
  if (space == MemorySpace::device) {
    DeviceRotation inputs(bytes, host_in.data()), outputs(bytes, nullptr);
    std::size_t ws_bytes = 0;
    void* workspace = nullptr;  // (the row norms of the two-read path; none for one read)
    if (!inputs.ok() || !outputs.ok() || !normalize_lp_workspace_size(view(inputs.at(0)), &ws_bytes).ok() ||
        (ws_bytes > 0 && cudaMalloc(&workspace, ws_bytes) != cudaSuccess)) {
      state.SkipWithError("device buffers");
      return;
    }
    DeviceTimer t;
    std::int64_t call = 0;
    for (auto _ : state) {
      t.time(state, [&] { s = normalize_lp(view(inputs.at(call)), LpNorm::l2, view(outputs.at(call)), workspace, ws_bytes); });
      ++call;
    }
    cudaFree(workspace);
  }
#endif
  if (!s.ok()) state.SkipWithError(s.message().c_str());
  report_read_write(state, bytes, bytes, (space == MemorySpace::host ? "host/" : "device/") + std::to_string(bytes));
}

// Host adapt + transform of float32 [rows, features] (what StandardScaler().fit_transform does).
void fit_apply_bench(benchmark::State& state, std::int64_t rows, std::int64_t features) {
  const std::vector<std::int64_t> shape = {rows, features};
  const std::size_t bytes = static_cast<std::size_t>(rows * features) * 4;
  auto data = random_bytes(bytes, DType::float32);
  std::vector<float> out(static_cast<std::size_t>(rows * features));
  TensorView input(data.data(), DType::float32, shape.data(), 2), output(out.data(), DType::float32, shape.data(), 2);
  for (auto _ : state) {
    Normalizer n;
    Status s = n.init({}, MemorySpace::host);
    if (s.ok()) s = n.adapt(input);
    if (s.ok()) s = n.transform(input, output);
    if (!s.ok()) state.SkipWithError(s.message().c_str());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(bytes));
}

}  // namespace

void register_transform_benchmarks() {
  const std::pair<DType, DType> pairs[] = {{DType::float32, DType::float32}, {DType::float16, DType::float16},
                                           {DType::bfloat16, DType::bfloat16}, {DType::uint8, DType::float32},
                                           {DType::uint8, DType::float16}, {DType::float32, DType::float16}};
  for (bool large : {false, true}) {
    const char* size = large ? "large" : "small";
    for (auto [in, out] : pairs) {
      for (const Pattern& c : patterns(large)) {
        if (c.axes.all) continue;  // a global apply is the per-sample walk on one row
        register_copies(static_cast<std::size_t>(numel(c.shape)) * dtype_size(in));
        const std::string name = std::string("apply/") + c.name + "/" + dtype_name(in) + "_to_" + dtype_name(out) + "/" + size;
        benchmark::RegisterBenchmark(("host/" + name).c_str(), [c, in = in, out = out](benchmark::State& st) {
          apply_bench(st, c, in, out, MemorySpace::host);
        })->UseRealTime()->Unit(benchmark::kMillisecond);
#if defined(NORMKIT_WITH_CUDA)
        if (cuda_available()) {
          benchmark::RegisterBenchmark(("device/" + name).c_str(), [c, in = in, out = out](benchmark::State& st) {
            apply_bench(st, c, in, out, MemorySpace::device);
          })->UseManualTime()->Unit(benchmark::kMicrosecond);
        }
#endif
      }
    }
  }
  // Lp (L2) over the per-sample patterns: rows of 16 and 64 (lane groups), 4096 (two reads).
  for (bool large : {false, true}) {
    for (DType dtype : {DType::float32, DType::float16}) {
      for (const Pattern& c : patterns(large)) {
        if (std::string(c.name).rfind("per_sample", 0) != 0) continue;
        register_copies(static_cast<std::size_t>(numel(c.shape)) * dtype_size(dtype));
        const std::string name = std::string("lp/l2/") + c.name + "/" + dtype_name(dtype) + "/" + (large ? "large" : "small");
        benchmark::RegisterBenchmark(("host/" + name).c_str(), [c, dtype](benchmark::State& st) {
          lp_bench(st, c, dtype, MemorySpace::host);
        })->UseRealTime()->Unit(benchmark::kMillisecond);
#if defined(NORMKIT_WITH_CUDA)
        if (cuda_available()) {
          benchmark::RegisterBenchmark(("device/" + name).c_str(), [c, dtype](benchmark::State& st) {
            lp_bench(st, c, dtype, MemorySpace::device);
          })->UseManualTime()->Unit(benchmark::kMicrosecond);
        }
#endif
      }
    }
  }
  // The shapes of bench/compare_sklearn.py.
  for (auto [rows, features] : {std::pair<std::int64_t, std::int64_t>{1 << 20, 64}, {1 << 16, 1024}}) {
    benchmark::RegisterBenchmark(("host/fit_apply/f32/" + std::to_string(rows) + "x" + std::to_string(features)).c_str(),
                                 [rows = rows, features = features](benchmark::State& st) { fit_apply_bench(st, rows, features); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
}
