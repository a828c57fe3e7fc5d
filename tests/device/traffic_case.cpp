// One library call per run, for the traffic and model checks. `traffic_case NAME` runs the named case of
// the traffic check once on the device; `traffic_case --spec KIND DTYPE SHAPE AXES [EXTRA]` runs any call
// (scripts/check_model.py's bench-sized cases):
//   KIND stats|apply|lp, DTYPE float32|float16|bfloat16|float64|uint8, SHAPE 131072x64,
//   AXES all | comma-separated reduced axes (e.g. 0,1,2; ignored by lp), EXTRA for stats: all | moments
//   ({count, mean, var}) | float64 (all statistics, float64 accumulation); for apply: the output dtype.
//   KIND layer_norm_forward|layer_norm_backward|rms_norm_forward|rms_norm_backward (+ "_residual": the fused
//   residual add): SHAPE rows x n, AXES ignored, EXTRA the parameters' dtype (gamma, beta; backward: dgamma,
//   dbeta too).
//   KIND batch_norm_training|batch_norm_inference|batch_norm_backward: SHAPE e.g. 32x256x56x56, AXES the
//   channel axis (1: channels first, -1: channels last), EXTRA ignored (float32 parameters).
//   KIND group_norm_forward|group_norm_backward: SHAPE and AXES as BatchNorm's, EXTRA the group count
//   (default 32; 0 = InstanceNorm).
//   KIND image: image_normalize, DTYPE the input's, SHAPE in the input layout's order, AXES the layouts
//   "nhwc-nchw" (input-output; "+crop" crops 1/8 off each side, "+mirror" mirrors every image), EXTRA the
//   output dtype.
// It prints the input, output and parameter bytes. Under ptxemu with PTXEMU_PROFILE_JSON every kernel of
// the call is profiled; the only host<->device copies are the staging of input and coefficients.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "normkit/batch_norm.hpp"
#include "normkit/group_norm.hpp"
#include "normkit/image.hpp"
#include "normkit/layer_norm.hpp"
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
  StatSet stats = StatSet::all();
  Accumulation accumulation = Accumulation::automatic;
  int layer = 0;                    // 1 forward, 2 backward (LayerNorm / RMSNorm by `rms`)
  bool rms = false;
  bool residual = false;            // the fused residual add (layer_norm_forward_residual / backward_residual)
  DType param_dtype = DType::float32;
  int batch_norm = 0;               // 1 training forward, 2 inference, 3 backward
  bool channels_last = false;
  int group_norm = 0;               // 1 forward, 2 backward
  std::int64_t groups = 32;
  bool image = false;               // image_normalize from `channels_last` (nhwc) to `image_out_nhwc`
  bool image_out_nhwc = false, image_crop = false, image_mirror = false;
  double max_load_ratio = 1.1;      // loads over what one read of the input (and the parameters per block) take
  double min_efficiency = 0.9;      // coalescing of loads and stores
};

// A LayerNorm / RMSNorm case of the traffic check: x [rows, n].
TrafficCase layer_case(const char* name, DType dtype, std::int64_t rows, std::int64_t n, int layer, bool rms, DType param,
                       double max_load_ratio = 1.1, double min_efficiency = 0.9, bool residual = false) {
  TrafficCase c{name, dtype, {rows, n}, ReduceAxes::of({-1})};
  c.residual = residual;
  c.layer = layer;
  c.rms = rms;
  c.param_dtype = param;
  c.max_load_ratio = max_load_ratio;
  c.min_efficiency = min_efficiency;
  return c;
}

// A GroupNorm case of the traffic check.
TrafficCase group_norm_case(const char* name, DType dtype, std::vector<std::int64_t> shape, int call, bool channels_last,
                            std::int64_t groups, double max_load_ratio = 1.1) {
  TrafficCase c{name, dtype, std::move(shape), ReduceAxes::every()};
  c.max_load_ratio = max_load_ratio;
  c.group_norm = call;
  c.channels_last = channels_last;
  c.groups = groups;
  return c;
}

// An image normalize case of the traffic check.
TrafficCase image_case(const char* name, DType dtype, std::vector<std::int64_t> shape, bool in_nhwc, bool out_nhwc, DType out,
                       bool crop = false, bool mirror = false) {
  TrafficCase c{name, dtype, std::move(shape), ReduceAxes::every()};
  c.image = true;
  c.channels_last = in_nhwc;
  c.image_out_nhwc = out_nhwc;
  c.out_dtype = out;
  c.image_crop = crop;
  c.image_mirror = mirror;
  return c;
}

