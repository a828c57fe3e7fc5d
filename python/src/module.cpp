// _normkit: the nanobind bindings of normkit's public C++ API (python/normkit wraps them in the Python API).
//
// Arrays arrive as nanobind ndarrays (DLPack or the buffer protocol: NumPy, CuPy, PyTorch, JAX, ...) and become
// TensorViews without a copy; outputs are allocated by the Python layer in the input's library and passed in.
// A normkit Status becomes a Python exception here and only here: ValueError for bad arguments, TypeError for
// dtypes, OSError for files, RuntimeError for CUDA errors.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "normkit/batch_norm.hpp"
#include "normkit/group_norm.hpp"
#include "normkit/image.hpp"
#include "normkit/layer_norm.hpp"
#include "normkit/normalize.hpp"
#include "normkit/normalizer.hpp"
#include "normkit/stats.hpp"

#if defined(NORMKIT_WITH_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace nb = nanobind;
using namespace normkit;

namespace {

using Array = nb::ndarray<nb::ro>;     // any array, read
using OutArray = nb::ndarray<>;        // any array, written

[[noreturn]] void raise(const Status& s) {
  switch (s.code()) {
    case StatusCode::unsupported_dtype: throw nb::type_error(s.message().c_str());
    case StatusCode::io_error:
    case StatusCode::bad_file: {
      PyErr_SetString(PyExc_OSError, s.message().c_str());
      throw nb::python_error();
    }
    case StatusCode::cuda_error:
    case StatusCode::cuda_unavailable:
    case StatusCode::internal: throw std::runtime_error(s.message());
    default: throw nb::value_error(s.message().c_str());
  }
}
void check(const Status& s) {
  if (!s.ok()) raise(s);
}

DType dtype_of(const nb::dlpack::dtype& d, const char* op, const char* arg) {
  using code = nb::dlpack::dtype_code;
  if (d.lanes == 1) {
    if (d.code == static_cast<std::uint8_t>(code::Float) && d.bits == 32) return DType::float32;
    if (d.code == static_cast<std::uint8_t>(code::Float) && d.bits == 64) return DType::float64;
    if (d.code == static_cast<std::uint8_t>(code::Float) && d.bits == 16) return DType::float16;
    if (d.code == static_cast<std::uint8_t>(code::Bfloat) && d.bits == 16) return DType::bfloat16;
    if (d.code == static_cast<std::uint8_t>(code::UInt) && d.bits == 8) return DType::uint8;
    if (d.code == static_cast<std::uint8_t>(code::Int) && d.bits == 64) return DType::int64;
  }
  throw nb::type_error((std::string("normkit.") + op + ": argument '" + arg +
                        "': expected float32, float64, float16, bfloat16, uint8 or int64 elements, got DLPack dtype code " +
                        std::to_string(d.code) + " with " + std::to_string(d.bits) + " bits")
                           .c_str());
}

// A C-contiguous array as a TensorView (no copy). Empty arrays are contiguous whatever their strides.
template <typename A>
TensorView view_of(const A& a, const char* op, const char* arg) {
  if (a.ndim() > static_cast<std::size_t>(kMaxDims)) {
    throw nb::value_error((std::string("normkit.") + op + ": argument '" + arg + "': at most " + std::to_string(kMaxDims) + " dimensions, got " +
                           std::to_string(a.ndim()))
                              .c_str());
  }
  std::int64_t shape[kMaxDims] = {};
  std::int64_t expected = 1, numel = 1;
  for (std::size_t d = 0; d < a.ndim(); ++d) numel *= static_cast<std::int64_t>(a.shape(d));
  for (std::size_t k = a.ndim(); k-- > 0;) {
    shape[k] = static_cast<std::int64_t>(a.shape(k));
    if (numel > 0 && a.shape(k) > 1 && a.stride(k) != expected) {
      throw nb::value_error((std::string("normkit.") + op + ": argument '" + arg +
                             "': expected a C-contiguous array (call numpy.ascontiguousarray / .contiguous() first); a "
                             "PyTorch channels_last tensor is passed as its NHWC permute)")
                                .c_str());
    }
    expected *= static_cast<std::int64_t>(a.shape(k));
  }
  MemorySpace space = MemorySpace::host;
  if (a.device_type() == nb::device::cuda::value) {
    space = MemorySpace::device;
  } else if (a.device_type() != nb::device::cpu::value && a.device_type() != nb::device::cuda_host::value) {
    throw nb::value_error((std::string("normkit.") + op + ": argument '" + arg + "': expected host or CUDA device memory, got DLPack device type " +
                           std::to_string(a.device_type()))
                              .c_str());
  }
  return TensorView(const_cast<void*>(static_cast<const void*>(a.data())), dtype_of(a.dtype(), op, arg), shape, static_cast<int>(a.ndim()), space);
}

// The current CUDA device made the arrays' for the duration of a call (restored after).
struct DeviceScope {
#if defined(NORMKIT_WITH_CUDA)
  int previous = -1;
  explicit DeviceScope(int device) {
    if (device < 0) return;
    cudaGetDevice(&previous);
    if (previous != device) cudaSetDevice(device);
  }
  ~DeviceScope() {
    if (previous >= 0) cudaSetDevice(previous);
  }
#else
  explicit DeviceScope(int) {}
#endif
};

template <typename A>
int device_of(const A& a) {
  return a.device_type() == nb::device::cuda::value ? a.device_id() : -1;
}

Stream stream_of(std::uintptr_t handle) { return reinterpret_cast<Stream>(handle); }

// Device scratch for a call, freed on the call's stream after it (stream-ordered).
struct Scratch {
  void* ptr = nullptr;
  Stream stream = nullptr;
  Scratch(std::size_t bytes, MemorySpace space, Stream s) : stream(s) {
    if (bytes == 0 || space != MemorySpace::device) return;
#if defined(NORMKIT_WITH_CUDA)
    if (cudaMallocAsync(&ptr, bytes, reinterpret_cast<cudaStream_t>(s)) != cudaSuccess) {
      cudaGetLastError();
      throw std::runtime_error("normkit: cudaMallocAsync of " + std::to_string(bytes) + " bytes of workspace failed");
    }
#endif
  }
  ~Scratch() {
#if defined(NORMKIT_WITH_CUDA)
    if (ptr) cudaFreeAsync(ptr, reinterpret_cast<cudaStream_t>(stream));
#endif
  }
};

// Runs call(workspace, bytes) on x's device with stream-ordered scratch of the size query's bytes, the GIL released.
template <typename SizeQuery, typename Call>
void with_workspace(const Array& x, const TensorView& in, Stream stream, SizeQuery size_query, Call call) {
  DeviceScope scope(device_of(x));
  std::size_t bytes = 0;
  check(size_query(&bytes));
  Scratch ws(bytes, in.space, stream);
  nb::gil_scoped_release release;
  check(call(ws.ptr, bytes));
}

ReduceAxes axes_of(const std::vector<int>& axes, bool all) {
  if (all) return ReduceAxes::every();
  return ReduceAxes::of(axes.data(), static_cast<int>(axes.size()));
}

Stat stat_of(const std::string& name) {
  static const char* names[] = {"count", "mean", "var", "std", "min", "max", "sum", "l0", "l1", "l2", "linf"};
  for (int i = 0; i < kNumStats; ++i) {
    if (name == names[i]) return static_cast<Stat>(i);
  }
  throw nb::value_error(("normkit.stats: argument 'stats': unknown statistic '" + name + "' (count, mean, var, std, min, max, sum, l0, l1, l2, linf)").c_str());
}

// ---- functions ------------------------------------------------------------------------------------------------

void stats(Array x, std::vector<int> axes, bool all_axes, std::vector<std::string> names, std::vector<OutArray> outs, std::int64_t ddof,
           bool ignore_nan, std::uintptr_t stream) {
  const TensorView in = view_of(x, "stats", "x");
  StatsOptions o;
  o.axes = axes_of(axes, all_axes);
  o.ddof = ddof;
  o.ignore_nan = ignore_nan;
  StatsOutputs outputs;
  std::vector<Stat> wanted;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const Stat s = stat_of(names[i]);
    wanted.push_back(s);
    outputs[s] = view_of(outs[i], "stats", names[i].c_str());
  }
  o.stats = StatSet();
  for (Stat s : wanted) o.stats.add(s);
  with_workspace(x, in, stream_of(stream), [&](std::size_t* bytes) { return stats_workspace_size(in, o, bytes); },
                 [&](void* ws, std::size_t bytes) { return compute_stats(in, o, outputs, ws, bytes, stream_of(stream)); });
}

