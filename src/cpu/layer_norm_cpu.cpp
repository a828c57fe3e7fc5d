// Host LayerNorm / RMSNorm. Compiled with -ffp-contract=off: every operation rounds as written, as the
// kernels' *_rn intrinsics do. Each sum of a row is taken as the kernels take it: element e goes to the
// per-thread sum of thread (e / vec) % threads in element order, then math::layer_norm_lane_order.
#include "cpu/layer_norm_cpu.hpp"

#include <algorithm>
#include <vector>

#include "cpu/parallel_items.hpp"
#include "math/dtype_dispatch.hpp"
#include "math/layer_norm.hpp"

namespace normkit::cpu {
namespace {

// Per-thread sums of a row in the kernels' order, folded into one value.
class LaneSums {
 public:
  explicit LaneSums(const plan::RowNormLayout& layout) : layout_(layout), a_(layout.threads), b_(layout.threads) {}
  // Adds f(e) (and g(e) to the second sum) for every element e of the row.
  template <typename F>
  float sum(std::int64_t n, F f) {
    std::fill(a_.begin(), a_.end(), 0.0f);
    for_each_lane(n, [&](std::size_t t, std::int64_t e) { a_[t] = math::add_rn(a_[t], f(e)); });
    return math::layer_norm_lane_order(a_.data(), layout_.threads);
  }
  template <typename F, typename G>
  void sum2(std::int64_t n, F f, G g, float* fa, float* gb) {
    std::fill(a_.begin(), a_.end(), 0.0f);
    std::fill(b_.begin(), b_.end(), 0.0f);
    for_each_lane(n, [&](std::size_t t, std::int64_t e) {
      a_[t] = math::add_rn(a_[t], f(e));
      b_[t] = math::add_rn(b_[t], g(e));
    });
    *fa = math::layer_norm_lane_order(a_.data(), layout_.threads);
    *gb = math::layer_norm_lane_order(b_.data(), layout_.threads);
  }

 private:
  // visit(t, e) for every element e in order, t = (e / vec) % threads (the thread owning its pack).
  template <typename V>
  void for_each_lane(std::int64_t n, V visit) const {
    std::size_t t = 0;
    for (std::int64_t e0 = 0; e0 < n; e0 += layout_.vec) {
      for (int i = 0; i < layout_.vec && e0 + i < n; ++i) visit(t, e0 + i);
      if (++t == static_cast<std::size_t>(layout_.threads)) t = 0;
    }
  }