// A BatchNorm case of the traffic check.
TrafficCase batch_norm_case(const char* name, DType dtype, std::vector<std::int64_t> shape, int call, bool channels_last) {
  TrafficCase c{name, dtype, std::move(shape), ReduceAxes::every()};
  c.batch_norm = call;
  c.channels_last = channels_last;
  return c;
}

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
      // Layers: x read once, y written once (gamma and beta once per block); odd rows past 8192 elements are
      // read twice (16 scalar values a thread), as are rows past 16384, and their 2-byte accesses straddle
      // sectors (rows start at odd element offsets).
      layer_case("layer_norm_forward_bf16_768", DType::bfloat16, 512, 768, 1, false, DType::float32),
      layer_case("layer_norm_forward_f32_4096", DType::float32, 96, 4096, 1, false, DType::float32),
      layer_case("layer_norm_forward_f16_12289", DType::float16, 12, 12289, 1, false, DType::float16, 2.1, 0.65),
      layer_case("rms_norm_forward_f16_16384", DType::float16, 24, 16384, 1, true, DType::float16),
      layer_case("layer_norm_backward_bf16_768", DType::bfloat16, 512, 768, 2, false, DType::bfloat16),
      layer_case("rms_norm_backward_f32_1000", DType::float32, 128, 1000, 2, true, DType::float32),
      // The fused residual add: x and the residual read once, h and y written once (forward); x (h), dy and
      // the residual gradient read once, dx written once (backward).
      layer_case("rms_norm_forward_residual_bf16_4096", DType::bfloat16, 96, 4096, 1, true, DType::bfloat16, 1.1, 0.9, true),
      layer_case("layer_norm_backward_residual_f16_768", DType::float16, 512, 768, 2, false, DType::float32, 1.1, 0.9, true),
      // BatchNorm: inference reads x once and writes y once; training reads x twice (statistics, apply);
      // the backward reads x and dy twice (sums, dx) and writes dx once.
      batch_norm_case("batch_norm_inference_nchw_bf16", DType::bfloat16, {8, 16, 32, 32}, 2, false),
      batch_norm_case("batch_norm_inference_nhwc_f32", DType::float32, {8, 16, 16, 64}, 2, true),
      batch_norm_case("batch_norm_training_nchw_f16", DType::float16, {8, 16, 32, 32}, 1, false),
      batch_norm_case("batch_norm_backward_nchw_bf16", DType::bfloat16, {8, 16, 32, 32}, 3, false),
      batch_norm_case("batch_norm_backward_nhwc_f32", DType::float32, {8, 16, 16, 64}, 3, true),
      // GroupNorm: the forward reads x twice (statistics, apply) and writes y once; the backward as BatchNorm's.
      // Channels last keeps a summary a (sample, channel), 80 bytes stored and loaded a field at a time (25%
      // coalesced: 2% of x here), and its apply loads the coefficients of a (sample, channel) in each block of 64
      // rows (4.7% of x, from L2): 1.16 x in all.
      group_norm_case("group_norm_forward_nchw_f16", DType::float16, {4, 32, 32, 32}, 1, false, 8),
      group_norm_case("group_norm_forward_nhwc_f32", DType::float32, {4, 32, 32, 64}, 1, true, 32, 1.2),
      group_norm_case("group_norm_backward_nchw_bf16", DType::bfloat16, {4, 32, 32, 32}, 2, false, 8),
      // (32 x 32: the per-(sample, channel) sums and coefficients, loaded by a warp a group or channel in
      // batches of 4 whose spare lanes reload their first element, are 9% of x at 16 x 16)
      group_norm_case("group_norm_backward_nhwc_f32", DType::float32, {4, 32, 32, 64}, 2, true, 32),
      // Image normalize: the input read once and the output written once, coalesced on both sides whatever
      // the layouts (tiles through shared memory); a crop reads only its window (its rows' ends share sectors
      // with the cut-off pixels: 1.1 x allowed).
      image_case("image_nhwc_u8_to_nchw_f32", DType::uint8, {8, 64, 64, 3}, true, false, DType::float32),
      image_case("image_nhwc_u8_to_nchw_f16_crop_mirror", DType::uint8, {2, 224, 224, 3}, true, false, DType::float16, true, true),
      image_case("image_nchw_f32_to_nhwc_bf16", DType::float32, {4, 3, 64, 64}, false, true, DType::bfloat16),
      image_case("image_nhwc_f16_to_nhwc_f32_c4", DType::float16, {4, 48, 40, 4}, true, true, DType::float32),
      image_case("image_nchw_u8_to_nchw_f16_odd", DType::uint8, {8, 1, 28, 29}, false, false, DType::float16),
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
  std::size_t lp_workspace_bytes = 0;  // the one-read path needs none, the two-read path its row norms
  void* lp_workspace = nullptr;
  if (c.lp) {
    if (!normalize_lp_workspace_size(view, &lp_workspace_bytes).ok()) return fail(c.name, "normalize_lp_workspace_size");
    if (lp_workspace_bytes > 0 && cudaMalloc(&lp_workspace, lp_workspace_bytes) != cudaSuccess) return fail(c.name, "cudaMalloc");
  }
  const Status s = c.lp ? normalize_lp(view, LpNorm::l2, output, lp_workspace, lp_workspace_bytes, nullptr)
                       : apply_affine(view, c.axes, coefficients, output, nullptr);
  if (!s.ok()) return fail(c.name, s.message());
  if (cudaDeviceSynchronize() != cudaSuccess) return fail(c.name, "kernel failed");
  std::printf("%s input_bytes=%zu output_bytes=%zu parameter_bytes=%zu\n", c.name, bytes, out_bytes,
              c.lp ? std::size_t(0) : 3 * coefficient_bytes);
  cudaFree(lp_workspace);
  cudaFree(center);
  cudaFree(scale);
  cudaFree(offset);
  cudaFree(out);
  return 0;
}

