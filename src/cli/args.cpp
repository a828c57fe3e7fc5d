#include "cli/args.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "cli/cli_common.hpp"
#include "cli/device_memory.hpp"
#include "normkit/distributed.hpp"

namespace normkit::cli {

bool parse_int64(const std::string& text, std::int64_t* value) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *value = v;
  return true;
}

bool parse_double(const std::string& text, double* value) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || *end != '\0') return false;
  *value = v;
  return true;
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    parts.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return parts;
}

bool reduces_axis0(const ReduceAxes& axes, int ndim) {
  if (axes.all) return ndim > 0;
  for (int i = 0; i < axes.count; ++i) {
    if (axes.axes[i] == 0 || axes.axes[i] + ndim == 0) return true;
  }
  return false;
}

ReduceAxes parse_axis_option(const std::string& text) {
  if (text == "all" || text == "None") return ReduceAxes::every();
  std::vector<int> axes;
  for (const std::string& part : split_commas(text)) {
    std::int64_t axis = 0;
    if (!parse_int64(part, &axis) || axis < -kMaxDims || axis >= kMaxDims || axes.size() >= static_cast<std::size_t>(kMaxDims)) {
      throw UsageError{"--axis expects 'all' or comma-separated integers, got '" + text + "'"};
    }
    axes.push_back(static_cast<int>(axis));
  }
  return ReduceAxes::of(axes.data(), static_cast<int>(axes.size()));
}

DeviceChoice parse_device_option(const std::string& text) {
  if (text == "auto") return DeviceChoice::automatic;
  if (text == "cpu") return DeviceChoice::cpu;
  if (text == "cuda") return DeviceChoice::cuda;
  throw UsageError{"--device expects auto, cpu or cuda, got '" + text + "'"};
}

int parse_gpu_option(const std::string& text) {
  std::int64_t gpu = 0;
  if (!parse_int64(text, &gpu) || gpu < 0 || gpu > 1024) throw UsageError{"--gpu expects a device index, got '" + text + "'"};
  return static_cast<int>(gpu);
}

Status select_device(DeviceChoice choice, int gpu, bool* use_cuda) {
  *use_cuda = choice == DeviceChoice::cuda || (choice == DeviceChoice::automatic && cuda_available());
  const bool say = shared_run() == nullptr || shared_run()->rank() == 0;  // (normkit-mpi: rank 0 speaks)
  if (!*use_cuda) {
    if (say) std::fprintf(stderr, "normkit: device: cpu (%d threads)\n", host_threads());
    return Status::success();
  }
  if (!cuda_available()) {
    return Status(StatusCode::cuda_unavailable, "--device cuda: no CUDA device is available (or normkit was built without CUDA)");
  }
  if (gpu == kGpuUnset) {
    // (one of several processes on a node: normkit-mpi's node-local rank, or a launcher's (OpenMPI, MPICH, Slurm)
    // for a plain normkit started by it: each process its own GPU, modulo the node's)
    int local_rank = shared_run() != nullptr ? shared_local_rank() : -1;
    for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}) {
      if (local_rank < 0 && std::getenv(name) != nullptr) local_rank = std::atoi(std::getenv(name));
    }
    int count = 1;
    if (local_rank > 0) NORMKIT_RETURN_IF_ERROR(gpu_count(&count));
    gpu = local_rank > 0 ? local_rank % (count > 0 ? count : 1) : 0;
  }
  std::string name;
  NORMKIT_RETURN_IF_ERROR(select_gpu(gpu, &name));
  if (say) std::fprintf(stderr, "normkit: device: cuda:%d (%s)\n", gpu, name.c_str());
  return Status::success();
}

std::string option_value(const std::vector<std::string>& args, std::size_t* i, const std::string& arg,
                         const std::string* inline_value) {
  if (inline_value) return *inline_value;
  if (*i + 1 >= args.size()) throw UsageError{"option " + arg + " needs a value"};
  return args[++*i];
}

const std::string* split_inline_option(std::string* arg, std::string* inline_value) {
  if (arg->rfind("--", 0) != 0 || arg->find('=') == std::string::npos) return nullptr;
  *inline_value = arg->substr(arg->find('=') + 1);
  arg->resize(arg->find('='));
  return inline_value;
}

}  // namespace normkit::cli
