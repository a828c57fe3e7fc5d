// Public LayerNorm / RMSNorm API: validate every tensor against x, then run the host engine or the kernels.
#include "normkit/layer_norm.hpp"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "api/validation.hpp"
#include "cpu/layer_norm_cpu.hpp"
#include "kernels/common/device_runtime.hpp"
#include "kernels/layer_norm/layer_norm_launch.hpp"
#include "normkit/stats.hpp"
#include "plan/layer_norm_plan.hpp"

namespace normkit {
namespace {

// x's geometry after validation: rows x n, and the normalized shape gamma and friends must have.
struct RowGeometry {
  std::int64_t rows = 1, n = 1;
  int normalized_ndim = 1;
  const TensorView* x = nullptr;
};

Status check_options(const LayerNormOptions& o, const TensorView& x, const std::string& op) {
  if (!(o.kind == RowNorm::layer_norm || o.kind == RowNorm::rms_norm)) {
    return argument_error(StatusCode::invalid_argument, op, "options.kind", "layer_norm or rms_norm", std::to_string(static_cast<int>(o.kind)));
  }
  if (!(o.cast_mode == CastMode::float32 || o.cast_mode == CastMode::input_dtype)) {
    return argument_error(StatusCode::invalid_argument, op, "options.cast_mode", "float32 or input_dtype",
                          std::to_string(static_cast<int>(o.cast_mode)));
  }
  if (!(std::isfinite(o.eps) && o.eps >= 0.0)) {
    return argument_error(StatusCode::invalid_argument, op, "options.eps", "a finite value >= 0", std::to_string(o.eps));
  }
  if (o.normalized_ndim < 1 || o.normalized_ndim > x.ndim) {
    return argument_error(StatusCode::invalid_argument, op, "options.normalized_ndim", "1.." + std::to_string(x.ndim) + " (x.ndim)",
                          std::to_string(o.normalized_ndim));
  }
  return Status::success();
}

// x itself: rank, dtype, shape, pointer; splits it into rows x n.
Status check_x(const TensorView& x, const LayerNormOptions& o, const std::string& op, const char* name, RowGeometry* g) {
  const std::string arg = name;
  if (x.ndim < 1 || x.ndim > kMaxDims) {
    return argument_error(StatusCode::invalid_argument, op, arg + ".ndim", "1.." + std::to_string(kMaxDims), std::to_string(x.ndim));
  }
  if (!api::is_layer_dtype(x.dtype)) {
    return argument_error(StatusCode::unsupported_dtype, op, arg + ".dtype", "one of float32, float16, bfloat16", dtype_name(x.dtype));
  }
  NORMKIT_RETURN_IF_ERROR(check_options(o, x, op));
  std::int64_t numel = 0;
  if (!checked_numel(x.shape.data(), x.ndim, dtype_size(x.dtype), &numel)) {
    return argument_error(StatusCode::overflow, op, arg + ".shape", "non-negative extents whose byte size fits in int64", x.shape_string());
  }
  g->normalized_ndim = o.normalized_ndim;
  g->x = &x;
  g->rows = 1;
  g->n = 1;
  for (int d = 0; d < x.ndim; ++d) (d < x.ndim - o.normalized_ndim ? g->rows : g->n) *= x.shape[d];
  if (g->n < 1) {
    TensorView normalized(nullptr, x.dtype, x.shape.data() + x.ndim - o.normalized_ndim, o.normalized_ndim);
    return argument_error(StatusCode::invalid_argument, op, arg + ".shape", "a normalized shape of at least one element",
                          normalized.shape_string());
  }
  if (x.space == MemorySpace::device && !cuda_available()) {
    return Status(StatusCode::cuda_unavailable, "normkit::" + op + ": " + arg + " is in device memory but no CUDA device is usable");
  }
  if (numel > 0) NORMKIT_RETURN_IF_ERROR(api::validate_pointer(x.data, x.space, dtype_size(x.dtype), op, arg + ".data"));
  return Status::success();
}

// A tensor shaped like x (y, dy, dx).
Status check_like_x(const TensorView& t, const RowGeometry& g, const std::string& op, const std::string& name) {
  return api::validate_like(t, *g.x, g.rows == 0, op, name);
}

// gamma, beta, dgamma, dbeta: the normalized shape, float32 or x's dtype (checked by the dtype visitor).
Status check_param(const TensorView& t, const RowGeometry& g, const std::string& op, const std::string& name) {
  const TensorView& x = *g.x;
  bool same = t.ndim == g.normalized_ndim;
  for (int d = 0; same && d < t.ndim; ++d) same = t.shape[d] == x.shape[x.ndim - g.normalized_ndim + d];
  if (!same) {
    TensorView normalized(nullptr, x.dtype, x.shape.data() + x.ndim - g.normalized_ndim, g.normalized_ndim);
    return argument_error(StatusCode::shape_mismatch, op, name + ".shape", "the normalized shape " + normalized.shape_string(), t.shape_string());
  }
  if (!(t.dtype == DType::float32 || t.dtype == x.dtype)) {
    return argument_error(StatusCode::unsupported_dtype, op, name + ".dtype", std::string("float32 or x's dtype ") + dtype_name(x.dtype), dtype_name(t.dtype));
  }
  if (t.space != x.space) return argument_error(StatusCode::invalid_argument, op, name + ".space", api::space_name(x.space), api::space_name(t.space));
  return api::validate_pointer(t.data, t.space, dtype_size(t.dtype), op, name + ".data");
}

// mean, rstd: float32, one per row.
Status check_row_stat(const TensorView& t, const RowGeometry& g, const std::string& op, const std::string& name) {
  if (t.dtype != DType::float32) return argument_error(StatusCode::unsupported_dtype, op, name + ".dtype", "float32", dtype_name(t.dtype));
  std::int64_t numel = 0;
  if (!checked_numel(t.shape.data(), t.ndim, 4, &numel) || numel != g.rows) {
    return argument_error(StatusCode::shape_mismatch, op, name + ".shape", std::to_string(g.rows) + " elements (one per row)", t.shape_string());
  }
  if (t.space != g.x->space) return argument_error(StatusCode::invalid_argument, op, name + ".space", api::space_name(g.x->space), api::space_name(t.space));
  if (g.rows == 0) return Status::success();
  return api::validate_pointer(t.data, t.space, 4, op, name + ".data");
}

int sm_count_or_default() {
  plan::DeviceInfo info;
  if (!kernels::current_device_info(&info).ok()) return 1;
  return info.sm_count;
}

// The forward, with the fused residual add when `residual` is given (residual_out required then).
Status forward(const std::string& op, const TensorView& x, const TensorView& residual, const TensorView& residual_out,
               const TensorView& gamma, const TensorView& beta, const TensorView& y, const TensorView& mean, const TensorView& rstd,
               const LayerNormOptions& options, Stream stream) {
  RowGeometry g;
  NORMKIT_RETURN_IF_ERROR(check_x(x, options, op, "x", &g));
  NORMKIT_RETURN_IF_ERROR(check_like_x(y, g, op, "y"));
  const bool fused = residual.data != nullptr || residual_out.data != nullptr;
  if (fused) {
    if (!residual.data) return argument_error(StatusCode::null_pointer, op, "residual", "the residual stream to add", "nullptr");
    if (!residual_out.data) return argument_error(StatusCode::null_pointer, op, "residual_out", "an output for x + residual", "nullptr");
    NORMKIT_RETURN_IF_ERROR(check_like_x(residual, g, op, "residual"));
    NORMKIT_RETURN_IF_ERROR(check_like_x(residual_out, g, op, "residual_out"));
  }
  if (gamma.data) NORMKIT_RETURN_IF_ERROR(check_param(gamma, g, op, "gamma"));
  if (beta.data) {
    if (options.kind == RowNorm::rms_norm) {
      return argument_error(StatusCode::invalid_argument, op, "beta", "no beta for RMSNorm (options.kind rms_norm)", "a beta");
    }
    NORMKIT_RETURN_IF_ERROR(check_param(beta, g, op, "beta"));
    if (gamma.data && beta.dtype != gamma.dtype) {
      return argument_error(StatusCode::unsupported_dtype, op, "beta.dtype", std::string("gamma's dtype ") + dtype_name(gamma.dtype),
                            dtype_name(beta.dtype));
    }
  }
  if (mean.data) {
    if (options.kind == RowNorm::rms_norm) {
      return argument_error(StatusCode::invalid_argument, op, "mean", "no mean output for RMSNorm", "a mean tensor");
    }
    NORMKIT_RETURN_IF_ERROR(check_row_stat(mean, g, op, "mean"));
  }
  if (rstd.data) NORMKIT_RETURN_IF_ERROR(check_row_stat(rstd, g, op, "rstd"));
  NORMKIT_RETURN_IF_ERROR(api::check_apart({{"y", y.data, api::bytes_of(y)}, {"mean", mean.data, api::bytes_of(mean)}, {"rstd", rstd.data, api::bytes_of(rstd)},
                                            {"residual_out", residual_out.data, api::bytes_of(residual_out)}},
                                      {{"x", x.data, api::bytes_of(x)}, {"gamma", gamma.data, api::bytes_of(gamma)}, {"beta", beta.data, api::bytes_of(beta)},
                                       {"residual", residual.data, api::bytes_of(residual)}},
                                      op));
  plan::RowNormForwardCall call;
  call.x = x.data;
  call.residual = residual.data;
  call.residual_out = residual_out.data;
  call.gamma = gamma.data;
  call.beta = beta.data;
  call.y = y.data;
  call.mean = static_cast<float*>(mean.data);
  call.rstd = static_cast<float*>(rstd.data);
  call.x_dtype = x.dtype;
  call.param_dtype = gamma.data ? gamma.dtype : (beta.data ? beta.dtype : DType::float32);
  call.rows = g.rows;
  call.n = g.n;
  call.options = options;
  if (g.rows == 0) return Status::success();
  if (x.space == MemorySpace::host) return cpu::row_norm_forward(call, host_threads());
  const plan::RowNormPlan p = plan::choose_row_norm_forward_plan(
      g.rows, g.n, x.dtype, api::aligned16({x.data, y.data, gamma.data, beta.data, residual.data, residual_out.data}), sm_count_or_default());
  return kernels::launch_row_norm_forward(call, p, stream);
}

// The backward, adding residual_grad (when given) to dx.
Status backward(const std::string& op, const TensorView& dy, const TensorView& x, const TensorView& residual_grad, const TensorView& mean,
                const TensorView& rstd, const TensorView& gamma, const TensorView& dx, const TensorView& dgamma, const TensorView& dbeta,
                const LayerNormOptions& options, void* workspace, std::size_t workspace_bytes, Stream stream) {
  RowGeometry g;
  NORMKIT_RETURN_IF_ERROR(check_x(x, options, op, "x", &g));
  NORMKIT_RETURN_IF_ERROR(check_like_x(dy, g, op, "dy"));
  if (residual_grad.data) {
    NORMKIT_RETURN_IF_ERROR(check_like_x(residual_grad, g, op, "residual_grad"));
    if (!dx.data) return argument_error(StatusCode::null_pointer, op, "dx", "an output for dx + residual_grad", "nullptr");
  }
  const bool centered = options.kind == RowNorm::layer_norm;
  if (centered) {
    if (mean.data == nullptr && g.rows > 0) return argument_error(StatusCode::null_pointer, op, "mean", "the forward's saved mean (LayerNorm)", "nullptr");
    if (mean.data) NORMKIT_RETURN_IF_ERROR(check_row_stat(mean, g, op, "mean"));
  } else if (mean.data) {
    return argument_error(StatusCode::invalid_argument, op, "mean", "no mean for RMSNorm (options.kind rms_norm)", "a mean tensor");
  }
  if (rstd.data == nullptr && g.rows > 0) return argument_error(StatusCode::null_pointer, op, "rstd", "the forward's saved rstd", "nullptr");
  if (rstd.data) NORMKIT_RETURN_IF_ERROR(check_row_stat(rstd, g, op, "rstd"));
  if (gamma.data) NORMKIT_RETURN_IF_ERROR(check_param(gamma, g, op, "gamma"));
  if (dx.data) NORMKIT_RETURN_IF_ERROR(check_like_x(dx, g, op, "dx"));
  if (dgamma.data) {
    if (!gamma.data) return argument_error(StatusCode::invalid_argument, op, "dgamma", "a gamma to take the gradient of", "no gamma");
    NORMKIT_RETURN_IF_ERROR(check_param(dgamma, g, op, "dgamma"));
    if (dgamma.dtype != gamma.dtype) {
      return argument_error(StatusCode::unsupported_dtype, op, "dgamma.dtype", std::string("gamma's dtype ") + dtype_name(gamma.dtype), dtype_name(dgamma.dtype));
    }
  }
  if (dbeta.data) {
    if (!centered) return argument_error(StatusCode::invalid_argument, op, "dbeta", "no dbeta for RMSNorm (options.kind rms_norm)", "a dbeta");
    NORMKIT_RETURN_IF_ERROR(check_param(dbeta, g, op, "dbeta"));
    const DType param = gamma.data ? gamma.dtype : dbeta.dtype;
    if (dbeta.dtype != param) {
      return argument_error(StatusCode::unsupported_dtype, op, "dbeta.dtype", std::string("gamma's dtype ") + dtype_name(param), dtype_name(dbeta.dtype));
    }
  }
  NORMKIT_RETURN_IF_ERROR(api::check_apart({{"dx", dx.data, api::bytes_of(dx)}, {"dgamma", dgamma.data, api::bytes_of(dgamma)}, {"dbeta", dbeta.data, api::bytes_of(dbeta)}},
                                      {{"dy", dy.data, api::bytes_of(dy)}, {"x", x.data, api::bytes_of(x)}, {"mean", centered ? mean.data : nullptr, api::bytes_of(mean)},
                                       {"rstd", rstd.data, api::bytes_of(rstd)}, {"gamma", gamma.data, api::bytes_of(gamma)},
                                       {"residual_grad", residual_grad.data, api::bytes_of(residual_grad)}},
                                      op));
  plan::RowNormBackwardCall call;
  call.dy = dy.data;
  call.residual_grad = residual_grad.data;
  call.x = x.data;
  call.mean = centered ? static_cast<const float*>(mean.data) : nullptr;
  call.rstd = static_cast<const float*>(rstd.data);
  call.gamma = gamma.data;
  call.dx = dx.data;
  call.dgamma = dgamma.data;
  call.dbeta = dbeta.data;
  call.x_dtype = x.dtype;
  call.param_dtype = gamma.data ? gamma.dtype : (dbeta.data ? dbeta.dtype : DType::float32);
  call.rows = g.rows;
  call.n = g.n;
  call.options = options;
  const bool param_grads = dgamma.data || dbeta.data;  // (no rows: dgamma and dbeta are written as zeros)
  if (x.space == MemorySpace::host) return cpu::row_norm_backward(call, host_threads());
  const std::size_t needed = param_grads ? plan::row_norm_backward_workspace_bytes(g.rows, g.n) : 0;
  if (workspace_bytes < needed) {
    return argument_error(StatusCode::workspace_too_small, op, "workspace_bytes",
                          "at least " + std::to_string(needed) + " (layer_norm_backward_workspace_size)", std::to_string(workspace_bytes));
  }
  if (needed > 0) {
    NORMKIT_RETURN_IF_ERROR(api::validate_pointer(workspace, MemorySpace::device, 16, op, "workspace"));
    NORMKIT_RETURN_IF_ERROR(api::check_apart({{"workspace", workspace, needed}},
                                        {{"dy", dy.data, api::bytes_of(dy)}, {"x", x.data, api::bytes_of(x)}, {"mean", centered ? mean.data : nullptr, api::bytes_of(mean)},
                                         {"rstd", rstd.data, api::bytes_of(rstd)}, {"gamma", gamma.data, api::bytes_of(gamma)}, {"dx", dx.data, api::bytes_of(dx)},
                                         {"residual_grad", residual_grad.data, api::bytes_of(residual_grad)},
                                         {"dgamma", dgamma.data, api::bytes_of(dgamma)}, {"dbeta", dbeta.data, api::bytes_of(dbeta)}},
                                        op));
  }
  const plan::RowNormPlan p = plan::choose_row_norm_backward_plan(
      g.rows, g.n, x.dtype, api::aligned16({dy.data, x.data, dx.data, gamma.data, residual_grad.data}), sm_count_or_default());
  return kernels::launch_row_norm_backward(call, p, workspace, stream);
}

}  // namespace

Status layer_norm_forward(const TensorView& x, const TensorView& gamma, const TensorView& beta, const TensorView& y,
                          const TensorView& mean, const TensorView& rstd, const LayerNormOptions& options, Stream stream) {
  return forward("layer_norm_forward", x, TensorView(), TensorView(), gamma, beta, y, mean, rstd, options, stream);
}

Status layer_norm_forward_residual(const TensorView& x, const TensorView& residual, const TensorView& residual_out,
                                   const TensorView& gamma, const TensorView& beta, const TensorView& y, const TensorView& mean,
                                   const TensorView& rstd, const LayerNormOptions& options, Stream stream) {
  const std::string op = "layer_norm_forward_residual";
  if (!residual.data) return argument_error(StatusCode::null_pointer, op, "residual", "the residual stream to add", "nullptr");
  return forward(op, x, residual, residual_out, gamma, beta, y, mean, rstd, options, stream);
}

Status layer_norm_backward_workspace_size(const TensorView& x, const LayerNormOptions& options, std::size_t* bytes) {
  const std::string op = "layer_norm_backward_workspace_size";
  RowGeometry g;
  NORMKIT_RETURN_IF_ERROR(check_x(x, options, op, "x", &g));
  *bytes = x.space == MemorySpace::device ? plan::row_norm_backward_workspace_bytes(g.rows, g.n) : 0;
  return Status::success();
}

Status layer_norm_backward(const TensorView& dy, const TensorView& x, const TensorView& mean, const TensorView& rstd,
                           const TensorView& gamma, const TensorView& dx, const TensorView& dgamma, const TensorView& dbeta,
                           const LayerNormOptions& options, void* workspace, std::size_t workspace_bytes, Stream stream) {
  return backward("layer_norm_backward", dy, x, TensorView(), mean, rstd, gamma, dx, dgamma, dbeta, options, workspace, workspace_bytes,
                  stream);
}

Status layer_norm_backward_residual(const TensorView& dy, const TensorView& h, const TensorView& residual_grad, const TensorView& mean,
                                    const TensorView& rstd, const TensorView& gamma, const TensorView& dx, const TensorView& dgamma,
                                    const TensorView& dbeta, const LayerNormOptions& options, void* workspace, std::size_t workspace_bytes,
                                    Stream stream) {
  if (!residual_grad.data) {
    return argument_error(StatusCode::null_pointer, "layer_norm_backward_residual", "residual_grad", "the residual stream's gradient", "nullptr");
  }
  return backward("layer_norm_backward_residual", dy, h, residual_grad, mean, rstd, gamma, dx, dgamma, dbeta, options, workspace,
                  workspace_bytes, stream);
}

}  // namespace normkit
