// `normkit fit`, `normkit apply`, `normkit normalize`: the transforms on .npy files.
//
//   normkit fit IN.npy [MORE.npy ...] --method M [options] [--axis A] --state STATE.safetensors
//   normkit apply IN.npy --state STATE.safetensors --out OUT.npy [--dtype D] [--inverse]
//   normkit normalize IN.npy --method M|l1|l2|linf [options] --out OUT.npy [--dtype D]
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "cli/cli_common.hpp"
#include "cli/device_memory.hpp"
#include "io/atomic_file.hpp"
#include "io/idx.hpp"
#include "io/npy.hpp"
#include "normkit/distributed.hpp"
#include "normkit/normalize.hpp"
#include "normkit/stats.hpp"

namespace normkit::cli {
namespace {

struct TransformArgs {
  std::vector<std::string> inputs;
  std::string state, out;
  bool method_given = false;
  bool lp = false;  // normalize with l1/l2/linf
  LpNorm lp_norm = LpNorm::l2;
  NormalizerOptions options;
  bool axis_given = false;
  bool inverse = false;
  bool dtype_given = false;
  DType out_dtype = DType::float32;
  DeviceChoice device = DeviceChoice::automatic;
  int gpu = kGpuUnset;
  std::int64_t chunk_bytes = std::int64_t{64} << 20;  // fit: files above it stream in pieces of whole rows
};

// Parses the options every transform verb shares; `verb` decides which are allowed.
TransformArgs parse(const std::vector<std::string>& args, const std::string& verb) {
  TransformArgs t;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i], inline_value;
    const std::string* inline_ptr = split_inline_option(&arg, &inline_value);
    auto value = [&] { return option_value(args, &i, arg, inline_ptr); };
    auto number = [&](const char* what) {
      const std::string v = value();
      double d = 0;
      if (!parse_double(v, &d)) throw UsageError{std::string(what) + " expects a number, got '" + v + "'"};
      return d;
    };
    NormalizerOptions& o = t.options;
    if (arg == "--method" && verb != "apply") {
      const std::string v = value();
      t.method_given = true;
      if (verb == "normalize" && (v == "l1" || v == "l2" || v == "linf")) {
        t.lp = true;
        t.lp_norm = v == "l1" ? LpNorm::l1 : (v == "l2" ? LpNorm::l2 : LpNorm::linf);
      } else if (!parse_method(v, &o.method)) {
        throw UsageError{"--method: unknown method '" + v + "' (zscore, minmax, maxabs, rescale, decimal, impute-mean" +
                         (verb == "normalize" ? ", l1, l2, linf)" : ")")};
      }
    } else if (arg == "--with-mean" || arg == "--no-with-mean") {
      o.with_mean = arg == "--with-mean";
    } else if (arg == "--with-std" || arg == "--no-with-std") {
      o.with_std = arg == "--with-std";
    } else if (arg == "--feature-range") {
      const std::string v = value();
      const auto parts = split_commas(v);
      if (parts.size() != 2 || !parse_double(parts[0], &o.range_min) || !parse_double(parts[1], &o.range_max)) {
        throw UsageError{"--feature-range expects A,B, got '" + v + "'"};
      }
    } else if (arg == "--clip") {
      o.clip = true;
    } else if (arg == "--impute") {
      o.impute_nan = true;
    } else if (arg == "--epsilon") {
      o.epsilon = number("--epsilon");
    } else if (arg == "--zero-variance") {
      const std::string v = value();
      if (v == "sklearn") o.zero_variance = ZeroVariance::sklearn;
      else if (v == "keras") o.zero_variance = ZeroVariance::keras;
      else throw UsageError{"--zero-variance expects sklearn or keras, got '" + v + "'"};
    } else if (arg == "--scale") {
      o.scale = number("--scale");
    } else if (arg == "--offset") {
      o.offset = number("--offset");
    } else if (arg == "--axis" && verb != "apply") {
      o.axes = parse_axis_option(value());
      t.axis_given = true;
    } else if (arg == "--state" && verb != "normalize") {
      t.state = value();
    } else if ((arg == "--out" || arg == "-o") && verb != "fit") {
      t.out = value();
    } else if (arg == "--dtype" && verb != "fit") {
      const std::string v = value();
      if (v != "float32" && v != "float16" && v != "float64") throw UsageError{"--dtype expects float32, float16 or float64, got '" + v + "'"};
      parse_dtype(v, &t.out_dtype);
      t.dtype_given = true;
    } else if (arg == "--chunk-bytes" && verb == "fit") {
      const std::string v = value();
      if (!parse_int64(v, &t.chunk_bytes) || t.chunk_bytes < 1) throw UsageError{"--chunk-bytes expects a byte count >= 1, got '" + v + "'"};
    } else if (arg == "--inverse" && verb == "apply") {
      t.inverse = true;
    } else if (arg == "--device") {
      t.device = parse_device_option(value());
    } else if (arg == "--gpu") {
      t.gpu = parse_gpu_option(value());
    } else if (!arg.empty() && arg[0] == '-' && arg != "-") {
      throw UsageError{"unknown option '" + arg + "' for " + verb};
    } else {
      t.inputs.push_back(arg);
    }
  }
  if (t.inputs.empty()) throw UsageError{"missing input file"};
  if (verb != "fit" && t.inputs.size() > 1) throw UsageError{"one input file (got " + std::to_string(t.inputs.size()) + ")"};
  if (verb != "apply" && !t.method_given) throw UsageError{"--method is required"};
  if (verb != "normalize" && t.state.empty()) throw UsageError{"--state is required"};
  if (verb != "fit" && t.out.empty()) throw UsageError{"--out is required"};
  return t;
}

