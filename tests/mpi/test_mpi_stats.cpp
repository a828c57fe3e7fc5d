// Run with mpirun -np N: each rank accumulates its own part (seeded by its rank; rank 1 holds nothing), then
// all_merge_summaries over MpiCommunicator; every rank checks its result against the rank-ordered merge it
// computes alone from every rank's part, bit for bit. Exit status 0 on every rank when all agree.
#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "normkit/mpi.hpp"
#include "normkit/stats.hpp"

using namespace normkit;

namespace {

std::vector<float> part_of(int rank, std::int64_t features) {
  const std::int64_t rows = rank == 1 ? 0 : 100 + 37 * rank;
  std::mt19937 rng(static_cast<unsigned>(rank + 1));
  std::normal_distribution<float> dist(50.0f * rank, 3.0f);
  std::vector<float> v(static_cast<std::size_t>(rows * features));
  for (float& x : v) x = dist(rng);
  return v;
}

Status summaries_of(const std::vector<float>& part, std::int64_t features, std::vector<StatsSummary>* out) {
  StatsOptions o;
  o.axes = ReduceAxes::of({0});
  out->assign(static_cast<std::size_t>(features), StatsSummary{});
  std::vector<float> copy = part;
  return accumulate_stats(TensorView(copy.data(), DType::float32, {static_cast<std::int64_t>(part.size()) / features, features}), o, out->data(),
                          features, false, nullptr, 0);
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int failures = 0;
  {
    MpiCommunicator comm(MPI_COMM_WORLD);
    const std::int64_t features = 5;
    std::vector<StatsSummary> mine, expected, other;
    Status s = summaries_of(part_of(comm.rank(), features), features, &mine);
    if (s.ok()) s = all_merge_summaries(comm, mine.data(), features, MemorySpace::host);
    if (s.ok()) s = summaries_of(part_of(0, features), features, &expected);
    for (int r = 1; s.ok() && r < comm.size(); ++r) {
      s = summaries_of(part_of(r, features), features, &other);
      if (s.ok()) s = merge_summaries(expected.data(), other.data(), features, MemorySpace::host);
    }
    if (!s.ok()) {
      std::fprintf(stderr, "rank %d: %s\n", comm.rank(), s.message().c_str());
      failures = 1;
    } else if (std::memcmp(mine.data(), expected.data(), features * sizeof(StatsSummary)) != 0) {
      std::fprintf(stderr, "rank %d: merged summaries differ from the rank-ordered merge\n", comm.rank());
      failures = 1;
    } else if (comm.rank() == 0) {
      std::printf("%d ranks: every rank holds the rank-ordered merge (mean of feature 0: %.6f over %lld values)\n", comm.size(), expected[0].mean,
                  static_cast<long long>(expected[0].count));
    }
  }
  int any = 0;
  MPI_Allreduce(&failures, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any;
}
