// Host-side entry points of GroupNorm's own kernels (plain C++: included by the API layer; a build without
// CUDA links stubs that fail cleanly). Its backward sums and dx are BatchNorm's channel launchers.
#pragma once

#include <cstdint>

#include "math/group_norm.hpp"
#include "normkit/normalize_types.hpp"
#include "normkit/status.hpp"
#include "normkit/tensor.hpp"

namespace normkit::kernels {

// saved_mean/saved_rstd (samples * groups, each optional) from the groups' summaries (summaries_per_group
// each: 1, or one a channel), and the fused apply's coefficients (samples * channels) from them, gamma and beta.
Status launch_group_norm_finalize(const StatsSummary* summaries, std::int64_t summaries_per_group, const math::GroupShape& shape, float eps, const float* gamma,
                                  const float* beta, float* saved_mean, float* saved_rstd, const AffineCoefficients& affine,
                                  Stream stream);

// dx's coefficients of every (sample, channel) and dgamma, dbeta (each optional) from the per-(sample,
// channel) sums over `count` values a group.
Status launch_group_norm_grad_coefficients(const math::GroupShape& shape, const float* mean, const float* rstd, const float* gamma,
                                           const float* sum_dy, const float* sum_dy_xmu, double count,
                                           math::ChannelGradCoefficients* coefficients, float* dgamma, float* dbeta,
                                           Stream stream);

}  // namespace normkit::kernels
