// normkit-mpi: `normkit stats` and `normkit fit` shared among the ranks of an MPI job (built when MPI is found;
// the normkit binary and library never link MPI):
//
//   mpirun -np N normkit-mpi stats FILES... [--chunk-bytes B] [options of normkit stats] [--out STATS.safetensors]
//   mpirun -np N normkit-mpi fit FILES.npy... --method M [options of normkit fit] --state STATE.safetensors
//
// The inputs are cut into pieces of B bytes (default 64 MB, which may split rows; never dependent on N; a piece
// never spans two files), piece p is summarised by rank p % N, and every rank merges the pieces' summaries in
// piece order, so the statistics, the table and the --out file are bitwise those of
// `normkit stats FILES... --chunk-bytes B` in one process, for every N (the same NORMKIT_NUM_THREADS on every
// rank: the host engine's summaries depend on its thread count). fit deals whole files (file f to rank f % N),
// each adapted in a normalizer of its own, and merges their states in file order on every rank
// (Normalizer::adapt_summaries): the state file is bitwise that of `normkit fit FILES...`. Rank 0 prints and writes
// --out / --state; every rank exits with the same status (an error on one rank is reported by rank 0 and ends
// every rank).
#include <mpi.h>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "cli/cli_common.hpp"
#include "normkit/mpi.hpp"

namespace {

void print_help() {
  std::printf(
      "normkit-mpi %s - normkit's statistics shared among the ranks of an MPI job\n\n"
      "usage: mpirun -np N normkit-mpi stats IN [IN ...] [--chunk-bytes B] [options]   (normkit stats --help)\n"
      "       mpirun -np N normkit-mpi fit IN.npy [IN.npy ...] --method M [options] --state S   (normkit fit --help)\n\n"
      "stats: pieces of B bytes (default 64 MB) are dealt to the ranks round-robin and their summaries\n"
      "merged in piece order on every rank: the output is bitwise that of 'normkit stats IN... --chunk-bytes B' in\n"
      "one process, whatever N (with the same NORMKIT_NUM_THREADS). fit: whole files dealt round-robin, their\n"
      "states merged in file order: the state file is bitwise that of 'normkit fit IN...'. Rank 0 prints and writes.\n"
      "exit status: 0 success, 1 bad data, 2 usage error (the same on every rank)\n",
      NORMKIT_VERSION);
}

int dispatch(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    print_help();
    return args.empty() ? normkit::cli::kExitUsage : normkit::cli::kExitOk;
  }
  if (args[0] == "--version") {
    std::printf("normkit-mpi %s\n", NORMKIT_VERSION);
    return normkit::cli::kExitOk;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "stats") return normkit::cli::run_stats(rest);
  if (args[0] == "fit") return normkit::cli::run_transform_verb("fit", rest);
  std::fprintf(stderr, "normkit-mpi: unknown or unshared command '%s' (normkit-mpi shares 'stats' and 'fit'; try normkit-mpi --help)\n",
               args[0].c_str());
  return normkit::cli::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int code = normkit::cli::kExitBadData;
  try {
    normkit::MpiCommunicator comm(MPI_COMM_WORLD);
    // (the rank's index on its node: its default GPU)
    MPI_Comm node = MPI_COMM_NULL;
    int local_rank = 0;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
      MPI_Comm_rank(node, &local_rank);
      MPI_Comm_free(&node);
    }
    normkit::cli::set_shared_run(&comm, local_rank);
    code = dispatch(std::vector<std::string>(argv + 1, argv + argc));
    normkit::cli::set_shared_run(nullptr);
  } catch (const std::exception& e) {
    // (an exception on one rank cannot be agreed on: end the job rather than leave the others waiting)
    std::fprintf(stderr, "normkit-mpi: error: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, normkit::cli::kExitBadData);
  }
  MPI_Finalize();
  return code;
}
