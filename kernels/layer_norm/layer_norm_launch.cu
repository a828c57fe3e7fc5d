// Launchers of the LayerNorm / RMSNorm kernels and their instantiations: 5 (x, param) dtype pairs x {16-byte,
// scalar} packs x {plain, fused residual add} for the forward and the backward (rows read once, long rows),
// and the parameter-gradient sum per param dtype: 83.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <type_traits>

#include "kernels/common/cuda_check.hpp"
#include "kernels/layer_norm/layer_norm_kernels.cuh"
#include "kernels/layer_norm/layer_norm_launch.hpp"
#include "math/dtype_dispatch.hpp"
#include "math/layer_norm.hpp"

namespace normkit::kernels {
namespace {

int log2_of(int power_of_two) {
  int shift = 0;
  while ((1 << shift) < power_of_two) ++shift;
  return shift;
}

unsigned grid_dim(std::int64_t blocks) { return static_cast<unsigned>(std::clamp<std::int64_t>(blocks, 1, 0x7fffffff)); }

RowNormShape shape_of(std::int64_t rows, std::int64_t n, const LayerNormOptions& o, const plan::RowNormPlan& p, bool has_gamma,
                      bool has_beta) {
  RowNormShape s{};
  s.rows = rows;
  s.n = n;
  s.thread_shift = log2_of(p.layout.threads);
  s.vector_access = p.vector_access;
  s.centered = o.kind == RowNorm::layer_norm;
  s.has_gamma = has_gamma;
  s.has_beta = has_beta;
  s.gamma_offset = o.gamma_offset;
  s.round_xhat = o.cast_mode == CastMode::input_dtype;
  s.eps = static_cast<float>(o.eps);
  s.inv_n = math::row_norm_inverse_count(n);
  return s;
}

// Lets a kernel take `bytes` of dynamic shared memory. Above the default 48 KB (static shared memory
// included) the kernel's limit is raised to the device's opt-in maximum: always the same value, so that calls
// of different sizes, from any host thread, never lower it under one another. A row whose layout needs more
// than the device has (rows of 16384 in the forward need 128 KB: more than sm_86/sm_89's 99 KB) is a clear
// error: the layout fixes the results' bits, so it does not shrink to fit a smaller GPU.
template <typename Kernel>
Status allow_shared_bytes(Kernel kernel, std::size_t bytes, std::int64_t n, const char* op) {
  if (bytes == 0) return Status::success();
  cudaFuncAttributes attributes{};
  NORMKIT_RETURN_IF_ERROR(cuda::cuda_status(cudaFuncGetAttributes(&attributes, kernel), op, "cudaFuncGetAttributes"));
  const std::size_t total = bytes + attributes.sharedSizeBytes;
  if (total <= 48 * 1024) return Status::success();
  int device = 0, optin = 0;
  NORMKIT_RETURN_IF_ERROR(cuda::cuda_status(cudaGetDevice(&device), op, "cudaGetDevice"));
  NORMKIT_RETURN_IF_ERROR(cuda::cuda_status(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), op,
                                            "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)"));
  if (total > static_cast<std::size_t>(optin)) {
    return Status(StatusCode::invalid_argument, std::string("normkit::") + op + ": argument 'x.shape': rows of " + std::to_string(n) +
                                                    " elements need " + std::to_string(total) +
                                                    " bytes of shared memory a block; this GPU allows " + std::to_string(optin));
  }
  const int limit = optin - static_cast<int>(attributes.sharedSizeBytes);
  if (attributes.maxDynamicSharedSizeBytes >= limit) return Status::success();
  return cuda::cuda_status(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, limit), op,
                           "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
}

template <typename X>
constexpr int full_vec() { return static_cast<int>(16 / sizeof(X)); }

}  // namespace