int fail(const std::string& verb, const Status& status) {
  // (shared among ranks, every rank holds the same error: rank 0 says it)
  if (shared_run() != nullptr && shared_run()->rank() != 0) return kExitBadData;
  std::fprintf(stderr, "normkit %s: error: %s\n", verb.c_str(), status.message().c_str());
  return kExitBadData;
}

// Where the work runs, and the tensors that live there.
struct Runner {
  bool cuda = false;
  MemorySpace space = MemorySpace::host;

  Status select(DeviceChoice device, int gpu) {
    NORMKIT_RETURN_IF_ERROR(select_device(device, gpu, &cuda));
    space = cuda ? MemorySpace::device : MemorySpace::host;
    return Status::success();
  }
};

// A tensor in the runner's space: host arrays as they are, device copies of them.
struct Placed {
  DeviceBuffer device;
  TensorView view;
};

Status place(const Runner& runner, void* host_data, std::size_t bytes, DType dtype, const std::vector<std::int64_t>& shape,
             Placed* placed) {
  placed->view = TensorView(host_data, dtype, shape.data(), static_cast<int>(shape.size()));
  if (!runner.cuda) return Status::success();
  NORMKIT_RETURN_IF_ERROR(placed->device.allocate(bytes));
  NORMKIT_RETURN_IF_ERROR(placed->device.upload(host_data, bytes));
  placed->view.data = placed->device.get();
  placed->view.space = MemorySpace::device;
  return Status::success();
}

DType default_output(DType input) { return input == DType::float64 ? DType::float64 : (input == DType::float16 ? DType::float16 : DType::float32); }

// out = transform(in) (or the inverse, or Lp normalization), written to `path` as .npy.
Status transform_to_file(const Runner& runner, Normalizer* normalizer, const TransformArgs& t, io::NpyArray& in,
                         const std::string& path) {
  const DType out_dtype = t.dtype_given ? t.out_dtype : default_output(in.dtype);
  std::int64_t n = 1;
  for (auto e : in.shape) n *= e;
  std::vector<unsigned char> result(static_cast<std::size_t>(n) * dtype_size(out_dtype));
  Placed input, output;
  NORMKIT_RETURN_IF_ERROR(place(runner, in.data.data(), in.data.size(), in.dtype, in.shape, &input));
  NORMKIT_RETURN_IF_ERROR(place(runner, result.data(), result.size(), out_dtype, in.shape, &output));
  if (t.lp) {
    std::size_t bytes = 0;
    NORMKIT_RETURN_IF_ERROR(normalize_lp_workspace_size(input.view, &bytes));
    DeviceBuffer workspace;
    if (bytes) NORMKIT_RETURN_IF_ERROR(workspace.allocate(bytes));
    NORMKIT_RETURN_IF_ERROR(normalize_lp(input.view, t.lp_norm, output.view, workspace.get(), bytes));
  } else if (t.inverse) {
    NORMKIT_RETURN_IF_ERROR(normalizer->inverse_transform(input.view, output.view));
  } else {
    NORMKIT_RETURN_IF_ERROR(normalizer->transform(input.view, output.view));
  }
  if (runner.cuda) {
    NORMKIT_RETURN_IF_ERROR(synchronize_device());
    NORMKIT_RETURN_IF_ERROR(output.device.download(result.data(), result.size()));
  }
  return io::write_npy_atomic(path, out_dtype, in.shape, result.data());
}