void lp_normalize(Array x, const std::string& norm, OutArray out, std::uintptr_t stream) {
  const TensorView in = view_of(x, "normalize", "x"), y = view_of(out, "normalize", "out");
  LpNorm p = LpNorm::l2;
  if (norm == "l1") p = LpNorm::l1;
  else if (norm == "linf" || norm == "max") p = LpNorm::linf;
  else if (norm != "l2") throw nb::value_error(("normkit.normalize: argument 'norm': expected l1, l2 or max, got '" + norm + "'").c_str());
  with_workspace(x, in, stream_of(stream), [&](std::size_t* bytes) { return normalize_lp_workspace_size(in, bytes); },
                 [&](void* ws, std::size_t bytes) { return normalize_lp(in, p, y, ws, bytes, stream_of(stream)); });
}

// An optional array argument (None: absent, a view with data == nullptr).
TensorView optional_view(const nb::object& a, const char* op, const char* arg) {
  if (a.is_none()) return TensorView();
  Array array;
  if (!nb::try_cast(a, array)) throw nb::type_error((std::string("normkit.") + op + ": argument '" + arg + "': expected an array or None").c_str());
  return view_of(array, op, arg);
}

void image_normalize_binding(Array x, OutArray y, const std::string& layout, const std::string& out_layout, const std::string& units,
                             std::vector<double> mean, std::vector<double> std, double eps, double scale, double shift, bool reverse,
                             std::vector<std::int64_t> crop, bool mirror, nb::object mirror_flags, nb::object crop_origins, std::int64_t row_pitch,
                             std::uintptr_t stream) {
  ImageNormalizeOptions o;
  auto layout_of = [](const std::string& v, const char* arg) {
    if (v == "nhwc") return ImageLayout::nhwc;
    if (v == "nchw") return ImageLayout::nchw;
    throw nb::value_error((std::string("normkit.image_normalize: argument '") + arg + "': expected 'nhwc' or 'nchw', got '" + v + "'").c_str());
  };
  o.layout = layout_of(layout, "layout");
  o.out_layout = layout_of(out_layout, "out_layout");
  if (units == "pixel") o.units = PixelUnits::pixel;
  else if (units == "unit") o.units = PixelUnits::unit;
  else if (!units.empty()) throw nb::value_error(("normkit.image_normalize: argument 'units': expected 'pixel' or 'unit', got '" + units + "'").c_str());
  o.mean = std::move(mean);
  o.std = std::move(std);
  o.eps = eps;
  o.global_scale = scale;
  o.global_shift = shift;
  o.reverse_channels = reverse;
  if (crop.size() == 4) o.crop_y = crop[0], o.crop_x = crop[1], o.crop_height = crop[2], o.crop_width = crop[3];
  o.mirror = mirror;
  o.row_pitch_bytes = row_pitch;
  TensorView flags;
  if (!mirror_flags.is_none()) {
    Array a;
    if (!nb::try_cast(mirror_flags, a)) throw nb::type_error("normkit.image_normalize: argument 'mirror': expected a bool or a uint8 array of one flag an image");
    flags = view_of(a, "image_normalize", "mirror");
  }
  const TensorView in = view_of(x, "image_normalize", "x"), out = view_of(y, "image_normalize", "out");
  const TensorView origins = optional_view(crop_origins, "image_normalize", "crop_origins");
  DeviceScope scope(device_of(x));
  nb::gil_scoped_release release;
  check(origins.data != nullptr ? image_normalize_crops(in, out, o, origins, flags, stream_of(stream)) : image_normalize(in, out, o, flags, stream_of(stream)));
}

