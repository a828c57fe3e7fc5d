// Host BatchNorm. Compiled with -ffp-contract=off: dx rounds every operation as written, as the kernels do.
#include "cpu/batch_norm_cpu.hpp"

#include <algorithm>
#include <vector>

#include "cpu/parallel_items.hpp"
#include "math/dtype_dispatch.hpp"

namespace normkit::cpu {
namespace {

// f(type_tag<X>{}) for the activation dtype.
template <typename F>
Status visit_activation(DType dtype, const char* op, F&& f) {
  return math::visit_layer_dtypes(dtype, DType::float32, op, [&](auto x_tag, auto) { return f(x_tag); });
}

}  // namespace

void batch_norm_finalize(const StatsSummary* summaries, std::int64_t channels, float* running_mean, float* running_var,
                         float* saved_mean, float* saved_rstd, float eps, const math::RunningUpdate& update) {
  for (std::int64_t c = 0; c < channels; ++c) {
    const math::ChannelFinalize f = math::batch_norm_finalize_channel(summaries[c], eps, update.unbiased);
    if (saved_mean) saved_mean[c] = f.mean;
    if (saved_rstd) saved_rstd[c] = f.rstd;
    if (running_mean) running_mean[c] = math::running_updated(running_mean[c], f.batch_mean, update, f.count);
    if (running_var) running_var[c] = math::running_updated(running_var[c], f.running_var_take, update, f.count);
  }
}

void batch_norm_affine(const float* mean, const float* rstd_or_var, bool from_variance, float eps, const float* gamma,
                       const float* beta, std::int64_t channels, const AffineCoefficients& out) {
  for (std::int64_t c = 0; c < channels; ++c) {
    const double rstd = from_variance ? math::batch_norm_inference_rstd(rstd_or_var[c], eps) : static_cast<double>(rstd_or_var[c]);
    const math::Affine f = math::batch_norm_affine(mean ? mean[c] : 0.0f, rstd, gamma ? gamma[c] : 1.0f, beta ? beta[c] : 0.0f);
    out.center[c] = f.center;
    out.scale[c] = f.scale;
    out.offset[c] = f.offset;
  }
}

Status batch_norm_backward_reduce(const void* dy, const void* x, DType dtype, const float* mean, std::int64_t mean_group,
                                  const plan::ChannelGeometry& g, float* sum_dy, float* sum_dy_xmu, int threads) {
  return visit_activation(dtype, "batch_norm_backward_reduce", [&](auto x_tag) {
    using X = typename decltype(x_tag)::type;
    const auto* d = static_cast<const X*>(dy);
    const auto* v = static_cast<const X*>(x);
    const std::int64_t channels = g.channels, inner = g.inner, flat = g.flat_channels(), rows = g.samples * g.outer;
    // Contiguous ranges of the samples x outer rows per thread, each with its own sums, merged in thread order.
    const int workers = threads_for_elements(rows * channels * inner, static_cast<int>(std::min<std::int64_t>(threads, rows)));
    std::vector<double> partial(static_cast<std::size_t>(workers) * 2 * flat, 0.0);
    parallel_items(workers, workers, [&](std::int64_t w0, std::int64_t w1) {
      for (std::int64_t w = w0; w < w1; ++w) {
        for (std::int64_t r = rows * w / workers; r < rows * (w + 1) / workers; ++r) {
          const std::int64_t first = (r / g.outer) * channels;  // the row's first flat channel
          double* a = partial.data() + w * 2 * flat + first;
          double* b = a + flat;
          for (std::int64_t c = 0; c < channels; ++c) {
            const std::int64_t base = (r * channels + c) * inner;
            const double m = mean[(first + c) / mean_group];
            for (std::int64_t s = 0; s < inner; ++s) {
              const double dv = math::to_acc<float>(d[base + s]);
              a[c] += dv;
              b[c] += dv * (static_cast<double>(math::to_acc<float>(v[base + s])) - m);
            }
          }
        }
      }
    });
    for (std::int64_t k = 0; k < flat; ++k) {
      double a = 0.0, b = 0.0;
      for (int w = 0; w < workers; ++w) {
        a += partial[(static_cast<std::size_t>(w) * 2) * flat + k];
        b += partial[(static_cast<std::size_t>(w) * 2 + 1) * flat + k];
      }
      sum_dy[k] = static_cast<float>(a);
      sum_dy_xmu[k] = static_cast<float>(b);
    }
    return Status::success();
  });
}

Status channel_dx_apply(const void* dy, const void* x, DType dtype, const plan::ChannelGeometry& g,
                        const math::ChannelGradCoefficients* coefficients, void* dx, int threads) {
  return visit_activation(dtype, "backward_apply", [&](auto x_tag) {
    using X = typename decltype(x_tag)::type;
    const auto* d = static_cast<const X*>(dy);
    const auto* v = static_cast<const X*>(x);
    auto* out = static_cast<X*>(dx);
    parallel_range(g.samples * g.outer, g.channels * g.inner, threads, [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        const math::ChannelGradCoefficients* q = coefficients + (r / g.outer) * g.channels;
        for (std::int64_t c = 0; c < g.channels; ++c) {
          const std::int64_t base = (r * g.channels + c) * g.inner;
          for (std::int64_t s = 0; s < g.inner; ++s) {
            math::store_as(out + base + s, math::channel_dx(math::to_acc<float>(d[base + s]), math::to_acc<float>(v[base + s]), q[c]));
          }
        }
      }
    });
    return Status::success();
  });
}

Status batch_norm_backward_apply(const void* dy, const void* x, DType dtype, const float* mean, const float* rstd,
                                 const float* gamma, const float* sum_dy, const float* sum_dy_xmu, double count,
                                 const plan::ChannelGeometry& g, void* dx, float* dgamma, float* dbeta, int threads) {
  std::vector<math::ChannelGradCoefficients> q(static_cast<std::size_t>(g.channels));
  for (std::int64_t c = 0; c < g.channels; ++c) {
    q[c] = math::batch_norm_grad_coefficients(mean[c], rstd[c], gamma ? gamma[c] : 1.0f, sum_dy[c], sum_dy_xmu[c], count);
    if (dgamma) dgamma[c] = math::batch_norm_dgamma(sum_dy_xmu[c], rstd[c]);
    if (dbeta) dbeta[c] = sum_dy[c];
  }
  if (!dx) return Status::success();
  return channel_dx_apply(dy, x, dtype, g, q.data(), dx, threads);
}

}  // namespace normkit::cpu
