// GroupNorm and InstanceNorm, forward and backward, on device or host memory.
//
// x = [N, C, spatial...] (options.channel_axis first: PyTorch's group_norm, NCHW) or [N, spatial..., C]
// (last: Keras GroupNormalization(axis=-1), NHWC), at least two axes; S = the spatial values of a channel
// (1 for [N, C]). The C channels are cut into G = options.groups groups of C / G consecutive channels; each
// (sample n, group g) has its own statistics over its M = (C / G) * S values:
//   mean = Σ x / M,   var = Σ (x - mean)² / M (biased),   rstd = 1 / sqrt(var + eps)
//   y = (x - mean) * (rstd * gamma_c) + beta_c            (gamma, beta: C floats, per channel; optional)
// InstanceNorm is G = C (options.groups = 0 means one group a channel: PyTorch's InstanceNorm1d/2d/3d
// without running statistics).
//
// Backward, per (n, g), from dy, x and the forward's saved mean and rstd (N * G floats each, [N, G] as
// PyTorch's):
//   A = Σ_{c in g} gamma_c Σ_S dy,   B = Σ_{c in g} gamma_c Σ_S dy * (x - mean)
//   dx = dy * rstd * gamma_c - (x - mean) * rstd³ * B / M - rstd * A / M
//   dgamma_c = Σ_n rstd[n, g] * Σ_S dy * (x - mean),   dbeta_c = Σ_n Σ_S dy
//
// Conventions: PyTorch eps 1e-5, channels first, groups given (GroupNormOptions::pytorch(G)); Keras
// epsilon 1e-3, axis -1, groups 32 (GroupNormOptions::keras()). Keras's InstanceNormalization of old
// (tensorflow-addons) is GroupNormalization(groups=-1), here groups = 0.
//
// Edge cases: var = eps = 0 (a constant group with eps 0) gives rstd 0 and y = beta, BatchNorm's training
// rule (PyTorch's group_norm gives rstd Inf and NaN there); a group holding NaN or ±Inf gets NaN mean and
// rstd and a NaN y. An empty x (N = 0, C = 0 or S = 0) is a no-op. A group of one value (M = 1) normalizes
// to beta (var 0), as PyTorch.
//
// Dtypes: x, y, dy, dx float32, float16 or bfloat16, all the same; gamma, beta, dgamma, dbeta (C) and
// saved_mean, saved_rstd (N * G) float32. A view with data == nullptr is absent: gamma, beta, saved_mean,
// saved_rstd (forward), dx, dgamma, dbeta are optional.
//
// Determinism: no floating-point atomics. The forward's statistics are the statistics engine's (a fixed
// order per GPU model and alignment of x, as BatchNorm's forward). The backward's sums run in an order
// fixed by the shape of one sample and the dtype: never the batch size, the GPU model or the pointers'
// alignment; a sample's per-channel sums are the same bits in any batch, and dgamma/dbeta sum the samples
// in a fixed order (32 strided float64 partials in lane order). The host engine sums in float64 and agrees
// with the device to float32 rounding; its dx formula is the kernels'.
//
// Device calls take a stream, only enqueue work on it (no synchronization, no allocation: a caller
// workspace of group_norm_workspace_size() bytes, 16-byte aligned) and can be captured in a CUDA graph.
// All tensors of a call live in the same memory space; host calls ignore the workspace.
//
// Errors (Status, nothing written): x with fewer than 2 axes or a dtype outside the list, groups < 0 or not
// dividing C, a tensor whose shape or element count does not match x's, C or N * G, eps < 0 or not finite,
// null or misaligned pointers, outputs (or the workspace) overlapping an input or each other, a workspace
// too small.
#pragma once

#include <cstddef>
#include <cstdint>

#include "normkit/group_norm_types.hpp"
#include "normkit/status.hpp"
#include "normkit/tensor.hpp"

namespace normkit {

// Bytes of device scratch a GroupNorm call on x needs (0 on the host): the statistics engine's workspace
// and per-(sample, channel) coefficients (forward), or per-(sample, channel) sums, their partials and
// coefficients (backward).
Status group_norm_workspace_size(const TensorView& x, const GroupNormOptions& options, std::size_t* bytes);

// y = GN(x); saved_mean and saved_rstd (N * G float32, optional) are what the backward takes.
Status group_norm_forward(const TensorView& x, const TensorView& gamma, const TensorView& beta, const TensorView& y,
                          const TensorView& saved_mean, const TensorView& saved_rstd, const GroupNormOptions& options,
                          void* workspace, std::size_t workspace_bytes, Stream stream = nullptr);

// dx, dgamma, dbeta (each optional) from dy, x and the forward's saved_mean and saved_rstd.
Status group_norm_backward(const TensorView& dy, const TensorView& x, const TensorView& saved_mean,
                           const TensorView& saved_rstd, const TensorView& gamma, const TensorView& dx,
                           const TensorView& dgamma, const TensorView& dbeta, const GroupNormOptions& options,
                           void* workspace, std::size_t workspace_bytes, Stream stream = nullptr);

}  // namespace normkit