// ---- layers -----------------------------------------------------------------------------------------------------

LayerNormOptions row_norm_options(bool rms, double eps, int normalized_ndim) {
  LayerNormOptions o;
  o.kind = rms ? RowNorm::rms_norm : RowNorm::layer_norm;
  o.eps = eps;
  o.normalized_ndim = normalized_ndim;
  return o;
}

void layer_norm_forward_binding(Array x, nb::object gamma, nb::object beta, OutArray y, nb::object mean, nb::object rstd, double eps, bool rms,
                                int normalized_ndim, std::uintptr_t stream) {
  const char* op = rms ? "rms_norm" : "layer_norm";
  const TensorView in = view_of(x, op, "x"), out = view_of(y, op, "out");
  const TensorView g = optional_view(gamma, op, "weight"), b = optional_view(beta, op, "bias"), m = optional_view(mean, op, "mean"),
                   r = optional_view(rstd, op, "rstd");
  DeviceScope scope(device_of(x));
  nb::gil_scoped_release release;
  check(layer_norm_forward(in, g, b, out, m, r, row_norm_options(rms, eps, normalized_ndim), stream_of(stream)));
}

void layer_norm_backward_binding(Array dy, Array x, nb::object mean, Array rstd, nb::object gamma, nb::object dx, nb::object dgamma, nb::object dbeta,
                                 double eps, bool rms, int normalized_ndim, std::uintptr_t stream) {
  const char* op = rms ? "rms_norm_backward" : "layer_norm_backward";
  const LayerNormOptions o = row_norm_options(rms, eps, normalized_ndim);
  const TensorView g_in = view_of(dy, op, "dy"), in = view_of(x, op, "x"), r = view_of(rstd, op, "rstd");
  const TensorView m = optional_view(mean, op, "mean"), g = optional_view(gamma, op, "weight"), dxv = optional_view(dx, op, "dx"),
                   dg = optional_view(dgamma, op, "dweight"), db = optional_view(dbeta, op, "dbias");
  with_workspace(x, in, stream_of(stream), [&](std::size_t* bytes) { return layer_norm_backward_workspace_size(in, o, bytes); },
                 [&](void* ws, std::size_t bytes) { return layer_norm_backward(g_in, in, m, r, g, dxv, dg, db, o, ws, bytes, stream_of(stream)); });
}

BatchNormOptions batch_norm_options(bool channels_last, double eps, double momentum, const std::string& convention, bool cumulative,
                                    std::int64_t batches_tracked) {
  BatchNormOptions o;
  o.channel_axis = channels_last ? ChannelAxis::last : ChannelAxis::first;
  o.eps = eps;
  o.momentum = momentum;
  if (convention == "keras") o.running_stats = RunningStatsConvention::keras;
  else if (convention != "pytorch")
    throw nb::value_error(("normkit.batch_norm: argument 'convention': expected 'pytorch' or 'keras', got '" + convention + "'").c_str());
  o.cumulative_average = cumulative;
  o.batches_tracked = batches_tracked;
  return o;
}

// Training (batch statistics; running statistics updated in place when given) or inference (running statistics).
void batch_norm_forward_binding(Array x, nb::object gamma, nb::object beta, OutArray y, nb::object running_mean, nb::object running_var,
                                nb::object saved_mean, nb::object saved_rstd, bool training, bool channels_last, double eps, double momentum,
                                const std::string& convention, bool cumulative, std::int64_t batches_tracked, std::uintptr_t stream) {
  const char* op = "batch_norm";
  const BatchNormOptions o = batch_norm_options(channels_last, eps, momentum, convention, cumulative, batches_tracked);
  const TensorView in = view_of(x, op, "x"), out = view_of(y, op, "out");
  const TensorView g = optional_view(gamma, op, "weight"), b = optional_view(beta, op, "bias"), rm = optional_view(running_mean, op, "running_mean"),
                   rv = optional_view(running_var, op, "running_var"), sm = optional_view(saved_mean, op, "saved_mean"),
                   sr = optional_view(saved_rstd, op, "saved_rstd");
  with_workspace(x, in, stream_of(stream), [&](std::size_t* bytes) { return batch_norm_workspace_size(in, o, bytes); },
                 [&](void* ws, std::size_t bytes) {
                   return training ? batch_norm_forward_training(in, g, b, out, rm, rv, sm, sr, o, ws, bytes, stream_of(stream))
                                   : batch_norm_forward_inference(in, g, b, rm, rv, out, o, ws, bytes, stream_of(stream));
                 });
}

// Training backward (saved mean/rstd of the batch) or the backward of inference (running mean/var: a per-channel affine map).
void batch_norm_backward_binding(Array dy, Array x, Array mean, Array rstd_or_var, nb::object gamma, nb::object dx, nb::object dgamma, nb::object dbeta,
                                 bool training, bool channels_last, double eps, std::uintptr_t stream) {
  const char* op = "batch_norm_backward";
  const BatchNormOptions o = batch_norm_options(channels_last, eps, 0.1, "pytorch", false, 1);
  const TensorView g_in = view_of(dy, op, "dy"), in = view_of(x, op, "x"), m = view_of(mean, op, training ? "saved_mean" : "running_mean"),
                   r = view_of(rstd_or_var, op, training ? "saved_rstd" : "running_var");
  const TensorView g = optional_view(gamma, op, "weight"), dxv = optional_view(dx, op, "dx"), dg = optional_view(dgamma, op, "dweight"),
                   db = optional_view(dbeta, op, "dbias");
  with_workspace(x, in, stream_of(stream), [&](std::size_t* bytes) { return batch_norm_workspace_size(in, o, bytes); },
                 [&](void* ws, std::size_t bytes) {
                   return training ? batch_norm_backward(g_in, in, m, r, g, dxv, dg, db, o, ws, bytes, stream_of(stream))
                                   : batch_norm_backward_eval(g_in, in, g, m, r, dxv, dg, db, o, ws, bytes, stream_of(stream));
                 });
}

