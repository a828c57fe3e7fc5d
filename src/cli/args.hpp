// Small parsing helpers shared by the command-line verbs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "normkit/stats.hpp"

namespace normkit::cli {

bool parse_int64(const std::string& text, std::int64_t* value);
bool parse_double(const std::string& text, double* value);
std::vector<std::string> split_commas(const std::string& text);

// --axis values: "all" (or "None") or a comma list of integers (negative count from the end). Throws
// UsageError on anything else.
ReduceAxes parse_axis_option(const std::string& text);
// Whether `axes` reduce axis 0 of an `ndim`-dimensional input (streamed input is cut along it).
bool reduces_axis0(const ReduceAxes& axes, int ndim);

enum class DeviceChoice { automatic, cpu, cuda };

// --device values: auto, cpu, cuda (UsageError otherwise); --gpu values: a device index.
DeviceChoice parse_device_option(const std::string& text);
int parse_gpu_option(const std::string& text);

// Resolves the choice (auto: CUDA when available), selects GPU `gpu` when CUDA is used, and reports the
// device on stderr. `*use_cuda` tells the caller where to run.
// --gpu not given: device 0, or for one of several processes on a node (normkit-mpi, or a launcher's
// OMPI_COMM_WORLD_LOCAL_RANK / MPI_LOCALRANKID / SLURM_LOCALID) its node-local index modulo the GPUs.
constexpr int kGpuUnset = -1;
Status select_device(DeviceChoice choice, int gpu, bool* use_cuda);

// "--name=value" -> arg "--name", *inline_value "value", returning inline_value; any other argument stays as it
// is and nullptr is returned (the value, if any, is the next argument).
const std::string* split_inline_option(std::string* arg, std::string* inline_value);

// Takes the value of option `arg` (the part after '=' when given inline, else the next argument, taken
// verbatim so that negative numbers work). Throws UsageError when there is none.
std::string option_value(const std::vector<std::string>& args, std::size_t* i, const std::string& arg,
                         const std::string* inline_value);

}  // namespace normkit::cli
