// Public statistics API: validate arguments, canonicalize, then run the host engine or the CUDA kernels.
#include "normkit/stats.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <type_traits>

#include "api/validation.hpp"
#include "cpu/stats_cpu.hpp"
#include "kernels/common/device_runtime.hpp"
#include "kernels/stats/stats_launch.hpp"
#include "math/integer_moments.hpp"
#include "math/moments.hpp"
#include "plan/geometry.hpp"
#include "plan/stats_plan.hpp"

namespace normkit {
namespace {

// Everything a call needs after validation.
struct PreparedCall {
  plan::CanonicalGeometry geometry;
  std::array<std::int64_t, kMaxDims> kept{};
  int kept_ndim = 0;
  bool double_accumulation = false;
};

Status prepare(const TensorView& input, const StatsOptions& options, const std::string& op, PreparedCall* call) {
  NORMKIT_RETURN_IF_ERROR(api::validate_input(input, op));
  if (options.ddof < 0) {
    return argument_error(StatusCode::invalid_argument, op, "ddof", "ddof >= 0", std::to_string(options.ddof));
  }
  bool is_reduced[kMaxDims];
  NORMKIT_RETURN_IF_ERROR(plan::resolve_axes(input.ndim, options.axes, is_reduced, op));
  for (int i = 0; i < input.ndim; ++i) {
    if (!is_reduced[i]) call->kept[call->kept_ndim++] = input.shape[i];
  }
  call->geometry = plan::canonicalize(input.shape.data(), input.ndim, is_reduced);
  // uint8 sums exact integers whatever the option (IntegerMoments).
  call->double_accumulation = input.dtype == DType::float64 ||
                              (options.accumulation == Accumulation::float64 && input.dtype != DType::uint8);
  return Status::success();
}

bool is_count_stat(int i) { return i == static_cast<int>(Stat::count) || i == static_cast<int>(Stat::l0); }

// Checks one output view against the kept shape (or keepdims shape), dtype and memory space.
Status validate_output(const TensorView& input, const StatsOptions& options, const PreparedCall& call, int i,
                       const TensorView& out, const std::string& op) {
  const std::string arg = std::string("outputs[") + stat_name(static_cast<Stat>(i)) + "]";
  const bool count_like = is_count_stat(i);
  if (!(out.dtype == DType::float32 || out.dtype == DType::float64 || (count_like && out.dtype == DType::int64))) {
    return argument_error(StatusCode::unsupported_dtype, op, arg + ".dtype",
                          count_like ? "int64, float32 or float64" : "float32 or float64", dtype_name(out.dtype));
  }
  bool kept_match = out.ndim == call.kept_ndim;
  for (int d = 0; kept_match && d < call.kept_ndim; ++d) kept_match = out.shape[d] == call.kept[d];
  bool keepdims_match = out.ndim == input.ndim;
  if (keepdims_match) {
    bool is_reduced[kMaxDims];
    plan::resolve_axes(input.ndim, options.axes, is_reduced, op).ignore();  // validated in prepare()
    for (int d = 0; keepdims_match && d < input.ndim; ++d) keepdims_match = out.shape[d] == (is_reduced[d] ? 1 : input.shape[d]);
  }
  if (!kept_match && !keepdims_match) {
    TensorView kept_view(nullptr, out.dtype, call.kept.data(), call.kept_ndim);
    return argument_error(StatusCode::shape_mismatch, op, arg + ".shape", "the kept shape " + kept_view.shape_string(),
                          out.shape_string());
  }
  if (out.space != input.space) {
    return argument_error(StatusCode::invalid_argument, op, arg + ".space", std::string(api::space_name(input.space)) + " (the input's)",
                          api::space_name(out.space));
  }
  if (call.geometry.kept_numel == 0) return Status::success();
  NORMKIT_RETURN_IF_ERROR(api::validate_pointer(out.data, out.space, dtype_size(out.dtype), op, arg + ".data"));
  const std::size_t out_bytes = static_cast<std::size_t>(call.geometry.kept_numel) * dtype_size(out.dtype);
  if (api::overlaps(out.data, out_bytes, input.data, static_cast<std::size_t>(input.size_bytes()))) {
    return argument_error(StatusCode::invalid_argument, op, arg + ".data", "a buffer apart from the input", "a buffer overlapping it");
  }
  return Status::success();
}

Status make_sink(const TensorView& input, const StatsOptions& options, const StatsOutputs& outputs,
                 const PreparedCall& call, const std::string& op, math::StatsSink* sink) {
  *sink = math::StatsSink{};
  sink->ddof = options.ddof;
  sink->ignore_nan = options.ignore_nan;
  for (int i = 0; i < kNumStats; ++i) {
    sink->outputs[i] = nullptr;
    sink->output_dtype[i] = DType::float32;
    if (!options.stats.has(static_cast<Stat>(i))) continue;
    NORMKIT_RETURN_IF_ERROR(validate_output(input, options, call, i, outputs.views[i], op));
    sink->outputs[i] = outputs.views[i].data;
    sink->output_dtype[i] = outputs.views[i].dtype;
  }
  sink->float32_outputs = math::all_outputs_float32(*sink);
  return Status::success();
}

Status run(const TensorView& input, const PreparedCall& call, const math::StatsSink& sink, void* workspace,
           std::size_t workspace_bytes, Stream stream, const std::string& op) {
  if (call.geometry.kept_numel == 0) return Status::success();
  if (input.space == MemorySpace::host) {
    return cpu::compute_stats(input.data, input.dtype, call.double_accumulation, call.geometry, sink, host_threads());
  }
  kernels::DeviceStatsCall device_call;
  plan::DeviceInfo info;
  NORMKIT_RETURN_IF_ERROR(kernels::current_device_info(&info));
  device_call.plan = plan::choose_stats_plan(call.geometry, input.dtype, call.double_accumulation,
                                             reinterpret_cast<std::uintptr_t>(input.data), info);
  if (workspace_bytes < device_call.plan.workspace_bytes) {
    return argument_error(StatusCode::workspace_too_small, op, "workspace_bytes",
                          "at least " + std::to_string(device_call.plan.workspace_bytes) + " (stats_workspace_size)",
                          std::to_string(workspace_bytes));
  }
  if (device_call.plan.workspace_bytes > 0) {
    NORMKIT_RETURN_IF_ERROR(api::validate_pointer(workspace, MemorySpace::device, 16, op, "workspace"));
  }
  device_call.input = input.data;
  device_call.dtype = input.dtype;
  device_call.double_accumulation = call.double_accumulation;
  device_call.geometry = call.geometry;
  device_call.sink = sink;
  device_call.workspace = workspace;
  return kernels::launch_stats(device_call, stream);
}

}  // namespace

const char* stat_name(Stat stat) noexcept {
  static const char* const names[kNumStats] = {"count", "mean", "var", "std", "min", "max",
                                               "sum",   "l0",   "l1",  "l2",  "linf"};
  const int i = static_cast<int>(stat);
  return i >= 0 && i < kNumStats ? names[i] : "unknown";
}

bool parse_stat(const char* name, Stat* stat) noexcept {
  for (int i = 0; i < kNumStats; ++i) {
    if (std::string(name) == stat_name(static_cast<Stat>(i))) {
      *stat = static_cast<Stat>(i);
      return true;
    }
  }
  return false;
}

ReduceAxes ReduceAxes::of(std::initializer_list<int> reduced) { return of(reduced.begin(), static_cast<int>(reduced.size())); }

ReduceAxes ReduceAxes::of(const int* reduced, int n) {
  ReduceAxes r;
  r.all = false;
  r.count = n;
  for (int i = 0; i < n && i < kMaxDims; ++i) r.axes[i] = reduced[i];
  return r;
}

ReduceAxes ReduceAxes::keeping(int ndim, std::initializer_list<int> kept) {
  bool keep[kMaxDims] = {};
  ReduceAxes r;
  r.all = false;
  for (int k : kept) {
    const int a = k < 0 ? k + ndim : k;
    if (a < 0 || a >= ndim || a >= kMaxDims) {
      r.count = -1;  // rejected by every call that uses it: a kept axis out of range
      return r;
    }
    keep[a] = true;
  }
  for (int i = 0; i < ndim && i < kMaxDims; ++i) {
    if (!keep[i]) r.axes[r.count++] = i;
  }
  return r;
}

Status kept_shape(const TensorView& input, const ReduceAxes& axes, std::array<std::int64_t, kMaxDims>* shape, int* ndim) {
  bool is_reduced[kMaxDims];
  NORMKIT_RETURN_IF_ERROR(plan::resolve_axes(input.ndim, axes, is_reduced, "kept_shape"));
  *ndim = 0;
  for (int i = 0; i < input.ndim; ++i) {
    if (!is_reduced[i]) (*shape)[(*ndim)++] = input.shape[i];
  }
  return Status::success();
}

Status stats_workspace_size(const TensorView& input, const StatsOptions& options, std::size_t* bytes) {
  const std::string op = "stats_workspace_size";
  PreparedCall call;
  NORMKIT_RETURN_IF_ERROR(prepare(input, options, op, &call));
  *bytes = 0;
  if (input.space == MemorySpace::host) return Status::success();
  plan::DeviceInfo info;
  NORMKIT_RETURN_IF_ERROR(kernels::current_device_info(&info));
  *bytes = plan::choose_stats_plan(call.geometry, input.dtype, call.double_accumulation,
                                   reinterpret_cast<std::uintptr_t>(input.data), info).workspace_bytes;
  return Status::success();
}

Status compute_stats(const TensorView& input, const StatsOptions& options, const StatsOutputs& outputs, void* workspace,
                     std::size_t workspace_bytes, Stream stream) {
  const std::string op = "compute_stats";
  PreparedCall call;
  NORMKIT_RETURN_IF_ERROR(prepare(input, options, op, &call));
  math::StatsSink sink;
  NORMKIT_RETURN_IF_ERROR(make_sink(input, options, outputs, call, op, &sink));
  if (options.stats.empty()) return Status::success();
  return run(input, call, sink, workspace, workspace_bytes, stream, op);
}

namespace {

// accumulate_stats and accumulate_integer_stats: the summaries' checks, then the same engines with the
// summaries as the sink.
template <typename Summary>
Status accumulate_into(const TensorView& input, const StatsOptions& options, Summary* summaries, std::int64_t num_summaries,
                       bool merge, void* workspace, std::size_t workspace_bytes, Stream stream, const std::string& op,
                       bool extremes = true) {
  PreparedCall call;
  NORMKIT_RETURN_IF_ERROR(prepare(input, options, op, &call));
  constexpr bool kInteger = std::is_same_v<Summary, IntegerSummary>;
  if (kInteger && input.dtype != DType::uint8) {
    return argument_error(StatusCode::unsupported_dtype, op, "input.dtype", "uint8 (exact integer statistics)",
                          dtype_name(input.dtype));
  }
  if (num_summaries != call.geometry.kept_numel) {
    return argument_error(StatusCode::shape_mismatch, op, "num_summaries",
                          std::to_string(call.geometry.kept_numel) + " (the number of kept slices)", std::to_string(num_summaries));
  }
  if (num_summaries > 0 && summaries == nullptr) {
    return argument_error(StatusCode::null_pointer, op, "summaries", "a non-null pointer", "nullptr");
  }
  if (num_summaries > 0) NORMKIT_RETURN_IF_ERROR(api::validate_pointer(summaries, input.space, 8, op, "summaries"));
  math::StatsSink sink{};
  for (int i = 0; i < kNumStats; ++i) sink.outputs[i] = nullptr;
  if constexpr (kInteger) sink.integer_summaries = summaries;
  else sink.summaries = summaries;
  sink.merge_into_summaries = merge;
  sink.summary_extremes = extremes || kInteger;
  return run(input, call, sink, workspace, workspace_bytes, stream, op);
}

// Checks of merge_summaries and merge_integer_summaries.
Status validate_merge(const void* into, const void* from, std::int64_t n, MemorySpace space, const std::string& op) {
  if (n < 0) return argument_error(StatusCode::invalid_argument, op, "n", "n >= 0", std::to_string(n));
  if (n > 0 && (into == nullptr || from == nullptr)) {
    return argument_error(StatusCode::null_pointer, op, into == nullptr ? "into" : "from", "a non-null pointer", "nullptr");
  }
  if (space == MemorySpace::device && !cuda_available()) {
    return Status(StatusCode::cuda_unavailable, "normkit::" + op + ": no CUDA device is available");
  }
  if (n > 0) {
    NORMKIT_RETURN_IF_ERROR(api::validate_pointer(into, space, 8, op, "into"));
    NORMKIT_RETURN_IF_ERROR(api::validate_pointer(from, space, 8, op, "from"));
  }
  return Status::success();
}

// Checks of finalize_stats and finalize_integer_stats; makes the sink of their outputs.
Status prepare_finalize(const void* summaries, std::int64_t n, const StatsOptions& options, const StatsOutputs& outputs,
                        MemorySpace space, const std::string& op, math::StatsSink* sink) {
  if (n < 0) return argument_error(StatusCode::invalid_argument, op, "n", "n >= 0", std::to_string(n));
  if (n > 0 && summaries == nullptr) return argument_error(StatusCode::null_pointer, op, "summaries", "a non-null pointer", "nullptr");
  // The outputs are checked as those of a 1-D input of n elements with nothing reduced.
  std::int64_t extent = n;
  const TensorView as_input(const_cast<void*>(summaries), DType::float32, &extent, 1, space);
  StatsOptions flat = options;
  flat.axes = ReduceAxes::of({});
  PreparedCall call;
  call.kept[0] = n;
  call.kept_ndim = 1;
  call.geometry.kept_numel = n;
  if (options.ddof < 0) return argument_error(StatusCode::invalid_argument, op, "ddof", "ddof >= 0", std::to_string(options.ddof));
  if (space == MemorySpace::device && !cuda_available()) {
    return Status(StatusCode::cuda_unavailable, "normkit::" + op + ": no CUDA device is available");
  }
  if (n > 0) NORMKIT_RETURN_IF_ERROR(api::validate_pointer(summaries, space, 8, op, "summaries"));
  return make_sink(as_input, flat, outputs, call, op, sink);
}

}  // namespace

namespace api {
Status accumulate_moment_summaries(const TensorView& input, const StatsOptions& options, StatsSummary* summaries, std::int64_t num_summaries,
                                   void* workspace, std::size_t workspace_bytes, Stream stream, const std::string& op) {
  return accumulate_into(input, options, summaries, num_summaries, false, workspace, workspace_bytes, stream, op, false);
}
}  // namespace api

Status accumulate_stats(const TensorView& input, const StatsOptions& options, StatsSummary* summaries,
                        std::int64_t num_summaries, bool merge, void* workspace, std::size_t workspace_bytes,
                        Stream stream) {
  return accumulate_into(input, options, summaries, num_summaries, merge, workspace, workspace_bytes, stream, "accumulate_stats");
}

Status accumulate_integer_stats(const TensorView& input, const StatsOptions& options, IntegerSummary* summaries,
                                std::int64_t num_summaries, bool merge, void* workspace, std::size_t workspace_bytes,
                                Stream stream) {
  return accumulate_into(input, options, summaries, num_summaries, merge, workspace, workspace_bytes, stream,
                         "accumulate_integer_stats");
}

namespace {

// A run of elements cut into blocks (plan::split_element_range), each the engine's input of its own: its view
// and options and where its summaries sit among the whole tensor's.
struct RangeBlocks {
  int n = 0;
  TensorView views[plan::kMaxElementBlocks];
  StatsOptions options[plan::kMaxElementBlocks];
  std::int64_t kept_offset[plan::kMaxElementBlocks] = {};
  std::int64_t kept_numel[plan::kMaxElementBlocks] = {};
  std::int64_t whole_kept_numel = 0;
};

Status split_range(const TensorView& piece, std::int64_t first, std::int64_t count, const StatsOptions& options,
                   const std::string& op, RangeBlocks* r) {
  PreparedCall call;
  NORMKIT_RETURN_IF_ERROR(prepare(piece, options, op, &call));
  if (piece.ndim < 1) return argument_error(StatusCode::invalid_argument, op, "piece.ndim", ">= 1 (a run of a tensor's elements)", "0");
  const std::int64_t numel = call.geometry.numel;
  if (first < 0 || count < 0 || first > numel || count > numel - first) {
    return argument_error(StatusCode::invalid_argument, op, "first, count",
                          "0 <= first, first + count <= " + std::to_string(numel) + " (the elements of " + piece.shape_string() + ")",
                          "first " + std::to_string(first) + ", count " + std::to_string(count));
  }
  bool is_reduced[kMaxDims];
  NORMKIT_RETURN_IF_ERROR(plan::resolve_axes(piece.ndim, options.axes, is_reduced, op));
  plan::ElementBlock blocks[plan::kMaxElementBlocks];
  r->n = plan::split_element_range(piece.shape.data(), piece.ndim, is_reduced, first, count, blocks);
  if (r->n < 0) return Status(StatusCode::internal, "normkit::" + op + ": a run cut into more blocks than 2 * ndim - 1");
  r->whole_kept_numel = call.geometry.kept_numel;
  const std::size_t element = dtype_size(piece.dtype);
  for (int i = 0; i < r->n; ++i) {
    const plan::ElementBlock& b = blocks[i];
    r->views[i] = TensorView(static_cast<unsigned char*>(piece.data) + static_cast<std::size_t>(b.offset) * element, piece.dtype,
                             b.shape, b.ndim, piece.space);
    int axes[kMaxDims], reduced = 0;
    for (int d = 0; d < b.ndim; ++d) {
      if (b.is_reduced[d]) axes[reduced++] = d;
    }
    r->options[i] = options;
    r->options[i].axes = ReduceAxes::of(axes, reduced);
    r->kept_offset[i] = b.kept_offset;
    r->kept_numel[i] = b.kept_numel;
  }
  return Status::success();
}

template <typename Summary>
Status accumulate_range(const TensorView& piece, std::int64_t first, std::int64_t count, const StatsOptions& options,
                        Summary* summaries, std::int64_t num_summaries, void* workspace, std::size_t workspace_bytes,
                        Stream stream, const std::string& op) {
  if (std::is_same_v<Summary, IntegerSummary> && piece.dtype != DType::uint8) {  // (also for an empty run)
    return argument_error(StatusCode::unsupported_dtype, op, "piece.dtype", "uint8 (exact integer statistics)", dtype_name(piece.dtype));
  }
  RangeBlocks r;
  NORMKIT_RETURN_IF_ERROR(split_range(piece, first, count, options, op, &r));
  if (num_summaries != r.whole_kept_numel) {
    return argument_error(StatusCode::shape_mismatch, op, "num_summaries",
                          std::to_string(r.whole_kept_numel) + " (the whole tensor's kept slices)", std::to_string(num_summaries));
  }
  if (r.n > 0 && summaries == nullptr) return argument_error(StatusCode::null_pointer, op, "summaries", "a non-null pointer", "nullptr");
  for (int i = 0; i < r.n; ++i) {
    NORMKIT_RETURN_IF_ERROR(accumulate_into(r.views[i], r.options[i], summaries + r.kept_offset[i], r.kept_numel[i], true,
                                            workspace, workspace_bytes, stream, op));
  }
  return Status::success();
}

}  // namespace

Status stats_range_workspace_size(const TensorView& piece, std::int64_t first, std::int64_t count, const StatsOptions& options,
                                  std::size_t* bytes) {
  RangeBlocks r;
  NORMKIT_RETURN_IF_ERROR(split_range(piece, first, count, options, "stats_range_workspace_size", &r));
  *bytes = 0;
  for (int i = 0; i < r.n; ++i) {
    std::size_t block_bytes = 0;
    NORMKIT_RETURN_IF_ERROR(stats_workspace_size(r.views[i], r.options[i], &block_bytes));
    *bytes = std::max(*bytes, block_bytes);
  }
  return Status::success();
}

Status accumulate_stats_range(const TensorView& piece, std::int64_t first, std::int64_t count, const StatsOptions& options,
                              StatsSummary* summaries, std::int64_t num_summaries, void* workspace, std::size_t workspace_bytes,
                              Stream stream) {
  return accumulate_range(piece, first, count, options, summaries, num_summaries, workspace, workspace_bytes, stream,
                          "accumulate_stats_range");
}

Status accumulate_integer_stats_range(const TensorView& piece, std::int64_t first, std::int64_t count, const StatsOptions& options,
                                      IntegerSummary* summaries, std::int64_t num_summaries, void* workspace,
                                      std::size_t workspace_bytes, Stream stream) {
  return accumulate_range(piece, first, count, options, summaries, num_summaries, workspace, workspace_bytes, stream,
                          "accumulate_integer_stats_range");
}

StatsSummary empty_stats_summary() noexcept { return math::to_summary(math::empty_state<double>()); }

IntegerSummary empty_integer_summary() noexcept { return math::empty_integer_summary(); }

Status merge_summaries(StatsSummary* into, const StatsSummary* from, std::int64_t n, MemorySpace space, Stream stream) {
  NORMKIT_RETURN_IF_ERROR(validate_merge(into, from, n, space, "merge_summaries"));
  if (space == MemorySpace::host) {
    for (std::int64_t k = 0; k < n; ++k) math::merge_summary(into[k], from[k]);
    return Status::success();
  }
  return kernels::launch_merge_summaries(into, from, n, stream);
}

Status merge_integer_summaries(IntegerSummary* into, const IntegerSummary* from, std::int64_t n, MemorySpace space,
                               Stream stream) {
  NORMKIT_RETURN_IF_ERROR(validate_merge(into, from, n, space, "merge_integer_summaries"));
  if (space == MemorySpace::host) {
    for (std::int64_t k = 0; k < n; ++k) math::merge_integer_summary(into[k], from[k]);
    return Status::success();
  }
  return kernels::launch_merge_integer_summaries(into, from, n, stream);
}

Status finalize_stats(const StatsSummary* summaries, std::int64_t n, const StatsOptions& options, const StatsOutputs& outputs,
                      MemorySpace space, Stream stream) {
  math::StatsSink sink;
  NORMKIT_RETURN_IF_ERROR(prepare_finalize(summaries, n, options, outputs, space, "finalize_stats", &sink));
  if (space == MemorySpace::host) {
    for (std::int64_t k = 0; k < n; ++k) math::write_slice(sink, k, summaries[k]);
    return Status::success();
  }
  return kernels::launch_finalize_summaries(summaries, n, sink, stream);
}

Status finalize_integer_stats(const IntegerSummary* summaries, std::int64_t n, const StatsOptions& options,
                              const StatsOutputs& outputs, MemorySpace space, Stream stream) {
  const std::string op = "finalize_integer_stats";
  math::StatsSink sink;
  NORMKIT_RETURN_IF_ERROR(prepare_finalize(summaries, n, options, outputs, space, op, &sink));
  if (space == MemorySpace::host) {
    for (std::int64_t k = 0; k < n; ++k) {  // before any output is written
      if (summaries[k].overflow != 0) {
        return argument_error(StatusCode::overflow, op, "summaries[" + std::to_string(k) + "]",
                              "at most " + std::to_string(kMaxIntegerSummaryCount) + " values (Σx² within int64)",
                              "a summary whose merges passed that (overflow flag set)");
      }
    }
    for (std::int64_t k = 0; k < n; ++k) math::write_integer_slice(sink, k, summaries[k]);
    return Status::success();
  }
  return kernels::launch_finalize_integer_summaries(summaries, n, sink, stream);
}

namespace {
std::atomic<int> g_host_threads{0};  // 0: default; atomic: read by every call, set from any thread
}

int host_threads() noexcept {
  if (g_host_threads > 0) return g_host_threads;
  if (const char* env = std::getenv("NORMKIT_NUM_THREADS")) {
    const int v = std::atoi(env);
    if (v > 0) return v;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

void set_host_threads(int threads) noexcept { g_host_threads = threads > 0 ? threads : 0; }

bool cuda_available() noexcept {
  static const bool available = kernels::device_present();
  return available;
}

}  // namespace normkit
