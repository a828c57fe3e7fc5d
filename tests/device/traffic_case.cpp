// One statistics call per run, for the traffic check: `traffic_case NAME` runs case NAME once on the
// device and prints its input size. Under ptxemu with PTXEMU_PROFILE_JSON every kernel of the call is
// profiled; scripts/check_traffic.py compares the loaded sectors with the input bytes.
#include <cuda_runtime_api.h>

#include <cstdio>
#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "normkit/normalize.hpp"
#include "normkit/stats.hpp"

using namespace normkit;

namespace {

struct TrafficCase {
  const char* name;
  DType dtype;
  std::vector<std::int64_t> shape;
  ReduceAxes axes;
  bool apply = false;               // apply_affine instead of statistics
  DType out_dtype = DType::float32;
  bool lp = false;                  // normalize_lp (L2) instead of apply_affine
};

const std::vector<TrafficCase>& cases() {
  static const std::vector<TrafficCase> all = {
      {"per_feature_f32", DType::float32, {2048, 256}, ReduceAxes::of({0})},
      {"per_sample_f32", DType::float32, {256, 2048}, ReduceAxes::of({1})},
      {"per_sample_f16", DType::float16, {256, 2048}, ReduceAxes::of({1})},
      {"global_f32", DType::float32, {1 << 19}, ReduceAxes::every()},
      {"global_u8", DType::uint8, {1 << 20}, ReduceAxes::every()},
      {"nhwc_f32_c16", DType::float32, {8, 32, 32, 16}, ReduceAxes::of({0, 1, 2})},
      {"nhwc_u8_c3", DType::uint8, {8, 64, 64, 3}, ReduceAxes::of({0, 1, 2})},
      {"nchw_f32", DType::float32, {8, 16, 32, 32}, ReduceAxes::of({0, 2, 3})},
      {"nchw_bf16", DType::bfloat16, {8, 16, 32, 32}, ReduceAxes::of({0, 2, 3})},
      {"apply_per_feature_f32", DType::float32, {2048, 256}, ReduceAxes::of({0}), true, DType::float32},
      {"apply_per_sample_f16", DType::float16, {256, 2048}, ReduceAxes::of({1}), true, DType::float16},
      {"apply_nhwc_u8_to_f32", DType::uint8, {32, 64, 64, 3}, ReduceAxes::of({0, 1, 2}), true, DType::float32},
      {"apply_nchw_u8_to_f16", DType::uint8, {8, 3, 64, 64}, ReduceAxes::of({0, 2, 3}), true, DType::float16},
      {"apply_global_bf16_to_f32", DType::bfloat16, {1 << 19}, ReduceAxes::every(), true, DType::float32},
      {"lp_l2_rows_f32", DType::float32, {1024, 512}, ReduceAxes::of({1}), true, DType::float32, true},
  };
  return all;
}

int fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "traffic_case: %s: %s\n", what, detail.c_str());
  return 1;
}

