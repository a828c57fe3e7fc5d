// Host engine of BatchNorm: the per-channel formulas of math/batch_norm.hpp over host memory. The
// backward's sums are float64 (rounded to float32 once), merged over threads in thread order.
#pragma once

#include <cstdint>

#include "math/batch_norm.hpp"
#include "normkit/normalize_types.hpp"
#include "normkit/status.hpp"
#include "plan/batch_norm_plan.hpp"

namespace normkit::cpu {

void batch_norm_finalize(const StatsSummary* summaries, std::int64_t channels, float* running_mean, float* running_var,
                         float* saved_mean, float* saved_rstd, float eps, const math::RunningUpdate& update);
void batch_norm_affine(const float* mean, const float* rstd_or_var, bool from_variance, float eps, const float* gamma,
                       const float* beta, std::int64_t channels, const AffineCoefficients& out);
// sum_dy, sum_dy_xmu per flat channel k (plan::ChannelGeometry), centered on mean[k / mean_group].
Status batch_norm_backward_reduce(const void* dy, const void* x, DType dtype, const float* mean, std::int64_t mean_group,
                                  const plan::ChannelGeometry& g, float* sum_dy, float* sum_dy_xmu, int threads);
// dx = channel_dx(dy, x, coefficients[k]) over every flat channel k (BatchNorm's and GroupNorm's).
Status channel_dx_apply(const void* dy, const void* x, DType dtype, const plan::ChannelGeometry& g,
                        const math::ChannelGradCoefficients* coefficients, void* dx, int threads);
Status batch_norm_backward_apply(const void* dy, const void* x, DType dtype, const float* mean, const float* rstd,
                                 const float* gamma, const float* sum_dy, const float* sum_dy_xmu, double count,
                                 const plan::ChannelGeometry& g, void* dx, float* dgamma, float* dbeta, int threads);

}  // namespace normkit::cpu