// ---- BatchNorm's phases (SyncBatchNorm: the caller's transport between them) -------------------------------------

// An array of StatsSummary records: uint8, a multiple of 80 bytes (the C++ layout, kept as raw bytes).
// Summaries passed as uint8 arrays of their bytes: whole 80-byte StatsSummary (56-byte IntegerSummary).
template <typename Summary = StatsSummary>
Summary* summaries_of(const TensorView& v, const char* op, const char* arg, std::int64_t* n) {
  const std::int64_t bytes = v.numel() * static_cast<std::int64_t>(dtype_size(v.dtype));
  if (v.dtype != DType::uint8 || bytes % static_cast<std::int64_t>(sizeof(Summary)) != 0) {
    throw nb::type_error((std::string("normkit.") + op + ": argument '" + arg + "': expected uint8 bytes of whole " +
                          std::to_string(sizeof(Summary)) + "-byte summaries, got " + std::to_string(bytes) + " bytes of " + dtype_name(v.dtype))
                             .c_str());
  }
  *n = bytes / static_cast<std::int64_t>(sizeof(Summary));
  return static_cast<Summary*>(v.data);
}

void batch_norm_statistics_binding(Array x, OutArray summaries, bool channels_last, double eps, std::uintptr_t stream) {
  const char* op = "batch_norm_statistics";
  const BatchNormOptions o = batch_norm_options(channels_last, eps, 0.1, "pytorch", false, 1);
  const TensorView in = view_of(x, op, "x"), out = view_of(summaries, op, "summaries");
  std::int64_t n = 0;
  StatsSummary* s = summaries_of(out, op, "summaries", &n);
  with_workspace(x, in, stream_of(stream), [&](std::size_t* bytes) { return batch_norm_workspace_size(in, o, bytes); },
                 [&](void* ws, std::size_t bytes) { return batch_norm_statistics(in, o, s, n, ws, bytes, stream_of(stream)); });
}

void merge_summaries_binding(OutArray into, Array from, std::uintptr_t stream) {
  const char* op = "merge_summaries";
  const TensorView a = view_of(into, op, "into"), b = view_of(from, op, "from");
  std::int64_t n = 0, m = 0;
  StatsSummary* s = summaries_of(a, op, "into", &n);
  const StatsSummary* t = summaries_of(b, op, "from", &m);
  if (n != m || a.space != b.space) throw nb::value_error("normkit.merge_summaries: 'into' and 'from' must hold as many summaries in one memory space");
  DeviceScope scope(device_of(into));
  nb::gil_scoped_release release;
  check(merge_summaries(s, t, n, a.space, stream_of(stream)));
}

// ---- streaming statistics (normkit.StreamingStats) ------------------------------------------------------

nb::bytes empty_summary_bytes(bool integer) {
  if (integer) {
    const IntegerSummary e = empty_integer_summary();
    return nb::bytes(reinterpret_cast<const char*>(&e), sizeof e);
  }
  const StatsSummary e = empty_stats_summary();
  return nb::bytes(reinterpret_cast<const char*>(&e), sizeof e);
}

// x's elements as the run [first, first + x.size) of a tensor of `shape`, merged into `summaries` (integer
// summaries for uint8 x).
void accumulate_elements(Array x, std::vector<std::int64_t> shape, std::int64_t first, std::vector<int> axes, bool all_axes, OutArray summaries,
                         std::uintptr_t stream) {
  const char* op = "StreamingStats";
  const TensorView run = view_of(x, op, "x"), out = view_of(summaries, op, "summaries");
  if (shape.size() > static_cast<std::size_t>(kMaxDims)) throw nb::value_error("normkit.StreamingStats: at most 8 dimensions");
  TensorView whole(run.data, run.dtype, shape.data(), static_cast<int>(shape.size()), run.space);
  StatsOptions o;
  o.axes = axes_of(axes, all_axes);
  std::int64_t n = 0;
  const bool integer = run.dtype == DType::uint8;
  void* s = integer ? static_cast<void*>(summaries_of<IntegerSummary>(out, op, "summaries", &n)) : summaries_of(out, op, "summaries", &n);
  const std::int64_t count = run.numel();
  with_workspace(x, run, stream_of(stream), [&](std::size_t* bytes) { return stats_range_workspace_size(whole, first, count, o, bytes); },
                 [&](void* ws, std::size_t bytes) {
                   return integer ? accumulate_integer_stats_range(whole, first, count, o, static_cast<IntegerSummary*>(s), n, ws, bytes, stream_of(stream))
                                  : accumulate_stats_range(whole, first, count, o, static_cast<StatsSummary*>(s), n, ws, bytes, stream_of(stream));
                 });
}

void merge_summary_arrays(OutArray into, Array from, bool integer, std::uintptr_t stream) {
  const char* op = "StreamingStats.merge";
  const TensorView a = view_of(into, op, "into"), b = view_of(from, op, "from");
  if (a.space != b.space || a.numel() != b.numel()) throw nb::value_error("normkit.StreamingStats.merge: summaries of another shape or memory space");
  std::int64_t n = 0;
  DeviceScope scope(device_of(into));
  if (integer) {
    IntegerSummary* to = summaries_of<IntegerSummary>(a, op, "into", &n);
    const IntegerSummary* from_summaries = summaries_of<IntegerSummary>(b, op, "from", &n);
    nb::gil_scoped_release release;
    check(merge_integer_summaries(to, from_summaries, n, a.space, stream_of(stream)));
  } else {
    StatsSummary* to = summaries_of(a, op, "into", &n);
    const StatsSummary* from_summaries = summaries_of(b, op, "from", &n);
    nb::gil_scoped_release release;
    check(merge_summaries(to, from_summaries, n, a.space, stream_of(stream)));
  }
}