// One batch adapted (its rows in the runner's space), the file named in an error.
Status adapt_batch(const Runner& runner, Normalizer* normalizer, const std::string& path, void* data, std::size_t bytes, DType dtype,
                   const std::vector<std::int64_t>& shape) {
  Placed batch;
  NORMKIT_RETURN_IF_ERROR(place(runner, data, bytes, dtype, shape, &batch));
  const Status s = normalizer->adapt(batch.view);
  if (!s.ok()) return Status(s.code(), path + ": " + s.message());
  if (runner.cuda) NORMKIT_RETURN_IF_ERROR(synchronize_device());
  return Status::success();
}

// Adapts over the .npy file at `path`: read whole into `array` when the caller keeps it (normkit normalize),
// when it is at most `piece_bytes` or when axis 0 is kept; otherwise in pieces of whole rows of about
// `piece_bytes` (batches along axis 0, merged as partial_fit's), so that `fit` takes files larger than memory.
// `dtype` gets the file's dtype.
Status adapt_file(const Runner& runner, Normalizer* normalizer, const std::string& path, std::size_t piece_bytes, io::NpyArray* array,
                  DType* dtype = nullptr) {
  std::unique_ptr<io::ArrayStream> stream;
  const bool keep = array != nullptr;
  io::NpyArray whole;
  if (!keep) array = &whole;
  {
    io::UniqueFile file;
    std::int64_t size = 0, data_bytes = 0;
    NORMKIT_RETURN_IF_ERROR(io::open_for_reading(path, "read_npy", &file, &size));
    NORMKIT_RETURN_IF_ERROR(io::read_npy_header(file.get(), size, path, array, &data_bytes));
  }
  if (dtype) *dtype = array->dtype;
  const int ndim = static_cast<int>(array->shape.size());
  const bool reduces_first = reduces_axis0(normalizer->options().axes, ndim);
  std::size_t row_bytes = dtype_size(array->dtype);
  for (int d = 1; d < ndim; ++d) row_bytes *= static_cast<std::size_t>(array->shape[d]);
  const std::size_t file_bytes = ndim > 0 ? row_bytes * static_cast<std::size_t>(array->shape[0]) : row_bytes;
  if (keep || !reduces_first || file_bytes <= piece_bytes || row_bytes == 0) {
    NORMKIT_RETURN_IF_ERROR(io::read_npy(path, array));
    return adapt_batch(runner, normalizer, path, array->data.data(), array->data.size(), array->dtype, array->shape);
  }
  NORMKIT_RETURN_IF_ERROR(io::open_array_stream(path, &stream));
  const std::int64_t rows = array->shape[0];
  const std::int64_t piece_rows = static_cast<std::int64_t>(std::max<std::size_t>(1, piece_bytes / row_bytes));
  std::vector<unsigned char> host(static_cast<std::size_t>(std::min(rows, piece_rows)) * row_bytes);
  std::vector<std::int64_t> shape = array->shape;
  for (std::int64_t r0 = 0; r0 < rows; r0 += piece_rows) {
    shape[0] = std::min(piece_rows, rows - r0);
    const std::size_t bytes = static_cast<std::size_t>(shape[0]) * row_bytes;
    NORMKIT_RETURN_IF_ERROR(stream->read(host.data(), bytes));
    NORMKIT_RETURN_IF_ERROR(adapt_batch(runner, normalizer, path, host.data(), bytes, array->dtype, shape));
  }
  return stream->finish();
}

