// Training layers: LayerNorm / RMSNorm forward and backward (hidden 768 ... 16384), BatchNorm on ResNet-50
// activation shapes (training forward, backward, inference; NCHW and NHWC) and GroupNorm on diffusion U-Net
// shapes (32 groups; NCHW and NHWC), float32 parameters. Bytes moved: forward x + y (BatchNorm/GroupNorm
// training: 2x + y, statistics then apply), backward x + dy + dx (BatchNorm/GroupNorm: 2 (x + dy) + dx),
// reported against a copy of x's bytes measured in the same run (`of_copy`: read + write bytes/s over the
// copy's). Device cases rotate their buffers past the L2. Host cases are the same calls on small shapes.
// bench/compare_torch.py times PyTorch's layers on the large shapes.
#include <memory>
#include <tuple>

#include "bench_common.hpp"
#include "normkit/batch_norm.hpp"
#include "normkit/group_norm.hpp"
#include "normkit/layer_norm.hpp"

using namespace normkit;
using namespace normkit::bench;

namespace {

enum class Layer { layer_norm, rms_norm, batch_norm, group_norm };
enum class Pass { forward, backward, inference };

struct LayerCase {
  std::string name;  // without the host/device prefix
  Layer layer;
  Pass pass;
  DType dtype;
  std::vector<std::int64_t> shape;
  bool channels_last = false;
  // Bytes moved a call in units of x's bytes: reads and writes of x-sized tensors.
  int x_reads = 1, x_writes = 1;
};

const char* short_dtype(DType d) { return d == DType::float32 ? "f32" : (d == DType::float16 ? "f16" : "bf16"); }

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s;
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
  return s;
}

// The matrix; `large`: about 64 MB of x (16-bit: 32 M elements), else a small shape of each kind.
std::vector<LayerCase> layer_cases(bool large) {
  std::vector<LayerCase> out;
  const std::int64_t elems = large ? (std::int64_t{32} << 20) : (std::int64_t{1} << 16);
  for (Layer layer : {Layer::layer_norm, Layer::rms_norm}) {
    const char* kind = layer == Layer::layer_norm ? "layer_norm" : "rms_norm";
    for (DType dtype : {DType::float32, DType::float16, DType::bfloat16}) {
      if (layer == Layer::rms_norm && dtype == DType::float16) continue;
      for (std::int64_t hidden : large ? std::vector<std::int64_t>{768, 4096, 16384} : std::vector<std::int64_t>{1024}) {
        for (Pass pass : {Pass::forward, Pass::backward}) {
          LayerCase c;
          c.layer = layer;
          c.pass = pass;
          c.dtype = dtype;
          c.shape = {std::max<std::int64_t>(1, elems / hidden), hidden};
          c.x_reads = pass == Pass::forward ? 1 : 2;
          c.x_writes = 1;
          c.name = std::string(kind) + (pass == Pass::forward ? "/forward/" : "/backward/") + short_dtype(dtype) + "/" + shape_text(c.shape);
          out.push_back(c);
        }
      }
    }
  }
  // ResNet-50's first and last stages (256 x 56 x 56, 2048 x 7 x 7: rows of 49, the span walks) and U-Net's
  // first level (320 x 64 x 64, 32 groups).
  for (bool last : {false, true}) {
    const std::int64_t n_gn = std::max<std::int64_t>(1, elems / (320 * 64 * 64));
    const std::vector<std::int64_t> gn = large ? (last ? std::vector<std::int64_t>{n_gn, 64, 64, 320} : std::vector<std::int64_t>{n_gn, 320, 64, 64})
                                               : (last ? std::vector<std::int64_t>{2, 8, 8, 64} : std::vector<std::int64_t>{2, 64, 8, 8});
    const std::string layout = last ? "nhwc" : "nchw";
    // A BatchNorm or GroupNorm case: `reads` times x's bytes read (and y or dx written once).
    auto add = [&](Layer layer, Pass pass, DType dtype, const std::vector<std::int64_t>& shape, const std::string& what, int reads) {
      LayerCase c;
      c.layer = layer;
      c.pass = pass;
      c.dtype = dtype;
      c.shape = shape;
      c.channels_last = last;
      c.x_reads = reads;
      c.name = what + "/" + layout + "/" + short_dtype(dtype) + "/" + shape_text(c.shape);
      out.push_back(c);
    };
    for (DType dtype : {DType::float32, DType::bfloat16}) {
      for (auto [side, channels, small_side, small_channels] : {std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t>{56, 256, 8, 64},
                                                                {7, 2048, 7, 16}}) {
        const std::int64_t n_bn = std::max<std::int64_t>(1, elems / (channels * side * side));
        const std::int64_t h = large ? side : small_side, cs = large ? channels : small_channels, n = large ? n_bn : 2;
        const std::vector<std::int64_t> bn = last ? std::vector<std::int64_t>{n, h, h, cs} : std::vector<std::int64_t>{n, cs, h, h};
        add(Layer::batch_norm, Pass::forward, dtype, bn, "batch_norm/training", 2);
        add(Layer::batch_norm, Pass::backward, dtype, bn, "batch_norm/backward", 4);
        add(Layer::batch_norm, Pass::inference, dtype, bn, "batch_norm/inference", 1);
      }
      add(Layer::group_norm, Pass::forward, dtype, gn, "group_norm/forward", 2);
      add(Layer::group_norm, Pass::backward, dtype, gn, "group_norm/backward", 4);
    }
  }
  return out;
}