// A LayerNorm / RMSNorm forward or backward over the last axis, with gamma (and beta) of param_dtype.
int run_layer(const TrafficCase& c, const TensorView& x, std::int64_t numel, std::size_t bytes) {
  const std::int64_t n = x.shape[x.ndim - 1], rows = numel / n;
  LayerNormOptions o;
  o.kind = c.rms ? RowNorm::rms_norm : RowNorm::layer_norm;
  const std::size_t param_bytes = static_cast<std::size_t>(n) * dtype_size(c.param_dtype);
  void *gamma = nullptr, *beta = nullptr, *out = nullptr, *dy = nullptr, *dgamma = nullptr, *dbeta = nullptr, *mean = nullptr,
       *rstd = nullptr, *workspace = nullptr, *residual = nullptr, *h = nullptr;
  std::size_t workspace_bytes = 0;
  if (!layer_norm_backward_workspace_size(x, o, &workspace_bytes).ok()) return fail(c.name, "workspace size");
  // (staged from the host: device-side memsets and copies would count as the call's time in the model)
  std::vector<unsigned char> staging(std::max(bytes, param_bytes), 0x3c);
  for (void** p : {&gamma, &beta, &dgamma, &dbeta}) {
    if (cudaMalloc(p, param_bytes) != cudaSuccess || cudaMemcpy(*p, staging.data(), param_bytes, cudaMemcpyHostToDevice) != cudaSuccess) {
      return fail(c.name, "cudaMalloc");
    }
  }
  if (c.residual && (cudaMalloc(&residual, bytes) != cudaSuccess || cudaMalloc(&h, bytes) != cudaSuccess ||
                     cudaMemcpy(residual, staging.data(), bytes, cudaMemcpyHostToDevice) != cudaSuccess)) {
    return fail(c.name, "cudaMalloc");
  }
  if (cudaMalloc(&out, bytes) != cudaSuccess || cudaMalloc(&dy, bytes) != cudaSuccess || cudaMalloc(&mean, rows * 4) != cudaSuccess ||
      cudaMalloc(&rstd, rows * 4) != cudaSuccess || (workspace_bytes && cudaMalloc(&workspace, workspace_bytes) != cudaSuccess)) {
    return fail(c.name, "cudaMalloc");
  }
  std::vector<float> stats(static_cast<std::size_t>(rows), 1.0f);
  if (cudaMemcpy(dy, staging.data(), bytes, cudaMemcpyHostToDevice) != cudaSuccess ||
      cudaMemcpy(mean, stats.data(), rows * 4, cudaMemcpyHostToDevice) != cudaSuccess ||
      cudaMemcpy(rstd, stats.data(), rows * 4, cudaMemcpyHostToDevice) != cudaSuccess) {
    return fail(c.name, "staging");
  }
  auto view = [&](void* p) { return TensorView(p, x.dtype, x.shape.data(), x.ndim, MemorySpace::device); };
  const TensorView g(gamma, c.param_dtype, {n}, MemorySpace::device), b = c.rms ? TensorView() : TensorView(beta, c.param_dtype, {n}, MemorySpace::device);
  const TensorView m = c.rms ? TensorView() : TensorView(mean, DType::float32, {rows}, MemorySpace::device);
  const TensorView r(rstd, DType::float32, {rows}, MemorySpace::device);
  const std::size_t stat_bytes = static_cast<std::size_t>(rows) * (c.rms ? 4 : 8);
  if (cudaDeviceSynchronize() != cudaSuccess) return fail(c.name, "staging");
  Status s;
  if (c.layer == 1) {
    s = c.residual ? layer_norm_forward_residual(x, view(residual), view(h), g, b, view(out), m, r, o, nullptr)
                   : layer_norm_forward(x, g, b, view(out), m, r, o, nullptr);
  } else {
    const TensorView dg(dgamma, c.param_dtype, {n}, MemorySpace::device);
    const TensorView db = c.rms ? TensorView() : TensorView(dbeta, c.param_dtype, {n}, MemorySpace::device);
    s = c.residual ? layer_norm_backward_residual(view(dy), x, view(residual), m, r, g, view(out), dg, db, o, workspace, workspace_bytes, nullptr)
                   : layer_norm_backward(view(dy), x, m, r, g, view(out), dg, db, o, workspace, workspace_bytes, nullptr);
  }
  if (!s.ok()) return fail(c.name, s.message());
  if (cudaDeviceSynchronize() != cudaSuccess) return fail(c.name, "kernel failed");
  // Minimum bytes (the speed issue's): forward x + y + parameters once (+ the saved statistics written);
  // backward x + dy + dx + the saved statistics.
  const std::size_t params = c.layer == 1 ? param_bytes * (c.rms ? 1 : 2) : 0;
  // For the traffic check: the parameters' bytes each block loads (w, beta: its shared-memory cache), the
  // bytes of other loads (the backward's saved statistics) and of other stores (the forward's statistics,
  // the backward's dgamma/dbeta partials).
  const std::size_t per_block = param_bytes * (c.layer == 1 && !c.rms ? 2 : 1);
  const std::size_t extra_loads = c.layer == 2 ? stat_bytes + workspace_bytes : 0;  // (the partials are read back once)
  const std::size_t extra_stores = c.layer == 1 ? stat_bytes : workspace_bytes;
  // (the fused residual: one more x-sized input, and the forward one more output, h)
  const std::size_t inputs = bytes * ((c.layer == 1 ? 1 : 2) + (c.residual ? 1 : 0));
  const std::size_t outputs = bytes * (c.residual && c.layer == 1 ? 2 : 1);
  std::printf("%s input_bytes=%zu output_bytes=%zu parameter_bytes=%zu statistics_bytes=%zu per_block_bytes=%zu extra_load_bytes=%zu "
              "extra_store_bytes=%zu max_load_ratio=%.2f min_efficiency=%.2f\n",
              c.name, inputs, outputs, params, stat_bytes, per_block, extra_loads, extra_stores, c.max_load_ratio, c.min_efficiency);
  for (void* p : {gamma, beta, out, dy, dgamma, dbeta, mean, rstd, workspace, residual, h}) cudaFree(p);
  return 0;
}