// One file adapted in a normalizer of its own (whole, or in pieces of rows): its fitted summaries and dtype, for
// Normalizer::adapt_summaries. `normkit fit` and `normkit-mpi fit` both merge each file this way, so that a file
// fitted in pieces gives the same bits in one process as on any number of ranks.
Status summarise_file(const Runner& runner, const TransformArgs& t, const std::string& path, NormalizerState* state, DType* dtype) {
  Normalizer alone;
  NORMKIT_RETURN_IF_ERROR(alone.init(t.options, runner.space));
  NORMKIT_RETURN_IF_ERROR(adapt_file(runner, &alone, path, static_cast<std::size_t>(t.chunk_bytes), nullptr, dtype));
  return alone.fitted_state(state);
}

// normkit-mpi fit: file f is adapted by rank f % P alone, in a normalizer of its own; after every P files the
// round's fitted summaries (and batch dtypes) are gathered and merged into every rank's normalizer in file order
// (Normalizer::adapt_summaries): the same bits as `normkit fit` adapting the files in turn in one process, for
// every P. A failure on any rank becomes the same error on every rank at the round's agreement.
Status adapt_files_shared(Communicator& comm, const Runner& runner, Normalizer* normalizer, const TransformArgs& t) {
  const int ranks = comm.size(), rank = comm.rank();
  const std::int64_t files = static_cast<std::int64_t>(t.inputs.size());
  // The kept shape from the first file's header (every rank reads it: the gathered records' size).
  std::vector<std::int64_t> kept;
  Status local = [&]() -> Status {
    std::unique_ptr<io::ArrayStream> first;
    NORMKIT_RETURN_IF_ERROR(io::open_array_stream(t.inputs[0], &first));
    const TensorView header(nullptr, first->dtype(), first->shape().data(), static_cast<int>(first->shape().size()));
    std::array<std::int64_t, kMaxDims> shape{};
    int ndim = 0;
    NORMKIT_RETURN_IF_ERROR(kept_shape(header, t.options.axes, &shape, &ndim));
    kept.assign(shape.begin(), shape.begin() + ndim);
    return Status::success();
  }();
  std::int64_t n = 1;
  for (std::int64_t e : kept) n *= e;
  NORMKIT_RETURN_IF_ERROR(all_agree(comm, local, local.ok() ? n : -1, "fit"));
  // A record: the batch's dtype, then its n summaries.
  struct Record {
    std::int64_t dtype;
  };
  const std::size_t record_bytes = sizeof(Record) + static_cast<std::size_t>(n) * sizeof(StatsSummary);
  std::vector<unsigned char> mine(record_bytes), all(record_bytes * static_cast<std::size_t>(ranks));
  for (std::int64_t round = 0; round < files; round += ranks) {
    const std::int64_t f = round + rank;
    if (local.ok() && f < files) local = [&]() -> Status {
      DType dtype = DType::float32;
      NormalizerState state;
      NORMKIT_RETURN_IF_ERROR(summarise_file(runner, t, t.inputs[static_cast<std::size_t>(f)], &state, &dtype));
      if (state.kept_shape != kept) {
        return Status(StatusCode::shape_mismatch, t.inputs[static_cast<std::size_t>(f)] + ": its kept shape differs from " + t.inputs[0] + "'s");
      }
      const Record record{static_cast<std::int64_t>(dtype)};
      std::memcpy(mine.data(), &record, sizeof(record));
      std::memcpy(mine.data() + sizeof(record), state.summaries.data(), state.summaries.size() * sizeof(StatsSummary));
      return Status::success();
    }();
    NORMKIT_RETURN_IF_ERROR(all_agree(comm, local, round, "fit"));
    NORMKIT_RETURN_IF_ERROR(comm.all_gather(mine.data(), all.data(), record_bytes, MemorySpace::host, nullptr));
    // (a merge's failure stays in `local` until the next agreement: returned alone it would leave the others waiting)
    for (int r = 0; r < ranks && round + r < files && local.ok(); ++r) {
      const unsigned char* from = all.data() + static_cast<std::size_t>(r) * record_bytes;
      Record record;
      std::memcpy(&record, from, sizeof(record));
      std::vector<StatsSummary> summaries(static_cast<std::size_t>(n));
      std::memcpy(summaries.data(), from + sizeof(record), summaries.size() * sizeof(StatsSummary));
      local = normalizer->adapt_summaries(kept, summaries.data(), static_cast<DType>(record.dtype));
    }
  }
  return all_agree(comm, local, files, "fit");
}

