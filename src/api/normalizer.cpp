// Normalizer: statistics that accumulate over batches, derived coefficients, transform, save and load.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "io/normalizer_file.hpp"
#include "io/safetensors.hpp"
#include "kernels/common/device_runtime.hpp"
#include "kernels/stats/stats_launch.hpp"
#include "kernels/transform/transform_launch.hpp"
#include "math/moments.hpp"
#include "math/transform.hpp"
#include "normkit/normalize.hpp"
#include "normkit/normalizer.hpp"

#ifndef NORMKIT_VERSION
#define NORMKIT_VERSION "0.1.0"
#endif

namespace normkit {

// Coefficient arrays, each kept_numel float64: forward center/scale/offset/fill, then the inverse's. On
// the device one more 8-byte slot follows them: the answer of the +-Inf check of the fit.
constexpr int kCoefficientArrays = 8;

namespace {

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string index_in_shape(std::int64_t k, const std::vector<std::int64_t>& shape) {
  if (shape.size() <= 1) return std::to_string(k);
  std::vector<std::int64_t> index(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    index[d] = shape[d] ? k % shape[d] : 0;
    k = shape[d] ? k / shape[d] : 0;
  }
  return shape_text(index);
}

}  // namespace

struct Normalizer::State {
  NormalizerOptions options;
  MemorySpace space = MemorySpace::host;
  bool configured = false;
  bool adapted = false;
  std::vector<std::int64_t> kept;
  std::int64_t kept_numel = 0;
  bool coefficients_current = false;
  // Host space: the storage itself. Device space: summaries / coefficients / workspace in device memory.
  std::vector<StatsSummary> host_summaries;
  std::vector<double> host_coefficients;
  void* device_summaries = nullptr;
  void* device_coefficients = nullptr;
  void* device_workspace = nullptr;
  std::size_t workspace_bytes = 0;
  Stream last_stream = nullptr;

