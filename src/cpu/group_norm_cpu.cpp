// Host GroupNorm: the kernels' per-group steps in the same order (the lanes' shares summed in lane order, a
// group's summaries merged by the same tree). Not bit for bit: the kernels' float64 arithmetic may contract
// into fused multiply-adds; the results agree to float32 rounding (the host's sums are float64 anyway).
#include "cpu/group_norm_cpu.hpp"

#include "math/group_norm.hpp"

namespace normkit::cpu {

void group_norm_finalize(const StatsSummary* summaries, std::int64_t summaries_per_group, const math::GroupShape& shape, float eps,
                         const float* gamma, const float* beta, float* saved_mean, float* saved_rstd, const AffineCoefficients& affine) {
  const std::int64_t cg = shape.group_channels;
  for (std::int64_t group = 0; group < shape.samples * shape.groups(); ++group) {
    math::MomentState<double> lanes[math::kGroupGradLanes];
    const StatsSummary* group_summaries = summaries + group * summaries_per_group;
    for (int lane = 0; lane < math::kGroupGradLanes; ++lane) {
      const StatsSummary own = lane < summaries_per_group ? group_summaries[lane] : StatsSummary{};
      lanes[lane] = math::group_summary_lane_state(lane, summaries_per_group, own, [&](std::int64_t j) { return group_summaries[j]; });
    }
    const math::MomentState<double> total = math::group_tree_merge(lanes);
    const math::ChannelFinalize f = math::batch_norm_finalize_channel(math::to_summary(total), eps, false);
    if (saved_mean) saved_mean[group] = f.mean;
    if (saved_rstd) saved_rstd[group] = f.rstd;
    const std::int64_t first = group * cg, c0 = first % shape.channels;
    for (std::int64_t j = 0; j < cg; ++j) {
      const math::Affine q = math::batch_norm_affine(f.mean, static_cast<double>(f.rstd), gamma ? gamma[c0 + j] : 1.0f, beta ? beta[c0 + j] : 0.0f);
      affine.center[first + j] = q.center;
      affine.scale[first + j] = q.scale;
      affine.offset[first + j] = q.offset;
    }
  }
}

namespace {

// Σ over the lanes' shares in lane order, as every lane of the kernel's warp sums them.
template <typename Share>
void lane_ordered(Share share, double* x, double* y) {
  double tx = 0.0, ty = 0.0;
  for (int lane = 0; lane < math::kGroupGradLanes; ++lane) {
    double a = 0.0, b = 0.0;
    share(lane, &a, &b);
    tx += a;
    ty += b;
  }
  *x = tx;
  *y = ty;
}

}  // namespace

void group_norm_grad_coefficients(const math::GroupShape& shape, const float* mean, const float* rstd, const float* gamma,
                                  const float* sum_dy, const float* sum_dy_xmu, double count,
                                  math::ChannelGradCoefficients* coefficients, float* dgamma, float* dbeta) {
  const std::int64_t cg = shape.group_channels, groups = shape.channels / cg;
  for (std::int64_t ng = 0; ng < shape.samples * groups; ++ng) {
    const std::int64_t g = ng % groups, first = ng * cg;
    const float* group_gamma = gamma ? gamma + g * cg : nullptr;
    double a = 0.0, b = 0.0;
    lane_ordered([&](int lane, double* x, double* y) { math::group_grad_lane_sums(lane, group_gamma, sum_dy + first, sum_dy_xmu + first, cg, x, y); },
                 &a, &b);
    const math::GroupGradTerms t = math::group_grad_terms(mean[ng], rstd[ng], a, b, count);
    for (std::int64_t j = 0; j < cg; ++j) coefficients[first + j] = math::group_channel_coefficients(t, group_gamma ? group_gamma[j] : 1.0f);
  }
  for (std::int64_t c = 0; c < shape.channels; ++c) {
    double dg = 0.0, db = 0.0;
    lane_ordered([&](int lane, double* x, double* y) {
      math::group_param_lane_sums(lane, c, shape.samples, shape.channels, cg, rstd, sum_dy, sum_dy_xmu, x, y);
    }, &dg, &db);
    if (dgamma) dgamma[c] = static_cast<float>(dg);
    if (dbeta) dbeta[c] = static_cast<float>(db);
  }
}

}  // namespace normkit::cpu