// The statistics of the summaries into `outs` (any shape of n elements each).
void finalize_summary_arrays(Array summaries, bool integer, std::vector<std::string> names, std::vector<OutArray> outs, std::int64_t ddof,
                             bool ignore_nan, std::uintptr_t stream) {
  const char* op = "StreamingStats.result";
  const TensorView v = view_of(summaries, op, "summaries");
  std::int64_t n = 0;
  const void* s = integer ? static_cast<const void*>(summaries_of<IntegerSummary>(v, op, "summaries", &n)) : summaries_of(v, op, "summaries", &n);
  StatsOptions o;
  o.ddof = ddof;
  o.ignore_nan = ignore_nan;
  o.stats = StatSet();
  StatsOutputs outputs;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const Stat stat = stat_of(names[i]);
    o.stats.add(stat);
    TensorView flat = view_of(outs[i], op, names[i].c_str());
    if (flat.numel() != n) throw nb::value_error("normkit.StreamingStats.result: an output of another size than the summaries");
    flat.ndim = 1;
    flat.shape[0] = n;
    outputs[stat] = flat;
  }
  DeviceScope scope(device_of(summaries));
  nb::gil_scoped_release release;
  check(integer ? finalize_integer_stats(static_cast<const IntegerSummary*>(s), n, o, outputs, v.space, stream_of(stream))
                : finalize_stats(static_cast<const StatsSummary*>(s), n, o, outputs, v.space, stream_of(stream)));
}

void batch_norm_finalize_binding(Array summaries, nb::object running_mean, nb::object running_var, OutArray saved_mean, OutArray saved_rstd,
                                 double eps, double momentum, const std::string& convention, bool cumulative, std::int64_t batches_tracked,
                                 std::uintptr_t stream) {
  const char* op = "batch_norm_finalize";
  const BatchNormOptions o = batch_norm_options(false, eps, momentum, convention, cumulative, batches_tracked);
  const TensorView v = view_of(summaries, op, "summaries");
  std::int64_t n = 0;
  const StatsSummary* s = summaries_of(v, op, "summaries", &n);
  const TensorView rm = optional_view(running_mean, op, "running_mean"), rv = optional_view(running_var, op, "running_var");
  const TensorView sm = view_of(saved_mean, op, "saved_mean"), sr = view_of(saved_rstd, op, "saved_rstd");
  DeviceScope scope(device_of(summaries));
  nb::gil_scoped_release release;
  check(batch_norm_finalize(s, n, v.space, rm, rv, sm, sr, o, stream_of(stream)));
}

void batch_norm_normalize_binding(Array x, Array saved_mean, Array saved_rstd, nb::object gamma, nb::object beta, OutArray y, bool channels_last,
                                  double eps, std::uintptr_t stream) {
  const char* op = "batch_norm_normalize";
  const BatchNormOptions o = batch_norm_options(channels_last, eps, 0.1, "pytorch", false, 1);
  const TensorView in = view_of(x, op, "x"), out = view_of(y, op, "out"), m = view_of(saved_mean, op, "saved_mean"),
                   r = view_of(saved_rstd, op, "saved_rstd");
  const TensorView g = optional_view(gamma, op, "weight"), b = optional_view(beta, op, "bias");
  with_workspace(x, in, stream_of(stream), [&](std::size_t* bytes) { return batch_norm_workspace_size(in, o, bytes); },
                 [&](void* ws, std::size_t bytes) { return batch_norm_normalize(in, m, r, g, b, out, o, ws, bytes, stream_of(stream)); });
}

void batch_norm_backward_reduce_binding(Array dy, Array x, Array saved_mean, OutArray sum_dy, OutArray sum_dy_xmu, bool channels_last,
                                        std::uintptr_t stream) {
  const char* op = "batch_norm_backward_reduce";
  const BatchNormOptions o = batch_norm_options(channels_last, 1e-5, 0.1, "pytorch", false, 1);
  const TensorView d = view_of(dy, op, "dy"), in = view_of(x, op, "x"), m = view_of(saved_mean, op, "saved_mean"),
                   a = view_of(sum_dy, op, "sum_dy"), b = view_of(sum_dy_xmu, op, "sum_dy_xmu");
  with_workspace(x, in, stream_of(stream), [&](std::size_t* bytes) { return batch_norm_workspace_size(in, o, bytes); },
                 [&](void* ws, std::size_t bytes) { return batch_norm_backward_reduce(d, in, m, a, b, o, ws, bytes, stream_of(stream)); });
}

void batch_norm_backward_apply_binding(Array dy, Array x, Array saved_mean, Array saved_rstd, nb::object gamma, Array sum_dy, Array sum_dy_xmu,
                                       std::int64_t count, OutArray dx, bool channels_last, std::uintptr_t stream) {
  const char* op = "batch_norm_backward_apply";
  const BatchNormOptions o = batch_norm_options(channels_last, 1e-5, 0.1, "pytorch", false, 1);
  const TensorView d = view_of(dy, op, "dy"), in = view_of(x, op, "x"), m = view_of(saved_mean, op, "saved_mean"),
                   r = view_of(saved_rstd, op, "saved_rstd"), a = view_of(sum_dy, op, "sum_dy"), b = view_of(sum_dy_xmu, op, "sum_dy_xmu"),
                   out = view_of(dx, op, "dx");
  const TensorView g = optional_view(gamma, op, "weight");
  with_workspace(x, in, stream_of(stream), [&](std::size_t* bytes) { return batch_norm_workspace_size(in, o, bytes); },
                 [&](void* ws, std::size_t bytes) {
                   return batch_norm_backward_apply(d, in, m, r, g, a, b, count, out, TensorView(), TensorView(), o, ws, bytes, stream_of(stream));
                 });
}

GroupNormOptions group_norm_options(std::int64_t groups, bool channels_last, double eps) {
  GroupNormOptions o;
  o.groups = groups;
  o.channel_axis = channels_last ? ChannelAxis::last : ChannelAxis::first;
  o.eps = eps;
  return o;
}