Status launch_row_norm_forward(const plan::RowNormForwardCall& c, const plan::RowNormPlan& p, Stream stream) {
  constexpr const char* kOp = "layer_norm_forward";
  if (c.rows == 0) return Status::success();
  return math::visit_layer_dtypes(c.x_dtype, c.param_dtype, kOp, [&](auto x_tag, auto param_tag) {
    using X = typename decltype(x_tag)::type;
    using Param = typename decltype(param_tag)::type;
    const RowNormShape s = shape_of(c.rows, c.n, c.options, p, c.gamma != nullptr, c.beta != nullptr);
    const auto* x = static_cast<const X*>(c.x);
    const auto* gamma = static_cast<const Param*>(c.gamma);
    const auto* beta = static_cast<const Param*>(c.beta);
    auto* y = static_cast<X*>(c.y);
    const auto* residual = static_cast<const X*>(c.residual);
    auto* h = static_cast<X*>(c.residual_out);
    auto launch = [&](auto kernel) {
      NORMKIT_RETURN_IF_ERROR(allow_shared_bytes(kernel, p.shared_bytes, c.n, kOp));
      kernel<<<grid_dim(p.grid), p.block_threads, p.shared_bytes, stream>>>(x, residual, h, gamma, beta, y, c.mean, c.rstd, s);
      return cuda::check_launch(kOp, p.layout.one_read ? "row_norm_forward_kernel" : "row_norm_forward_long_kernel");
    };
    auto variant = [&](auto residual_tag) {
      constexpr bool kResidual = decltype(residual_tag)::value;
      const bool wide = p.layout.vec == full_vec<X>();
      if (p.layout.one_read) {
        return wide ? launch(row_norm_forward_kernel<X, Param, full_vec<X>(), kResidual>) : launch(row_norm_forward_kernel<X, Param, 1, kResidual>);
      }
      return wide ? launch(row_norm_forward_long_kernel<X, Param, full_vec<X>(), kResidual>)
                  : launch(row_norm_forward_long_kernel<X, Param, 1, kResidual>);
    };
    return residual ? variant(std::true_type{}) : variant(std::false_type{});
  });
}

Status launch_row_norm_backward(const plan::RowNormBackwardCall& c, const plan::RowNormPlan& p, void* workspace, Stream stream) {
  constexpr const char* kOp = "layer_norm_backward";
  return math::visit_layer_dtypes(c.x_dtype, c.param_dtype, kOp, [&](auto x_tag, auto param_tag) {
    using X = typename decltype(x_tag)::type;
    using Param = typename decltype(param_tag)::type;
    const RowNormShape s = shape_of(c.rows, c.n, c.options, p, c.gamma != nullptr, false);
    const bool param_grads = c.dgamma != nullptr || c.dbeta != nullptr;
    float* partial_gamma = param_grads ? static_cast<float*>(workspace) : nullptr;
    float* partial_beta = param_grads ? partial_gamma + p.partials * c.n : nullptr;
    const auto* dy = static_cast<const X*>(c.dy);
    const auto* x = static_cast<const X*>(c.x);
    const auto* gamma = static_cast<const Param*>(c.gamma);
    auto* dx = static_cast<X*>(c.dx);
    const auto* dres = static_cast<const X*>(c.residual_grad);
    auto launch = [&](auto kernel) {
      NORMKIT_RETURN_IF_ERROR(allow_shared_bytes(kernel, p.shared_bytes, c.n, kOp));
      kernel<<<grid_dim(p.grid), p.block_threads, p.shared_bytes, stream>>>(dy, x, dres, c.mean, c.rstd, gamma, dx, partial_gamma,
                                                                    partial_beta, s, p.partials);
      return Status::success();
    };
    auto variant = [&](auto residual_tag) {
      constexpr bool kResidual = decltype(residual_tag)::value;
      const bool wide = p.layout.vec == full_vec<X>();
      if (p.layout.one_read) {
        return wide ? launch(row_norm_backward_kernel<X, Param, full_vec<X>(), kResidual>) : launch(row_norm_backward_kernel<X, Param, 1, kResidual>);
      }
      return wide ? launch(row_norm_backward_long_kernel<X, Param, full_vec<X>(), kResidual>)
                  : launch(row_norm_backward_long_kernel<X, Param, 1, kResidual>);
    };
    if (c.rows > 0) {  // (no rows: only the parameter gradients, zeros, are written)
      NORMKIT_RETURN_IF_ERROR(dres && dx ? variant(std::true_type{}) : variant(std::false_type{}));
    }
    NORMKIT_RETURN_IF_ERROR(cuda::check_launch(kOp, p.layout.one_read ? "row_norm_backward_kernel" : "row_norm_backward_long_kernel"));
    if (!param_grads) return Status::success();
    const dim3 grid(grid_dim((c.n + 31) / 32), 2);
    row_norm_param_grad_kernel<Param><<<grid, dim3(32, plan::kRowNormGradStrands), 0, stream>>>(
        partial_gamma, partial_beta, p.partials, c.n, static_cast<Param*>(c.dgamma), static_cast<Param*>(c.dbeta));
    return cuda::check_launch(kOp, "row_norm_param_grad_kernel");
  });
}

}  // namespace normkit::kernels