Status adapt_files(const Runner& runner, Normalizer* normalizer, const TransformArgs& t, std::vector<io::NpyArray>* keep_first) {
  if (shared_run() != nullptr) {
    NORMKIT_RETURN_IF_ERROR(adapt_files_shared(*shared_run(), runner, normalizer, t));
  } else {
    for (std::size_t f = 0; f < t.inputs.size(); ++f) {
      if (keep_first && f == 0) {  // (normkit normalize: one file, read whole, transformed after)
        io::NpyArray array;
        NORMKIT_RETURN_IF_ERROR(adapt_file(runner, normalizer, t.inputs[f], static_cast<std::size_t>(t.chunk_bytes), &array));
        keep_first->push_back(std::move(array));
        continue;
      }
      NormalizerState state;
      DType dtype = DType::float32;
      NORMKIT_RETURN_IF_ERROR(summarise_file(runner, t, t.inputs[f], &state, &dtype));
      const Status merged = normalizer->adapt_summaries(state.kept_shape, state.summaries.data(), dtype);
      if (!merged.ok()) return Status(merged.code(), t.inputs[f] + ": " + merged.message());
    }
  }
  if (shared_run() != nullptr && shared_run()->rank() != 0) return Status::success();  // (rank 0 warns)
  if (const std::int64_t all_nan = normalizer->all_nan_features()) {
    std::fprintf(stderr, "normkit: warning: %lld features are entirely NaN%s\n", static_cast<long long>(all_nan),
                 normalizer->options().impute_nan || normalizer->options().method == Method::impute_mean ? " (filled with 0)" : "");
  }
  return Status::success();
}

int run_verb(const std::string& verb, const std::vector<std::string>& raw_args) {
  TransformArgs t;
  try {
    t = parse(raw_args, verb);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "normkit %s: %s (try 'normkit %s --help')\n", verb.c_str(), e.message.c_str(), verb.c_str());
    return kExitUsage;
  }
  if (t.lp && !t.axis_given) t.options.axes = ReduceAxes::of({-1});
  if (t.lp && t.axis_given) {
    std::fprintf(stderr, "normkit normalize: l1/l2/linf normalize along the last axis; --axis is not used\n");
  }
  Status s = validate_options(t.options, verb);
  if (!s.ok()) {  // an option value out of its domain (feature range, scale, epsilon): a usage error
    std::fprintf(stderr, "normkit %s: %s (try 'normkit %s --help')\n", verb.c_str(), s.message().c_str(), verb.c_str());
    return kExitUsage;
  }
  Runner runner;
  s = runner.select(t.device, t.gpu);
  if (shared_run() != nullptr) s = all_agree(*shared_run(), s, runner.cuda ? 1 : 0, "fit");  // (the same engine everywhere)
  if (!s.ok()) return fail(verb, s);
  Normalizer normalizer;
  if (verb == "fit") {
    s = normalizer.init(t.options, runner.space);
    if (shared_run() != nullptr) {
      // Every rank adapts (the collectives), rank 0 writes, and every rank agrees on the outcome: one exit status.
      s = all_agree(*shared_run(), s, 0, "fit");
      if (s.ok()) s = adapt_files(runner, &normalizer, t, nullptr);
      if (s.ok() && shared_run()->rank() == 0) s = normalizer.save(t.state);
      s = all_agree(*shared_run(), s, 0, "fit");
      if (!s.ok()) return fail(verb, s);
      if (shared_run()->rank() != 0) return kExitOk;
    } else {
      if (s.ok()) s = adapt_files(runner, &normalizer, t, nullptr);
      if (s.ok()) s = normalizer.save(t.state);
      if (!s.ok()) return fail(verb, s);
    }
    std::fprintf(stderr, "normkit fit: %s state of kept shape [", method_name(t.options.method));
    const auto kept = normalizer.kept_shape();
    for (std::size_t i = 0; i < kept.size(); ++i) std::fprintf(stderr, "%s%lld", i ? ", " : "", static_cast<long long>(kept[i]));
    std::fprintf(stderr, "] written to %s\n", t.state.c_str());
    return kExitOk;
  }
  std::vector<io::NpyArray> input;
  if (verb == "apply") {
    s = normalizer.load(t.state, runner.space);
    io::NpyArray array;
    if (s.ok()) s = io::read_npy(t.inputs[0], &array);
    if (s.ok()) input.push_back(std::move(array));
  } else if (t.lp) {
    io::NpyArray array;
    s = io::read_npy(t.inputs[0], &array);
    if (s.ok()) input.push_back(std::move(array));
  } else {
    s = normalizer.init(t.options, runner.space);
    if (s.ok()) s = adapt_files(runner, &normalizer, t, &input);
  }
  if (s.ok()) s = transform_to_file(runner, &normalizer, t, input[0], t.out);
  if (!s.ok()) return fail(verb, s);
  return kExitOk;
}

}  // namespace

