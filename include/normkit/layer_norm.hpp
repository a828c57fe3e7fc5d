// LayerNorm and RMSNorm, forward and backward, on device or host memory.
//
// x has shape [rows..., normalized...]: the last options.normalized_ndim axes (N elements) are normalized,
// the leading axes are rows (R rows; a 1-D x is one row). For each row, in float32:
//
//   LayerNorm  mean = Σ x / N,  var = Σ (x - mean)² / N (biased, as PyTorch and Keras),  rstd = 1 / sqrt(var + eps)
//              x̂ = (x - mean) * rstd,            y = x̂ * w + beta
//   RMSNorm    rstd = 1 / sqrt(Σ x² / N + eps),  x̂ = x * rstd,  y = x̂ * w
//
// where w = gamma (1 + gamma with options.gamma_offset, Gemma), 1 without gamma, beta 0 without beta.
// With CastMode::input_dtype, x̂ is rounded to x's dtype before * w (Hugging Face Llama).
//
// Conventions of the frameworks, which normkit leaves to the caller:
//  * eps: PyTorch nn.LayerNorm 1e-5, Keras LayerNormalization 1e-3, Apex 1e-5; PyTorch rms_norm(eps=None)
//    uses torch.finfo(x.dtype).eps (2^-23 float32, 2^-10 float16, 2^-7 bfloat16), Keras RMSNormalization
//    1e-6, Hugging Face Llama 1e-6 or 1e-5 (from the model's config). eps is rounded to float32 and added
//    to the variance in float32, as PyTorch does.
//  * Keras LayerNormalization(rms_scaling=True) is not RMSNorm: it divides by sqrt(var + eps), not by the
//    root mean square; use RowNorm::layer_norm with beta absent and keep the centering in mind.
//  * Statistics are always float32. Rows of up to 16384 elements (8192 in scalar packs, when N is not a
//    multiple of 16 bytes of x) are held in registers: mean = x₀ + Σ(x - x₀)/N with x₀ the row's first
//    value, then var = Σ(x - mean)²/N, never E[x²] - E[x]², so a row of 1e4 + N(0, 1) keeps its variance.
//    Longer rows are read twice; their variance comes from the shifted sums Σ(x - x₀), Σ(x - x₀)²: as
//    accurate while x₀ is within a few standard deviations of the mean, worse for rows that start far away.
//
// Edge cases: a row holding NaN or ±Inf gives NaN mean/var and a NaN row y (as PyTorch). A constant row has
// its value as mean exactly, var 0, rstd 1/sqrt(eps) and x̂ 0 (y = beta); with eps = 0 it gives rstd Inf
// and y NaN (PyTorch does the same). N must be >= 1; R may be 0 (nothing is written; the backward's dgamma
// and dbeta are zeros).
//
// Dtypes: x, y, dy, dx float32, float16 or bfloat16, all the same; gamma, beta, dgamma, dbeta float32 or
// x's dtype (gamma, beta, dgamma and dbeta all the same); mean and rstd float32 with R elements (any
// shape: [R], [R, 1], ...).
// gamma/beta/dgamma/dbeta have the normalized shape. A view with data == nullptr is absent.
//
// Determinism: the result is a function of the inputs and N alone: no floating-point atomics, and every
// sum runs in an order fixed by N and the dtype (never by the GPU model, the SM count, the number of rows or
// the host's thread count), with every operation rounded as written (no fused multiply-adds). Device and host
// therefore give the same bits, forward and backward (NaN results are NaN on both, not necessarily with the
// same payload), and dgamma/dbeta are summed over blocks of kLayerNormRowsPerPartial rows, then over the
// blocks in order: the same rows give the same contribution in batches of any size.
//
// Shared memory: rows read once keep gamma and beta (the backward: gamma and its dgamma/dbeta sums) in the
// block's shared memory, up to 128 KB a block for rows of 16384 (forward) and ~106 KB for rows of 8192
// (backward). A GPU with less opt-in shared memory a block (sm_86 and sm_89: 99 KB) returns
// invalid_argument for those lengths rather than a different layout (which would change the results' bits).
//
// Device calls take a stream, only enqueue work on it (no synchronization, no allocation: the backward
// takes a caller workspace of layer_norm_backward_workspace_size() bytes) and can be captured in a CUDA
// graph. All tensors of a call live in the same memory space.
//
// Errors (Status, nothing written): a dtype outside the lists above, a gamma/beta/mean/rstd/output shape
// that does not match x, eps < 0 or NaN, normalized_ndim outside [1, x.ndim], null or misaligned pointers,
// outputs (or the workspace) overlapping an input or each other, a workspace too small, a mean passed to
// RMSNorm.
#pragma once