// A BatchNorm training forward, inference or backward with every optional tensor (float32 parameters).
int run_batch_norm(const TrafficCase& c, const TensorView& x, std::int64_t numel, std::size_t bytes) {
  BatchNormOptions o = c.channels_last ? BatchNormOptions::keras() : BatchNormOptions::pytorch();
  std::int64_t channels = 0;
  std::size_t workspace_bytes = 0;
  if (!batch_norm_channels(x, o, &channels).ok() || !batch_norm_workspace_size(x, o, &workspace_bytes).ok()) {
    return fail(c.name, "batch_norm_channels / workspace size");
  }
  const std::size_t channel_bytes = static_cast<std::size_t>(channels) * 4;
  // (staged from the host: device-side memsets and copies would count as the call's time in the model)
  std::vector<unsigned char> staging(std::max(bytes, channel_bytes), 0x3c);
  void* per_channel[8] = {};
  for (void*& p : per_channel) {
    if (cudaMalloc(&p, channel_bytes) != cudaSuccess || cudaMemcpy(p, staging.data(), channel_bytes, cudaMemcpyHostToDevice) != cudaSuccess) {
      return fail(c.name, "cudaMalloc");
    }
  }
  void *out = nullptr, *dy = nullptr, *workspace = nullptr;
  if (cudaMalloc(&out, bytes) != cudaSuccess || cudaMalloc(&dy, bytes) != cudaSuccess ||
      cudaMemcpy(dy, staging.data(), bytes, cudaMemcpyHostToDevice) != cudaSuccess || cudaMalloc(&workspace, workspace_bytes) != cudaSuccess) {
    return fail(c.name, "cudaMalloc");
  }
  if (cudaDeviceSynchronize() != cudaSuccess) return fail(c.name, "staging");
  auto view = [&](void* p) { return TensorView(p, x.dtype, x.shape.data(), x.ndim, MemorySpace::device); };
  auto ch = [&](int i) { return TensorView(per_channel[i], DType::float32, {channels}, MemorySpace::device); };
  // gamma 0, beta 1, running mean 2, running var 3, saved mean 4, saved rstd 5, dgamma 6, dbeta 7
  Status s;
  std::size_t input = bytes, params = 0, stats = 0;
  if (c.batch_norm == 1) {
    s = batch_norm_forward_training(x, ch(0), ch(1), view(out), ch(2), ch(3), ch(4), ch(5), o, workspace, workspace_bytes, nullptr);
    input = 2 * bytes;                // statistics, then the apply
    params = 6 * channel_bytes;       // gamma, beta; running statistics read and written
    stats = 2 * channel_bytes;        // saved mean and rstd
  } else if (c.batch_norm == 2) {
    s = batch_norm_forward_inference(x, ch(0), ch(1), ch(2), ch(3), view(out), o, workspace, workspace_bytes, nullptr);
    params = 4 * channel_bytes;
  } else {
    s = batch_norm_backward(view(dy), x, ch(4), ch(5), ch(0), view(out), ch(6), ch(7), o, workspace, workspace_bytes, nullptr);
    input = 4 * bytes;                // x and dy for the sums, then for dx
    params = 5 * channel_bytes;       // saved mean, rstd, gamma; dgamma, dbeta
  }
  if (!s.ok()) return fail(c.name, s.message());
  if (cudaDeviceSynchronize() != cudaSuccess) return fail(c.name, "kernel failed");
  // Traffic check: besides the inputs, the per-channel arrays and the workspace (summaries, coefficients,
  // partial sums) may be loaded and stored once each.
  std::printf("%s input_bytes=%zu output_bytes=%zu parameter_bytes=%zu statistics_bytes=%zu extra_load_bytes=%zu extra_store_bytes=%zu\n",
              c.name, input, bytes, params, stats, params + workspace_bytes, params + stats + workspace_bytes);
  for (void* p : per_channel) cudaFree(p);
  for (void* p : {out, dy, workspace}) cudaFree(p);
  (void)numel;
  return 0;
}