void print_transform_help(const std::string& verb) {
  if (verb == "fit") {
    std::printf("usage: normkit fit IN.npy [MORE.npy ...] --method M [options] [--axis A] [--chunk-bytes B] --state STATE.safetensors\n\n"
                "Adapts a normalizer over the files in order (statistics merge exactly) and saves its state. Files above\n"
                "--chunk-bytes B (default 64 MB) are read in pieces of whole rows of about B bytes when axis 0 is reduced\n"
                "(files larger than memory).\n");
  } else if (verb == "apply") {
    std::printf("usage: normkit apply IN.npy --state STATE.safetensors --out OUT.npy [--dtype float32|float16|float64] [--inverse]\n\n"
                "Transforms IN.npy with a saved state (--inverse: the inverse transform).\n");
  } else {
    std::printf("usage: normkit normalize IN.npy --method M|l1|l2|linf [options] [--axis A] --out OUT.npy [--dtype D]\n\n"
                "Fits on IN.npy and transforms it in one go; l1/l2/linf divide each row (last axis) by its norm.\n");
  }
  std::printf("\nmethods: zscore, minmax, maxabs, rescale, decimal, impute-mean (see include/normkit/normalize.hpp)\n"
              "options:\n"
              "  --axis A                 reduced axes of the statistics (default 0: per feature)\n"
              "  --with-mean/--no-with-mean, --with-std/--no-with-std   zscore centering and scaling (default on)\n"
              "  --zero-variance sklearn|keras   zscore of constant features: s = 1 (sklearn) or max(std, epsilon) (keras)\n"
              "  --epsilon E              keras epsilon (default 1e-7)\n"
              "  --feature-range A,B      minmax target range (default 0,1); --clip clips to it\n"
              "  --scale S --offset O     rescale first: x * S + O (the whole transform for --method rescale)\n"
              "  --impute                 fill NaN with the feature mean before the method\n"
              "  --dtype D                output dtype (default: the input's float type, float32 for uint8)\n"
              "  --device auto|cpu|cuda, --gpu N\n"
              "scikit-learn's rules:\n"
              "  zscore (sklearn): a feature is constant (s = 1, y = x - mean) when var <= n*eps*var + (n*eps*mean)^2,\n"
              "    eps = 2^-52, n = the values fitted (StandardScaler's _is_constant_feature)\n"
              "  minmax range and maxabs max|x| below 10*eps of the input dtype count as 1 (_handle_zeros_in_scale):\n"
              "    float32 and bfloat16 1.19e-6, float16 9.8e-3, float64 and uint8 2.2e-15\n"
              "  fitting on +-Inf is an error naming the feature (exit 1, nothing written); NaN is ignored by fit\n"
              "  (--impute fills it); transforming +-Inf with a saved state keeps IEEE arithmetic (scikit-learn raises)\n"
              "exit status: 0 success, 1 bad data, 2 usage error; outputs are written atomically\n");
}

int run_transform_verb(const std::string& verb, const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "-h" || a == "--help") {
      print_transform_help(verb);
      return kExitOk;
    }
  }
  return run_verb(verb, args);
}

}  // namespace normkit::cli