  ~State() { release(); }
  // Device work of this normalizer is ordered on one stream at a time: switching streams waits for the
  // previous one, so memory freed (stream-ordered) on the new stream is no longer in use on the old.
  Status use_stream(Stream stream) {
    if (space != MemorySpace::device || stream == last_stream) return Status::success();
    NORMKIT_RETURN_IF_ERROR(kernels::synchronize_stream(last_stream));
    last_stream = stream;
    return Status::success();
  }
  void release() {
    kernels::device_free(device_summaries, last_stream);
    kernels::device_free(device_coefficients, last_stream);
    kernels::device_free(device_workspace, last_stream);
    device_summaries = device_coefficients = device_workspace = nullptr;
    workspace_bytes = 0;
  }
  StatsSummary* summaries() {
    return space == MemorySpace::host ? host_summaries.data() : static_cast<StatsSummary*>(device_summaries);
  }
  double* coefficient_array(int i) {
    double* base = space == MemorySpace::host ? host_coefficients.data() : static_cast<double*>(device_coefficients);
    return base + static_cast<std::ptrdiff_t>(i) * kept_numel;
  }
  AffineCoefficients coefficients(bool inverse) {
    const int first = inverse ? 4 : 0;
    AffineCoefficients c;
    c.center = coefficient_array(first);
    c.scale = coefficient_array(first + 1);
    c.offset = coefficient_array(first + 2);
    const bool impute = options.impute_nan || options.method == Method::impute_mean;
    c.fill = !inverse && impute ? coefficient_array(first + 3) : nullptr;
    c.clip = !inverse && options.method == Method::minmax && options.clip;
    c.clip_min = options.range_min;
    c.clip_max = options.range_max;
    return c;
  }
  // Allocates the storage for a kept shape (summaries zeroed: empty statistics).
  Status allocate(const std::vector<std::int64_t>& kept_shape, Stream stream) {
    release();
    kept = kept_shape;
    kept_numel = 1;
    for (auto e : kept) kept_numel *= e;
    const std::size_t n = static_cast<std::size_t>(kept_numel);
    coefficients_current = false;
    if (space == MemorySpace::host) {
      StatsSummary empty{};
      empty.min = INFINITY;
      empty.max = -INFINITY;
      host_summaries.assign(n, empty);
      host_coefficients.assign(n * kCoefficientArrays, 0.0);
      return Status::success();
    }
    NORMKIT_RETURN_IF_ERROR(use_stream(stream));
    NORMKIT_RETURN_IF_ERROR(kernels::device_allocate(&device_summaries, n * sizeof(StatsSummary), stream));
    NORMKIT_RETURN_IF_ERROR(kernels::device_allocate(&device_coefficients, (n * kCoefficientArrays + 1) * sizeof(double), stream));
    return Status::success();
  }
  // scikit-learn rejects +-Inf in fit; so does every fitted method here, when its coefficients are derived.
  // On the device this copies one index to the host and synchronizes the stream.
  Status check_finite_fit(Stream stream, const std::string& op) {
    if (options.method == Method::rescale || kept_numel == 0) return Status::success();
    std::int64_t first = -1;
    StatsSummary s{};
    if (space == MemorySpace::host) {
      for (std::int64_t k = 0; k < kept_numel && first < 0; ++k) {
        if (math::fit_has_infinity(host_summaries[static_cast<std::size_t>(k)], options)) first = k;
      }
      if (first >= 0) s = host_summaries[static_cast<std::size_t>(first)];
    } else {
      std::int64_t* answer = reinterpret_cast<std::int64_t*>(coefficient_array(kCoefficientArrays));
      NORMKIT_RETURN_IF_ERROR(kernels::launch_first_infinite_fit(summaries(), kept_numel, options, answer, stream));
      NORMKIT_RETURN_IF_ERROR(kernels::copy_to_host_sync(&first, answer, sizeof(first), stream));
      if (first >= 0) NORMKIT_RETURN_IF_ERROR(kernels::copy_to_host_sync(&s, summaries() + first, sizeof(s), stream));
    }
    if (first < 0) return Status::success();
    return infinite_fit_error(first, s, op);
  }
  Status infinite_fit_error(std::int64_t first, const StatsSummary& s, const std::string& op) const {
    return argument_error(StatusCode::invalid_argument, op, "fitted data",
                          std::string("finite values or NaN for method ") + method_name(options.method) +
                              " (scikit-learn rejects infinity in fit; NaN is ignored)",
                          "feature " + index_in_shape(first, kept) + " of kept shape " + shape_text(kept) + " holds " +
                              std::to_string(s.posinf_count) + " +Inf and " + std::to_string(s.neginf_count) + " -Inf values");
  }
  Status refresh_coefficients(Stream stream, const std::string& op) {
    if (coefficients_current) return Status::success();
    NORMKIT_RETURN_IF_ERROR(check_finite_fit(stream, op));
    NORMKIT_RETURN_IF_ERROR(compute_coefficients(summaries(), kept_numel, options, false, coefficients_with_fill(false), space, stream));
    NORMKIT_RETURN_IF_ERROR(compute_coefficients(summaries(), kept_numel, options, true, coefficients_with_fill(true), space, stream));
    coefficients_current = true;
    return Status::success();
  }
  // Like coefficients(), but always with a fill array (compute_coefficients writes it).
  AffineCoefficients coefficients_with_fill(bool inverse) {
    AffineCoefficients c = coefficients(inverse);
    c.fill = coefficient_array(inverse ? 7 : 3);
    return c;
  }
  Status summaries_on_host(Stream stream, std::vector<StatsSummary>* out) {
    if (space == MemorySpace::host) {
      *out = host_summaries;
      return Status::success();
    }
    out->resize(static_cast<std::size_t>(kept_numel));
    return kernels::copy_to_host_sync(out->data(), device_summaries, out->size() * sizeof(StatsSummary), stream);
  }
};

Normalizer::Normalizer() : state_(std::make_unique<State>()) {}
Normalizer::~Normalizer() = default;
Normalizer::Normalizer(Normalizer&&) noexcept = default;
Normalizer& Normalizer::operator=(Normalizer&&) noexcept = default;

Status Normalizer::init(const NormalizerOptions& options, MemorySpace space) {
  NORMKIT_RETURN_IF_ERROR(validate_options(options, "Normalizer::init"));
  if (!state_) state_ = std::make_unique<State>();
  state_->release();
  *state_ = State{};
  state_->options = options;
  state_->space = space;
  state_->configured = true;
  return Status::success();
}

namespace {


Status kept_of(const TensorView& t, const ReduceAxes& axes, const std::string& op, std::vector<std::int64_t>* kept) {
  std::array<std::int64_t, kMaxDims> shape{};
  int ndim = 0;
  Status s = kept_shape(t, axes, &shape, &ndim);
  if (!s.ok()) return Status(s.code(), "normkit::" + op + ": " + s.message());
  kept->assign(shape.begin(), shape.begin() + ndim);
  return Status::success();
}

Status not_configured(const std::string& op) {
  return Status(StatusCode::invalid_argument, "normkit::" + op + ": the normalizer has no options (call init or load first)");
}

}  // namespace

Status Normalizer::adapt(const TensorView& batch, Stream stream) {
  const std::string op = "Normalizer::adapt";
  State& st = *state_;
  if (!st.configured) return not_configured(op);
  if (batch.space != st.space) {
    return argument_error(StatusCode::invalid_argument, op, "batch.space",
                          st.space == MemorySpace::host ? "host (the normalizer's)" : "device (the normalizer's)",
                          batch.space == MemorySpace::host ? "host" : "device");
  }
  std::vector<std::int64_t> kept;
  NORMKIT_RETURN_IF_ERROR(kept_of(batch, st.options.axes, op, &kept));
  if (!st.adapted) {
    NORMKIT_RETURN_IF_ERROR(st.allocate(kept, stream));
  } else if (kept != st.kept) {
    return argument_error(StatusCode::shape_mismatch, op, "batch.shape",
                          "kept shape " + shape_text(st.kept) + " (as adapted so far)", shape_text(kept) + " from " + batch.shape_string());
  }
  // As scikit-learn's partial_fit, the fitted statistic's dtype is the widest seen (its near-zero floor the smallest).
  const DType fitted = st.adapted ? st.options.fitted_dtype : batch.dtype;
  st.options.fitted_dtype = math::near_zero_scale(batch.dtype) < math::near_zero_scale(fitted) ? batch.dtype : fitted;
  StatsOptions options;
  options.axes = st.options.axes;
  options.accumulation = st.options.accumulation;
  if (st.space == MemorySpace::device) {
    NORMKIT_RETURN_IF_ERROR(st.use_stream(stream));
    std::size_t bytes = 0;
    NORMKIT_RETURN_IF_ERROR(stats_workspace_size(batch, options, &bytes));
    if (bytes > st.workspace_bytes) {
      kernels::device_free(st.device_workspace, stream);
      st.device_workspace = nullptr;
      st.workspace_bytes = 0;
      NORMKIT_RETURN_IF_ERROR(kernels::device_allocate(&st.device_workspace, bytes, stream));
      st.workspace_bytes = bytes;
    }
  }
  NORMKIT_RETURN_IF_ERROR(accumulate_stats(batch, options, st.summaries(), st.kept_numel, st.adapted, st.device_workspace,
                                           st.workspace_bytes, stream));
  st.adapted = true;
  st.coefficients_current = false;
  return Status::success();
}

Status Normalizer::adapt_summaries(const std::vector<std::int64_t>& kept_shape, const StatsSummary* summaries, DType batch_dtype, Stream stream) {
  const std::string op = "Normalizer::adapt_summaries";
  State& st = *state_;
  if (!st.configured) return not_configured(op);
  std::int64_t n = 1;
  for (std::int64_t e : kept_shape) n *= e;
  if (n > 0 && summaries == nullptr) return argument_error(StatusCode::null_pointer, op, "summaries", "a non-null pointer", "nullptr");
  if (st.adapted && kept_shape != st.kept) {
    return argument_error(StatusCode::shape_mismatch, op, "kept_shape", "kept shape " + shape_text(st.kept) + " (as adapted so far)",
                          shape_text(kept_shape));
  }
  if (!st.adapted) NORMKIT_RETURN_IF_ERROR(st.allocate(kept_shape, stream));
  // (adapt's dtype rule: the widest seen)
  const DType fitted = st.adapted ? st.options.fitted_dtype : batch_dtype;
  st.options.fitted_dtype = math::near_zero_scale(batch_dtype) < math::near_zero_scale(fitted) ? batch_dtype : fitted;
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(StatsSummary);
  if (st.space == MemorySpace::host) {
    if (!st.adapted) std::copy(summaries, summaries + n, st.summaries());
    else NORMKIT_RETURN_IF_ERROR(merge_summaries(st.summaries(), summaries, n, MemorySpace::host));
  } else if (!st.adapted) {
    NORMKIT_RETURN_IF_ERROR(st.use_stream(stream));
    NORMKIT_RETURN_IF_ERROR(kernels::copy_to_device(st.summaries(), summaries, bytes, stream));
  } else if (n > 0) {
    NORMKIT_RETURN_IF_ERROR(st.use_stream(stream));
    void* from = nullptr;
    NORMKIT_RETURN_IF_ERROR(kernels::device_allocate(&from, bytes, stream));
    Status merged = kernels::copy_to_device(from, summaries, bytes, stream);
    if (merged.ok()) merged = merge_summaries(st.summaries(), static_cast<const StatsSummary*>(from), n, MemorySpace::device, stream);
    kernels::device_free(from, stream);
    NORMKIT_RETURN_IF_ERROR(merged);
  }
  st.adapted = true;
  st.coefficients_current = false;
  return Status::success();
}

void Normalizer::reset() {
  if (!state_) return;
  state_->release();
  state_->adapted = false;
  state_->kept.clear();
  state_->kept_numel = 0;
  state_->coefficients_current = false;
}

Status Normalizer::set_mean_variance(const std::vector<std::int64_t>& kept_shape, const std::vector<double>& mean,
                                     const std::vector<double>& variance) {
  const std::string op = "Normalizer::set_mean_variance";
  State& st = *state_;
  if (!st.configured) return not_configured(op);
  if (st.options.method != Method::zscore) {
    return argument_error(StatusCode::invalid_argument, op, "method", "zscore (mean and variance define only z-scores)",
                          method_name(st.options.method));
  }
  std::int64_t n = 1;
  if (kept_shape.size() > static_cast<std::size_t>(kMaxDims) ||
      !checked_numel(kept_shape.data(), static_cast<int>(kept_shape.size()), sizeof(StatsSummary), &n)) {
    return argument_error(StatusCode::invalid_argument, op, "kept_shape", "at most 8 non-negative extents of a size that fits",
                          shape_text(kept_shape));
  }
  if (static_cast<std::int64_t>(mean.size()) != n || static_cast<std::int64_t>(variance.size()) != n) {
    return argument_error(StatusCode::shape_mismatch, op, "mean/variance", std::to_string(n) + " values each",
                          std::to_string(mean.size()) + " and " + std::to_string(variance.size()));
  }
  std::vector<StatsSummary> summaries(static_cast<std::size_t>(n));
  for (std::size_t k = 0; k < summaries.size(); ++k) {
    if (!std::isfinite(mean[k])) {
      return argument_error(StatusCode::invalid_argument, op, "mean", "finite values", "mean[" + std::to_string(k) + "] = " + std::to_string(mean[k]));
    }
    if (!(variance[k] >= 0.0) || !std::isfinite(variance[k])) {
      return argument_error(StatusCode::invalid_argument, op, "variance", "values >= 0", "variance[" + std::to_string(k) + "] = " + std::to_string(variance[k]));
    }
    // One pseudo-sample with this mean and M2 = variance: the population variance of the slice is variance.
    summaries[k] = StatsSummary{1, 0, 0, 0, mean[k] != 0.0, mean[k], variance[k], mean[k], mean[k], std::fabs(mean[k])};
  }
  NORMKIT_RETURN_IF_ERROR(st.allocate(kept_shape, st.last_stream));
  if (st.space == MemorySpace::host) {
    st.host_summaries = summaries;
  } else {
    NORMKIT_RETURN_IF_ERROR(kernels::copy_to_device(st.device_summaries, summaries.data(), summaries.size() * sizeof(StatsSummary),
                                                    st.last_stream));
  }
  st.adapted = true;
  return Status::success();
}

Status Normalizer::transform(const TensorView& in, const TensorView& out, Stream stream) {
  return transform_impl(in, out, false, stream, "Normalizer::transform");
}

Status Normalizer::inverse_transform(const TensorView& in, const TensorView& out, Stream stream) {
  return transform_impl(in, out, true, stream, "Normalizer::inverse_transform");
}

Status Normalizer::transform_impl(const TensorView& in, const TensorView& out, bool inverse, Stream stream, const char* op_name) {
  const std::string op = op_name;
  State& st = *state_;
  if (!st.configured) return not_configured(op);
  std::vector<std::int64_t> kept;
  NORMKIT_RETURN_IF_ERROR(kept_of(in, st.options.axes, op, &kept));
  if (!st.adapted) {
    if (st.options.method != Method::rescale) {
      return Status(StatusCode::invalid_argument, "normkit::" + op + ": the normalizer is not adapted (call adapt, set_mean_variance or load first)");
    }
    NORMKIT_RETURN_IF_ERROR(st.allocate(kept, stream));  // rescale needs no statistics
    if (st.space == MemorySpace::device) {
      std::vector<StatsSummary> empty(static_cast<std::size_t>(st.kept_numel), StatsSummary{0, 0, 0, 0, 0, 0, 0, INFINITY, -INFINITY, 0});
      NORMKIT_RETURN_IF_ERROR(kernels::copy_to_device(st.device_summaries, empty.data(), empty.size() * sizeof(StatsSummary), stream));
    }
    st.adapted = true;
  }
  if (kept != st.kept) {
    return argument_error(StatusCode::shape_mismatch, op, "in.shape", "kept shape " + shape_text(st.kept) + " on the kept axes",
                          shape_text(kept) + " from " + in.shape_string());
  }
  if (in.space != st.space) {
    return argument_error(StatusCode::invalid_argument, op, "in.space", st.space == MemorySpace::host ? "host" : "device",
                          in.space == MemorySpace::host ? "host" : "device");
  }
  NORMKIT_RETURN_IF_ERROR(st.use_stream(stream));
  NORMKIT_RETURN_IF_ERROR(st.refresh_coefficients(stream, op));
  return apply_affine(in, st.options.axes, st.coefficients(inverse), out, stream);
}

Status Normalizer::save(const std::string& path, Stream stream) const {
  const std::string op = "Normalizer::save";
  State& st = *state_;
  if (!st.configured || !st.adapted) return Status(StatusCode::invalid_argument, "normkit::" + op + ": nothing to save: the normalizer is not adapted");
  NORMKIT_RETURN_IF_ERROR(st.use_stream(stream));
  NORMKIT_RETURN_IF_ERROR(st.refresh_coefficients(stream, op));
  io::NormalizerFileContents contents;
  contents.options = st.options;
  contents.kept_shape = st.kept;
  NORMKIT_RETURN_IF_ERROR(st.summaries_on_host(stream, &contents.summaries));
  // The forward coefficients (center, scale, offset, fill): the first four arrays.
  const std::size_t n = static_cast<std::size_t>(st.kept_numel);
  contents.coefficients.resize(4 * n);
  if (st.space == MemorySpace::host) {
    std::copy(st.host_coefficients.begin(), st.host_coefficients.begin() + static_cast<std::ptrdiff_t>(4 * n), contents.coefficients.begin());
  } else {
    NORMKIT_RETURN_IF_ERROR(kernels::copy_to_host_sync(contents.coefficients.data(), st.device_coefficients,
                                                       contents.coefficients.size() * sizeof(double), stream));
  }
  io::SafetensorsFile file;
  NORMKIT_RETURN_IF_ERROR(io::encode_normalizer_file(contents, NORMKIT_VERSION, &file));
  return io::write_safetensors_atomic(path, file);
}

Status Normalizer::fitted_state(NormalizerState* out, Stream stream) const {
  const std::string op = "Normalizer::fitted_state";
  State& st = *state_;
  if (out == nullptr) return argument_error(StatusCode::null_pointer, op, "out", "a non-null pointer", "nullptr");
  if (!st.configured || !st.adapted) return Status(StatusCode::invalid_argument, "normkit::" + op + ": the normalizer is not adapted");
  NORMKIT_RETURN_IF_ERROR(st.use_stream(stream));
  NORMKIT_RETURN_IF_ERROR(st.refresh_coefficients(stream, op));
  NormalizerState state;
  state.kept_shape = st.kept;
  NORMKIT_RETURN_IF_ERROR(st.summaries_on_host(stream, &state.summaries));
  const std::size_t n = static_cast<std::size_t>(st.kept_numel);
  std::vector<double> coefficients(4 * n);
  if (st.space == MemorySpace::host) {
    std::copy(st.host_coefficients.begin(), st.host_coefficients.begin() + static_cast<std::ptrdiff_t>(4 * n), coefficients.begin());
  } else {
    NORMKIT_RETURN_IF_ERROR(kernels::copy_to_host_sync(coefficients.data(), st.device_coefficients, coefficients.size() * sizeof(double), stream));
  }
  // (the forward coefficients are the first four arrays: center, scale, offset, fill)
  for (std::vector<double>* v : {&state.center, &state.scale, &state.offset, &state.fill}) v->resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    state.center[i] = coefficients[i];
    state.scale[i] = coefficients[n + i];
    state.offset[i] = coefficients[2 * n + i];
    state.fill[i] = coefficients[3 * n + i];
  }
  *out = std::move(state);
  return Status::success();
}