void group_norm_forward_binding(Array x, nb::object gamma, nb::object beta, OutArray y, nb::object saved_mean, nb::object saved_rstd,
                                std::int64_t groups, bool channels_last, double eps, std::uintptr_t stream) {
  const char* op = "group_norm";
  const GroupNormOptions o = group_norm_options(groups, channels_last, eps);
  const TensorView in = view_of(x, op, "x"), out = view_of(y, op, "out");
  const TensorView g = optional_view(gamma, op, "weight"), b = optional_view(beta, op, "bias"), sm = optional_view(saved_mean, op, "saved_mean"),
                   sr = optional_view(saved_rstd, op, "saved_rstd");
  with_workspace(x, in, stream_of(stream), [&](std::size_t* bytes) { return group_norm_workspace_size(in, o, bytes); },
                 [&](void* ws, std::size_t bytes) { return group_norm_forward(in, g, b, out, sm, sr, o, ws, bytes, stream_of(stream)); });
}

void group_norm_backward_binding(Array dy, Array x, Array saved_mean, Array saved_rstd, nb::object gamma, nb::object dx, nb::object dgamma,
                                 nb::object dbeta, std::int64_t groups, bool channels_last, double eps, std::uintptr_t stream) {
  const char* op = "group_norm_backward";
  const GroupNormOptions o = group_norm_options(groups, channels_last, eps);
  const TensorView g_in = view_of(dy, op, "dy"), in = view_of(x, op, "x"), m = view_of(saved_mean, op, "saved_mean"),
                   r = view_of(saved_rstd, op, "saved_rstd");
  const TensorView g = optional_view(gamma, op, "weight"), dxv = optional_view(dx, op, "dx"), dg = optional_view(dgamma, op, "dweight"),
                   db = optional_view(dbeta, op, "dbias");
  with_workspace(x, in, stream_of(stream), [&](std::size_t* bytes) { return group_norm_workspace_size(in, o, bytes); },
                 [&](void* ws, std::size_t bytes) { return group_norm_backward(g_in, in, m, r, g, dxv, dg, db, o, ws, bytes, stream_of(stream)); });
}

// ---- Normalizer -------------------------------------------------------------------------------------------------

Method method_of(const std::string& m) {
  Method method;
  if (!parse_method(m, &method)) throw nb::value_error(("normkit: argument 'method': unknown method '" + m + "'").c_str());
  return method;
}

class PyNormalizer {
 public:
  PyNormalizer(const std::string& method, std::vector<int> axes, bool with_mean, bool with_std, const std::string& zero_variance, double epsilon,
               double range_min, double range_max, bool clip, double scale, double offset, bool impute, bool device) {
    o_.method = method_of(method);
    o_.axes = ReduceAxes::of(axes.data(), static_cast<int>(axes.size()));
    o_.with_mean = with_mean;
    o_.with_std = with_std;
    if (zero_variance == "keras") o_.zero_variance = ZeroVariance::keras;
    else if (zero_variance != "sklearn") throw nb::value_error(("normkit: argument 'zero_variance': expected 'sklearn' or 'keras', got '" + zero_variance + "'").c_str());
    o_.epsilon = epsilon;
    o_.range_min = range_min;
    o_.range_max = range_max;
    o_.clip = clip;
    o_.scale = scale;
    o_.offset = offset;
    o_.impute_nan = impute;
    check(validate_options(o_, "Normalizer"));
    space_ = device ? MemorySpace::device : MemorySpace::host;
    check(n_.init(o_, space_));
  }
  void adapt(Array x, std::uintptr_t stream) {
    const TensorView in = view_of(x, "Normalizer.adapt", "X");
    if (in.space != space_) throw nb::value_error("normkit: argument 'X': the estimator's state lives in the other memory space (host vs device)");
    DeviceScope scope(device_of(x));
    nb::gil_scoped_release release;
    check(n_.adapt(in, stream_of(stream)));
  }
  void reset() { n_.reset(); }
  void set_mean_variance(std::vector<std::int64_t> kept, std::vector<double> mean, std::vector<double> variance) {
    check(n_.set_mean_variance(kept, mean, variance));
  }
  void transform(Array x, OutArray out, bool inverse, std::uintptr_t stream) {
    const TensorView in = view_of(x, "Normalizer.transform", "X"), y = view_of(out, "Normalizer.transform", "out");
    DeviceScope scope(device_of(x));
    nb::gil_scoped_release release;
    check(inverse ? n_.inverse_transform(in, y, stream_of(stream)) : n_.transform(in, y, stream_of(stream)));
  }
  void save(const std::string& path, std::uintptr_t stream) const { check(n_.save(path, stream_of(stream))); }
  void load(const std::string& path, bool device) {
    space_ = device ? MemorySpace::device : MemorySpace::host;
    check(n_.load(path, space_));
    o_ = n_.options();
  }
  bool adapted() const { return n_.adapted(); }
  // The fitted state: {"kept_shape", "count", "nan_count", "mean", "m2", "min", "max", "center", "scale", "offset", "fill"}
  // as lists (the Python layer makes NumPy arrays of them). Synchronizes for device state.
  nb::dict state(std::uintptr_t stream) const {
    NormalizerState st;
    check(n_.fitted_state(&st, stream_of(stream)));
    nb::dict d;
    d["kept_shape"] = st.kept_shape;
    std::vector<std::int64_t> count, nan_count;
    std::vector<double> mean, m2, mn, mx;
    for (const StatsSummary& s : st.summaries) {
      count.push_back(s.count);
      nan_count.push_back(s.nan_count);
      mean.push_back(s.mean);
      m2.push_back(s.m2);
      mn.push_back(s.min);
      mx.push_back(s.max);
    }
    d["count"] = count, d["nan_count"] = nan_count, d["mean"] = mean, d["m2"] = m2, d["min"] = mn, d["max"] = mx;
    d["center"] = st.center, d["scale"] = st.scale, d["offset"] = st.offset, d["fill"] = st.fill;
    return d;
  }
  std::string method() const { return method_name(o_.method); }
  // The options a loaded state carries (the estimators' parameters).
  nb::dict options() const {
    nb::dict d;
    d["with_mean"] = o_.with_mean, d["with_std"] = o_.with_std, d["range_min"] = o_.range_min, d["range_max"] = o_.range_max;
    d["clip"] = o_.clip, d["zero_variance"] = std::string(o_.zero_variance == ZeroVariance::keras ? "keras" : "sklearn");
    d["epsilon"] = o_.epsilon, d["impute"] = o_.impute_nan, d["scale"] = o_.scale, d["offset"] = o_.offset;
    return d;
  }