// A GroupNorm forward or backward with every optional tensor (float32 parameters).
int run_group_norm(const TrafficCase& c, const TensorView& x, std::size_t bytes) {
  GroupNormOptions o = c.channels_last ? GroupNormOptions::keras(c.groups) : GroupNormOptions::pytorch(c.groups);
  std::size_t workspace_bytes = 0;
  if (!group_norm_workspace_size(x, o, &workspace_bytes).ok()) return fail(c.name, "group_norm_workspace_size");
  const std::int64_t channels = x.shape[c.channels_last ? x.ndim - 1 : 1], groups = c.groups == 0 ? channels : c.groups;
  const std::int64_t group_count = x.shape[0] * groups;
  const std::size_t channel_bytes = static_cast<std::size_t>(channels) * 4, group_bytes = static_cast<std::size_t>(group_count) * 4;
  // (staged from the host: device-side memsets and copies would count as the call's time in the model)
  std::vector<unsigned char> staging(std::max({bytes, channel_bytes, group_bytes}), 0x3c);
  void* arrays[6] = {};  // gamma, beta, dgamma, dbeta (C); saved mean, rstd (N * G)
  for (int i = 0; i < 6; ++i) {
    const std::size_t n = i < 4 ? channel_bytes : group_bytes;
    if (cudaMalloc(&arrays[i], n) != cudaSuccess || cudaMemcpy(arrays[i], staging.data(), n, cudaMemcpyHostToDevice) != cudaSuccess) {
      return fail(c.name, "cudaMalloc");
    }
  }
  void *out = nullptr, *dy = nullptr, *workspace = nullptr;
  if (cudaMalloc(&out, bytes) != cudaSuccess || cudaMalloc(&dy, bytes) != cudaSuccess ||
      cudaMemcpy(dy, staging.data(), bytes, cudaMemcpyHostToDevice) != cudaSuccess || cudaMalloc(&workspace, workspace_bytes) != cudaSuccess) {
    return fail(c.name, "cudaMalloc");
  }
  if (cudaDeviceSynchronize() != cudaSuccess) return fail(c.name, "staging");
  auto view = [&](void* p) { return TensorView(p, x.dtype, x.shape.data(), x.ndim, MemorySpace::device); };
  auto vec = [&](int i) { return TensorView(arrays[i], DType::float32, {i < 4 ? channels : group_count}, MemorySpace::device); };
  Status s;
  std::size_t input = 2 * bytes, params = 2 * channel_bytes, stats = 2 * group_bytes;
  if (c.group_norm == 1) {
    s = group_norm_forward(x, vec(0), vec(1), view(out), vec(4), vec(5), o, workspace, workspace_bytes, nullptr);
  } else {
    s = group_norm_backward(view(dy), x, vec(4), vec(5), vec(0), view(out), vec(2), vec(3), o, workspace, workspace_bytes, nullptr);
    input = 4 * bytes;  // x and dy for the sums, then for dx
    params = 3 * channel_bytes;
  }
  if (!s.ok()) return fail(c.name, s.message());
  if (cudaDeviceSynchronize() != cudaSuccess) return fail(c.name, "kernel failed");
  std::printf("%s input_bytes=%zu output_bytes=%zu parameter_bytes=%zu statistics_bytes=%zu extra_load_bytes=%zu extra_store_bytes=%zu "
              "max_load_ratio=%.2f\n",
              c.name, input, bytes, params, stats, params + stats + workspace_bytes, params + stats + workspace_bytes, c.max_load_ratio);
  for (void* p : arrays) cudaFree(p);
  for (void* p : {out, dy, workspace}) cudaFree(p);
  return 0;
}