Status Normalizer::load(const std::string& path, MemorySpace space) {
  const std::string op = "Normalizer::load";
  io::SafetensorsFile file;
  NORMKIT_RETURN_IF_ERROR(io::read_safetensors(path, &file));
  io::NormalizerFileContents contents;
  NORMKIT_RETURN_IF_ERROR(io::decode_normalizer_file(file, op, path, &contents));
  const Status valid = validate_options(contents.options, op);
  if (!valid.ok()) return Status(StatusCode::bad_file, "normkit: " + op + " '" + path + "': " + valid.message());
  NORMKIT_RETURN_IF_ERROR(init(contents.options, space));
  State& st = *state_;
  NORMKIT_RETURN_IF_ERROR(st.allocate(contents.kept_shape, nullptr));
  if (space == MemorySpace::host) {
    st.host_summaries = std::move(contents.summaries);
  } else {
    NORMKIT_RETURN_IF_ERROR(kernels::copy_to_device(st.device_summaries, contents.summaries.data(),
                                                    contents.summaries.size() * sizeof(StatsSummary), nullptr));
  }
  st.adapted = true;
  return Status::success();
}

const NormalizerOptions& Normalizer::options() const { return state_->options; }
bool Normalizer::adapted() const { return state_->adapted; }
std::vector<std::int64_t> Normalizer::kept_shape() const { return state_->kept; }

std::int64_t Normalizer::all_nan_features() const {
  if (!state_->adapted) return 0;
  std::vector<StatsSummary> summaries;
  if (!state_->summaries_on_host(state_->last_stream, &summaries).ok()) return -1;
  std::int64_t all_nan = 0;
  for (const StatsSummary& s : summaries) {
    all_nan += s.count + s.posinf_count + s.neginf_count == 0 && s.nan_count > 0;
  }
  return all_nan;
}

}  // namespace normkit
