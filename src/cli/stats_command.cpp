// `normkit stats IN [IN ...] [--axis ...] [--stats ...] [--ddof N] [--ignore-nan] [--device auto|cpu|cuda]
//                [--gpu N] [--out STATS.safetensors]`: IN a .npy or IDX file (plain or gzip); several files are
// batches along axis 0 (which must be reduced), summarised one after the other and merged (exactly for
// uint8).
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <memory>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include <unistd.h>

#include "cli/args.hpp"
#include "cli/cli_common.hpp"
#include "cli/device_memory.hpp"
#include "cli/piece_reader.hpp"
#include "io/idx.hpp"
#include "io/npy.hpp"
#include "io/safetensors.hpp"
#include "normkit/distributed.hpp"
#include "normkit/stats.hpp"

#ifndef NORMKIT_VERSION
#define NORMKIT_VERSION "unknown"
#endif

namespace normkit::cli {
namespace {

struct StatsArgs {
  std::vector<std::string> inputs;
  bool all_axes = true;
  std::vector<int> axes;
  std::vector<Stat> stats;  // empty: all
  std::int64_t ddof = 0;
  bool ignore_nan = false;
  std::int64_t chunk_bytes = 0;  // > 0: stream the input in pieces of this size (rows may be split)
  bool quiet = false;
  DeviceChoice device = DeviceChoice::automatic;
  int gpu = kGpuUnset;
  std::string out;
};

StatsArgs parse_args(const std::vector<std::string>& args) {
  StatsArgs parsed;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    std::string value;
    bool has_inline_value = false;
    if (arg.rfind("--", 0) == 0 && arg.find('=') != std::string::npos) {
      value = arg.substr(arg.find('=') + 1);
      arg = arg.substr(0, arg.find('='));
      has_inline_value = true;
    }
    // Option values are taken verbatim, so negative numbers work: --axis -1.
    auto take_value = [&]() -> std::string {
      if (has_inline_value) return value;
      if (i + 1 >= args.size()) throw UsageError{"option " + arg + " needs a value"};
      return args[++i];
    };
    if (arg == "--axis") {
      const std::string v = take_value();
      if (v == "all" || v == "None") {
        parsed.all_axes = true;
        parsed.axes.clear();
        continue;
      }
      parsed.all_axes = false;
      parsed.axes.clear();
      for (const std::string& part : split_commas(v)) {
        std::int64_t axis = 0;
        if (!parse_int64(part, &axis) || axis < -kMaxDims || axis >= kMaxDims) {
          throw UsageError{"--axis expects 'all' or comma-separated integers, got '" + v + "'"};
        }
        parsed.axes.push_back(static_cast<int>(axis));
      }
    } else if (arg == "--stats") {
      const std::string v = take_value();
      parsed.stats.clear();
      for (const std::string& part : split_commas(v)) {
        Stat s;
        if (!parse_stat(part.c_str(), &s)) {
          throw UsageError{"--stats: unknown statistic '" + part + "' (known: count,mean,var,std,min,max,sum,l0,l1,l2,linf)"};
        }
        parsed.stats.push_back(s);
      }
    } else if (arg == "--ddof") {
      const std::string v = take_value();
      if (!parse_int64(v, &parsed.ddof) || parsed.ddof < 0) throw UsageError{"--ddof expects an integer >= 0, got '" + v + "'"};
    } else if (arg == "--ignore-nan") {
      parsed.ignore_nan = true;
    } else if (arg == "--chunk-bytes") {
      const std::string v = take_value();
      if (!parse_int64(v, &parsed.chunk_bytes) || parsed.chunk_bytes < 1) throw UsageError{"--chunk-bytes expects a byte count >= 1, got '" + v + "'"};
    } else if (arg == "--quiet" || arg == "-q") {
      parsed.quiet = true;
    } else if (arg == "--device") {
      parsed.device = parse_device_option(take_value());
    } else if (arg == "--gpu") {
      parsed.gpu = parse_gpu_option(take_value());
    } else if (arg == "--out" || arg == "-o") {
      parsed.out = take_value();
    } else if (!arg.empty() && arg[0] == '-' && arg != "-") {
      throw UsageError{"unknown option '" + arg + "'"};
    } else {
      parsed.inputs.push_back(arg);
    }
  }
  if (parsed.inputs.empty()) throw UsageError{"missing input file (normkit stats IN.npy)"};
  if ((parsed.inputs.size() > 1 || parsed.chunk_bytes > 0) && !parsed.all_axes &&
      std::find(parsed.axes.begin(), parsed.axes.end(), 0) == parsed.axes.end()) {
    // (a negative axis naming axis 0 is checked once the rank is known)
    bool negative = false;
    for (int a : parsed.axes) negative = negative || a < 0;
    if (!negative) throw UsageError{"several input files (or --chunk-bytes) are batches along axis 0: --axis must reduce axis 0"};
  }
  return parsed;
}

// Host-side results: one buffer per statistic.
struct Results {
  std::int64_t kept_numel = 0;
  std::array<std::int64_t, kMaxDims> kept{};
  int kept_ndim = 0;
  DType float_dtype = DType::float32;
  DType input_dtype = DType::float32;
  std::array<std::vector<unsigned char>, kNumStats> data;
  DType dtype_of(int i) const { return (i == int(Stat::count) || i == int(Stat::l0)) ? DType::int64 : float_dtype; }
  double value(int i, std::int64_t k) const {
    const unsigned char* p = data[i].data();
    switch (dtype_of(i)) {
      case DType::int64: return static_cast<double>(reinterpret_cast<const std::int64_t*>(p)[k]);
      case DType::float64: return reinterpret_cast<const double*>(p)[k];
      default: return reinterpret_cast<const float*>(p)[k];
    }
  }
};

Status compute(const StatsArgs& args, io::NpyArray& array, bool use_cuda, Results* results) {
  TensorView input(array.data.data(), array.dtype, array.shape.data(), static_cast<int>(array.shape.size()));
  StatsOptions options;
  options.axes = args.all_axes ? ReduceAxes::every() : ReduceAxes::of(args.axes.data(), static_cast<int>(args.axes.size()));
  options.ddof = args.ddof;
  options.ignore_nan = args.ignore_nan;
  options.stats = StatSet::all();  // count is always needed for the empty-slice warning
  NORMKIT_RETURN_IF_ERROR(kept_shape(input, options.axes, &results->kept, &results->kept_ndim));
  results->kept_numel = 1;
  for (int d = 0; d < results->kept_ndim; ++d) results->kept_numel *= results->kept[d];
  results->float_dtype = array.dtype == DType::float64 ? DType::float64 : DType::float32;
  results->input_dtype = array.dtype;

  StatsOutputs outputs;
  for (int i = 0; i < kNumStats; ++i) {
    results->data[i].assign(static_cast<std::size_t>(results->kept_numel) * dtype_size(results->dtype_of(i)), 0);
    outputs.views[i] = TensorView(results->data[i].data(), results->dtype_of(i), results->kept.data(), results->kept_ndim);
  }
  if (!use_cuda) return compute_stats(input, options, outputs, nullptr, 0);

  DeviceBuffer device_input, workspace;
  std::array<DeviceBuffer, kNumStats> device_outputs;
  NORMKIT_RETURN_IF_ERROR(device_input.allocate(array.data.size()));
  NORMKIT_RETURN_IF_ERROR(device_input.upload(array.data.data(), array.data.size()));
  input.data = device_input.get();
  input.space = MemorySpace::device;
  for (int i = 0; i < kNumStats; ++i) {
    NORMKIT_RETURN_IF_ERROR(device_outputs[i].allocate(results->data[i].size()));
    outputs.views[i].data = device_outputs[i].get();
    outputs.views[i].space = MemorySpace::device;
  }
  std::size_t workspace_bytes = 0;
  NORMKIT_RETURN_IF_ERROR(stats_workspace_size(input, options, &workspace_bytes));
  NORMKIT_RETURN_IF_ERROR(workspace.allocate(workspace_bytes));
  NORMKIT_RETURN_IF_ERROR(compute_stats(input, options, outputs, workspace.get(), workspace_bytes, nullptr));
  NORMKIT_RETURN_IF_ERROR(synchronize_device());
  for (int i = 0; i < kNumStats; ++i) NORMKIT_RETURN_IF_ERROR(device_outputs[i].download(results->data[i].data(), results->data[i].size()));
  return Status::success();
}

// Progress of a long streamed run on stderr (when it is a terminal and not --quiet): bytes, rate, ETA.
class Progress {
 public:
  Progress(std::size_t total, bool show) : total_(total), show_(show && isatty(2) && total >= (std::size_t{64} << 20)) {}
  ~Progress() {
    if (shown_) std::fprintf(stderr, "\n");
  }
  void advance(std::size_t bytes) {
    done_ += bytes;
    if (!show_) return;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (seconds - last_ < 0.2 && done_ < total_) return;
    last_ = seconds;
    shown_ = true;
    const double rate = static_cast<double>(done_) / std::max(seconds, 1e-9);
    std::fprintf(stderr, "\rnormkit stats: %.0f / %.0f MB, %.0f MB/s, ETA %.0f s   ", static_cast<double>(done_) / 1e6,
                 static_cast<double>(total_) / 1e6, rate / 1e6, static_cast<double>(total_ - done_) / std::max(rate, 1.0));
  }