// One call's buffers in `space`: x and dy (rotated on the device), y/dx, per-channel or per-row arrays
// (float32, 1.5 for gamma so the parameters are not trivial), the workspace.
class LayerBuffers {
 public:
  LayerBuffers(const LayerCase& c, MemorySpace space) : c_(c), space_(space) {
    bytes_ = static_cast<std::size_t>(numel(c.shape)) * dtype_size(c.dtype);
    host_x_ = random_bytes(bytes_, c.dtype);
  }
  bool init() {
    const std::int64_t rows = c_.shape[0];
    const int axis = c_.channels_last ? static_cast<int>(c_.shape.size()) - 1 : 1;
    const std::int64_t params = c_.layer == Layer::layer_norm || c_.layer == Layer::rms_norm ? c_.shape.back() : c_.shape[axis];
    const std::int64_t stats = c_.layer == Layer::layer_norm || c_.layer == Layer::rms_norm ? rows
                               : c_.layer == Layer::group_norm                            ? rows * 32
                                                                                          : params;
    floats_ = {params, params, params, params, stats, stats, params, params};  // gamma beta rmean rvar mean rstd dgamma dbeta
    if (space_ == MemorySpace::host) {
      host_out_.assign(bytes_, 0);
      host_dy_ = host_x_;
      for (std::int64_t n : floats_) host_floats_.emplace_back(static_cast<std::size_t>(n), 1.5f);
      for (std::size_t i = 0; i < host_floats_.size(); ++i) float_ptrs_.push_back(host_floats_[i].data());
      return true;
    }
#if defined(NORMKIT_WITH_CUDA)
    xs_ = std::make_unique<DeviceRotation>(bytes_, host_x_.data());
    dys_ = std::make_unique<DeviceRotation>(bytes_, host_x_.data());
    outs_ = std::make_unique<DeviceRotation>(bytes_, nullptr);
    if (!xs_->ok() || !dys_->ok() || !outs_->ok()) return false;
    std::size_t workspace = 0;
    const TensorView probe = view(xs_->at(0));
    const Status s = c_.layer == Layer::batch_norm   ? batch_norm_workspace_size(probe, bn_options(), &workspace)
                     : c_.layer == Layer::group_norm ? group_norm_workspace_size(probe, gn_options(), &workspace)
                                                     : layer_norm_backward_workspace_size(probe, ln_options(), &workspace);
    if (!s.ok()) return false;
    for (std::int64_t n : floats_) {
      std::vector<float> ones(static_cast<std::size_t>(n), 1.5f);
      void* p = nullptr;
      if (cudaMalloc(&p, ones.size() * 4 + 4) != cudaSuccess) return false;
      cudaMemcpy(p, ones.data(), ones.size() * 4, cudaMemcpyHostToDevice);
      float_ptrs_.push_back(static_cast<float*>(p));
    }
    if (workspace && cudaMalloc(&workspace_, workspace) != cudaSuccess) return false;
    workspace_bytes_ = workspace;
    return true;
#else
    return false;
#endif
  }
  ~LayerBuffers() {
#if defined(NORMKIT_WITH_CUDA)
    if (space_ == MemorySpace::device) {
      for (float* p : float_ptrs_) cudaFree(p);
      cudaFree(workspace_);
    }
#endif
  }
  std::size_t bytes() const { return bytes_; }

