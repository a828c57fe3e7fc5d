// Run with mpirun -np N (CI: 1, 2, 3 and 5): each rank accumulates its own part (seeded by its rank; rank 1
// holds nothing, rank 2 only NaN, rank 3 data offset by 1e6), then all_merge_summaries over MpiCommunicator.
// Every rank checks its result against the rank-ordered merge it computes alone from every rank's part, bit
// for bit, and against the statistics of the concatenated data in one process (counts, min and max exactly,
// mean and M2 to 1e-12 and 1e-10 relative). Then a fault: rank 1 (or 0 alone) passes n = -1, and every rank
// must return the same error rather than wait. Exit status 0 on every rank when all agree.
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "normkit/mpi.hpp"
#include "normkit/stats.hpp"

using namespace normkit;

namespace {

std::vector<double> part_of(int rank, std::int64_t features) {
  const std::int64_t rows = rank == 1 ? 0 : rank == 2 ? 20 : 100 + 37 * rank;
  std::mt19937 rng(static_cast<unsigned>(rank + 1));
  std::normal_distribution<double> dist(rank == 3 ? 1e6 : 50.0 * rank, 3.0);
  std::vector<double> v(static_cast<std::size_t>(rows * features));
  for (double& x : v) x = rank == 2 ? std::numeric_limits<double>::quiet_NaN() : dist(rng);
  return v;
}

Status summaries_of(const std::vector<double>& part, std::int64_t features, std::vector<StatsSummary>* out) {
  StatsOptions o;
  o.axes = ReduceAxes::of({0});
  out->assign(static_cast<std::size_t>(features), StatsSummary{});
  std::vector<double> copy = part;
  return accumulate_stats(TensorView(copy.data(), DType::float64, {static_cast<std::int64_t>(part.size()) / features, features}), o,
                          out->data(), features, false, nullptr, 0);
}

bool close(double a, double b, double rel) { return a == b || std::fabs(a - b) <= rel * std::fmax(std::fabs(a), std::fabs(b)); }

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int failures = 0;
  {
    MpiCommunicator comm(MPI_COMM_WORLD);
    const std::int64_t features = 5;
    std::vector<StatsSummary> mine, expected, other, whole;
    std::vector<double> all;
    Status s = summaries_of(part_of(comm.rank(), features), features, &mine);
    if (s.ok()) s = all_merge_summaries(comm, mine.data(), features, MemorySpace::host);
    if (s.ok()) s = summaries_of(part_of(0, features), features, &expected);
    for (int r = 0; s.ok() && r < comm.size(); ++r) {
      const std::vector<double> part = part_of(r, features);
      all.insert(all.end(), part.begin(), part.end());
      if (r == 0) continue;
      s = summaries_of(part, features, &other);
      if (s.ok()) s = merge_summaries(expected.data(), other.data(), features, MemorySpace::host);
    }
    if (s.ok()) s = summaries_of(all, features, &whole);
    if (!s.ok()) {
      std::fprintf(stderr, "rank %d: %s\n", comm.rank(), s.message().c_str());
      failures = 1;
    } else if (std::memcmp(mine.data(), expected.data(), features * sizeof(StatsSummary)) != 0) {
      std::fprintf(stderr, "rank %d: merged summaries differ from the rank-ordered merge\n", comm.rank());
      failures = 1;
    } else {
      for (std::int64_t f = 0; f < features; ++f) {
        const StatsSummary &a = mine[f], &b = whole[f];
        if (a.count != b.count || a.nan_count != b.nan_count || a.min != b.min || a.max != b.max || !close(a.mean, b.mean, 1e-12) ||
            !close(a.m2, b.m2, 1e-10)) {
          std::fprintf(stderr, "rank %d: feature %lld differs from the concatenated data's statistics (mean %.17g vs %.17g)\n", comm.rank(),
                       static_cast<long long>(f), a.mean, b.mean);
          failures = 1;
        }
      }
      if (comm.rank() == 0 && failures == 0) {
        std::printf("%d ranks: every rank holds the rank-ordered merge (mean of feature 0: %.6f over %lld values, %lld NaN)\n", comm.size(),
                    expected[0].mean, static_cast<long long>(expected[0].count), static_cast<long long>(expected[0].nan_count));
      }
    }
    // The fault: one rank's bad argument is every rank's error.
    const int bad = comm.size() > 1 ? 1 : 0;
    std::vector<StatsSummary> again = mine;
    const Status f = all_merge_summaries(comm, again.data(), comm.rank() == bad ? -1 : features, MemorySpace::host);
    const std::string wanted = "rank " + std::to_string(bad) + " of " + std::to_string(comm.size()) + " failed";
    if (comm.size() > 1 && (f.code() != StatusCode::invalid_argument || f.message().find(wanted) == std::string::npos)) {
      std::fprintf(stderr, "rank %d: the fault gave '%s'\n", comm.rank(), f.message().c_str());
      failures = 1;
    }
    if (comm.size() == 1 && f.code() != StatusCode::invalid_argument) failures = 1;
  }
  int any = 0;
  MPI_Allreduce(&failures, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any;
}
