// Public GroupNorm API: validate, then run the steps on the host engine or the kernels. The forward is the
// statistics engine (accumulate_stats over a view of x whose kept axes are (sample, group)), GroupNorm's
// finalize and the fused apply (apply_affine with per-(sample, channel) coefficients); the backward is
// BatchNorm's channel sums over a sample axis, GroupNorm's coefficients and BatchNorm's channel dx.
#include "normkit/group_norm.hpp"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "api/validation.hpp"
#include "cpu/batch_norm_cpu.hpp"
#include "cpu/group_norm_cpu.hpp"
#include "kernels/batch_norm/batch_norm_launch.hpp"
#include "kernels/group_norm/group_norm_launch.hpp"
#include "math/group_norm.hpp"
#include "normkit/normalize.hpp"
#include "normkit/stats.hpp"
#include "plan/batch_norm_plan.hpp"

namespace normkit {
namespace {

constexpr const char* kSizeQuery = "group_norm_workspace_size";

// x as N samples of C channels of S values, G groups of cg channels.
struct GroupCall {
  const TensorView* x = nullptr;
  bool last = false;  // channels last
  std::int64_t n = 0, c = 0, s = 1, groups = 0, cg = 1;

  bool empty() const { return n == 0 || c == 0 || s == 0; }
  std::int64_t group_count() const { return n * groups; }
  math::GroupShape shape() const { return math::GroupShape{n, c, cg}; }
  plan::ChannelGeometry geometry() const {
    return last ? plan::ChannelGeometry{s, c, 1, n, true} : plan::ChannelGeometry{1, c, s, n, true};
  }
  // x as the statistics engine reads it: channels first [N * G, cg * S] reducing axis 1 (a summary a group,
  // the segments walk); channels last [N, S, C] reducing axis 1 (a summary a (sample, channel), the batched
  // columns walk, merged per group by the finalize: the engine reads [N, S, G, cg] over axes 1 and 3 with
  // cg-element runs, 4.4x the bytes at 23% coalescing for cg = 2).
  TensorView stats_view(ReduceAxes* axes) const {
    *axes = ReduceAxes::of({1});
    return last ? TensorView(x->data, x->dtype, {n, s, c}, x->space) : TensorView(x->data, x->dtype, {n * groups, cg * s}, x->space);
  }
  std::int64_t summaries_per_group() const { return last ? cg : 1; }
  std::int64_t summary_count() const { return group_count() * summaries_per_group(); }
  // t (x's shape) as the fused apply reads it, coefficients per (sample, channel): [N, C, S] reducing axis
  // 2, or [N, S, C] reducing axis 1.
  TensorView apply_view(const TensorView& t, ReduceAxes* axes) const {
    *axes = ReduceAxes::of({last ? 1 : 2});
    return last ? TensorView(t.data, t.dtype, {n, s, c}, t.space) : TensorView(t.data, t.dtype, {n, c, s}, t.space);
  }
};

Status check_options(const GroupNormOptions& o, const std::string& op) {
  if (!(o.channel_axis == ChannelAxis::first || o.channel_axis == ChannelAxis::last)) {
    return argument_error(StatusCode::invalid_argument, op, "options.channel_axis", "first or last", std::to_string(static_cast<int>(o.channel_axis)));
  }
  if (!(std::isfinite(o.eps) && o.eps >= 0.0)) {
    return argument_error(StatusCode::invalid_argument, op, "options.eps", "a finite value >= 0", api::number(o.eps));
  }
  if (o.groups < 0) {
    return argument_error(StatusCode::invalid_argument, op, "options.groups", ">= 0 (0: a group a channel)", std::to_string(o.groups));
  }
  return Status::success();
}

Status check_x(const TensorView& x, const GroupNormOptions& o, const std::string& op, GroupCall* call) {
  NORMKIT_RETURN_IF_ERROR(check_options(o, op));
  if (x.ndim < 2 || x.ndim > kMaxDims) {
    return argument_error(StatusCode::invalid_argument, op, "x.ndim", "2.." + std::to_string(kMaxDims) + " (batch and channel axes at least)",
                          std::to_string(x.ndim));
  }
  if (!api::is_layer_dtype(x.dtype)) {
    return argument_error(StatusCode::unsupported_dtype, op, "x.dtype", "one of float32, float16, bfloat16", dtype_name(x.dtype));
  }
  std::int64_t numel = 0;
  if (!checked_numel(x.shape.data(), x.ndim, dtype_size(x.dtype), &numel)) {
    return argument_error(StatusCode::overflow, op, "x.shape", "non-negative extents whose byte size fits in int64", x.shape_string());
  }
  call->x = &x;
  call->last = o.channel_axis == ChannelAxis::last;
  const int axis = call->last ? x.ndim - 1 : 1;
  call->n = x.shape[0];
  call->c = x.shape[axis];
  call->s = 1;
  for (int d = 1; d < x.ndim; ++d) {
    if (d != axis) call->s *= x.shape[d];
  }
  call->groups = o.groups == 0 ? call->c : o.groups;
  if (call->c > 0 && call->c % call->groups != 0) {
    return argument_error(StatusCode::invalid_argument, op, "options.groups", "a divisor of C = " + std::to_string(call->c),
                          std::to_string(o.groups));
  }
  call->cg = call->c > 0 ? call->c / call->groups : 1;
  if (call->c == 0) call->groups = 0;
  if (x.space == MemorySpace::device && !cuda_available()) {
    return Status(StatusCode::cuda_unavailable, "normkit::" + op + ": x is in device memory but no CUDA device is usable");
  }
  if (numel > 0) NORMKIT_RETURN_IF_ERROR(api::validate_pointer(x.data, x.space, dtype_size(x.dtype), op, "x.data"));
  return Status::success();
}

Status check_channel_tensors(const GroupCall& call, std::initializer_list<std::pair<const TensorView*, const char*>> tensors,
                             const std::string& op) {
  return api::validate_float_arrays(tensors, call.c, "one per channel", call.x->space, op);
}

Status check_group_tensors(const GroupCall& call, std::initializer_list<std::pair<const TensorView*, const char*>> tensors,
                           const std::string& op) {
  return api::validate_float_arrays(tensors, call.group_count(), "N * G: one per (sample, group)", call.x->space, op);
}

float* floats(const TensorView& t) { return static_cast<float*>(t.data); }
char* at(void* base, std::size_t offset) { return static_cast<char*>(base) + offset; }

// ---- Device workspace layout ------------------------------------------------------------------------------
// Forward: summaries (N * G, or N * C channels last) | center, scale, offset (N * C doubles each) | the statistics engine's.
// Backward: sums and partials (plan::batch_norm_backward_workspace) | dx coefficients (N * C).
struct ForwardWorkspace {
  std::size_t summaries = 0, affine = 0, engine = 0, total = 0;
};

Status forward_workspace(const GroupCall& call, ForwardWorkspace* w) {
  w->summaries = plan::round_up_256(static_cast<std::size_t>(call.summary_count()) * sizeof(StatsSummary));
  w->affine = 3 * plan::round_up_256(static_cast<std::size_t>(call.n * call.c) * sizeof(double));
  ReduceAxes axes;
  const TensorView view = call.stats_view(&axes);
  StatsOptions so;
  so.axes = axes;
  NORMKIT_RETURN_IF_ERROR(stats_workspace_size(view, so, &w->engine));
  w->total = w->summaries + w->affine + w->engine;
  return Status::success();
}

struct BackwardWorkspace {
  plan::BatchNormBackwardWorkspace channel;
  std::size_t coefficients = 0, total = 0;
};

BackwardWorkspace backward_workspace(const GroupCall& call) {
  BackwardWorkspace w;
  const plan::ChannelGeometry g = call.geometry();
  w.channel = plan::batch_norm_backward_workspace(g, plan::choose_channel_plan(g, call.x->dtype));
  w.coefficients = plan::round_up_256(static_cast<std::size_t>(g.flat_channels()) * sizeof(math::ChannelGradCoefficients));
  w.total = w.channel.total + w.coefficients;
  return w;
}

}  // namespace

Status group_norm_workspace_size(const TensorView& x, const GroupNormOptions& options, std::size_t* bytes) {
  GroupCall call;
  NORMKIT_RETURN_IF_ERROR(check_x(x, options, kSizeQuery, &call));
  *bytes = 0;
  if (x.space == MemorySpace::host || call.empty()) return Status::success();
  ForwardWorkspace f;
  NORMKIT_RETURN_IF_ERROR(forward_workspace(call, &f));
  const BackwardWorkspace b = backward_workspace(call);
  *bytes = f.total > b.total ? f.total : b.total;
  return Status::success();
}

Status group_norm_forward(const TensorView& x, const TensorView& gamma, const TensorView& beta, const TensorView& y,
                          const TensorView& saved_mean, const TensorView& saved_rstd, const GroupNormOptions& options,
                          void* workspace, std::size_t workspace_bytes, Stream stream) {
  const std::string op = "group_norm_forward";
  GroupCall call;
  NORMKIT_RETURN_IF_ERROR(check_x(x, options, op, &call));
  NORMKIT_RETURN_IF_ERROR(api::validate_like(y, x, call.empty(), op, "y"));
  NORMKIT_RETURN_IF_ERROR(check_channel_tensors(call, {{&gamma, "gamma"}, {&beta, "beta"}}, op));
  NORMKIT_RETURN_IF_ERROR(check_group_tensors(call, {{&saved_mean, "saved_mean"}, {&saved_rstd, "saved_rstd"}}, op));
  const std::vector<api::Buffer> inputs{api::buffer("x", x), api::buffer("gamma", gamma), api::buffer("beta", beta)};
  const std::vector<api::Buffer> outputs{api::buffer("y", y), api::buffer("saved_mean", saved_mean), api::buffer("saved_rstd", saved_rstd)};
  if (call.empty()) return api::check_apart(outputs, inputs, op);
  ForwardWorkspace f;
  if (x.space == MemorySpace::device) NORMKIT_RETURN_IF_ERROR(forward_workspace(call, &f));
  NORMKIT_RETURN_IF_ERROR(api::check_call_buffers(outputs, inputs, x.space, workspace, workspace_bytes, f.total, kSizeQuery, op));

  ReduceAxes stats_axes;
  const TensorView stats_view = call.stats_view(&stats_axes);
  StatsOptions so;
  so.axes = stats_axes;
  const float eps = static_cast<float>(options.eps);
  const bool host = x.space == MemorySpace::host;
  std::vector<StatsSummary> host_summaries;
  std::vector<double> host_affine;
  StatsSummary* summaries = nullptr;
  AffineCoefficients affine;
  if (host) {
    host_summaries.resize(static_cast<std::size_t>(call.summary_count()));
    summaries = host_summaries.data();
    affine = api::affine_arrays(nullptr, call.n * call.c, &host_affine);
  } else {
    summaries = reinterpret_cast<StatsSummary*>(at(workspace, 0));
    affine = api::affine_arrays(at(workspace, f.summaries), call.n * call.c, &host_affine);
  }
  void* engine = f.engine ? at(workspace, f.summaries + f.affine) : nullptr;
  NORMKIT_RETURN_IF_ERROR(api::accumulate_moment_summaries(stats_view, so, summaries, call.summary_count(), engine, f.engine, stream, op));
  if (host) {
    cpu::group_norm_finalize(summaries, call.summaries_per_group(), call.shape(), eps, floats(gamma), floats(beta), floats(saved_mean), floats(saved_rstd), affine);
  } else {
    NORMKIT_RETURN_IF_ERROR(kernels::launch_group_norm_finalize(summaries, call.summaries_per_group(), call.shape(), eps, floats(gamma), floats(beta), floats(saved_mean),
                                                                floats(saved_rstd), affine, stream));
  }
  ReduceAxes apply_axes;
  const TensorView in = call.apply_view(x, &apply_axes);
  return apply_affine(in, apply_axes, affine, call.apply_view(y, &apply_axes), stream);
}

Status group_norm_backward(const TensorView& dy, const TensorView& x, const TensorView& saved_mean,
                           const TensorView& saved_rstd, const TensorView& gamma, const TensorView& dx,
                           const TensorView& dgamma, const TensorView& dbeta, const GroupNormOptions& options,
                           void* workspace, std::size_t workspace_bytes, Stream stream) {
  const std::string op = "group_norm_backward";
  GroupCall call;
  NORMKIT_RETURN_IF_ERROR(check_x(x, options, op, &call));
  NORMKIT_RETURN_IF_ERROR(api::validate_like(dy, x, call.empty(), op, "dy"));
  if (dx.data) NORMKIT_RETURN_IF_ERROR(api::validate_like(dx, x, call.empty(), op, "dx"));
  NORMKIT_RETURN_IF_ERROR(check_channel_tensors(call, {{&gamma, "gamma"}, {&dgamma, "dgamma"}, {&dbeta, "dbeta"}}, op));
  NORMKIT_RETURN_IF_ERROR(check_group_tensors(call, {{&saved_mean, "saved_mean"}, {&saved_rstd, "saved_rstd"}}, op));
  if (call.empty()) return Status::success();
  NORMKIT_RETURN_IF_ERROR(api::require(saved_mean, "saved_mean", "the forward's saved mean", op));
  NORMKIT_RETURN_IF_ERROR(api::require(saved_rstd, "saved_rstd", "the forward's saved rstd", op));
  const std::vector<api::Buffer> inputs{api::buffer("dy", dy), api::buffer("x", x), api::buffer("saved_mean", saved_mean),
                                        api::buffer("saved_rstd", saved_rstd), api::buffer("gamma", gamma)};
  const std::vector<api::Buffer> outputs{api::buffer("dx", dx), api::buffer("dgamma", dgamma), api::buffer("dbeta", dbeta)};
  const BackwardWorkspace w = backward_workspace(call);
  NORMKIT_RETURN_IF_ERROR(api::check_call_buffers(outputs, inputs, x.space, workspace, workspace_bytes, w.total, kSizeQuery, op));

  kernels::BatchNormBackwardCall c;
  c.dy = dy.data;
  c.x = x.data;
  c.dtype = x.dtype;
  c.mean = floats(saved_mean);
  c.rstd = floats(saved_rstd);
  c.gamma = floats(gamma);
  c.geometry = call.geometry();
  c.plan = plan::choose_channel_plan(c.geometry, x.dtype);
  c.aligned = api::aligned16({dy.data, x.data, dx.data});
  c.mean_group = call.cg;
  const std::int64_t flat = c.geometry.flat_channels();
  const double count = static_cast<double>(call.cg * call.s);
  if (x.space == MemorySpace::host) {
    std::vector<float> sums(2 * static_cast<std::size_t>(flat));
    std::vector<math::ChannelGradCoefficients> coefficients(static_cast<std::size_t>(flat));
    NORMKIT_RETURN_IF_ERROR(cpu::batch_norm_backward_reduce(dy.data, x.data, x.dtype, c.mean, c.mean_group, c.geometry, sums.data(),
                                                            sums.data() + flat, host_threads()));
    cpu::group_norm_grad_coefficients(call.shape(), c.mean, c.rstd, c.gamma, sums.data(), sums.data() + flat, count, coefficients.data(),
                                      floats(dgamma), floats(dbeta));
    if (!dx.data) return Status::success();
    return cpu::channel_dx_apply(dy.data, x.data, x.dtype, c.geometry, coefficients.data(), dx.data, host_threads());
  }
  auto* sum_dy = reinterpret_cast<float*>(at(workspace, 0));
  float* sum_dy_xmu = sum_dy + flat;
  auto* partials = reinterpret_cast<float*>(at(workspace, w.channel.sums));
  auto* coefficients = reinterpret_cast<math::ChannelGradCoefficients*>(at(workspace, w.channel.total));
  NORMKIT_RETURN_IF_ERROR(kernels::launch_batch_norm_backward_reduce(c, partials, sum_dy, sum_dy_xmu, stream));
  NORMKIT_RETURN_IF_ERROR(kernels::launch_group_norm_grad_coefficients(call.shape(), c.mean, c.rstd, c.gamma, sum_dy, sum_dy_xmu, count,
                                                                       coefficients, floats(dgamma), floats(dbeta), stream));
  if (!dx.data) return Status::success();
  c.coefficients = coefficients;
  return kernels::launch_batch_norm_backward_apply(c, sum_dy, sum_dy_xmu, count, dx.data, nullptr, nullptr, stream);
}

}  // namespace normkit
