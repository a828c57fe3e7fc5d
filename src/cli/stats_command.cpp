// `normkit stats IN.npy [--axis ...] [--stats ...] [--ddof N] [--ignore-nan] [--device auto|cpu|cuda]
//                [--gpu N] [--out STATS.safetensors]`
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "cli/cli_common.hpp"
#include "cli/device_memory.hpp"
#include "io/npy.hpp"
#include "io/safetensors.hpp"
#include "normkit/stats.hpp"

#ifndef NORMKIT_VERSION
#define NORMKIT_VERSION "unknown"
#endif

namespace normkit::cli {
namespace {

struct StatsArgs {
  std::string input;
  bool all_axes = true;
  std::vector<int> axes;
  std::vector<Stat> stats;  // empty: all
  std::int64_t ddof = 0;
  bool ignore_nan = false;
  DeviceChoice device = DeviceChoice::automatic;
  int gpu = 0;
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
    } else if (arg == "--device") {
      parsed.device = parse_device_option(take_value());
    } else if (arg == "--gpu") {
      parsed.gpu = parse_gpu_option(take_value());
    } else if (arg == "--out" || arg == "-o") {
      parsed.out = take_value();
    } else if (!arg.empty() && arg[0] == '-' && arg != "-") {
      throw UsageError{"unknown option '" + arg + "'"};
    } else if (parsed.input.empty()) {
      parsed.input = arg;
    } else {
      throw UsageError{"unexpected argument '" + arg + "' (one input file)"};
    }
  }
  if (parsed.input.empty()) throw UsageError{"missing input file (normkit stats IN.npy)"};
  return parsed;
}

// Host-side results: one buffer per statistic.
struct Results {
  std::int64_t kept_numel = 0;
  std::array<std::int64_t, kMaxDims> kept{};
  int kept_ndim = 0;
  DType float_dtype = DType::float32;
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

Status write_output(const StatsArgs& args, const io::NpyArray& array, const Results& r, const std::vector<Stat>& stats) {
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
                   {"input_shape", json_int_list(array.shape)},
                   {"input_dtype", dtype_name(array.dtype)},
                   {"axis", args.all_axes ? std::string("\"all\"") : json_int_list(axes)},
                   {"ddof", std::to_string(args.ddof)},
                   {"ignore_nan", args.ignore_nan ? "true" : "false"}};
  return io::write_safetensors_atomic(args.out, file);
}

int fail(const Status& status) {
  std::fprintf(stderr, "normkit stats: error: %s\n", status.message().c_str());
  return kExitBadData;
}

}  // namespace

void print_stats_help() {
  std::printf(
      "usage: normkit stats IN.npy [--axis all | --axis 0,2,3 | --axis -1] [--stats LIST] [--ddof N]\n"
      "                     [--ignore-nan] [--device auto|cpu|cuda] [--gpu N] [--out STATS.safetensors]\n\n"
      "Statistics of IN.npy (float32, float64, float16 or uint8; C order, little-endian) over the REDUCED axes\n"
      "(numpy's axis convention), in one read of the data.\n\n"
      "  --axis A        axes reduced over: 'all' (default) or a comma list; negative values count from the end\n"
      "  --stats LIST    comma list of count,mean,var,std,min,max,sum,l0,l1,l2,linf (default: all)\n"
      "  --ddof N        var = M2 / (count - N) (default 0, population variance)\n"
      "  --ignore-nan    skip NaN like numpy's nan-functions (default: NaN propagates)\n"
      "  --device D      auto (CUDA when available, else the host), cpu or cuda\n"
      "  --gpu N         CUDA device index (default 0)\n"
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

  io::NpyArray array;
  Status status = io::read_npy(args.input, &array);
  if (!status.ok()) return fail(status);

  bool use_cuda = false;
  status = select_device(args.device, args.gpu, &use_cuda);
  if (!status.ok()) return fail(status);

  Results results;
  status = compute(args, array, use_cuda, &results);
  if (!status.ok()) return fail(status);

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
    status = write_output(args, array, results, stats);
    if (!status.ok()) return fail(status);
  }
  return kExitOk;
}

}  // namespace normkit::cli