  plan::RowNormLayout layout_;
  std::vector<float> a_, b_;
};

template <typename X, typename Param>
void forward_rows(const plan::RowNormForwardCall& c, std::int64_t begin, std::int64_t end) {
  const plan::RowNormLayout layout = plan::row_norm_forward_layout(c.n, c.x_dtype);
  const auto& o = c.options;
  const bool centered = o.kind == RowNorm::layer_norm;
  const bool round_xhat = o.cast_mode == CastMode::input_dtype;
  const float eps = static_cast<float>(o.eps);
  const float inv_n = math::row_norm_inverse_count(c.n);
  const auto* gamma = static_cast<const Param*>(c.gamma);
  const auto* beta = static_cast<const Param*>(c.beta);
  LaneSums sums(layout);
  std::vector<float> v(static_cast<std::size_t>(c.n));
  for (std::int64_t r = begin; r < end; ++r) {
    const X* xr = static_cast<const X*>(c.x) + r * c.n;
    X* yr = static_cast<X*>(c.y) + r * c.n;
    for (std::int64_t e = 0; e < c.n; ++e) v[e] = math::to_acc<float>(xr[e]);
    if (c.residual) {  // (the row normalized is h = x + residual, written out as the new residual stream)
      const X* rr = static_cast<const X*>(c.residual) + r * c.n;
      X* hr = static_cast<X*>(c.residual_out) + r * c.n;
      for (std::int64_t e = 0; e < c.n; ++e) {
        v[e] = math::row_norm_residual_sum<X>(v[e], math::to_acc<float>(rr[e]));
        math::store_as(hr + e, v[e]);
      }
    }
    float mean = 0.0f, var;
    if (layout.one_read) {
      if (centered) {
        const float shift = v[0];
        mean = math::row_norm_shifted_mean(shift, sums.sum(c.n, [&](std::int64_t e) { return math::sub_rn(v[e], shift); }), inv_n);
      }
      var = math::mul_rn(sums.sum(c.n, [&](std::int64_t e) {
                           const float d = math::sub_rn(v[e], mean);  // (mean 0 for RMSNorm)
                           return math::mul_rn(d, d);
                         }),
                         inv_n);
    } else {
      const float shift = centered ? v[0] : 0.0f;
      float s1, s2;
      sums.sum2(c.n, [&](std::int64_t e) { return math::sub_rn(v[e], shift); },
                [&](std::int64_t e) {
                  const float d = math::sub_rn(v[e], shift);
                  return math::mul_rn(d, d);
                },
                &s1, &s2);
      if (centered) {
        math::row_norm_shifted_moments(shift, s1, s2, inv_n, &mean, &var);
      } else {
        var = math::mul_rn(s2, inv_n);
      }
    }
    const float rstd = math::row_norm_rstd(var, eps);
    for (std::int64_t e = 0; e < c.n; ++e) {
      const float w = math::row_norm_weight(gamma != nullptr, gamma ? math::to_acc<float>(gamma[e]) : 0.0f, o.gamma_offset);
      const float b = beta ? math::to_acc<float>(beta[e]) : 0.0f;
      const float xhat = math::row_norm_xhat(v[e], mean, rstd);
      const float cast = round_xhat ? math::row_norm_cast_xhat<X, true>(xhat) : math::row_norm_cast_xhat<X, false>(xhat);
      math::store_as(yr + e, math::row_norm_output(cast, w, b));
    }
    if (c.mean) c.mean[r] = mean;
    if (c.rstd) c.rstd[r] = rstd;
  }
}

// dx of the rows of partial block `block`, and (with dgamma/dbeta wanted) its partial row: each row group's
// sums in row order, then the groups' sums in group order.
template <typename X, typename Param>
void backward_block(const plan::RowNormBackwardCall& c, const plan::RowNormLayout& layout, std::int64_t block,
                    LaneSums& sums, std::vector<float>& w, float* partial_gamma, float* partial_beta,
                    std::vector<float>& group_gamma, std::vector<float>& group_beta) {
  const auto& o = c.options;
  const bool centered = o.kind == RowNorm::layer_norm;
  const bool round_xhat = o.cast_mode == CastMode::input_dtype;
  const float inv_n = math::row_norm_inverse_count(c.n);
  const bool param_grads = partial_gamma != nullptr;
  constexpr std::int64_t R = kLayerNormRowsPerPartial;
  for (int g = 0; g < layout.groups; ++g) {
    std::fill(group_gamma.begin(), group_gamma.end(), 0.0f);
    std::fill(group_beta.begin(), group_beta.end(), 0.0f);
    for (std::int64_t i = g; i < R; i += layout.groups) {
      const std::int64_t r = block * R + i;
      if (r >= c.rows) break;
      const X* xr = static_cast<const X*>(c.x) + r * c.n;
      const X* dyr = static_cast<const X*>(c.dy) + r * c.n;
      const float mean = centered ? c.mean[r] : 0.0f;
      const float rstd = c.rstd[r];
      auto xhat = [&](std::int64_t e) { return math::row_norm_xhat(math::to_acc<float>(xr[e]), mean, rstd); };
      auto gdy = [&](std::int64_t e) { return math::mul_rn(w[e], math::to_acc<float>(dyr[e])); };
      float sum_g = 0.0f, sum_gx;
      if (centered) {
        sums.sum2(c.n, gdy, [&](std::int64_t e) { return math::mul_rn(gdy(e), xhat(e)); }, &sum_g, &sum_gx);
      } else {
        sum_gx = sums.sum(c.n, [&](std::int64_t e) { return math::mul_rn(gdy(e), xhat(e)); });
      }
      const float mean_g = centered ? math::mul_rn(sum_g, inv_n) : 0.0f;
      const math::RowNormDxCoefficients dxc = math::row_norm_dx_coefficients(mean_g, math::mul_rn(sum_gx, inv_n), rstd);
      X* dxr = c.dx ? static_cast<X*>(c.dx) + r * c.n : nullptr;
      const X* dresr = c.residual_grad ? static_cast<const X*>(c.residual_grad) + r * c.n : nullptr;
      for (std::int64_t e = 0; e < c.n; ++e) {
        const float xh = xhat(e);
        if (dxr) {
          const float d = math::row_norm_dx(gdy(e), xh, dxc, rstd);
          math::store_as(dxr + e, dresr ? math::add_rn(d, math::to_acc<float>(dresr[e])) : d);
        }
        if (param_grads) {
          const float d = math::to_acc<float>(dyr[e]);
          const float cast = round_xhat ? math::row_norm_cast_xhat<X, true>(xh) : math::row_norm_cast_xhat<X, false>(xh);
          group_gamma[e] = math::add_rn(group_gamma[e], math::mul_rn(d, cast));
          group_beta[e] = math::add_rn(group_beta[e], d);
        }
      }
    }
    if (!param_grads) continue;
    for (std::int64_t e = 0; e < c.n; ++e) {
      partial_gamma[e] = g == 0 ? group_gamma[e] : math::add_rn(partial_gamma[e], group_gamma[e]);
      partial_beta[e] = g == 0 ? group_beta[e] : math::add_rn(partial_beta[e], group_beta[e]);
    }
  }
}

template <typename X, typename Param>
Status backward(const plan::RowNormBackwardCall& c, int threads) {
  const plan::RowNormLayout layout = plan::row_norm_backward_layout(c.n, c.x_dtype);
  const auto* gamma = static_cast<const Param*>(c.gamma);
  std::vector<float> w(static_cast<std::size_t>(c.n));
  for (std::int64_t e = 0; e < c.n; ++e) {
    w[e] = math::row_norm_weight(gamma != nullptr, gamma ? math::to_acc<float>(gamma[e]) : 0.0f, c.options.gamma_offset);
  }
  const bool param_grads = c.dgamma != nullptr || c.dbeta != nullptr;
  const std::int64_t blocks = plan::row_norm_partials(c.rows);
  const std::size_t n = static_cast<std::size_t>(c.n);
  // Partial rows of a batch of blocks at a time, folded into the strands in block order.
  const std::int64_t batch = std::max<std::int64_t>(plan::kRowNormGradStrands, 4 * static_cast<std::int64_t>(threads));
  std::vector<float> partials(param_grads ? 2 * n * static_cast<std::size_t>(std::min(batch, blocks)) : 0);
  std::vector<float> strands(param_grads ? 2 * n * plan::kRowNormGradStrands : 0, 0.0f);
  for (std::int64_t first = 0; first < blocks; first += batch) {
    const std::int64_t count = std::min(batch, blocks - first);
    parallel_range(count, kLayerNormRowsPerPartial * c.n, threads, [&](std::int64_t begin, std::int64_t end) {
      LaneSums sums(layout);
      std::vector<float> group_gamma(param_grads ? n : 0), group_beta(param_grads ? n : 0);
      for (std::int64_t k = begin; k < end; ++k) {
        float* pg = param_grads ? partials.data() + 2 * n * static_cast<std::size_t>(k) : nullptr;
        backward_block<X, Param>(c, layout, first + k, sums, w, pg, pg ? pg + n : nullptr, group_gamma, group_beta);
      }
    });
    if (!param_grads) continue;
    for (std::int64_t k = 0; k < count; ++k) {
      float* strand = strands.data() + 2 * n * static_cast<std::size_t>((first + k) % plan::kRowNormGradStrands);
      const float* pg = partials.data() + 2 * n * static_cast<std::size_t>(k);
      for (std::size_t e = 0; e < 2 * n; ++e) strand[e] = math::add_rn(strand[e], pg[e]);
    }
  }
  if (!param_grads) return Status::success();
  for (std::size_t e = 0; e < n; ++e) {
    float total_gamma = strands[e], total_beta = strands[n + e];
    for (int s = 1; s < plan::kRowNormGradStrands; ++s) {
      total_gamma = math::add_rn(total_gamma, strands[2 * n * s + e]);
      total_beta = math::add_rn(total_beta, strands[2 * n * s + n + e]);
    }
    if (c.dgamma) math::store_as(static_cast<Param*>(c.dgamma) + e, total_gamma);
    if (c.dbeta) math::store_as(static_cast<Param*>(c.dbeta) + e, total_beta);
  }
  return Status::success();
}

}  // namespace

Status row_norm_forward(const plan::RowNormForwardCall& call, int threads) {
  return math::visit_layer_dtypes(call.x_dtype, call.param_dtype, "layer_norm_forward", [&](auto x_tag, auto param_tag) {
    using X = typename decltype(x_tag)::type;
    using Param = typename decltype(param_tag)::type;
    parallel_range(call.rows, call.n, threads, [&](std::int64_t begin, std::int64_t end) { forward_rows<X, Param>(call, begin, end); });
    return Status::success();
  });
}

Status row_norm_backward(const plan::RowNormBackwardCall& call, int threads) {
  return math::visit_layer_dtypes(call.x_dtype, call.param_dtype, "layer_norm_backward", [&](auto x_tag, auto param_tag) {
    using X = typename decltype(x_tag)::type;
    using Param = typename decltype(param_tag)::type;
    return backward<X, Param>(call, threads);
  });
}

}  // namespace normkit::cpu