 private:
  NormalizerOptions o_;
  MemorySpace space_ = MemorySpace::host;
  Normalizer n_;
};

// ---- device arrays (tests, and outputs for device inputs of libraries normkit cannot allocate in) -------------

#if defined(NORMKIT_WITH_CUDA)
nb::dlpack::dtype dlpack_dtype(DType d) {
  nb::dlpack::dtype dt;
  dt.lanes = 1;
  dt.bits = static_cast<std::uint8_t>(8 * dtype_size(d));
  dt.code = static_cast<std::uint8_t>(d == DType::uint8 ? nb::dlpack::dtype_code::UInt
                                      : d == DType::int64 ? nb::dlpack::dtype_code::Int
                                      : d == DType::bfloat16 ? nb::dlpack::dtype_code::Bfloat
                                                             : nb::dlpack::dtype_code::Float);
  return dt;
}
#endif

nb::ndarray<nb::array_api> device_empty(std::vector<std::size_t> shape, const std::string& dtype, int device) {
#if defined(NORMKIT_WITH_CUDA)
  DType d;
  if (!parse_dtype(dtype, &d)) throw nb::type_error(("normkit: unknown dtype '" + dtype + "'").c_str());
  std::size_t n = dtype_size(d);
  for (std::size_t e : shape) n *= e;
  DeviceScope scope(device);
  void* p = nullptr;
  if (cudaMalloc(&p, n ? n : 1) != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error("normkit: cudaMalloc of " + std::to_string(n) + " bytes failed");
  }
  nb::capsule owner(p, [](void* q) noexcept { cudaFree(q); });
  const nb::dlpack::dtype dt = dlpack_dtype(d);
  return nb::ndarray<nb::array_api>(p, shape.size(), shape.data(), owner, nullptr, dt, nb::device::cuda::value, device);
#else
  (void)shape, (void)dtype, (void)device;
  throw std::runtime_error("normkit: built without CUDA");
#endif
}

// Device memory described by another library's __cuda_array_interface__ (Numba, CuPy): a DLPack array over the
// same memory (no copy) that keeps `owner` alive. strides in elements, empty for C-contiguous; the device is the
// pointer's (cudaPointerGetAttributes).
nb::ndarray<nb::array_api> cuda_interface_view(std::uintptr_t ptr, std::vector<std::size_t> shape, std::vector<std::int64_t> strides,
                                               const std::string& dtype, nb::object owner) {
#if defined(NORMKIT_WITH_CUDA)
  DType d;
  if (!parse_dtype(dtype, &d)) throw nb::type_error(("normkit: unknown dtype '" + dtype + "'").c_str());
  int device = 0;
  if (ptr == 0) {
    cudaGetDevice(&device);  // (an empty array: no memory to ask about; the current device's)
  } else {
    cudaPointerAttributes attributes{};
    if (cudaPointerGetAttributes(&attributes, reinterpret_cast<const void*>(ptr)) != cudaSuccess ||
        (attributes.type != cudaMemoryTypeDevice && attributes.type != cudaMemoryTypeManaged)) {
      cudaGetLastError();
      throw nb::value_error("normkit: a __cuda_array_interface__ pointer that is not CUDA device memory");
    }
    device = attributes.device;
  }
  const nb::dlpack::dtype dt = dlpack_dtype(d);
  return nb::ndarray<nb::array_api>(reinterpret_cast<void*>(ptr), shape.size(), shape.data(), owner, strides.empty() ? nullptr : strides.data(), dt,
                                    nb::device::cuda::value, device);
#else
  (void)ptr, (void)shape, (void)strides, (void)dtype, (void)owner;
  throw std::runtime_error("normkit: built without CUDA (a __cuda_array_interface__ array needs it)");
#endif
}

// dst = src, finished when it returns: on `stream` (ordered after the work queued there) on the device array's
// GPU, then waited for.
void copy_bytes(OutArray dst, Array src, std::uintptr_t stream) {
  const TensorView to = view_of(dst, "copy", "dst"), from = view_of(src, "copy", "src");  // (both C-contiguous, host or CUDA memory)
  const std::size_t bytes = src.nbytes();
  if (dst.nbytes() != bytes) throw nb::value_error("normkit: copy between arrays of different byte sizes");
  if (to.space == MemorySpace::host && from.space == MemorySpace::host) {  // (also where CUDA is built but no GPU is present)
    std::memcpy(dst.data(), src.data(), bytes);
    return;
  }
#if defined(NORMKIT_WITH_CUDA)
  DeviceScope scope(to.space == MemorySpace::device ? device_of(dst) : device_of(src));
  const auto s = reinterpret_cast<cudaStream_t>(stream);
  if (cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDefault, s) != cudaSuccess || cudaStreamSynchronize(s) != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error("normkit: cudaMemcpyAsync failed");
  }
#else
  std::memcpy(dst.data(), src.data(), bytes);
#endif
}

std::uintptr_t data_pointer(Array a) { return reinterpret_cast<std::uintptr_t>(a.data()); }

void synchronize(std::uintptr_t stream) {
#if defined(NORMKIT_WITH_CUDA)
  if (cudaStreamSynchronize(reinterpret_cast<cudaStream_t>(stream)) != cudaSuccess) throw std::runtime_error("normkit: stream synchronization failed");
#else
  (void)stream;
#endif
}

}  // namespace