 private:
  std::size_t total_, done_ = 0;
  bool show_, shown_ = false;
  double last_ = -1.0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

Communicator* g_shared_run = nullptr;
int g_shared_local_rank = 0;

// The streamed summaries' storage and merges, in host or device memory (device: merged by normkit's device merge,
// as the single-process run merges each piece into them on the device).
template <typename Summary>
Status merge_into(Summary* into, const Summary* from, std::int64_t n, MemorySpace space, Stream stream) {
  if constexpr (std::is_same_v<Summary, IntegerSummary>) return merge_integer_summaries(into, from, n, space, stream);
  else return merge_summaries(into, from, n, space, stream);
}

// Several files, or one in pieces: batches along axis 0, each file's flat elements cut into pieces of
// --chunk-bytes (default 64 MB; a piece may split a row or an image, never spans two files), each piece
// summarised alone (accumulate_stats_range into empty summaries: integer summaries for uint8, exact; Chan's
// merge otherwise) and merged into the running summaries in piece order, then finalized once. Files are read
// as streams, never whole, by a PieceReader thread one piece ahead of the reductions; on the device the
// pieces go up from pinned buffers on a copy stream while the last one is reduced on a compute stream.
//
// Shared among ranks (normkit-mpi): piece p is summarised by rank p % P alone (the others skip its bytes); after
// every P pieces the round's summaries are gathered (host memory) and merged into every rank's summaries in
// piece order: the same operations, in the same order, on the same summaries as one process's running merge,
// so the result is bitwise that of `normkit stats --chunk-bytes B` for every P (the host engine's summaries
// depend on its thread count: the same NORMKIT_NUM_THREADS on every rank and in the single run).
// A failure on any rank (a file it cannot read, a shape that differs) becomes the same error on every rank at
// the next round, never a hang.
template <typename Summary>
Status accumulate_files(const StatsArgs& args, const StatsOptions& options, bool use_cuda, const io::ArrayStream& first,
                        std::vector<std::int64_t>* shape, Results* results) {
  constexpr bool kInteger = std::is_same_v<Summary, IntegerSummary>;
  constexpr const char* kOp = "normkit stats";
  Communicator* const comm = g_shared_run;
  const int ranks = comm ? comm->size() : 1, rank = comm ? comm->rank() : 0;
  const std::int64_t n = results->kept_numel;
  const std::size_t summary_bytes = static_cast<std::size_t>(n) * sizeof(Summary);
  const MemorySpace space = use_cuda ? MemorySpace::device : MemorySpace::host;
  Summary empty_summary;
  if constexpr (kInteger) empty_summary = empty_integer_summary();
  else empty_summary = empty_stats_summary();
  const std::vector<Summary> empties(static_cast<std::size_t>(n), empty_summary);
  // The running summaries and one piece's (host vectors, or device buffers with the empties to reset from).
  std::vector<Summary> host_summaries(use_cuda ? 0 : static_cast<std::size_t>(n)), host_piece(host_summaries.size());
  DeviceBuffer device_summaries, device_piece, device_empties, workspace, device_inputs[2];
  std::size_t workspace_capacity = 0;
  // (shared: a failure is kept in `local` until every rank's next agreement, never returned alone: that rank
  // would leave the others waiting in a collective)
  Status local = Status::success();
  if (use_cuda) {
    for (DeviceBuffer* b : {&device_summaries, &device_piece, &device_empties}) {
      if (local.ok()) local = b->allocate(summary_bytes);
    }
    if (local.ok()) local = device_empties.upload(empties.data(), summary_bytes);
  }
  Summary* const summaries = use_cuda ? static_cast<Summary*>(device_summaries.get()) : host_summaries.data();
  Summary* const piece_summaries = use_cuda ? static_cast<Summary*>(device_piece.get()) : host_piece.data();
  *shape = first.shape();
  (*shape)[0] = 0;
  const std::size_t element = dtype_size(first.dtype());
  const std::size_t chunk_bytes = args.chunk_bytes > 0 ? static_cast<std::size_t>(args.chunk_bytes) : (std::size_t{64} << 20);
  const std::int64_t chunk_elements = static_cast<std::int64_t>(std::max<std::size_t>(1, chunk_bytes / element));

  // Every file opened and checked first: the pieces are known before any is read.
  std::vector<std::unique_ptr<io::ArrayStream>> streams(args.inputs.size());
  std::vector<io::ArrayStream*> stream_list;
  std::vector<std::int64_t> file_elements;
  std::size_t total = 0;
  for (std::size_t f = 0; f < args.inputs.size() && local.ok(); ++f) {
    local = io::open_array_stream(args.inputs[f], &streams[f]);
    if (!local.ok()) break;
    const std::vector<std::int64_t>& s = streams[f]->shape();
    const bool same_rows = s.size() == first.shape().size() && !s.empty() && std::equal(s.begin() + 1, s.end(), first.shape().begin() + 1);
    if (streams[f]->dtype() != first.dtype() || !same_rows) {
      std::string batches = "[N";
      for (std::size_t d = 1; d < first.shape().size(); ++d) batches += ", " + std::to_string(first.shape()[d]);
      local = Status(StatusCode::shape_mismatch, "normkit stats: " + args.inputs[f] + " holds " + dtype_name(streams[f]->dtype()) + " " +
                                                     TensorView(nullptr, streams[f]->dtype(), s.data(), static_cast<int>(s.size())).shape_string() +
                                                     "; the first file's batches are " + dtype_name(first.dtype()) + " " + batches + "]");
      break;
    }
    (*shape)[0] += s[0];
    total += streams[f]->data_bytes();
    stream_list.push_back(streams[f].get());
    file_elements.push_back(static_cast<std::int64_t>(streams[f]->data_bytes() / element));
  }
  PieceCursor plan(file_elements, chunk_elements, ranks, rank);
  const std::int64_t pieces = plan.count();
  if (comm) NORMKIT_RETURN_IF_ERROR(all_agree(*comm, local, pieces, "stats"));  // (every rank sees the same pieces)
  NORMKIT_RETURN_IF_ERROR(local);
  // (from here on a failure goes into `local` while ranks share the run: returned alone, it would leave the
  // others waiting in a collective)
  const auto keep = [&](const Status& s) {
    if (local.ok()) local = s;
    return comm == nullptr && !local.ok();  // (true: return it now)
  };
  if (use_cuda) {
    if (keep(device_summaries.upload(empties.data(), summary_bytes))) return local;
  } else {
    host_summaries = empties;
  }

  // Device: pieces uploaded on `copy` into device_inputs[slot] and reduced on `compute`; events order them
  // (a slot's upload after its last reduction, a reduction after its upload).
  struct DevicePipeline {
    Stream copy = nullptr, compute = nullptr;
    kernels::Event copied[2] = {nullptr, nullptr}, reduced[2] = {nullptr, nullptr};
    ~DevicePipeline() {  // (after a failure work may still be queued: it finishes before the streams go)
      for (Stream s : {copy, compute}) {
        if (s) (void)kernels::synchronize_stream(s, "normkit stats");
      }
      for (kernels::Event e : copied) kernels::event_destroy(e);
      for (kernels::Event e : reduced) kernels::event_destroy(e);
      kernels::stream_destroy(copy);
      kernels::stream_destroy(compute);
    }
  } pipe;
  std::int64_t largest = 0;
  for (std::int64_t e : file_elements) largest = std::max(largest, std::min(e, chunk_elements));
  const std::size_t capacity = static_cast<std::size_t>(largest) * element;  // (the largest piece)
  if (use_cuda) {
    if (keep(kernels::stream_create(&pipe.copy, kOp)) || keep(kernels::stream_create(&pipe.compute, kOp))) return local;
    for (int k = 0; k < 2 && local.ok(); ++k) {
      if (keep(kernels::event_create(&pipe.copied[k], kOp)) || keep(kernels::event_create(&pipe.reduced[k], kOp)) ||
          keep(device_inputs[k].allocate(capacity))) {
        return local;
      }
    }
  }
  const Stream stream = pipe.compute;  // (host: unused)

  // Shared: the round's pieces of every rank (host memory).
  std::vector<Summary> round_send(comm ? static_cast<std::size_t>(n) : 0), round_all(comm ? static_cast<std::size_t>(n) * ranks : 0);
  auto merge_round = [&](std::int64_t round_start) -> Status {
    const bool owner = round_start + rank < pieces;
    if (local.ok() && owner) {
      local = use_cuda ? kernels::copy_to_host_sync(round_send.data(), piece_summaries, summary_bytes, stream, kOp)
                       : (std::copy(host_piece.begin(), host_piece.end(), round_send.begin()), Status::success());
    }
    NORMKIT_RETURN_IF_ERROR(all_agree(*comm, local, round_start, "stats"));
    NORMKIT_RETURN_IF_ERROR(comm->all_gather(round_send.data(), round_all.data(), summary_bytes, MemorySpace::host, nullptr));
    for (int r = 0; r < ranks && round_start + r < pieces && local.ok(); ++r) {
      const Summary* from = round_all.data() + static_cast<std::size_t>(r) * n;
      if (use_cuda) {
        local = kernels::copy_to_device(piece_summaries, from, summary_bytes, stream, kOp);
        if (local.ok()) local = merge_into(summaries, piece_summaries, n, space, stream);
        if (local.ok()) local = kernels::synchronize_stream(stream, kOp);  // (`from` is pageable memory reused next round)
      } else {
        local = merge_into(summaries, from, n, space, stream);
      }
    }
    return Status::success();  // (a merge's failure: in `local`, agreed on at the next round or at the end)
  };

  Progress progress(total, !args.quiet && rank == 0);
  PieceReader reader(stream_list, plan, capacity, use_cuda);
  const bool reading = local.ok() && !keep(reader.start()) && local.ok();
  if (!comm) NORMKIT_RETURN_IF_ERROR(local);
  for (std::int64_t p = 0; p < pieces; ++p) {
    const Piece piece = plan.next();
    const unsigned char* bytes = nullptr;
    int slot = -1;  // the reader's buffer holding the piece (-1: none)
    if (reading) {
      const Status read = reader.next(&bytes, &slot);
      if (local.ok()) local = read;
    }
    if (local.ok() && piece.owned) local = [&]() -> Status {
      const io::ArrayStream& file = *stream_list[piece.file];
      TensorView input(const_cast<unsigned char*>(bytes), file.dtype(), file.shape().data(), static_cast<int>(file.shape().size()));
      const std::size_t piece_bytes = static_cast<std::size_t>(piece.count) * element;
      std::size_t workspace_bytes = 0;
      if (use_cuda) {
        NORMKIT_RETURN_IF_ERROR(kernels::stream_wait_event(pipe.copy, pipe.reduced[slot], kOp));  // (its last reduction read it)
        NORMKIT_RETURN_IF_ERROR(kernels::copy_to_device(device_inputs[slot].get(), bytes, piece_bytes, pipe.copy, kOp));
        const Status recorded = kernels::event_record(pipe.copied[slot], pipe.copy, kOp);
        if (!recorded.ok()) {  // (no event to wait for: the copy is waited for here before the buffer goes back)
          (void)kernels::synchronize_stream(pipe.copy, kOp);
          return recorded;
        }
        reader.release(pipe.copied[slot]);
        NORMKIT_RETURN_IF_ERROR(kernels::stream_wait_event(stream, pipe.copied[slot], kOp));
        input.data = device_inputs[slot].get();
        input.space = MemorySpace::device;
        NORMKIT_RETURN_IF_ERROR(stats_range_workspace_size(input, piece.first, piece.count, options, &workspace_bytes));
        if (workspace_bytes > workspace_capacity) {
          NORMKIT_RETURN_IF_ERROR(workspace.allocate(workspace_bytes));
          workspace_capacity = workspace_bytes;
        }
        NORMKIT_RETURN_IF_ERROR(kernels::copy_on_device(piece_summaries, device_empties.get(), summary_bytes, stream, kOp));
      } else {
        std::copy(empties.begin(), empties.end(), host_piece.begin());
      }
      if constexpr (kInteger) {
        NORMKIT_RETURN_IF_ERROR(accumulate_integer_stats_range(input, piece.first, piece.count, options, piece_summaries, n,
                                                               workspace.get(), workspace_bytes, stream));
      } else {
        NORMKIT_RETURN_IF_ERROR(accumulate_stats_range(input, piece.first, piece.count, options, piece_summaries, n,
                                                       workspace.get(), workspace_bytes, stream));
      }
      if (!comm) NORMKIT_RETURN_IF_ERROR(merge_into(summaries, piece_summaries, n, space, stream));
      if (use_cuda) NORMKIT_RETURN_IF_ERROR(kernels::event_record(pipe.reduced[slot], stream, kOp));
      progress.advance(piece_bytes);
      return Status::success();
    }();
    reader.release();  // (host, or after a failure; the device's went back with its upload's event)
    if (!comm) NORMKIT_RETURN_IF_ERROR(local);
    if (comm && ((p + 1) % ranks == 0 || p + 1 == pieces)) NORMKIT_RETURN_IF_ERROR(merge_round(p - p % ranks));
  }
  if (use_cuda && keep(kernels::synchronize_stream(stream, kOp))) return local;
  if (comm) NORMKIT_RETURN_IF_ERROR(all_agree(*comm, local, pieces, "stats"));
  // (finalize takes flat arrays of the n summaries; every file empty: the empty ones, numpy's statistics of nothing)
  StatsOutputs outputs;
  std::array<DeviceBuffer, kNumStats> device_outputs;
  for (int i = 0; i < kNumStats; ++i) {
    outputs.views[i] = TensorView(results->data[i].data(), results->dtype_of(i), {n}, space);
    if (use_cuda) {
      NORMKIT_RETURN_IF_ERROR(device_outputs[i].allocate(results->data[i].size()));
      outputs.views[i].data = device_outputs[i].get();
    }
  }
  if constexpr (kInteger) {
    NORMKIT_RETURN_IF_ERROR(finalize_integer_stats(summaries, n, options, outputs, space));
  } else {
    NORMKIT_RETURN_IF_ERROR(finalize_stats(summaries, n, options, outputs, space));
  }
  if (use_cuda) {
    NORMKIT_RETURN_IF_ERROR(synchronize_device());
    for (int i = 0; i < kNumStats; ++i) NORMKIT_RETURN_IF_ERROR(device_outputs[i].download(results->data[i].data(), results->data[i].size()));
  }
  return Status::success();
}

// The first file's header, the options and the kept shape of a streamed run.
Status prepare_files(const StatsArgs& args, std::unique_ptr<io::ArrayStream>* stream, StatsOptions* options, Results* results) {
  NORMKIT_RETURN_IF_ERROR(io::open_array_stream(args.inputs[0], stream));
  const io::ArrayStream& first = **stream;
  if (first.shape().empty()) {
    return Status(StatusCode::shape_mismatch, "normkit stats: " + args.inputs[0] + " is a scalar (0-d); several files are batches along axis 0");
  }
  TensorView input(nullptr, first.dtype(), first.shape().data(), static_cast<int>(first.shape().size()));
  options->axes = args.all_axes ? ReduceAxes::every() : ReduceAxes::of(args.axes.data(), static_cast<int>(args.axes.size()));
  options->ddof = args.ddof;
  options->ignore_nan = args.ignore_nan;
  NORMKIT_RETURN_IF_ERROR(kept_shape(input, options->axes, &results->kept, &results->kept_ndim));
  if (!reduces_axis0(options->axes, input.ndim)) {
    return Status(StatusCode::invalid_argument, "normkit stats: streamed input (several files, --chunk-bytes, or normkit-mpi's pieces) is cut "
                                                "along axis 0: --axis must reduce axis 0");
  }
  results->kept_numel = 1;
  for (int d = 0; d < results->kept_ndim; ++d) results->kept_numel *= results->kept[d];
  results->float_dtype = first.dtype() == DType::float64 ? DType::float64 : DType::float32;
  results->input_dtype = first.dtype();
  for (int i = 0; i < kNumStats; ++i) results->data[i].assign(static_cast<std::size_t>(results->kept_numel) * dtype_size(results->dtype_of(i)), 0);
  return Status::success();
}

Status compute_files(const StatsArgs& args, bool use_cuda, std::vector<std::int64_t>* shape, Results* results) {
  std::unique_ptr<io::ArrayStream> stream;
  StatsOptions options;
  const Status prepared = prepare_files(args, &stream, &options, results);
  if (g_shared_run != nullptr) {  // (every rank the same kept shape and dtype, or the same error)
    const std::int64_t agreed = prepared.ok() ? results->kept_numel * 16 + static_cast<int>(stream->dtype()) : -1;
    NORMKIT_RETURN_IF_ERROR(all_agree(*g_shared_run, prepared, agreed, "stats"));
  }
  NORMKIT_RETURN_IF_ERROR(prepared);
  if (stream->dtype() == DType::uint8) return accumulate_files<IntegerSummary>(args, options, use_cuda, *stream, shape, results);
  return accumulate_files<StatsSummary>(args, options, use_cuda, *stream, shape, results);
}

std::string kept_index_string(const Results& r, std::int64_t k) {
  if (r.kept_ndim == 0) return "all";
  std::string s;
  for (int d = r.kept_ndim - 1; d >= 0; --d) {
    s = std::to_string(k % r.kept[d]) + (s.empty() ? "" : ",") + s;
    k /= r.kept[d];
  }
  return "[" + s + "]";
}

void print_table(const Results& r, const std::vector<Stat>& stats) {
  constexpr std::int64_t kMaxRows = 20;  // the head and tail of long outputs
  std::printf("%-16s", "index");
  for (Stat s : stats) std::printf(" %14s", stat_name(s));
  std::printf("\n");
  for (std::int64_t k = 0; k < r.kept_numel; ++k) {
    if (r.kept_numel > kMaxRows && k == kMaxRows / 2) {
      std::printf("... (%lld rows omitted; use --out for all)\n", static_cast<long long>(r.kept_numel - kMaxRows));
      k = r.kept_numel - kMaxRows / 2;
    }
    std::printf("%-16s", kept_index_string(r, k).c_str());
    for (Stat s : stats) {
      const int i = static_cast<int>(s);
      if (r.dtype_of(i) == DType::int64) std::printf(" %14lld", static_cast<long long>(r.value(i, k)));
      else std::printf(" %14.7g", r.value(i, k));
    }
    std::printf("\n");
  }
}

std::string json_int_list(const std::vector<std::int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

Status write_output(const StatsArgs& args, const io::NpyArray& array, const std::vector<std::int64_t>& input_shape, const Results& r,
                    const std::vector<Stat>& stats) {
  io::SafetensorsFile file;
  for (Stat s : stats) {
    const int i = static_cast<int>(s);
    io::SafetensorsTensor t;
    t.name = stat_name(s);
    t.dtype = r.dtype_of(i);
    t.shape.assign(r.kept.begin(), r.kept.begin() + r.kept_ndim);
    t.data = r.data[i];
    file.tensors.push_back(std::move(t));
  }
  std::vector<std::int64_t> axes;
  for (int a : args.axes) axes.push_back(a);
  file.metadata = {{"format", "normkit-stats"},
                   {"normkit_version", NORMKIT_VERSION},
                   {"input_shape", json_int_list(input_shape)},
                   {"input_dtype", dtype_name(r.input_dtype)},
                   {"axis", args.all_axes ? std::string("\"all\"") : json_int_list(axes)},
                   {"ddof", std::to_string(args.ddof)},
                   {"ignore_nan", args.ignore_nan ? "true" : "false"}};
  return io::write_safetensors_atomic(args.out, file);
}

// The warnings, the table and the --out file of a run's results.
Status report(const StatsArgs& args, const std::vector<Stat>& stats, const io::NpyArray& array, const std::vector<std::int64_t>& input_shape,
              const Results& results) {
  std::int64_t empty_slices = 0, undefined_var = 0;
  for (std::int64_t k = 0; k < results.kept_numel; ++k) {
    const double n = results.value(static_cast<int>(Stat::count), k);
    if (n == 0) ++empty_slices;
    else if (n <= static_cast<double>(args.ddof)) ++undefined_var;
  }
  if (empty_slices > 0) {
    std::fprintf(stderr, "normkit stats: warning: %lld of %lld slices are empty%s: mean/var/std/min/max/linf are NaN\n",
                 static_cast<long long>(empty_slices), static_cast<long long>(results.kept_numel),
                 args.ignore_nan ? " (or all-NaN)" : "");
  }
  if (undefined_var > 0) {
    std::fprintf(stderr, "normkit stats: warning: %lld slices have count <= ddof (%lld): var/std are NaN\n",
                 static_cast<long long>(undefined_var), static_cast<long long>(args.ddof));
  }
  print_table(results, stats);
  if (!args.out.empty()) {
    NORMKIT_RETURN_IF_ERROR(write_output(args, array, input_shape, results, stats));
  }
  return Status::success();
}

int fail(const Status& status) {
  // (shared among ranks, every rank holds the same error: rank 0 says it)
  if (g_shared_run == nullptr || g_shared_run->rank() == 0) std::fprintf(stderr, "normkit stats: error: %s\n", status.message().c_str());
  return kExitBadData;
}

}  // namespace

void set_shared_run(Communicator* comm, int local_rank) {
  g_shared_run = comm;
  g_shared_local_rank = local_rank;
}
Communicator* shared_run() { return g_shared_run; }
int shared_local_rank() { return g_shared_local_rank; }

void print_stats_help() {
  std::printf(
      "usage: normkit stats IN [IN ...] [--axis all | --axis 0,2,3 | --axis -1] [--stats LIST] [--ddof N]\n"
      "                     [--ignore-nan] [--device auto|cpu|cuda] [--gpu N] [--out STATS.safetensors]\n\n"
      "Statistics of IN (a .npy file: float32, float64, float16 or uint8, C order, little-endian; or an IDX file,\n"
      "plain or gzip, as MNIST's: uint8, float32, float64) over the REDUCED axes (numpy's axis convention), in one\n"
      "read of the data. Several files are batches along axis 0 (same dtype and trailing shape; axis 0 must be\n"
      "reduced): their statistics are those of the concatenation (uint8 exactly, floats by Chan's merge).\n\n"
      "  --axis A        axes reduced over: 'all' (default) or a comma list; negative values count from the end\n"
      "  --stats LIST    comma list of count,mean,var,std,min,max,sum,l0,l1,l2,linf (default: all)\n"
      "  --ddof N        var = M2 / (count - N) (default 0, population variance)\n"
      "  --ignore-nan    skip NaN like numpy's nan-functions (default: NaN propagates)\n"
      "  --chunk-bytes B read the input(s) in pieces of B bytes (whole elements), which may split rows (files\n"
      "                  larger than memory; axis 0 must be reduced); several files always stream, in pieces\n"
      "                  of 64 MB by default\n"
      "  --quiet         no progress line on stderr (shown for long streamed runs on a terminal)\n"
      "  --device D      auto (CUDA when available, else the host), cpu or cuda\n"
      "  --gpu N         CUDA device index (default 0; one of several processes of mpirun/srun, normkit-mpi's\n"
      "                  ranks included: the process's index on its node, modulo the GPUs)\n"
      "  --out FILE      write each statistic as a tensor of the kept shape named after it to a .safetensors\n"
      "                  file (float64 for float64 input, float32 otherwise; count and l0 int64)\n\n"
      "The table goes to stdout, the device used and warnings to stderr.\n"
      "exit status: 0 success, 1 bad data, 2 usage error\n");
}

int run_stats(const std::vector<std::string>& raw_args) {
  for (const std::string& a : raw_args) {
    if (a == "-h" || a == "--help") {
      print_stats_help();
      return kExitOk;
    }
  }
  StatsArgs args;
  try {
    args = parse_args(raw_args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "normkit stats: %s (try 'normkit stats --help')\n", e.message.c_str());
    return kExitUsage;
  }
  std::vector<Stat> stats = args.stats;
  if (stats.empty()) {
    for (int i = 0; i < kNumStats; ++i) stats.push_back(static_cast<Stat>(i));
  }

  // One file without --chunk-bytes is read whole (one read of the data); several files, or pieces, stream.
  // (shared among ranks: always streamed, in pieces of --chunk-bytes or its default)
  const bool streamed = args.inputs.size() > 1 || args.chunk_bytes > 0 || g_shared_run != nullptr;
  io::NpyArray array;
  Status status = streamed ? Status::success() : io::read_array_file(args.inputs[0], &array);
  if (!status.ok()) return fail(status);

  bool use_cuda = false;
  status = select_device(args.device, args.gpu, &use_cuda);
  if (g_shared_run != nullptr) status = all_agree(*g_shared_run, status, use_cuda ? 1 : 0, "stats");  // (the same engine everywhere)
  if (!status.ok()) return fail(status);

  Results results;
  std::vector<std::int64_t> input_shape = array.shape;
  status = streamed ? compute_files(args, use_cuda, &input_shape, &results) : compute(args, array, use_cuda, &results);
  if (g_shared_run != nullptr) {
    // Rank 0 prints and writes; then every rank agrees on the outcome (its own, or rank 0's write's): one exit
    // status everywhere, and no rank left waiting in a collective.
    status = all_agree(*g_shared_run, status, 0, "stats");  // (finalize's own failures: before anything is written)
    if (status.ok() && g_shared_run->rank() == 0) status = report(args, stats, array, input_shape, results);
    status = all_agree(*g_shared_run, status, 0, "stats");
    return status.ok() ? kExitOk : fail(status);
  }
  if (!status.ok()) return fail(status);
  status = report(args, stats, array, input_shape, results);
  return status.ok() ? kExitOk : fail(status);
}

}  // namespace normkit::cli