// image_normalize with ImageNet's statistics in unit units (pixel units for float input).
int run_image(const TrafficCase& c, const TensorView& x) {
  ImageNormalizeOptions o;
  o.layout = c.channels_last ? ImageLayout::nhwc : ImageLayout::nchw;
  o.out_layout = c.image_out_nhwc ? ImageLayout::nhwc : ImageLayout::nchw;
  o.units = x.dtype == DType::uint8 ? PixelUnits::unit : PixelUnits::pixel;
  const std::int64_t n = x.shape[0], channels = x.shape[c.channels_last ? 3 : 1], h = x.shape[c.channels_last ? 1 : 2],
                     w = x.shape[c.channels_last ? 2 : 3];
  for (std::int64_t i = 0; i < channels; ++i) {
    o.mean.push_back(0.45);
    o.std.push_back(0.225);
  }
  o.mirror = c.image_mirror;
  std::int64_t oh = h, ow = w;
  if (c.image_crop) {
    o.crop_y = h / 8, o.crop_x = w / 8;
    o.crop_height = oh = h - 2 * (h / 8);
    o.crop_width = ow = w - 2 * (w / 8);
  }
  const TensorView y = c.image_out_nhwc ? TensorView(nullptr, c.out_dtype, {n, oh, ow, channels}, MemorySpace::device)
                                        : TensorView(nullptr, c.out_dtype, {n, channels, oh, ow}, MemorySpace::device);
  const std::size_t out_bytes = static_cast<std::size_t>(y.numel()) * dtype_size(c.out_dtype);
  void* out = nullptr;
  if (cudaMalloc(&out, out_bytes) != cudaSuccess) return fail(c.name, "cudaMalloc");
  TensorView yv = y;
  yv.data = out;
  const Status s = image_normalize(x, yv, o, TensorView(), nullptr);
  if (!s.ok()) return fail(c.name, s.message());
  if (cudaDeviceSynchronize() != cudaSuccess) return fail(c.name, "kernel failed");
  // One read of the pixels the crop keeps, one write of y: the input's minimum is the 32-byte sectors that
  // hold the window's rows (x from cudaMalloc: 256-byte aligned).
  const std::size_t elem = dtype_size(x.dtype), total = static_cast<std::size_t>(x.numel()) * elem;
  std::vector<bool> sector((total + 31) / 32, false);
  const std::int64_t planes = c.channels_last ? 1 : channels, pixel = c.channels_last ? channels : 1;
  for (std::int64_t img = 0; img < n * planes; ++img) {
    for (std::int64_t r = o.crop_y; r < o.crop_y + oh; ++r) {
      const std::size_t begin = static_cast<std::size_t>(((img * h + r) * w + o.crop_x) * pixel) * elem;
      const std::size_t end = begin + static_cast<std::size_t>(ow * pixel) * elem;
      for (std::size_t q = begin / 32; q * 32 < end; ++q) sector[q] = true;
    }
  }
  const std::size_t in_bytes = 32 * static_cast<std::size_t>(std::count(sector.begin(), sector.end(), true));
  std::printf("%s input_bytes=%zu output_bytes=%zu\n", c.name, in_bytes, out_bytes);
  cudaFree(out);
  return 0;
}

