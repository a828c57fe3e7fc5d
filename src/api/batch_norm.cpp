// Public BatchNorm API: validate every tensor against x and C, then run the phases on the host engine or
// the kernels. The forward's statistics are the statistics engine's (accumulate_stats) and its apply is
// the fused apply (apply_affine), both called through their public entry points.
#include "normkit/batch_norm.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "api/validation.hpp"
#include "cpu/batch_norm_cpu.hpp"
#include "kernels/batch_norm/batch_norm_launch.hpp"
#include "math/batch_norm.hpp"
#include "normkit/normalize.hpp"
#include "normkit/stats.hpp"
#include "plan/batch_norm_plan.hpp"

namespace normkit {
namespace {

struct ChannelCall {
  const TensorView* x = nullptr;
  int axis = 1;  // the channel axis
  plan::ChannelGeometry g;
  bool empty() const { return g.per_channel() == 0 || g.channels == 0; }
  ReduceAxes reduced() const { return ReduceAxes::keeping(x->ndim, {axis}); }
};

Status check_options(const BatchNormOptions& o, const std::string& op) {
  if (!(o.channel_axis == ChannelAxis::first || o.channel_axis == ChannelAxis::last)) {
    return argument_error(StatusCode::invalid_argument, op, "options.channel_axis", "first or last", std::to_string(static_cast<int>(o.channel_axis)));
  }
  if (!(o.running_stats == RunningStatsConvention::pytorch || o.running_stats == RunningStatsConvention::keras)) {
    return argument_error(StatusCode::invalid_argument, op, "options.running_stats", "pytorch or keras",
                          std::to_string(static_cast<int>(o.running_stats)));
  }
  if (!(std::isfinite(o.eps) && o.eps >= 0.0)) {
    return argument_error(StatusCode::invalid_argument, op, "options.eps", "a finite value >= 0", api::number(o.eps));
  }
  if (!(o.momentum >= 0.0 && o.momentum <= 1.0)) {
    return argument_error(StatusCode::invalid_argument, op, "options.momentum", "a value in [0, 1]", api::number(o.momentum));
  }
  if (o.cumulative_average) {
    if (o.running_stats != RunningStatsConvention::pytorch) {
      return argument_error(StatusCode::invalid_argument, op, "options.cumulative_average",
                            "false with the keras convention (PyTorch's momentum=None only)", "true");
    }
    if (o.batches_tracked < 1) {
      return argument_error(StatusCode::invalid_argument, op, "options.batches_tracked",
                            ">= 1 with cumulative_average (the batches seen, this one included)", std::to_string(o.batches_tracked));
    }
  }
  return Status::success();
}

// x: rank, dtype, shape, pointer; its [outer, C, inner] geometry.
Status check_x(const TensorView& x, const BatchNormOptions& o, const std::string& op, const char* name, ChannelCall* call) {
  const std::string arg = name;
  NORMKIT_RETURN_IF_ERROR(check_options(o, op));
  if (x.ndim < 2 || x.ndim > kMaxDims) {
    return argument_error(StatusCode::invalid_argument, op, arg + ".ndim", "2.." + std::to_string(kMaxDims) + " (batch and channel axes at least)",
                          std::to_string(x.ndim));
  }
  if (!api::is_layer_dtype(x.dtype)) {
    return argument_error(StatusCode::unsupported_dtype, op, arg + ".dtype", "one of float32, float16, bfloat16", dtype_name(x.dtype));
  }
  std::int64_t numel = 0;
  if (!checked_numel(x.shape.data(), x.ndim, dtype_size(x.dtype), &numel)) {
    return argument_error(StatusCode::overflow, op, arg + ".shape", "non-negative extents whose byte size fits in int64", x.shape_string());
  }
  call->x = &x;
  call->axis = o.channel_axis == ChannelAxis::first ? 1 : x.ndim - 1;
  plan::ChannelGeometry& g = call->g;
  g.channels = x.shape[call->axis];
  g.outer = 1;
  g.inner = 1;
  for (int d = 0; d < x.ndim; ++d) {
    if (d < call->axis) g.outer *= x.shape[d];
    if (d > call->axis) g.inner *= x.shape[d];
  }
  if (x.space == MemorySpace::device && !cuda_available()) {
    return Status(StatusCode::cuda_unavailable, "normkit::" + op + ": " + arg + " is in device memory but no CUDA device is usable");
  }
  if (numel > 0) NORMKIT_RETURN_IF_ERROR(api::validate_pointer(x.data, x.space, dtype_size(x.dtype), op, arg + ".data"));
  return Status::success();
}

// The optional per-channel tensors of a call (absent when data == nullptr).
Status check_channel_tensors(std::initializer_list<std::pair<const TensorView*, const char*>> tensors, std::int64_t channels,
                             MemorySpace space, const std::string& op) {
  return api::validate_float_arrays(tensors, channels, "one per channel", space, op);
}

using api::buffer;
using api::require;

float* floats(const TensorView& t) { return static_cast<float*>(t.data); }

// ---- Device workspace layout ------------------------------------------------------------------------------
// Forward: summaries (C) | center, scale, offset (C doubles each) | the statistics engine's workspace.
// Backward: plan::batch_norm_backward_workspace.
struct ForwardWorkspace {
  std::size_t summaries = 0, affine = 0, engine = 0, total = 0;
};

Status forward_workspace(const ChannelCall& call, ForwardWorkspace* w) {
  const std::size_t c = static_cast<std::size_t>(call.g.channels);
  w->summaries = plan::round_up_256(c * sizeof(StatsSummary));
  w->affine = 3 * plan::round_up_256(c * sizeof(double));
  StatsOptions so;
  so.axes = call.reduced();
  NORMKIT_RETURN_IF_ERROR(stats_workspace_size(*call.x, so, &w->engine));
  w->total = w->summaries + w->affine + w->engine;
  return Status::success();
}

Status check_call_buffers(const std::vector<api::Buffer>& outputs, const std::vector<api::Buffer>& inputs, MemorySpace space,
                          void* workspace, std::size_t bytes, std::size_t needed, const std::string& op) {
  return api::check_call_buffers(outputs, inputs, space, workspace, bytes, needed, "batch_norm_workspace_size", op);
}

char* at(void* base, std::size_t offset) { return static_cast<char*>(base) + offset; }

// y = (x - center) * scale + offset with the channel's coefficients from mean and rstd (or the running
// variance). `affine_base`: device scratch of 3 rounded C-double arrays (null on the host).
Status apply_channels(const ChannelCall& call, const float* mean, const float* rstd_or_var, bool from_variance,
                      const TensorView& gamma, const TensorView& beta, const TensorView& y, const BatchNormOptions& o,
                      void* affine_base, Stream stream) {
  const std::int64_t channels = call.g.channels;
  std::vector<double> host;
  const AffineCoefficients a = api::affine_arrays(affine_base, channels, &host);
  const float eps = static_cast<float>(o.eps);
  if (call.x->space == MemorySpace::host) {
    cpu::batch_norm_affine(mean, rstd_or_var, from_variance, eps, floats(gamma), floats(beta), channels, a);
  } else {
    NORMKIT_RETURN_IF_ERROR(kernels::launch_batch_norm_affine(mean, rstd_or_var, from_variance, eps, floats(gamma), floats(beta),
                                                              channels, a, stream));
  }
  return apply_affine(*call.x, call.reduced(), a, y, stream);
}

Status finalize_channels(const StatsSummary* summaries, std::int64_t channels, MemorySpace space, float* running_mean,
                         float* running_var, float* saved_mean, float* saved_rstd, const BatchNormOptions& o, Stream stream) {
  const math::RunningUpdate u = math::running_update_of(o);
  const float eps = static_cast<float>(o.eps);
  if (space == MemorySpace::host) {
    cpu::batch_norm_finalize(summaries, channels, running_mean, running_var, saved_mean, saved_rstd, eps, u);
    return Status::success();
  }
  return kernels::launch_batch_norm_finalize(summaries, channels, running_mean, running_var, saved_mean, saved_rstd, eps, u, nullptr,
                                             nullptr, nullptr, stream);
}

kernels::BatchNormBackwardCall backward_call(const ChannelCall& call, const TensorView& dy, const TensorView& mean,
                                             const TensorView& rstd, const TensorView& gamma, const TensorView& dx) {
  kernels::BatchNormBackwardCall c;
  c.dy = dy.data;
  c.x = call.x->data;
  c.dtype = call.x->dtype;
  c.mean = floats(mean);
  c.rstd = floats(rstd);
  c.gamma = floats(gamma);
  c.geometry = call.g;
  c.plan = plan::choose_channel_plan(call.g, call.x->dtype);
  c.aligned = api::aligned16({dy.data, call.x->data, dx.data});
  return c;
}

Status reduce_sums(const ChannelCall& call, const kernels::BatchNormBackwardCall& c, float* sum_dy, float* sum_dy_xmu,
                   float* partials, Stream stream) {
  if (call.x->space == MemorySpace::host) {
    return cpu::batch_norm_backward_reduce(c.dy, c.x, c.dtype, c.mean, 1, call.g, sum_dy, sum_dy_xmu, host_threads());
  }
  return kernels::launch_batch_norm_backward_reduce(c, partials, sum_dy, sum_dy_xmu, stream);
}

Status apply_gradients(const ChannelCall& call, const kernels::BatchNormBackwardCall& c, const float* sum_dy,
                       const float* sum_dy_xmu, double count, const TensorView& dx,
                       const TensorView& dgamma, const TensorView& dbeta, Stream stream) {
  if (call.x->space == MemorySpace::host) {
    return cpu::batch_norm_backward_apply(c.dy, c.x, c.dtype, c.mean, c.rstd, c.gamma, sum_dy, sum_dy_xmu, count, call.g, dx.data,
                                          floats(dgamma), floats(dbeta), host_threads());
  }
  return kernels::launch_batch_norm_backward_apply(c, sum_dy, sum_dy_xmu, count, dx.data, floats(dgamma),
                                                   floats(dbeta), stream);
}

// The backward's tensors, validated for every backward entry point.
Status check_backward_inputs(const ChannelCall& call, const TensorView& dy, const TensorView& mean, const std::string& op) {
  NORMKIT_RETURN_IF_ERROR(api::validate_like(dy, *call.x, call.empty(), op, "dy"));
  if (!call.empty()) NORMKIT_RETURN_IF_ERROR(require(mean, "saved_mean", "the forward's saved mean", op));
  return check_channel_tensors({{&mean, "saved_mean"}}, call.g.channels, call.x->space, op);
}

struct Named {
  const TensorView& t;
  const char* name;
};

// y = (x - mean) * (rstd * gamma) + beta with the channel's mean and rstd (or, from_variance, running mean
// and variance): batch_norm_normalize and batch_norm_forward_inference.
Status normalize_channels(const std::string& op, const TensorView& x, Named mean, Named second, bool from_variance,
                          const TensorView& gamma, const TensorView& beta, const TensorView& y, const BatchNormOptions& options,
                          void* workspace, std::size_t workspace_bytes, Stream stream) {
  ChannelCall call;
  NORMKIT_RETURN_IF_ERROR(check_x(x, options, op, "x", &call));
  NORMKIT_RETURN_IF_ERROR(api::validate_like(y, x, call.empty(), op, "y"));
  if (call.empty()) return Status::success();
  NORMKIT_RETURN_IF_ERROR(require(mean.t, mean.name, "a per-channel mean", op));
  NORMKIT_RETURN_IF_ERROR(require(second.t, second.name, from_variance ? "a per-channel variance" : "a per-channel rstd", op));
  NORMKIT_RETURN_IF_ERROR(check_channel_tensors({{&mean.t, mean.name}, {&second.t, second.name}, {&gamma, "gamma"}, {&beta, "beta"}},
                                                call.g.channels, x.space, op));
  ForwardWorkspace f;
  if (x.space == MemorySpace::device) NORMKIT_RETURN_IF_ERROR(forward_workspace(call, &f));
  NORMKIT_RETURN_IF_ERROR(check_call_buffers({buffer("y", y)},
                                             {buffer("x", x), buffer(mean.name, mean.t), buffer(second.name, second.t),
                                              buffer("gamma", gamma), buffer("beta", beta)},
                                             x.space, workspace, workspace_bytes, f.affine, op));
  void* affine_base = x.space == MemorySpace::device ? workspace : nullptr;
  return apply_channels(call, floats(mean.t), floats(second.t), from_variance, gamma, beta, y, options, affine_base, stream);
}

}  // namespace

Status batch_norm_channels(const TensorView& x, const BatchNormOptions& options, std::int64_t* channels) {
  ChannelCall call;
  NORMKIT_RETURN_IF_ERROR(check_x(x, options, "batch_norm_channels", "x", &call));
  *channels = call.g.channels;
  return Status::success();
}

Status batch_norm_workspace_size(const TensorView& x, const BatchNormOptions& options, std::size_t* bytes) {
  ChannelCall call;
  NORMKIT_RETURN_IF_ERROR(check_x(x, options, "batch_norm_workspace_size", "x", &call));
  if (x.space == MemorySpace::host) {
    *bytes = 0;
    return Status::success();
  }
  ForwardWorkspace f;
  NORMKIT_RETURN_IF_ERROR(forward_workspace(call, &f));
  const auto b = plan::batch_norm_backward_workspace(call.g, plan::choose_channel_plan(call.g, x.dtype));
  *bytes = f.total > b.total ? f.total : b.total;
  return Status::success();
}

Status batch_norm_statistics(const TensorView& x, const BatchNormOptions& options, StatsSummary* summaries,
                             std::int64_t num_summaries, void* workspace, std::size_t workspace_bytes, Stream stream) {
  const std::string op = "batch_norm_statistics";
  ChannelCall call;
  NORMKIT_RETURN_IF_ERROR(check_x(x, options, op, "x", &call));
  if (num_summaries != call.g.channels) {
    return argument_error(StatusCode::shape_mismatch, op, "num_summaries", std::to_string(call.g.channels) + " (one per channel)",
                          std::to_string(num_summaries));
  }
  StatsOptions so;
  so.axes = call.reduced();
  return api::accumulate_moment_summaries(x, so, summaries, num_summaries, workspace, workspace_bytes, stream, op);
}

Status batch_norm_finalize(const StatsSummary* summaries, std::int64_t num_summaries, MemorySpace space,
                           const TensorView& running_mean, const TensorView& running_var, const TensorView& saved_mean,
                           const TensorView& saved_rstd, const BatchNormOptions& options, Stream stream) {
  const std::string op = "batch_norm_finalize";
  NORMKIT_RETURN_IF_ERROR(check_options(options, op));
  if (num_summaries < 0) return argument_error(StatusCode::invalid_argument, op, "num_summaries", ">= 0", std::to_string(num_summaries));
  if (space == MemorySpace::device && !cuda_available()) {
    return Status(StatusCode::cuda_unavailable, "normkit::" + op + ": summaries are in device memory but no CUDA device is usable");
  }
  if (num_summaries == 0) return Status::success();
  NORMKIT_RETURN_IF_ERROR(api::validate_pointer(summaries, space, 8, op, "summaries"));
  NORMKIT_RETURN_IF_ERROR(check_channel_tensors(
      {{&running_mean, "running_mean"}, {&running_var, "running_var"}, {&saved_mean, "saved_mean"}, {&saved_rstd, "saved_rstd"}},
      num_summaries, space, op));
  const api::Buffer in{"summaries", summaries, static_cast<std::size_t>(num_summaries) * sizeof(StatsSummary)};
  NORMKIT_RETURN_IF_ERROR(api::check_apart({buffer("running_mean", running_mean), buffer("running_var", running_var),
                                            buffer("saved_mean", saved_mean), buffer("saved_rstd", saved_rstd)},
                                           {in}, op));
  return finalize_channels(summaries, num_summaries, space, floats(running_mean), floats(running_var), floats(saved_mean),
                           floats(saved_rstd), options, stream);
}

Status batch_norm_normalize(const TensorView& x, const TensorView& saved_mean, const TensorView& saved_rstd,
                            const TensorView& gamma, const TensorView& beta, const TensorView& y,
                            const BatchNormOptions& options, void* workspace, std::size_t workspace_bytes, Stream stream) {
  return normalize_channels("batch_norm_normalize", x, {saved_mean, "saved_mean"}, {saved_rstd, "saved_rstd"}, false, gamma, beta, y,
                            options, workspace, workspace_bytes, stream);
}

Status batch_norm_forward_training(const TensorView& x, const TensorView& gamma, const TensorView& beta,
                                   const TensorView& y, const TensorView& running_mean, const TensorView& running_var,
                                   const TensorView& saved_mean, const TensorView& saved_rstd,
                                   const BatchNormOptions& options, void* workspace, std::size_t workspace_bytes, Stream stream) {
  const std::string op = "batch_norm_forward_training";
  ChannelCall call;
  NORMKIT_RETURN_IF_ERROR(check_x(x, options, op, "x", &call));
  NORMKIT_RETURN_IF_ERROR(api::validate_like(y, x, call.empty(), op, "y"));
  NORMKIT_RETURN_IF_ERROR(check_channel_tensors({{&gamma, "gamma"}, {&beta, "beta"}, {&running_mean, "running_mean"},
                                                 {&running_var, "running_var"}, {&saved_mean, "saved_mean"}, {&saved_rstd, "saved_rstd"}},
                                                call.g.channels, x.space, op));
  if (call.g.per_channel() == 1) {
    return argument_error(StatusCode::invalid_argument, op, "x.shape",
                          "more than 1 value per channel when training (PyTorch's rule)", x.shape_string() + ": 1 value per channel");
  }
  const std::vector<api::Buffer> inputs{buffer("x", x), buffer("gamma", gamma), buffer("beta", beta)};
  const std::vector<api::Buffer> outputs{buffer("y", y), buffer("running_mean", running_mean), buffer("running_var", running_var),
                                         buffer("saved_mean", saved_mean), buffer("saved_rstd", saved_rstd)};
  if (call.empty()) return api::check_apart(outputs, inputs, op);
  ForwardWorkspace f;
  if (x.space == MemorySpace::device) NORMKIT_RETURN_IF_ERROR(forward_workspace(call, &f));
  NORMKIT_RETURN_IF_ERROR(check_call_buffers(outputs, inputs, x.space, workspace, workspace_bytes, f.total, op));
  const std::int64_t channels = call.g.channels;
  StatsOptions so;
  so.axes = call.reduced();
  if (x.space == MemorySpace::host) {
    std::vector<StatsSummary> summaries(static_cast<std::size_t>(channels));
    std::vector<float> scratch(2 * static_cast<std::size_t>(channels));
    float* mean = saved_mean.data ? floats(saved_mean) : scratch.data();
    float* rstd = saved_rstd.data ? floats(saved_rstd) : scratch.data() + channels;
    NORMKIT_RETURN_IF_ERROR(api::accumulate_moment_summaries(x, so, summaries.data(), channels, nullptr, 0, stream, op));
    NORMKIT_RETURN_IF_ERROR(finalize_channels(summaries.data(), channels, x.space, floats(running_mean), floats(running_var), mean, rstd,
                                              options, stream));
    return apply_channels(call, mean, rstd, false, gamma, beta, y, options, nullptr, stream);
  }
  // Statistics, then one finalize that also writes the apply's coefficients (the phases' normalize computes
  // the same coefficients from the saved statistics: the same bits), then the apply.
  auto* summaries = reinterpret_cast<StatsSummary*>(at(workspace, 0));
  std::vector<double> unused;
  const AffineCoefficients affine = api::affine_arrays(at(workspace, f.summaries), channels, &unused);
  void* engine = f.engine ? at(workspace, f.summaries + f.affine) : nullptr;
  NORMKIT_RETURN_IF_ERROR(api::accumulate_moment_summaries(x, so, summaries, channels, engine, f.engine, stream, op));
  NORMKIT_RETURN_IF_ERROR(kernels::launch_batch_norm_finalize(summaries, channels, floats(running_mean), floats(running_var),
                                                              floats(saved_mean), floats(saved_rstd), static_cast<float>(options.eps),
                                                              math::running_update_of(options), floats(gamma), floats(beta), &affine,
                                                              stream));
  return apply_affine(x, call.reduced(), affine, y, stream);
}

Status batch_norm_forward_inference(const TensorView& x, const TensorView& gamma, const TensorView& beta,
                                    const TensorView& running_mean, const TensorView& running_var, const TensorView& y,
                                    const BatchNormOptions& options, void* workspace, std::size_t workspace_bytes, Stream stream) {
  return normalize_channels("batch_norm_forward_inference", x, {running_mean, "running_mean"}, {running_var, "running_var"}, true, gamma,
                            beta, y, options, workspace, workspace_bytes, stream);
}

Status batch_norm_backward_reduce(const TensorView& dy, const TensorView& x, const TensorView& saved_mean,
                                  const TensorView& sum_dy, const TensorView& sum_dy_xmu, const BatchNormOptions& options,
                                  void* workspace, std::size_t workspace_bytes, Stream stream) {
  const std::string op = "batch_norm_backward_reduce";
  ChannelCall call;
  NORMKIT_RETURN_IF_ERROR(check_x(x, options, op, "x", &call));
  NORMKIT_RETURN_IF_ERROR(check_backward_inputs(call, dy, saved_mean, op));
  // (a rank with no values still writes its sums, zeros, for the merge)
  if (call.g.channels == 0) return Status::success();
  NORMKIT_RETURN_IF_ERROR(require(sum_dy, "sum_dy", "an output of C floats", op));
  NORMKIT_RETURN_IF_ERROR(require(sum_dy_xmu, "sum_dy_xmu", "an output of C floats", op));
  NORMKIT_RETURN_IF_ERROR(check_channel_tensors({{&sum_dy, "sum_dy"}, {&sum_dy_xmu, "sum_dy_xmu"}}, call.g.channels, x.space, op));
  const std::vector<api::Buffer> inputs{buffer("dy", dy), buffer("x", x), buffer("saved_mean", saved_mean)};
  const std::vector<api::Buffer> outputs{buffer("sum_dy", sum_dy), buffer("sum_dy_xmu", sum_dy_xmu)};
  const kernels::BatchNormBackwardCall c = backward_call(call, dy, saved_mean, TensorView(), TensorView(), TensorView());
  const auto w = plan::batch_norm_backward_workspace(call.g, c.plan);
  NORMKIT_RETURN_IF_ERROR(check_call_buffers(outputs, inputs, x.space, workspace, workspace_bytes, w.partials, op));
  return reduce_sums(call, c, floats(sum_dy), floats(sum_dy_xmu), static_cast<float*>(workspace), stream);
}

Status batch_norm_backward_apply(const TensorView& dy, const TensorView& x, const TensorView& saved_mean,
                                 const TensorView& saved_rstd, const TensorView& gamma, const TensorView& sum_dy,
                                 const TensorView& sum_dy_xmu, std::int64_t count, const TensorView& dx,
                                 const TensorView& dgamma, const TensorView& dbeta, const BatchNormOptions& options,
                                 void* workspace, std::size_t workspace_bytes, Stream stream) {
  const std::string op = "batch_norm_backward_apply";
  ChannelCall call;
  NORMKIT_RETURN_IF_ERROR(check_x(x, options, op, "x", &call));
  NORMKIT_RETURN_IF_ERROR(check_backward_inputs(call, dy, saved_mean, op));
  if (count < 0) return argument_error(StatusCode::invalid_argument, op, "count", ">= 0 (0: x's own values per channel)", std::to_string(count));
  if (dx.data) NORMKIT_RETURN_IF_ERROR(api::validate_like(dx, x, call.empty(), op, "dx"));
  // (a rank with no values still writes dgamma and dbeta from the merged sums)
  if (call.g.channels == 0) return Status::success();
  NORMKIT_RETURN_IF_ERROR(require(saved_mean, "saved_mean", "the forward's saved mean", op));
  NORMKIT_RETURN_IF_ERROR(require(saved_rstd, "saved_rstd", "the forward's saved rstd", op));
  NORMKIT_RETURN_IF_ERROR(require(sum_dy, "sum_dy", "the reduce's sum_dy", op));
  NORMKIT_RETURN_IF_ERROR(require(sum_dy_xmu, "sum_dy_xmu", "the reduce's sum_dy_xmu", op));
  NORMKIT_RETURN_IF_ERROR(check_channel_tensors({{&saved_rstd, "saved_rstd"}, {&gamma, "gamma"}, {&sum_dy, "sum_dy"},
                                                 {&sum_dy_xmu, "sum_dy_xmu"}, {&dgamma, "dgamma"}, {&dbeta, "dbeta"}},
                                                call.g.channels, x.space, op));
  const std::vector<api::Buffer> inputs{buffer("dy", dy), buffer("x", x), buffer("saved_mean", saved_mean),
                                        buffer("saved_rstd", saved_rstd), buffer("gamma", gamma), buffer("sum_dy", sum_dy),
                                        buffer("sum_dy_xmu", sum_dy_xmu)};
  const std::vector<api::Buffer> outputs{buffer("dx", dx), buffer("dgamma", dgamma), buffer("dbeta", dbeta)};
  const kernels::BatchNormBackwardCall c = backward_call(call, dy, saved_mean, saved_rstd, gamma, dx);
  NORMKIT_RETURN_IF_ERROR(check_call_buffers(outputs, inputs, x.space, workspace, workspace_bytes, 0, op));
  const double n = static_cast<double>(count > 0 ? count : call.g.per_channel());
  return apply_gradients(call, c, floats(sum_dy), floats(sum_dy_xmu), n, dx, dgamma, dbeta, stream);
}

Status batch_norm_backward(const TensorView& dy, const TensorView& x, const TensorView& saved_mean,
                           const TensorView& saved_rstd, const TensorView& gamma, const TensorView& dx,
                           const TensorView& dgamma, const TensorView& dbeta, const BatchNormOptions& options,
                           void* workspace, std::size_t workspace_bytes, Stream stream) {
  const std::string op = "batch_norm_backward";
  ChannelCall call;
  NORMKIT_RETURN_IF_ERROR(check_x(x, options, op, "x", &call));
  NORMKIT_RETURN_IF_ERROR(check_backward_inputs(call, dy, saved_mean, op));
  if (dx.data) NORMKIT_RETURN_IF_ERROR(api::validate_like(dx, x, call.empty(), op, "dx"));
  if (call.empty()) return Status::success();
  NORMKIT_RETURN_IF_ERROR(require(saved_rstd, "saved_rstd", "the forward's saved rstd", op));
  NORMKIT_RETURN_IF_ERROR(check_channel_tensors({{&saved_rstd, "saved_rstd"}, {&gamma, "gamma"}, {&dgamma, "dgamma"}, {&dbeta, "dbeta"}},
                                                call.g.channels, x.space, op));
  const std::vector<api::Buffer> inputs{buffer("dy", dy), buffer("x", x), buffer("saved_mean", saved_mean),
                                        buffer("saved_rstd", saved_rstd), buffer("gamma", gamma)};
  const std::vector<api::Buffer> outputs{buffer("dx", dx), buffer("dgamma", dgamma), buffer("dbeta", dbeta)};
  const kernels::BatchNormBackwardCall c = backward_call(call, dy, saved_mean, saved_rstd, gamma, dx);
  const auto w = plan::batch_norm_backward_workspace(call.g, c.plan);
  NORMKIT_RETURN_IF_ERROR(check_call_buffers(outputs, inputs, x.space, workspace, workspace_bytes, w.total, op));
  const double n = static_cast<double>(call.g.per_channel());
  if (x.space == MemorySpace::host) {
    std::vector<float> sums(2 * static_cast<std::size_t>(call.g.channels));
    NORMKIT_RETURN_IF_ERROR(reduce_sums(call, c, sums.data(), sums.data() + call.g.channels, nullptr, stream));
    return apply_gradients(call, c, sums.data(), sums.data() + call.g.channels, n, dx, dgamma, dbeta, stream);
  }
  auto* sum_dy = reinterpret_cast<float*>(at(workspace, 0));
  float* sum_dy_xmu = sum_dy + call.g.channels;
  auto* partials = reinterpret_cast<float*>(at(workspace, w.sums));
  NORMKIT_RETURN_IF_ERROR(reduce_sums(call, c, sum_dy, sum_dy_xmu, partials, stream));
  return apply_gradients(call, c, sum_dy, sum_dy_xmu, n, dx, dgamma, dbeta, stream);
}

Status batch_norm_backward_eval(const TensorView& dy, const TensorView& x, const TensorView& gamma,
                                const TensorView& running_mean, const TensorView& running_var, const TensorView& dx,
                                const TensorView& dgamma, const TensorView& dbeta, const BatchNormOptions& options,
                                void* workspace, std::size_t workspace_bytes, Stream stream) {
  const std::string op = "batch_norm_backward_eval";
  ChannelCall call;
  NORMKIT_RETURN_IF_ERROR(check_x(x, options, op, "x", &call));
  NORMKIT_RETURN_IF_ERROR(api::validate_like(dy, x, call.empty(), op, "dy"));
  if (dx.data) NORMKIT_RETURN_IF_ERROR(api::validate_like(dx, x, call.empty(), op, "dx"));
  NORMKIT_RETURN_IF_ERROR(check_channel_tensors({{&gamma, "gamma"}, {&running_mean, "running_mean"}, {&running_var, "running_var"},
                                                 {&dgamma, "dgamma"}, {&dbeta, "dbeta"}},
                                                call.g.channels, x.space, op));
  if (call.empty()) return Status::success();
  const bool params = dgamma.data || dbeta.data;
  NORMKIT_RETURN_IF_ERROR(require(running_var, "running_var", "the running variance", op));
  if (dgamma.data) NORMKIT_RETURN_IF_ERROR(require(running_mean, "running_mean", "the running mean (for dgamma)", op));
  const std::vector<api::Buffer> inputs{buffer("dy", dy), buffer("x", x), buffer("gamma", gamma), buffer("running_mean", running_mean),
                                        buffer("running_var", running_var)};
  const std::vector<api::Buffer> outputs{buffer("dx", dx), buffer("dgamma", dgamma), buffer("dbeta", dbeta)};
  // The sums, then (stream-ordered, in the same scratch) the apply's coefficients.
  const kernels::BatchNormBackwardCall c = backward_call(call, dy, running_mean, TensorView(), gamma, TensorView());
  const auto w = plan::batch_norm_backward_workspace(call.g, c.plan);
  std::size_t needed = 0;
  if (x.space == MemorySpace::device) {
    ForwardWorkspace f;
    NORMKIT_RETURN_IF_ERROR(forward_workspace(call, &f));
    needed = std::max(params ? w.total : 0, dx.data ? f.affine : 0);
  }
  NORMKIT_RETURN_IF_ERROR(check_call_buffers(outputs, inputs, x.space, workspace, workspace_bytes, needed, op));
  const float eps = static_cast<float>(options.eps);
  if (params) {
    const std::int64_t channels = call.g.channels;
    std::vector<float> host_sums(x.space == MemorySpace::host ? 2 * static_cast<std::size_t>(channels) : 0);
    float* sum_dy = x.space == MemorySpace::host ? host_sums.data() : reinterpret_cast<float*>(at(workspace, 0));
    float* sum_dy_xmu = sum_dy + channels;
    // (without dgamma the mean does not matter: Σ dy is all dbeta takes; the running variance stands in)
    kernels::BatchNormBackwardCall sums = c;
    if (!running_mean.data) sums.mean = floats(running_var);
    float* partials = x.space == MemorySpace::device ? reinterpret_cast<float*>(at(workspace, w.sums)) : nullptr;
    NORMKIT_RETURN_IF_ERROR(reduce_sums(call, sums, sum_dy, sum_dy_xmu, partials, stream));
    if (x.space == MemorySpace::host) {
      for (std::int64_t k = 0; k < channels; ++k) {
        if (dgamma.data) floats(dgamma)[k] = math::batch_norm_eval_dgamma(sum_dy_xmu[k], floats(running_var)[k], eps);
        if (dbeta.data) floats(dbeta)[k] = sum_dy[k];
      }
    } else {
      NORMKIT_RETURN_IF_ERROR(kernels::launch_batch_norm_eval_param_grads(sum_dy, sum_dy_xmu, floats(running_var), eps, channels,
                                                                         floats(dgamma), floats(dbeta), stream));
    }
  }
  if (!dx.data) return Status::success();
  ChannelCall on_dy = call;
  on_dy.x = &dy;
  void* affine_base = x.space == MemorySpace::device ? workspace : nullptr;
  return apply_channels(on_dy, nullptr, floats(running_var), true, gamma, TensorView(), dx, options, affine_base, stream);
}

}  // namespace normkit
