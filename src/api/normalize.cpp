// Public transforms API: options, coefficients, the apply, Lp normalization.
#include "normkit/normalize.hpp"

#include <cmath>
#include <string>
#include <vector>

#include "api/validation.hpp"
#include "cpu/apply_cpu.hpp"
#include "kernels/common/device_runtime.hpp"
#include "kernels/stats/stats_launch.hpp"
#include "kernels/transform/transform_launch.hpp"
#include "math/moments.hpp"
#include "math/transform.hpp"
#include "plan/apply_plan.hpp"
#include "plan/geometry.hpp"

namespace normkit {
namespace {

// Output dtypes transforms write.
bool is_output_dtype(DType d) {
  return d == DType::float32 || d == DType::float64 || d == DType::float16 || d == DType::bfloat16;
}

Status validate_output_like(const TensorView& in, const TensorView& out, const std::string& op) {
  if (!is_output_dtype(out.dtype)) {
    return argument_error(StatusCode::unsupported_dtype, op, "out.dtype", "one of float32, float64, float16, bfloat16",
                          dtype_name(out.dtype));
  }
  bool same_shape = out.ndim == in.ndim;
  for (int d = 0; same_shape && d < in.ndim; ++d) same_shape = out.shape[d] == in.shape[d];
  if (!same_shape) {
    return argument_error(StatusCode::shape_mismatch, op, "out.shape", "the input's shape " + in.shape_string(),
                          out.shape_string());
  }
  if (out.space != in.space) {
    return argument_error(StatusCode::invalid_argument, op, "out.space", std::string(api::space_name(in.space)) + " (the input's)",
                          api::space_name(out.space));
  }
  if (in.numel() > 0 && out.data == nullptr) {
    return argument_error(StatusCode::null_pointer, op, "out.data", "a non-null pointer", "nullptr");
  }
  if (in.numel() == 0) return Status::success();
  NORMKIT_RETURN_IF_ERROR(api::validate_pointer(out.data, in.space, dtype_size(out.dtype), op, "out.data"));
  // In place is allowed with equal dtypes; any other overlap would read values already overwritten.
  const bool in_place = in.data == out.data && in.dtype == out.dtype;
  if (!in_place && api::overlaps(in.data, static_cast<std::size_t>(in.size_bytes()), out.data,
                                 static_cast<std::size_t>(in.numel()) * dtype_size(out.dtype))) {
    return argument_error(StatusCode::invalid_argument, op, "out",
                          "the input's buffer itself with the same dtype (in place), or a buffer apart from it",
                          in.data == out.data ? std::string(dtype_name(in.dtype)) + " -> " + dtype_name(out.dtype) + " in place"
                                              : "a partially overlapping buffer");
  }
  return Status::success();
}

Status validate_coefficients(const AffineCoefficients& c, MemorySpace space, const std::string& op) {
  if (!c.center || !c.scale || !c.offset) {
    return argument_error(StatusCode::null_pointer, op, "coefficients", "center, scale and offset arrays", "a null array");
  }
  NORMKIT_RETURN_IF_ERROR(api::validate_pointer(c.center, space, 8, op, "coefficients.center"));
  NORMKIT_RETURN_IF_ERROR(api::validate_pointer(c.scale, space, 8, op, "coefficients.scale"));
  NORMKIT_RETURN_IF_ERROR(api::validate_pointer(c.offset, space, 8, op, "coefficients.offset"));
  if (c.fill) NORMKIT_RETURN_IF_ERROR(api::validate_pointer(c.fill, space, 8, op, "coefficients.fill"));
  if (c.clip && !(c.clip_min <= c.clip_max)) {
    return argument_error(StatusCode::invalid_argument, op, "coefficients.clip_min", "clip_min <= clip_max",
                          api::number(c.clip_min) + " > " + api::number(c.clip_max));
  }
  return Status::success();
}

}  // namespace

const char* method_name(Method method) noexcept {
  switch (method) {
    case Method::zscore: return "zscore";
    case Method::minmax: return "minmax";
    case Method::maxabs: return "maxabs";
    case Method::rescale: return "rescale";
    case Method::decimal: return "decimal";
    case Method::impute_mean: return "impute-mean";
  }
  return "unknown";
}

bool parse_method(const std::string& name, Method* method) noexcept {
  for (Method m : {Method::zscore, Method::minmax, Method::maxabs, Method::rescale, Method::decimal, Method::impute_mean}) {
    if (name == method_name(m)) {
      *method = m;
      return true;
    }
  }
  return false;
}

Status validate_options(const NormalizerOptions& o, const std::string& op) {
  if (!(o.range_min < o.range_max) || !std::isfinite(o.range_min) || !std::isfinite(o.range_max)) {
    return argument_error(StatusCode::invalid_argument, op, "feature_range", "finite (a, b) with a < b",
                          "(" + api::number(o.range_min) + ", " + api::number(o.range_max) + ")");
  }
  if (!std::isfinite(o.scale) || o.scale == 0.0) {
    return argument_error(StatusCode::invalid_argument, op, "scale", "a finite non-zero number", api::number(o.scale));
  }
  if (!std::isfinite(o.offset)) return argument_error(StatusCode::invalid_argument, op, "offset", "a finite number", api::number(o.offset));
  if (!(o.epsilon >= 0.0) || !std::isfinite(o.epsilon)) {
    return argument_error(StatusCode::invalid_argument, op, "epsilon", "a finite number >= 0", api::number(o.epsilon));
  }
  if (o.zero_variance == ZeroVariance::keras && o.with_std && o.epsilon == 0.0) {
    return argument_error(StatusCode::invalid_argument, op, "epsilon", "> 0 with zero_variance keras (divides by max(std, epsilon))",
                          "0");
  }
  return Status::success();
}

Status compute_coefficients(const StatsSummary* summaries, std::int64_t n, const NormalizerOptions& options, bool inverse,
                            const AffineCoefficients& c, MemorySpace space, Stream stream) {
  const std::string op = "compute_coefficients";
  NORMKIT_RETURN_IF_ERROR(validate_options(options, op));
  if (space == MemorySpace::device && !cuda_available()) {
    return Status(StatusCode::cuda_unavailable, "normkit::" + op + ": no CUDA device is available");
  }
  NORMKIT_RETURN_IF_ERROR(validate_coefficients(c, space, op));
  if (n < 0) return argument_error(StatusCode::invalid_argument, op, "n", "n >= 0", std::to_string(n));
  if (n > 0) NORMKIT_RETURN_IF_ERROR(api::validate_pointer(summaries, space, 8, op, "summaries"));
  if (space == MemorySpace::device) return kernels::launch_coefficients(summaries, n, options, inverse, c, stream);
  for (std::int64_t k = 0; k < n; ++k) math::write_coefficients(summaries[k], options, inverse, c, k);
  return Status::success();
}

Status apply_affine(const TensorView& in, const ReduceAxes& axes, const AffineCoefficients& c, const TensorView& out,
                    Stream stream) {
  const std::string op = "apply_affine";
  NORMKIT_RETURN_IF_ERROR(api::validate_input(in, op));
  NORMKIT_RETURN_IF_ERROR(validate_output_like(in, out, op));
  NORMKIT_RETURN_IF_ERROR(validate_coefficients(c, in.space, op));
  bool is_reduced[kMaxDims];
  NORMKIT_RETURN_IF_ERROR(plan::resolve_axes(in.ndim, axes, is_reduced, op));
  const plan::CanonicalGeometry g = plan::canonicalize(in.shape.data(), in.ndim, is_reduced);
  if (g.numel == 0) return Status::success();
  if (in.space == MemorySpace::host) {
    return cpu::apply_affine(in.data, in.dtype, out.data, out.dtype, g, c, host_threads());
  }
  plan::DeviceInfo info;
  NORMKIT_RETURN_IF_ERROR(kernels::current_device_info(&info));
  const plan::ApplyPlan p = plan::choose_apply_plan(g, in.dtype, out.dtype, reinterpret_cast<std::uintptr_t>(in.data),
                                                    reinterpret_cast<std::uintptr_t>(out.data), info.sm_count);
  return kernels::launch_apply(in.data, in.dtype, out.data, out.dtype, g, p, c, stream);
}

namespace {

// Scratch layout of normalize_lp: row summaries, then three coefficient arrays, then the statistics
// workspace, each 256-byte aligned.
struct LpScratch {
  std::int64_t rows = 0;
  std::size_t summaries = 0, coefficients = 0, stats = 0, total = 0;
};

std::size_t align256(std::size_t b) { return (b + 255) / 256 * 256; }

Status lp_scratch(const TensorView& in, const std::string& op, LpScratch* s) {
  NORMKIT_RETURN_IF_ERROR(api::validate_input(in, op));
  if (in.ndim < 1) return argument_error(StatusCode::invalid_argument, op, "in.ndim", ">= 1 (rows along the last axis)", "0");
  const std::int64_t last = in.shape[in.ndim - 1];
  s->rows = last == 0 ? 0 : in.numel() / last;
  s->summaries = align256(static_cast<std::size_t>(s->rows) * sizeof(StatsSummary));
  s->coefficients = align256(static_cast<std::size_t>(s->rows) * sizeof(double)) * 3;
  if (in.space == MemorySpace::device) {
    StatsOptions o;
    o.axes = ReduceAxes::of({-1});
    o.accumulation = Accumulation::float64;  // as normalize_lp's two-read path
    NORMKIT_RETURN_IF_ERROR(stats_workspace_size(in, o, &s->stats));
  }
  s->total = s->summaries + s->coefficients + align256(s->stats);
  return Status::success();
}

}  // namespace

Status normalize_lp_workspace_size(const TensorView& in, std::size_t* bytes) {
  LpScratch s;
  NORMKIT_RETURN_IF_ERROR(lp_scratch(in, "normalize_lp_workspace_size", &s));
  *bytes = in.space == MemorySpace::device ? s.total : 0;
  return Status::success();
}

Status normalize_lp(const TensorView& in, LpNorm p, const TensorView& out, void* workspace, std::size_t workspace_bytes,
                    Stream stream) {
  const std::string op = "normalize_lp";
  LpScratch s;
  NORMKIT_RETURN_IF_ERROR(lp_scratch(in, op, &s));
  NORMKIT_RETURN_IF_ERROR(validate_output_like(in, out, op));
  if (s.rows == 0 || in.numel() == 0) return Status::success();
  const std::int64_t length = in.shape[in.ndim - 1];
  if (in.space == MemorySpace::host) {  // one read per row: its norm, then the row again from cache
    return cpu::normalize_lp_rows(in.data, in.dtype, out.data, out.dtype, s.rows, length, p, host_threads());
  }
  // Device: rows that fit in a warp's registers, with 16-byte aligned starts, take one read.
  if (plan::lp_one_read_applies(length, reinterpret_cast<std::uintptr_t>(in.data), dtype_size(in.dtype),
                                reinterpret_cast<std::uintptr_t>(out.data), dtype_size(out.dtype))) {
    plan::DeviceInfo info;
    NORMKIT_RETURN_IF_ERROR(kernels::current_device_info(&info));
    return kernels::launch_lp_rows(in.data, in.dtype, out.data, out.dtype, s.rows, length, p, info.sm_count, stream);
  }
  // Otherwise two reads: the row norms (statistics engine, float64 so that Σx² cannot overflow), then the
  // apply with scale 1 / norm.
  StatsOptions o;
  o.axes = ReduceAxes::of({-1});
  o.accumulation = Accumulation::float64;
  if (workspace_bytes < s.total || workspace == nullptr) {
    return argument_error(StatusCode::workspace_too_small, op, "workspace_bytes",
                          "at least " + std::to_string(s.total) + " (normalize_lp_workspace_size)", std::to_string(workspace_bytes));
  }
  auto* base = static_cast<unsigned char*>(workspace);
  auto* summaries = reinterpret_cast<StatsSummary*>(base);
  const std::size_t coefficient_bytes = s.coefficients / 3;
  AffineCoefficients c;
  c.center = reinterpret_cast<double*>(base + s.summaries);
  c.scale = reinterpret_cast<double*>(base + s.summaries + coefficient_bytes);
  c.offset = reinterpret_cast<double*>(base + s.summaries + 2 * coefficient_bytes);
  void* stats_workspace = s.stats ? base + s.summaries + s.coefficients : nullptr;
  NORMKIT_RETURN_IF_ERROR(accumulate_stats(in, o, summaries, s.rows, false, stats_workspace, s.stats, stream));
  NORMKIT_RETURN_IF_ERROR(kernels::launch_lp_coefficients(summaries, s.rows, p, c, stream));
  return apply_affine(in, o.axes, c, out, stream);
}

}  // namespace normkit