// "131072x64" -> {131072, 64}; "0,1,2" -> those axes. False on malformed text.
bool parse_list(const std::string& text, char separator, std::vector<std::int64_t>* out) {
  out->clear();
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t end = std::min(text.find(separator, pos), text.size());
    if (end == pos) return false;
    char* stop = nullptr;
    const long long v = std::strtoll(text.c_str() + pos, &stop, 10);
    if (stop != text.c_str() + end) return false;
    out->push_back(v);
    pos = end + 1;
  }
  return !out->empty();
}

bool parse_spec(char** argv, int argc, TrafficCase* c) {
  if (argc < 4) return false;
  std::string kind = argv[0];
  const std::string suffix = "_residual";
  c->residual = kind.size() > suffix.size() && kind.compare(kind.size() - suffix.size(), suffix.size(), suffix) == 0;
  if (c->residual) kind.resize(kind.size() - suffix.size());
  c->apply = kind == "apply" || kind == "lp";
  c->lp = kind == "lp";
  c->layer = kind == "layer_norm_forward" || kind == "rms_norm_forward" ? 1 : (kind == "layer_norm_backward" || kind == "rms_norm_backward" ? 2 : 0);
  if (c->residual && !c->layer) return false;
  c->rms = kind.rfind("rms_norm", 0) == 0;
  c->batch_norm = kind == "batch_norm_training" ? 1 : (kind == "batch_norm_inference" ? 2 : (kind == "batch_norm_backward" ? 3 : 0));
  c->group_norm = kind == "group_norm_forward" ? 1 : (kind == "group_norm_backward" ? 2 : 0);
  c->image = kind == "image";
  if (!c->apply && !c->layer && !c->batch_norm && !c->group_norm && !c->image && kind != "stats") return false;
  if (!parse_dtype(argv[1], &c->dtype) || !parse_list(argv[2], 'x', &c->shape)) return false;
  if (c->image) {
    const std::string layouts = argv[3];
    if (layouts.size() < 9) return false;
    c->channels_last = layouts.rfind("nhwc-", 0) == 0;
    c->image_out_nhwc = layouts.compare(5, 4, "nhwc") == 0;
    c->image_crop = layouts.find("+crop") != std::string::npos;
    c->image_mirror = layouts.find("+mirror") != std::string::npos;
    return (c->channels_last || layouts.rfind("nchw-", 0) == 0) && c->shape.size() == 4 &&
           parse_dtype(argc > 4 ? argv[4] : "float32", &c->out_dtype);
  }
  if (c->group_norm) {
    c->channels_last = std::string(argv[3]) == "-1";
    if (argc > 4) c->groups = std::strtoll(argv[4], nullptr, 10);
    return c->channels_last || std::string(argv[3]) == "1";
  }
  if (c->batch_norm) {
    c->channels_last = std::string(argv[3]) == "-1";
    return c->channels_last || std::string(argv[3]) == "1";
  }
  if (c->layer) return argc < 5 || parse_dtype(argv[4], &c->param_dtype);
  const std::string axes = argv[3];
  std::vector<std::int64_t> list;
  if (c->lp) {
    c->axes = ReduceAxes::of({-1});
  } else if (axes == "all") {
    c->axes = ReduceAxes::every();
  } else if (parse_list(axes, ',', &list)) {
    std::vector<int> ints(list.begin(), list.end());
    c->axes = ReduceAxes::of(ints.data(), static_cast<int>(ints.size()));
  } else {
    return false;
  }
  const std::string extra = argc > 4 ? argv[4] : (c->apply ? "float32" : "all");
  if (c->apply) return parse_dtype(extra, &c->out_dtype);
  if (extra == "moments") c->stats = {Stat::count, Stat::mean, Stat::var};
  else if (extra == "float64") c->accumulation = Accumulation::float64;
  else if (extra != "all") return false;
  return true;
}

