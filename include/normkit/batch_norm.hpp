// BatchNorm, training (forward and backward, in phases a caller can split) and inference, on device or
// host memory.
//
// x has C channels on options.channel_axis (axis 1, or the last axis) and at least two axes; each channel's
// statistics run over the other axes: n = numel(x) / C values (N*H*W for NCHW and NHWC).
//
// Training forward, per channel c (the statistics in float32/float64 from the statistics engine: Welford
// and Chan's merge, stats.hpp):
//   mean = Σ x / n,   var = Σ (x - mean)² / n (biased),   rstd = 1 / sqrt(var + eps)  (0 when var = eps = 0,
//   as PyTorch),      y = (x - mean) * (rstd * gamma) + beta
// with gamma = 1 and beta = 0 when absent. saved_mean and saved_rstd (float32, C) are what the backward
// takes. The running statistics (float32, C, updated in place when given) follow options.running_stats:
// PyTorch's (momentum 0.1 weighs the batch; the running variance takes the UNBIASED var * n / (n - 1)
// while the batch is normalized with the biased one; momentum=None is cumulative_average) or Keras's
// (momentum 0.99 weighs the running value; biased variance). Both compute in float64 and round once.
//
// Inference: y = (x - running_mean) * (gamma / sqrt(running_var + eps)) + beta (Inf scale when
// running_var + eps = 0, as PyTorch). Training and inference both apply through the fused apply of
// normalize.hpp, which subtracts the mean apart from the scale: a running mean of 1e6 keeps the data's
// spread.
//
// Backward (training), per channel, from dy, x and the forward's saved mean and rstd:
//   sum_dy = Σ dy,   sum_dy_xmu = Σ dy * (x - mean)                                (float32)
//   dx = (dy - sum_dy / n - (x - mean) * rstd² * sum_dy_xmu / n) * rstd * gamma
//   dgamma = sum_dy_xmu * rstd,   dbeta = sum_dy
//
// Phases: each training direction is also offered as the phases SyncBatchNorm needs, so that a caller can
// merge the per-channel partials of several ranks in between:
//   forward   batch_norm_statistics (one read of x: a StatsSummary per channel)
//             -> merge_summaries / an all-reduce of the summaries (caller, optional)
//             -> batch_norm_finalize (saved mean/rstd, running statistics; the unbiased factor uses the
//                MERGED count)
//             -> batch_norm_normalize (one read of x, one write of y)
//   backward  batch_norm_backward_reduce (one read of x and dy: sum_dy, sum_dy_xmu)
//             -> sum the two arrays over ranks (caller, optional)
//             -> batch_norm_backward_apply (one read of x and dy, one write of dx; dgamma, dbeta from the
//                sums it is given, so merged sums give the global parameter gradients)
// batch_norm_forward_training and batch_norm_backward run the phases without the merge; for a non-empty x
// their results are bitwise those of the phases called in turn.
//
// Framework conventions: PyTorch eps 1e-5, momentum 0.1, channels first, unbiased running variance;
// Keras epsilon 1e-3, momentum 0.99, axis -1, biased moving variance (BatchNormOptions::pytorch(),
// BatchNormOptions::keras()). Running statistics start where the caller initialised them (PyTorch and
// Keras: mean 0, variance 1).
//
// Edge cases: training with one value per channel (n == 1) is an error, as in PyTorch ("Expected more than
// 1 value per channel when training"); the one-call forms and normalize/inference on an empty x (n == 0)
// are no-ops (nothing is written or updated, as PyTorch). In the phases an empty rank still takes part:
// batch_norm_statistics writes empty summaries, batch_norm_backward_reduce zero sums, and
// batch_norm_backward_apply dgamma and dbeta from the merged sums. A merged count of 0 leaves the running
// statistics as they are (saved mean and rstd NaN); a merged count of 1 gives a NaN unbiased running
// variance. A channel holding NaN or ±Inf gets NaN mean and rstd, a NaN y and NaN running statistics.
//
// Dtypes: x, y, dy, dx float32, float16 or bfloat16, all the same; gamma, beta, dgamma, dbeta, running and
// saved statistics, sum_dy, sum_dy_xmu float32 with C elements (any shape). A view with data == nullptr is
// absent: gamma, beta, running statistics, saved statistics (forward), dx, dgamma, dbeta are optional.
//
// Determinism: no floating-point atomics. The forward's statistics follow the statistics engine: a fixed
// order per GPU model and alignment of x (its plans use 16-byte loads where x allows them; query
// batch_norm_workspace_size with the x you will pass). The backward's sums run in an order fixed by x's shape and dtype alone (never by the
// GPU model, its SM count or the pointers' alignment): two runs, or two GPUs, give the same bits. The host
// engine sums in float64 and agrees with the device to float32 rounding, not bitwise; its dx formula is
// the kernels' (every operation rounded as written).
//
// Device calls take a stream, only enqueue work on it (no synchronization, no allocation: every device
// call takes a caller workspace of batch_norm_workspace_size() bytes, 16-byte aligned) and can be captured
// in a CUDA graph. All tensors of a call live in the same memory space; host calls ignore the workspace.
//
// Errors (Status, nothing written): x with fewer than 2 axes or a dtype outside the list, a tensor whose
// shape or element count does not match x's or C, eps < 0 or not finite, momentum outside [0, 1],
// cumulative_average with the Keras convention or batches_tracked < 1, n == 1 in training, null or
// misaligned pointers, outputs (or the workspace) overlapping an input or each other, a workspace too small.
#pragma once

#include <cstddef>
#include <cstdint>

#include "normkit/batch_norm_types.hpp"
#include "normkit/stats_types.hpp"
#include "normkit/status.hpp"
#include "normkit/tensor.hpp"