#include <cstddef>

#include "normkit/layer_norm_types.hpp"
#include "normkit/status.hpp"
#include "normkit/tensor.hpp"

namespace normkit {

// Forward. mean (LayerNorm only) and rstd are optional outputs saved for the backward.
Status layer_norm_forward(const TensorView& x, const TensorView& gamma, const TensorView& beta, const TensorView& y,
                          const TensorView& mean, const TensorView& rstd, const LayerNormOptions& options,
                          Stream stream = nullptr);

// The pre-norm transformer block, fused (residual in one read, as Apex/vLLM's fused add + norm):
//   h = x + residual   (added in float32, rounded to x's dtype: the new residual stream, written to residual_out)
//   y = LayerNorm(h) / RMSNorm(h)   exactly as layer_norm_forward(h, ...) would give it
// residual and residual_out have x's shape and dtype; residual_out may not overlap residual or x (write the
// new stream to another buffer). mean and rstd are h's. One read of x and residual, one write of h and y.
Status layer_norm_forward_residual(const TensorView& x, const TensorView& residual, const TensorView& residual_out,
                                   const TensorView& gamma, const TensorView& beta, const TensorView& y, const TensorView& mean,
                                   const TensorView& rstd, const LayerNormOptions& options, Stream stream = nullptr);

// Bytes of device scratch layer_norm_backward needs for x's shape and options (0 on the host): the
// dgamma/dbeta partials, 2 x ceil(R / kLayerNormRowsPerPartial) x N float32.
Status layer_norm_backward_workspace_size(const TensorView& x, const LayerNormOptions& options, std::size_t* bytes);

// Backward from dy and the forward's saved mean (LayerNorm) and rstd:
//   g = w * dy,  dx = rstd * (g - mean(g) - x̂ * mean(g * x̂))      (RMSNorm: without the mean(g) term)
//   dgamma = Σ_rows dy * x̂  (x̂ rounded to x's dtype with CastMode::input_dtype),  dbeta = Σ_rows dy
// Rounding of x̂ is treated as the identity in dx (straight-through), as autograd does. dx, dgamma and dbeta
// are optional; dbeta needs RowNorm::layer_norm. workspace: 16-byte aligned device memory (may be null
// when the size query gave 0).
Status layer_norm_backward(const TensorView& dy, const TensorView& x, const TensorView& mean, const TensorView& rstd,
                           const TensorView& gamma, const TensorView& dx, const TensorView& dgamma,
                           const TensorView& dbeta, const LayerNormOptions& options, void* workspace,
                           std::size_t workspace_bytes, Stream stream = nullptr);

// Backward of the fused block: h = x + residual feeds both the norm and the residual stream, so the gradient
// of x and of the residual is one tensor:
//   dx = dNorm(dy; h) + residual_grad      (residual_grad: the gradient arriving at residual_out)
// computed in float32 and rounded once; h is the forward's residual_out; dgamma/dbeta as layer_norm_backward.
// dx is required. The same workspace as layer_norm_backward.
Status layer_norm_backward_residual(const TensorView& dy, const TensorView& h, const TensorView& residual_grad,
                                    const TensorView& mean, const TensorView& rstd, const TensorView& gamma,
                                    const TensorView& dx, const TensorView& dgamma, const TensorView& dbeta,
                                    const LayerNormOptions& options, void* workspace, std::size_t workspace_bytes,
                                    Stream stream = nullptr);

}  // namespace normkit