NB_MODULE(_normkit, m) {
  m.doc() = "normkit's C++ bindings (use the normkit package)";
  m.def("cuda_available", &cuda_available);
  m.def("stats", &stats);
  m.def("lp_normalize", &lp_normalize);
  m.def("image_normalize", &image_normalize_binding, nb::arg("x"), nb::arg("y"), nb::arg("layout"), nb::arg("out_layout"), nb::arg("units"),
        nb::arg("mean"), nb::arg("std"), nb::arg("eps"), nb::arg("scale"), nb::arg("shift"), nb::arg("reverse"), nb::arg("crop"),
        nb::arg("mirror"), nb::arg("mirror_flags").none(), nb::arg("crop_origins").none(), nb::arg("row_pitch"), nb::arg("stream"));
  m.def("layer_norm_forward", &layer_norm_forward_binding, nb::arg("x"), nb::arg("gamma").none(), nb::arg("beta").none(), nb::arg("y"),
        nb::arg("mean").none(), nb::arg("rstd").none(), nb::arg("eps"), nb::arg("rms"), nb::arg("normalized_ndim"), nb::arg("stream"));
  m.def("layer_norm_backward", &layer_norm_backward_binding, nb::arg("dy"), nb::arg("x"), nb::arg("mean").none(), nb::arg("rstd"),
        nb::arg("gamma").none(), nb::arg("dx").none(), nb::arg("dgamma").none(), nb::arg("dbeta").none(), nb::arg("eps"), nb::arg("rms"),
        nb::arg("normalized_ndim"), nb::arg("stream"));
  m.def("batch_norm_forward", &batch_norm_forward_binding, nb::arg("x"), nb::arg("gamma").none(), nb::arg("beta").none(), nb::arg("y"),
        nb::arg("running_mean").none(), nb::arg("running_var").none(), nb::arg("saved_mean").none(), nb::arg("saved_rstd").none(),
        nb::arg("training"), nb::arg("channels_last"), nb::arg("eps"), nb::arg("momentum"), nb::arg("convention"), nb::arg("cumulative"),
        nb::arg("batches_tracked"), nb::arg("stream"));
  m.def("batch_norm_backward", &batch_norm_backward_binding, nb::arg("dy"), nb::arg("x"), nb::arg("mean"), nb::arg("rstd_or_var"),
        nb::arg("gamma").none(), nb::arg("dx").none(), nb::arg("dgamma").none(), nb::arg("dbeta").none(), nb::arg("training"),
        nb::arg("channels_last"), nb::arg("eps"), nb::arg("stream"));
  m.def("batch_norm_statistics", &batch_norm_statistics_binding);
  m.def("merge_summaries", &merge_summaries_binding);
  m.def("empty_summary_bytes", &empty_summary_bytes);
  m.def("accumulate_elements", &accumulate_elements);
  m.def("merge_summary_arrays", &merge_summary_arrays);
  m.def("finalize_summary_arrays", &finalize_summary_arrays);
  m.def("batch_norm_finalize", &batch_norm_finalize_binding, nb::arg("summaries"), nb::arg("running_mean").none(), nb::arg("running_var").none(),
        nb::arg("saved_mean"), nb::arg("saved_rstd"), nb::arg("eps"), nb::arg("momentum"), nb::arg("convention"), nb::arg("cumulative"),
        nb::arg("batches_tracked"), nb::arg("stream"));
  m.def("batch_norm_normalize", &batch_norm_normalize_binding, nb::arg("x"), nb::arg("saved_mean"), nb::arg("saved_rstd"), nb::arg("gamma").none(),
        nb::arg("beta").none(), nb::arg("y"), nb::arg("channels_last"), nb::arg("eps"), nb::arg("stream"));
  m.def("batch_norm_backward_reduce", &batch_norm_backward_reduce_binding);
  m.def("batch_norm_backward_apply", &batch_norm_backward_apply_binding, nb::arg("dy"), nb::arg("x"), nb::arg("saved_mean"), nb::arg("saved_rstd"),
        nb::arg("gamma").none(), nb::arg("sum_dy"), nb::arg("sum_dy_xmu"), nb::arg("count"), nb::arg("dx"), nb::arg("channels_last"), nb::arg("stream"));
  m.def("group_norm_forward", &group_norm_forward_binding, nb::arg("x"), nb::arg("gamma").none(), nb::arg("beta").none(), nb::arg("y"),
        nb::arg("saved_mean").none(), nb::arg("saved_rstd").none(), nb::arg("groups"), nb::arg("channels_last"), nb::arg("eps"), nb::arg("stream"));
  m.def("group_norm_backward", &group_norm_backward_binding, nb::arg("dy"), nb::arg("x"), nb::arg("saved_mean"), nb::arg("saved_rstd"),
        nb::arg("gamma").none(), nb::arg("dx").none(), nb::arg("dgamma").none(), nb::arg("dbeta").none(), nb::arg("groups"),
        nb::arg("channels_last"), nb::arg("eps"), nb::arg("stream"));
  m.def("device_empty", &device_empty);
  m.def("cuda_interface_view", &cuda_interface_view);
  m.def("copy_bytes", &copy_bytes, nb::arg("dst"), nb::arg("src"), nb::arg("stream") = 0);
  m.def("synchronize", &synchronize);
  m.def("data_pointer", &data_pointer);
  nb::class_<PyNormalizer>(m, "Normalizer")
      .def(nb::init<const std::string&, std::vector<int>, bool, bool, const std::string&, double, double, double, bool, double, double, bool, bool>())
      .def("adapt", &PyNormalizer::adapt)
      .def("reset", &PyNormalizer::reset)
      .def("set_mean_variance", &PyNormalizer::set_mean_variance)
      .def("transform", &PyNormalizer::transform)
      .def("save", &PyNormalizer::save)
      .def("load", &PyNormalizer::load)
      .def("state", &PyNormalizer::state)
      .def_prop_ro("adapted", &PyNormalizer::adapted)
      .def_prop_ro("method", &PyNormalizer::method)
      .def("options", &PyNormalizer::options);
}