  // One call of the case on buffer set `call` (device: rotated).
  Status run(std::int64_t call) {
    void *x = host_x_.data(), *dy = host_dy_.data(), *out = host_out_.data();
#if defined(NORMKIT_WITH_CUDA)
    if (space_ == MemorySpace::device) {
      x = xs_->at(call);
      dy = dys_->at(call);
      out = outs_->at(call);
    }
#endif
    const TensorView xv = view(x), dyv = view(dy), outv = view(out);
    auto f = [&](int i) { return TensorView(float_ptrs_[i], DType::float32, {floats_[i]}, space_); };
    switch (c_.layer) {
      case Layer::layer_norm:
      case Layer::rms_norm: {
        const LayerNormOptions o = ln_options();
        const TensorView beta = c_.layer == Layer::layer_norm ? f(1) : TensorView();
        const TensorView mean = c_.layer == Layer::layer_norm ? f(4) : TensorView();
        if (c_.pass == Pass::forward) return layer_norm_forward(xv, f(0), beta, outv, mean, f(5), o);
        const TensorView dbeta = c_.layer == Layer::layer_norm ? f(7) : TensorView();
        return layer_norm_backward(dyv, xv, mean, f(5), f(0), outv, f(6), dbeta, o, workspace_, workspace_bytes_);
      }
      case Layer::batch_norm: {
        const BatchNormOptions o = bn_options();
        if (c_.pass == Pass::forward) return batch_norm_forward_training(xv, f(0), f(1), outv, f(2), f(3), f(4), f(5), o, workspace_, workspace_bytes_);
        if (c_.pass == Pass::inference) return batch_norm_forward_inference(xv, f(0), f(1), f(2), f(3), outv, o, workspace_, workspace_bytes_);
        return batch_norm_backward(dyv, xv, f(4), f(5), f(0), outv, f(6), f(7), o, workspace_, workspace_bytes_);
      }
      case Layer::group_norm: {
        const GroupNormOptions o = gn_options();
        if (c_.pass == Pass::forward) return group_norm_forward(xv, f(0), f(1), outv, f(4), f(5), o, workspace_, workspace_bytes_);
        return group_norm_backward(dyv, xv, f(4), f(5), f(0), outv, f(6), f(7), o, workspace_, workspace_bytes_);
      }
    }
    return Status::success();
  }

 private:
  TensorView view(void* p) const { return TensorView(p, c_.dtype, c_.shape.data(), static_cast<int>(c_.shape.size()), space_); }
  LayerNormOptions ln_options() const {
    LayerNormOptions o;
    o.kind = c_.layer == Layer::rms_norm ? RowNorm::rms_norm : RowNorm::layer_norm;
    return o;
  }
  BatchNormOptions bn_options() const { return c_.channels_last ? BatchNormOptions::keras() : BatchNormOptions::pytorch(); }
  GroupNormOptions gn_options() const { return c_.channels_last ? GroupNormOptions::keras(32) : GroupNormOptions::pytorch(32); }

  LayerCase c_;
  MemorySpace space_;
  std::size_t bytes_ = 0;
  std::vector<unsigned char> host_x_, host_dy_, host_out_;
  std::vector<std::int64_t> floats_;
  std::vector<std::vector<float>> host_floats_;
  std::vector<float*> float_ptrs_;
  void* workspace_ = nullptr;
  std::size_t workspace_bytes_ = 0;
#if defined(NORMKIT_WITH_CUDA)
  std::unique_ptr<DeviceRotation> xs_, dys_, outs_;
#endif
};

void layer_bench(benchmark::State& state, const LayerCase& c, MemorySpace space) {
  LayerBuffers b(c, space);
  if (!b.init()) {
    state.SkipWithError("buffers");
    return;
  }
  Status s = b.run(0);  // warm-up (and the workspace's first use)
  if (!s.ok()) {
    state.SkipWithError(s.message().c_str());
    return;
  }
  std::int64_t call = 0;
#if defined(NORMKIT_WITH_CUDA)
  if (space == MemorySpace::device) {
    DeviceTimer t;
    for (auto _ : state) {
      t.time(state, [&] { s = b.run(call); });
      ++call;
    }
  }
#endif
  if (space == MemorySpace::host) {
    for (auto _ : state) s = b.run(call++);
  }
  if (!s.ok()) state.SkipWithError(s.message().c_str());
  // (x_reads + x_writes x-sized transfers a call, against a copy's read + write of x)
  const std::size_t read = b.bytes() * static_cast<std::size_t>(c.x_reads), written = b.bytes() * static_cast<std::size_t>(c.x_writes);
  report_read_write(state, read, written, (space == MemorySpace::host ? "host/" : "device/") + std::to_string(b.bytes()));
}

}  // namespace

void register_layer_benchmarks() {
  for (bool large : {false, true}) {
    for (const LayerCase& c : layer_cases(large)) {
      register_copies(static_cast<std::size_t>(numel(c.shape)) * dtype_size(c.dtype));
      const std::string name = c.name + "/" + (large ? "large" : "small");
      if (!large) {
        benchmark::RegisterBenchmark(("host/" + name).c_str(), [c](benchmark::State& st) { layer_bench(st, c, MemorySpace::host); })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
#if defined(NORMKIT_WITH_CUDA)
      if (cuda_available()) {
        benchmark::RegisterBenchmark(("device/" + name).c_str(), [c](benchmark::State& st) { layer_bench(st, c, MemorySpace::device); })
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
      }
#endif
    }
  }
}
