// Host-side entry points of the BatchNorm kernels (plain C++: included by the API layer; a build without
// CUDA links stubs that fail cleanly).
#pragma once

#include <cstdint>

#include "math/batch_norm.hpp"
#include "normkit/normalize_types.hpp"
#include "normkit/status.hpp"
#include "normkit/tensor.hpp"
#include "plan/batch_norm_plan.hpp"

namespace normkit::kernels {

struct BatchNormBackwardCall {
  const void* dy = nullptr;
  const void* x = nullptr;
  DType dtype = DType::float32;
  const float* mean = nullptr;
  const float* rstd = nullptr;
  const float* gamma = nullptr;
  plan::ChannelGeometry geometry;
  plan::ChannelPlan plan;
  bool aligned = false;  // dy, x and dx 16-byte aligned
  std::int64_t mean_group = 1;  // flat channels sharing a saved mean (GroupNorm: channels a group)
  // dx's coefficients a flat channel, computed beforehand (GroupNorm); null: from mean, rstd, gamma and the
  // sums (BatchNorm).
  const math::ChannelGradCoefficients* coefficients = nullptr;
};

// Per-channel saved and running statistics from C summaries (any output may be null); with `affine`, also
// the fused apply's coefficients from gamma and beta (the one-call forward).
Status launch_batch_norm_finalize(const StatsSummary* summaries, std::int64_t channels, float* running_mean,
                                  float* running_var, float* saved_mean, float* saved_rstd, float eps,
                                  const math::RunningUpdate& update, const float* gamma, const float* beta,
                                  const AffineCoefficients* affine, Stream stream);
// The fused apply's coefficients: from saved mean/rstd, or (from_variance) running mean/variance and eps.
Status launch_batch_norm_affine(const float* mean, const float* rstd_or_var, bool from_variance, float eps,
                                const float* gamma, const float* beta, std::int64_t channels,
                                const AffineCoefficients& out, Stream stream);
// The eval-mode backward's dgamma, dbeta (each optional) from the sums over the running mean.
Status launch_batch_norm_eval_param_grads(const float* sum_dy, const float* sum_dy_xmu, const float* running_var, float eps,
                                          std::int64_t channels, float* dgamma, float* dbeta, Stream stream);
// sum_dy, sum_dy_xmu (C each) from the plan's partials (2 * parts * C floats of scratch).
Status launch_batch_norm_backward_reduce(const BatchNormBackwardCall& call, float* partials, float* sum_dy,
                                         float* sum_dy_xmu, Stream stream);
// dx (when given) with dgamma and dbeta (each optional) from the sums over `count` values a channel.
Status launch_batch_norm_backward_apply(const BatchNormBackwardCall& call, const float* sum_dy, const float* sum_dy_xmu,
                                        double count, void* dx, float* dgamma, float* dbeta, Stream stream);

}  // namespace normkit::kernels
