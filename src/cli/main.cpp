// normkit command line: `normkit stats IN.npy ...`; `normkit --help`, `normkit --version`.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "cli/cli_common.hpp"

#ifndef NORMKIT_VERSION
#define NORMKIT_VERSION "unknown"
#endif

namespace {

void print_help() {
  std::printf(
      "normkit %s - normalization statistics on the GPU and the host\n\n"
      "usage: normkit <command> [options]\n\n"
      "commands:\n"
      "  demo               the main job: Fashion-MNIST's statistics and three normalizations (normkit demo --help)\n"
      "  stats IN.npy       statistics (count, mean, var, std, min, max, sum, l0, l1, l2, linf) over any axes\n"
      "  image IN.npy       normalize a batch of images: crop, mirror, channel reversal and layout change in one pass\n"
      "  fit IN.npy ...     adapt a normalizer (zscore, minmax, maxabs, rescale, decimal, impute-mean) and save it\n"
      "  apply IN.npy       transform with a saved normalizer (or its inverse)\n"
      "  normalize IN.npy   fit and transform in one go; also l1/l2/linf per-sample normalization\n\n"
      "options:\n"
      "  -h, --help     this help (normkit <command> --help for the command's options)\n"
      "  --version      print the version\n\n"
      "exit status: 0 success, 1 bad data (unreadable or invalid input), 2 usage error\n",
      NORMKIT_VERSION);
}

}  // namespace

namespace {

int dispatch(const std::vector<std::string>& args);

}  // namespace

// Memory the machine cannot give (a file larger than memory read whole, a huge output) is bad data, not a
// crash: every verb runs under this handler.
int main(int argc, char** argv) {
  try {
    return dispatch(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "normkit: error: out of memory (for files larger than memory, 'normkit stats --chunk-bytes B' streams them)\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "normkit: error: %s\n", e.what());
  }
  return normkit::cli::kExitBadData;
}

namespace {

int dispatch(const std::vector<std::string>& args) {
  if (args.empty()) {
    print_help();
    return normkit::cli::kExitUsage;
  }
  const std::string& command = args[0];
  if (command == "-h" || command == "--help" || command == "help") {
    print_help();
    return normkit::cli::kExitOk;
  }
  if (command == "--version" || command == "-V") {
    std::printf("normkit %s\n", NORMKIT_VERSION);
    return normkit::cli::kExitOk;
  }
  // stats or fit started as one of several MPI ranks (OpenMPI's or MPICH's mpirun): every rank would do the whole
  // job alone, which normkit-mpi shares. (Other verbs, and NORMKIT_ALLOW_MPI=1, run as asked: a rank may well
  // have a file of its own to apply a state to.)
  const char* ranks = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (ranks == nullptr) ranks = std::getenv("PMI_SIZE");
  const char* allow = std::getenv("NORMKIT_ALLOW_MPI");
  if ((command == "stats" || command == "fit") && ranks != nullptr && std::atoi(ranks) > 1 && !(allow != nullptr && std::string(allow) == "1")) {
    std::fprintf(stderr, "normkit: %s started as one of %s MPI ranks, each of which would do the whole job: use normkit-mpi "
                         "(mpirun -np N normkit-mpi %s ...), or set NORMKIT_ALLOW_MPI=1\n", command.c_str(), ranks, command.c_str());
    return normkit::cli::kExitUsage;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "stats") return normkit::cli::run_stats(rest);
  if (command == "demo") return normkit::cli::run_demo(rest);
  if (command == "image") return normkit::cli::run_image(rest);
  if (command == "fit" || command == "apply" || command == "normalize") return normkit::cli::run_transform_verb(command, rest);
  std::fprintf(stderr, "normkit: unknown command '%s' (try 'normkit --help')\n", command.c_str());
  return normkit::cli::kExitUsage;
}

}  // namespace
