// Launchers of the BatchNorm kernels and their instantiations: 3 activation dtypes x ({16-byte, scalar}
// packs x {segments, columns} + spans) x {sums, dx}, and 5 per-channel kernels: 35.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "kernels/batch_norm/batch_norm_kernels.cuh"
#include "kernels/batch_norm/batch_norm_launch.hpp"
#include "kernels/common/cuda_check.hpp"
#include "math/dtype_dispatch.hpp"

namespace normkit::kernels {
namespace {

unsigned grid_dim(std::int64_t blocks) { return static_cast<unsigned>(std::clamp<std::int64_t>(blocks, 1, 0x7fffffff)); }
unsigned channel_blocks(std::int64_t channels) { return grid_dim((channels + 255) / 256); }

int log2_of(int power_of_two) {
  int shift = 0;
  while ((1 << shift) < power_of_two) ++shift;
  return shift;
}

ChannelKernelShape shape_of(const BatchNormBackwardCall& c) {
  const plan::ChannelGeometry& g = c.geometry;
  const plan::ChannelPlan& p = c.plan;
  ChannelKernelShape s{};
  s.outer = g.outer;
  s.channels = g.channels;
  s.inner = g.inner;
  s.samples = g.samples;
  s.flat_channels = g.flat_channels();
  s.mean_group = c.mean_group;
  s.parts = p.parts;
  s.segment_packs = g.inner / p.vec;
  s.segment_stride = g.channels * g.inner;
  s.chunk_packs = p.chunk_packs;
  s.chunks_per_segment = p.chunks_per_segment;
  s.items_per_channel = g.outer * p.chunks_per_segment;
  s.items_per_part = p.items_per_part;
  s.group_shift = log2_of(p.group_lanes);
  s.groups_per_channel = p.groups_per_channel;
  s.channels_per_block = p.channels_per_block;
  s.span_channels = p.span_channels;
  s.span_packs = p.span_packs;
  s.channel_packs = g.channels / p.vec;
  s.channel_tiles = p.channel_tiles;
  s.rows_per_part = p.rows_per_part;
  s.aligned = c.aligned;
  return s;
}

dim3 block_of(const plan::ChannelPlan& p) {
  return p.walk == plan::ChannelWalk::columns ? dim3(p.block_x, p.block_y) : dim3(p.threads);
}

// The walks launch one block per (channel or tile, part): more than a grid holds is an error, not a clamp.
Status check_grid(const plan::ChannelPlan& p, const char* op) {
  if (p.blocks <= 0x7fffffff) return Status::success();
  return Status(StatusCode::invalid_argument, std::string("normkit::") + op + ": argument 'x.shape': " + std::to_string(p.blocks) +
                                                  " blocks (channels x parts) exceed a grid's 2^31 - 1");
}

template <typename X>
constexpr int full_vec() { return static_cast<int>(16 / sizeof(X)); }

// f(type_tag<X>{}) for the activation dtype.
template <typename F>
Status visit_activation(DType dtype, const char* op, F&& f) {
  return math::visit_layer_dtypes(dtype, DType::float32, op, [&](auto x_tag, auto) { return f(x_tag); });
}

}  // namespace

Status launch_batch_norm_finalize(const StatsSummary* summaries, std::int64_t channels, float* running_mean,
                                  float* running_var, float* saved_mean, float* saved_rstd, float eps,
                                  const math::RunningUpdate& update, const float* gamma, const float* beta,
                                  const AffineCoefficients* affine, Stream stream) {
  if (channels == 0) return Status::success();
  const FinalizeArgs a{summaries, channels, running_mean, running_var, saved_mean, saved_rstd, eps, update, gamma, beta,
                       affine ? affine->center : nullptr, affine ? affine->scale : nullptr, affine ? affine->offset : nullptr};
  batch_norm_finalize_kernel<<<channel_blocks(channels), 256, 0, stream>>>(a);
  return cuda::check_launch("batch_norm_finalize", "batch_norm_finalize_kernel");
}

Status launch_batch_norm_affine(const float* mean, const float* rstd_or_var, bool from_variance, float eps,
                                const float* gamma, const float* beta, std::int64_t channels,
                                const AffineCoefficients& out, Stream stream) {
  if (channels == 0) return Status::success();
  const AffineArgs a{mean, rstd_or_var, gamma, beta, from_variance, eps, channels, out.center, out.scale, out.offset};
  batch_norm_affine_kernel<<<channel_blocks(channels), 256, 0, stream>>>(a);
  return cuda::check_launch(from_variance ? "batch_norm_forward_inference" : "batch_norm_normalize", "batch_norm_affine_kernel");
}

Status launch_batch_norm_eval_param_grads(const float* sum_dy, const float* sum_dy_xmu, const float* running_var, float eps,
                                          std::int64_t channels, float* dgamma, float* dbeta, Stream stream) {
  if (channels == 0) return Status::success();
  batch_norm_eval_param_grads_kernel<<<channel_blocks(channels), 256, 0, stream>>>(sum_dy, sum_dy_xmu, running_var, eps, channels, dgamma, dbeta);
  return cuda::check_launch("batch_norm_backward_eval", "batch_norm_eval_param_grads_kernel");
}

Status launch_batch_norm_backward_reduce(const BatchNormBackwardCall& c, float* partials, float* sum_dy, float* sum_dy_xmu,
                                         Stream stream) {
  constexpr const char* kOp = "batch_norm_backward_reduce";
  const std::int64_t channels = c.geometry.flat_channels();
  if (channels == 0) return Status::success();
  // One part a channel: the walk writes the sums themselves (a partials' sum of one part copied 2 x N x C
  // floats with a block of 1024 threads a 32 channels: 17 us of a GroupNorm backward, modelled).
  const bool direct = c.plan.parts == 1;
  float* partial_dy = direct ? sum_dy : partials;
  float* partial_dy_xmu = direct ? sum_dy_xmu : partials + c.plan.parts * channels;
  NORMKIT_RETURN_IF_ERROR(check_grid(c.plan, kOp));
  if (c.plan.blocks > 0) {
    NORMKIT_RETURN_IF_ERROR(visit_activation(c.dtype, kOp, [&](auto x_tag) {
      using X = typename decltype(x_tag)::type;
      const ChannelKernelShape s = shape_of(c);
      const auto* dy = static_cast<const X*>(c.dy);
      const auto* x = static_cast<const X*>(c.x);
      auto launch = [&](auto kernel) {
        kernel<<<grid_dim(c.plan.blocks), block_of(c.plan), 0, stream>>>(dy, x, c.mean, s, partial_dy, partial_dy_xmu);
        return cuda::check_launch(kOp, c.plan.walk == plan::ChannelWalk::segments ? "channel_grad_sums_segments_kernel"
                                       : c.plan.walk == plan::ChannelWalk::spans  ? "channel_grad_sums_spans_kernel"
                                                                                  : "channel_grad_sums_columns_kernel");
      };
      if (c.plan.walk == plan::ChannelWalk::spans) return launch(channel_grad_sums_spans_kernel<X, full_vec<X>()>);
      const bool wide = c.plan.vec == full_vec<X>();
      if (c.plan.walk == plan::ChannelWalk::segments) {
        return wide ? launch(channel_grad_sums_segments_kernel<X, full_vec<X>()>) : launch(channel_grad_sums_segments_kernel<X, 1>);
      }
      return wide ? launch(channel_grad_sums_columns_kernel<X, full_vec<X>()>) : launch(channel_grad_sums_columns_kernel<X, 1>);
    }));
  }
  if (direct) return Status::success();
  // (parts == 0, an empty x: the loop sums nothing and the sums are zeros)
  const int lanes = c.plan.sum_lanes;
  channel_partials_sum_kernel<<<grid_dim((channels + lanes - 1) / lanes), dim3(lanes, 1024 / lanes), 0, stream>>>(
      partial_dy, partial_dy_xmu, c.plan.parts, channels, sum_dy, sum_dy_xmu);
  return cuda::check_launch(kOp, "channel_partials_sum_kernel");
}

Status launch_batch_norm_backward_apply(const BatchNormBackwardCall& c, const float* sum_dy, const float* sum_dy_xmu,
                                        double count, void* dx, float* dgamma, float* dbeta, Stream stream) {
  constexpr const char* kOp = "batch_norm_backward_apply";
  const std::int64_t channels = c.geometry.channels;
  if (channels == 0) return Status::success();
  const GradInputs grad{c.mean, c.rstd, c.gamma, sum_dy, sum_dy_xmu, count, dgamma, dbeta, c.coefficients};
  NORMKIT_RETURN_IF_ERROR(check_grid(c.plan, kOp));
  if (!dx || c.plan.blocks == 0) {
    if (c.coefficients) return Status::success();  // (GroupNorm's dgamma and dbeta come with its coefficients)
    batch_norm_param_grads_kernel<<<channel_blocks(channels), 256, 0, stream>>>(grad, channels);
    return cuda::check_launch(kOp, "batch_norm_param_grads_kernel");
  }
  return visit_activation(c.dtype, kOp, [&](auto x_tag) {
    using X = typename decltype(x_tag)::type;
    const ChannelKernelShape s = shape_of(c);
    const auto* dy = static_cast<const X*>(c.dy);
    const auto* x = static_cast<const X*>(c.x);
    auto launch = [&](auto kernel) {
      kernel<<<grid_dim(c.plan.blocks), block_of(c.plan), 0, stream>>>(dy, x, grad, s, static_cast<X*>(dx));
      return cuda::check_launch(kOp, c.plan.walk == plan::ChannelWalk::segments ? "batch_norm_dx_segments_kernel"
                                     : c.plan.walk == plan::ChannelWalk::spans  ? "batch_norm_dx_spans_kernel"
                                                                                : "batch_norm_dx_columns_kernel");
    };
    if (c.plan.walk == plan::ChannelWalk::spans) return launch(batch_norm_dx_spans_kernel<X, full_vec<X>()>);
    const bool wide = c.plan.vec == full_vec<X>();
    if (c.plan.walk == plan::ChannelWalk::segments) {
      return wide ? launch(batch_norm_dx_segments_kernel<X, full_vec<X>()>) : launch(batch_norm_dx_segments_kernel<X, 1>);
    }
    return wide ? launch(batch_norm_dx_columns_kernel<X, full_vec<X>()>) : launch(batch_norm_dx_columns_kernel<X, 1>);
  });
}

}  // namespace normkit::kernels
