// Shared pieces of the command-line verbs.
#pragma once

#include <string>
#include <vector>

namespace normkit {
class Communicator;  // normkit/distributed.hpp
}  // namespace normkit

namespace normkit::cli {

constexpr int kExitOk = 0;
constexpr int kExitBadData = 1;
constexpr int kExitUsage = 2;

// A usage error: printed with a hint to --help, exit status 2.
struct UsageError {
  std::string message;
};

int run_stats(const std::vector<std::string>& args);
void print_stats_help();
// The processes `stats` and `fit` are shared among (normkit-mpi sets its MPI communicator; null, the default: this
// process alone). Shared, stats streams every input in pieces and fit takes whole files, dealt round-robin to the
// ranks and merged in order on every rank; rank 0 prints and writes.
void set_shared_run(Communicator* comm, int local_rank = 0);
Communicator* shared_run();
// The rank's index among the ranks on its node (normkit-mpi: its default GPU, modulo the node's GPUs).
int shared_local_rank();
// demo: the main job on Fashion-MNIST
int run_demo(const std::vector<std::string>& args);
void print_demo_help();
// image: image normalize of a batch file
int run_image(const std::vector<std::string>& args);
void print_image_help();
// fit, apply, normalize
int run_transform_verb(const std::string& verb, const std::vector<std::string>& args);

}  // namespace normkit::cli