namespace normkit {

// C, the channel count of x for options.channel_axis.
Status batch_norm_channels(const TensorView& x, const BatchNormOptions& options, std::int64_t* channels);

// Bytes of device scratch any BatchNorm call on x needs (0 on the host): the statistics engine's
// workspace plus per-channel summaries and coefficients, or the backward's partial sums (a number of
// partials fixed by x's shape).
Status batch_norm_workspace_size(const TensorView& x, const BatchNormOptions& options, std::size_t* bytes);

// ---- Training, one call per direction ------------------------------------------------------------------

// y = BN(x) with the batch's statistics; updates running_mean/running_var in place (when given) and writes
// saved_mean/saved_rstd (when given).
Status batch_norm_forward_training(const TensorView& x, const TensorView& gamma, const TensorView& beta,
                                   const TensorView& y, const TensorView& running_mean, const TensorView& running_var,
                                   const TensorView& saved_mean, const TensorView& saved_rstd,
                                   const BatchNormOptions& options, void* workspace, std::size_t workspace_bytes,
                                   Stream stream = nullptr);

// dx, dgamma, dbeta (each optional) from dy, x and the forward's saved_mean and saved_rstd.
Status batch_norm_backward(const TensorView& dy, const TensorView& x, const TensorView& saved_mean,
                           const TensorView& saved_rstd, const TensorView& gamma, const TensorView& dx,
                           const TensorView& dgamma, const TensorView& dbeta, const BatchNormOptions& options,
                           void* workspace, std::size_t workspace_bytes, Stream stream = nullptr);

// ---- Inference ----------------------------------------------------------------------------------------

Status batch_norm_forward_inference(const TensorView& x, const TensorView& gamma, const TensorView& beta,
                                    const TensorView& running_mean, const TensorView& running_var, const TensorView& y,
                                    const BatchNormOptions& options, void* workspace, std::size_t workspace_bytes,
                                    Stream stream = nullptr);

// Eval-mode backward: gradients through inference (the running statistics normalize, as PyTorch's
// model.eval() with gradients: a frozen BatchNorm while fine-tuning), rstd = 1 / sqrt(running_var + eps):
//   dx = dy * gamma * rstd,   dgamma = Σ dy * (x - running_mean) * rstd,   dbeta = Σ dy
// dx, dgamma and dbeta are optional; running_var is required, running_mean with dgamma. dx is the fused
// apply on dy (x is read only for dgamma); the sums are the backward's (deterministic, float32).
Status batch_norm_backward_eval(const TensorView& dy, const TensorView& x, const TensorView& gamma,
                                const TensorView& running_mean, const TensorView& running_var, const TensorView& dx,
                                const TensorView& dgamma, const TensorView& dbeta, const BatchNormOptions& options,
                                void* workspace, std::size_t workspace_bytes, Stream stream = nullptr);

// ---- Training in phases (SyncBatchNorm) ---------------------------------------------------------------

// Forward phase 1: summaries[c] = the StatsSummary of channel c of x (C summaries in x's memory space,
// overwritten): count, mean, M2 and the non-finite counts (BatchNorm needs no more, and the statistics engine's
// moments-only kernels run); min, max, abs_sum and nonzero_count are written neutral (+Inf, -Inf, 0, 0).
// Merge summaries of several ranks with merge_summaries (stats.hpp) or any reduction that applies Chan's
// formula in a fixed order.
Status batch_norm_statistics(const TensorView& x, const BatchNormOptions& options, StatsSummary* summaries,
                             std::int64_t num_summaries, void* workspace, std::size_t workspace_bytes,
                             Stream stream = nullptr);

// Forward phase 3: from C (merged) summaries in `space`, writes saved_mean/saved_rstd and updates the
// running statistics (all optional, float32 with C elements).
Status batch_norm_finalize(const StatsSummary* summaries, std::int64_t num_summaries, MemorySpace space,
                           const TensorView& running_mean, const TensorView& running_var, const TensorView& saved_mean,
                           const TensorView& saved_rstd, const BatchNormOptions& options, Stream stream = nullptr);

// Forward phase 4: y = (x - saved_mean) * (saved_rstd * gamma) + beta.
Status batch_norm_normalize(const TensorView& x, const TensorView& saved_mean, const TensorView& saved_rstd,
                            const TensorView& gamma, const TensorView& beta, const TensorView& y,
                            const BatchNormOptions& options, void* workspace, std::size_t workspace_bytes,
                            Stream stream = nullptr);

// Backward phase 1: sum_dy[c] = Σ dy, sum_dy_xmu[c] = Σ dy * (x - saved_mean[c]) over channel c (float32, C
// elements each, overwritten).
Status batch_norm_backward_reduce(const TensorView& dy, const TensorView& x, const TensorView& saved_mean,
                                  const TensorView& sum_dy, const TensorView& sum_dy_xmu,
                                  const BatchNormOptions& options, void* workspace, std::size_t workspace_bytes,
                                  Stream stream = nullptr);

// Backward phase 3: dx, dgamma, dbeta (each optional) from the (merged) sums. `count` is the n the sums
// run over (the merged count for SyncBatchNorm); 0 means x's own numel(x) / C.
Status batch_norm_backward_apply(const TensorView& dy, const TensorView& x, const TensorView& saved_mean,
                                 const TensorView& saved_rstd, const TensorView& gamma, const TensorView& sum_dy,
                                 const TensorView& sum_dy_xmu, std::int64_t count, const TensorView& dx,
                                 const TensorView& dgamma, const TensorView& dbeta, const BatchNormOptions& options,
                                 void* workspace, std::size_t workspace_bytes, Stream stream = nullptr);

}  // namespace normkit