int run_case(const TrafficCase& c);

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--spec") == 0) {
    TrafficCase c{"spec", DType::float32, {}, ReduceAxes::every()};
    if (!parse_spec(argv + 2, argc - 2, &c)) {
      std::fprintf(stderr, "usage: traffic_case --spec stats|apply|lp|layer_norm_forward|...|batch_norm_training|...|group_norm_forward|... DTYPE SHAPE AXES [all|moments|float64|OUT_DTYPE|PARAM_DTYPE]\n");
      return 2;
    }
    return run_case(c);
  }
  if (argc != 2) {
    std::fprintf(stderr, "usage: traffic_case NAME|--list|--spec ...\n");
    return 2;
  }
  if (std::strcmp(argv[1], "--list") == 0) {
    for (const auto& c : cases()) std::printf("%s\n", c.name);
    return 0;
  }
  for (const auto& c : cases()) {
    if (c.name == std::string(argv[1])) return run_case(c);
  }
  return fail(argv[1], "unknown case");
}

namespace {

int run_case(const TrafficCase& c) {
  {
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
    if (c.layer) return run_layer(c, view, numel, bytes);
    if (c.batch_norm) return run_batch_norm(c, view, numel, bytes);
    if (c.group_norm) return run_group_norm(c, view, bytes);
    if (c.image) return run_image(c, view);
    if (c.apply) return run_apply(c, view, numel, bytes);
    StatsOptions options;
    options.axes = c.axes;
    options.stats = c.stats;
    options.accumulation = c.accumulation;
    std::array<std::int64_t, kMaxDims> kept{};
    int kept_ndim = 0;
    Status s = kept_shape(view, c.axes, &kept, &kept_ndim);
    std::int64_t kept_numel = 1;
    for (int d = 0; d < kept_ndim; ++d) kept_numel *= kept[d];
    StatsOutputs outputs;
    std::vector<void*> buffers;
    std::size_t output_bytes = 0;
    for (int i = 0; i < kNumStats; ++i) {
      if (!c.stats.has(static_cast<Stat>(i))) continue;
      void* p = nullptr;
      if (cudaMalloc(&p, static_cast<std::size_t>(kept_numel) * 8) != cudaSuccess) return fail(c.name, "cudaMalloc");
      buffers.push_back(p);
      const bool count_like = i == static_cast<int>(Stat::count) || i == static_cast<int>(Stat::l0);
      outputs.views[i] = TensorView(p, count_like ? DType::int64 : DType::float32, kept.data(), kept_ndim, MemorySpace::device);
      output_bytes += static_cast<std::size_t>(kept_numel) * (count_like ? 8 : 4);
    }
    std::size_t ws_bytes = 0;
    if (s.ok()) s = stats_workspace_size(view, options, &ws_bytes);
    void* workspace = nullptr;
    if (ws_bytes > 0 && cudaMalloc(&workspace, ws_bytes) != cudaSuccess) return fail(c.name, "cudaMalloc workspace");
    if (s.ok()) s = compute_stats(view, options, outputs, workspace, ws_bytes, nullptr);
    if (!s.ok()) return fail(c.name, s.message());
    if (cudaDeviceSynchronize() != cudaSuccess) return fail(c.name, "kernel failed");
    std::printf("%s input_bytes=%zu statistics_bytes=%zu\n", c.name, bytes, output_bytes);
    for (void* p : buffers) cudaFree(p);
    cudaFree(workspace);
    cudaFree(input);
    return 0;
  }
}

}  // namespace