// One apply with per-kept-index coefficients (center 1, scale 0.5).
int run_apply(const TrafficCase& c, const TensorView& view, std::int64_t numel, std::size_t bytes) {
  std::array<std::int64_t, kMaxDims> kept{};
  int kept_ndim = 0;
  if (!kept_shape(view, c.axes, &kept, &kept_ndim).ok()) return fail(c.name, "kept_shape");
  std::int64_t kept_numel = 1;
  for (int d = 0; d < kept_ndim; ++d) kept_numel *= kept[d];
  std::vector<double> host_center(static_cast<std::size_t>(kept_numel), 1.0), host_scale(host_center.size(), 0.5),
      host_offset(host_center.size(), 0.0);
  double *center = nullptr, *scale = nullptr, *offset = nullptr;
  void* out = nullptr;
  const std::size_t coefficient_bytes = host_center.size() * sizeof(double);
  const std::size_t out_bytes = static_cast<std::size_t>(numel) * dtype_size(c.out_dtype);
  if (cudaMalloc(reinterpret_cast<void**>(&center), coefficient_bytes) != cudaSuccess || cudaMalloc(reinterpret_cast<void**>(&scale), coefficient_bytes) != cudaSuccess ||
      cudaMalloc(reinterpret_cast<void**>(&offset), coefficient_bytes) != cudaSuccess || cudaMalloc(&out, out_bytes) != cudaSuccess) {
    return fail(c.name, "cudaMalloc");
  }
  cudaMemcpy(center, host_center.data(), coefficient_bytes, cudaMemcpyHostToDevice);
  cudaMemcpy(scale, host_scale.data(), coefficient_bytes, cudaMemcpyHostToDevice);
  cudaMemcpy(offset, host_offset.data(), coefficient_bytes, cudaMemcpyHostToDevice);
  AffineCoefficients coefficients;
  coefficients.center = center;
  coefficients.scale = scale;
  coefficients.offset = offset;
  TensorView output(out, c.out_dtype, view.shape.data(), view.ndim, MemorySpace::device);
  const Status s = c.lp ? normalize_lp(view, LpNorm::l2, output, nullptr, 0, nullptr)  // one read: no workspace
                       : apply_affine(view, c.axes, coefficients, output, nullptr);
  if (!s.ok()) return fail(c.name, s.message());
  if (cudaDeviceSynchronize() != cudaSuccess) return fail(c.name, "kernel failed");
  std::printf("%s input_bytes=%zu output_bytes=%zu\n", c.name, bytes, out_bytes);
  cudaFree(center);
  cudaFree(scale);
  cudaFree(offset);
  cudaFree(out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: traffic_case NAME|--list\n");
    return 2;
  }
  if (std::strcmp(argv[1], "--list") == 0) {
    for (const auto& c : cases()) std::printf("%s\n", c.name);
    return 0;
  }
  for (const auto& c : cases()) {
    if (c.name != std::string(argv[1])) continue;
    if (!cuda_available()) return fail(c.name, "no CUDA device (run under ptxemu)");
    std::int64_t numel = 1;
    for (auto e : c.shape) numel *= e;
    const std::size_t bytes = static_cast<std::size_t>(numel) * dtype_size(c.dtype);
    std::vector<unsigned char> host(bytes);
    for (std::size_t i = 0; i < bytes; ++i) host[i] = static_cast<unsigned char>((i * 2654435761u) >> 24) & 0x3f;
    void* input = nullptr;
    if (cudaMalloc(&input, bytes) != cudaSuccess || cudaMemcpy(input, host.data(), bytes, cudaMemcpyHostToDevice) != cudaSuccess) {
      return fail(c.name, "cudaMalloc/cudaMemcpy failed");
    }
    TensorView view(input, c.dtype, c.shape.data(), static_cast<int>(c.shape.size()), MemorySpace::device);
    if (c.apply) return run_apply(c, view, numel, bytes);
    StatsOptions options;
    options.axes = c.axes;
    std::array<std::int64_t, kMaxDims> kept{};
    int kept_ndim = 0;
    Status s = kept_shape(view, c.axes, &kept, &kept_ndim);
    std::int64_t kept_numel = 1;
    for (int d = 0; d < kept_ndim; ++d) kept_numel *= kept[d];
    StatsOutputs outputs;
    std::vector<void*> buffers;
    for (int i = 0; i < kNumStats; ++i) {
      void* p = nullptr;
      if (cudaMalloc(&p, static_cast<std::size_t>(kept_numel) * 8) != cudaSuccess) return fail(c.name, "cudaMalloc");
      buffers.push_back(p);
      const bool count_like = i == static_cast<int>(Stat::count) || i == static_cast<int>(Stat::l0);
      outputs.views[i] = TensorView(p, count_like ? DType::int64 : DType::float32, kept.data(), kept_ndim, MemorySpace::device);
    }
    std::size_t ws_bytes = 0;
    if (s.ok()) s = stats_workspace_size(view, options, &ws_bytes);
    void* workspace = nullptr;
    if (ws_bytes > 0 && cudaMalloc(&workspace, ws_bytes) != cudaSuccess) return fail(c.name, "cudaMalloc workspace");
    if (s.ok()) s = compute_stats(view, options, outputs, workspace, ws_bytes, nullptr);
    if (!s.ok()) return fail(c.name, s.message());
    if (cudaDeviceSynchronize() != cudaSuccess) return fail(c.name, "kernel failed");
    std::printf("%s input_bytes=%zu\n", c.name, bytes);
    for (void* p : buffers) cudaFree(p);
    cudaFree(workspace);
    cudaFree(input);
    return 0;
  }
  return fail(argv[1], "unknown case");
}
