// Host engine of GroupNorm's own steps (math/group_norm.hpp over host memory); its sums and dx are
// BatchNorm's host engine over a sample axis (cpu/batch_norm_cpu.hpp).
#pragma once

#include "kernels/group_norm/group_norm_launch.hpp"

namespace normkit::cpu {

void group_norm_finalize(const StatsSummary* summaries, std::int64_t summaries_per_group, const math::GroupShape& shape, float eps, const float* gamma,
                         const float* beta, float* saved_mean, float* saved_rstd, const AffineCoefficients& affine);
void group_norm_grad_coefficients(const math::GroupShape& shape, const float* mean, const float* rstd, const float* gamma,
                                  const float* sum_dy, const float* sum_dy_xmu, double count,
                                  math::ChannelGradCoefficients* coefficients, float* dgamma, float* dbeta);

}  // namespace normkit::cpu
