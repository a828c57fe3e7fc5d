// The cost of normkit's distributed merges against the local work they follow, on the host, over MPI (built
// where MPI is found). Run as `mpirun -np P bench_mpi [--reps R]` for P = 1, 2, 4, 8 (scripts/bench-mpi.sh);
// rank 0 prints one JSON object per case. Every timed region starts after a barrier and its time is the
// slowest rank's; the median of R repetitions is reported. Each rank's host engine runs one thread, so P ranks
// on fewer cores (oversubscribed) slow the local work, not the exchange's size.
//
// Cases:
//   stats    per-feature statistics of a [65536, 64] float32 part a rank: accumulate_stats, then
//            all_merge_summaries of the 64 summaries (gather + merge in rank order)
//   sync_bn  SyncBatchNorm training step (forward + backward) on a [8, 7, 7, 2048] NHWC float32 part a rank
//            (ResNet-50's last stage): the whole step against the plain local BatchNorm step, and the bytes a
//            rank sends per step against PyTorch's SyncBatchNorm (which all-gathers mean, invstd and count per
//            channel forward and all-reduces two C-float sums backward)
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "normkit/batch_norm.hpp"
#include "normkit/mpi.hpp"
#include "normkit/stats.hpp"
#include "normkit/sync_batch_norm.hpp"

namespace {

using normkit::Status;

void check(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "bench_mpi: %s: %s\n", what, s.message().c_str());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
}

// The median over `reps` of the slowest rank's time of `body`, in microseconds.
double time_us(int reps, const std::function<void()>& body) {
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    MPI_Barrier(MPI_COMM_WORLD);
    const auto start = std::chrono::steady_clock::now();
    body();
    double local = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count(), slowest = 0;
    MPI_Allreduce(&local, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    times.push_back(slowest);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

std::vector<float> random_values(std::size_t n, int rank) {
  std::mt19937 gen(1234 + static_cast<unsigned>(rank));
  std::normal_distribution<float> d(1.0f, 2.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int reps = 7;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--reps") reps = std::max(1, std::atoi(argv[i + 1]));
  }
  {
    normkit::MpiCommunicator comm(MPI_COMM_WORLD);
    normkit::set_host_threads(1);
    const int rank = comm.rank(), ranks = comm.size();

    // ---- stats: per-feature [65536, 64] a rank
    {
      const std::int64_t rows = 65536, features = 64;
      std::vector<float> x = random_values(static_cast<std::size_t>(rows * features), rank);
      normkit::TensorView input(x.data(), normkit::DType::float32, {rows, features});
      normkit::StatsOptions options;
      options.axes = normkit::ReduceAxes::of({0});
      std::vector<normkit::StatsSummary> summaries(static_cast<std::size_t>(features));
      const double local = time_us(reps, [&] {
        check(normkit::accumulate_stats(input, options, summaries.data(), features, false, nullptr, 0), "accumulate_stats");
      });
      std::vector<normkit::StatsSummary> merged = summaries;
      const double merge = time_us(reps, [&] {
        merged = summaries;
        check(normkit::all_merge_summaries(comm, merged.data(), features, normkit::MemorySpace::host), "all_merge_summaries");
      });
      if (rank == 0) {
        std::printf("{\"case\": \"stats_per_feature_65536x64_f32\", \"ranks\": %d, \"local_us\": %.1f, \"merge_us\": %.1f, "
                    "\"merge_share\": %.4f, \"bytes_sent_per_rank\": %zu}\n",
                    ranks, local, merge, merge / (local + merge), static_cast<std::size_t>(features) * sizeof(normkit::StatsSummary));
      }
    }

    // ---- sync_bn: NHWC [8, 7, 7, 2048] a rank
    {
      const std::int64_t n = 8, h = 7, w = 7, c = 2048, numel = n * h * w * c;
      std::vector<float> x = random_values(static_cast<std::size_t>(numel), rank), dy = random_values(static_cast<std::size_t>(numel), rank + 100);
      std::vector<float> y(x.size()), dx(x.size()), gamma(c, 1.0f), beta(c, 0.0f), rm(c, 0.0f), rv(c, 1.0f), mean(c), rstd(c), dgamma(c), dbeta(c);
      normkit::BatchNormOptions options = normkit::BatchNormOptions::pytorch();
      options.channel_axis = normkit::ChannelAxis::last;
      using normkit::TensorView;
      const normkit::DType f32 = normkit::DType::float32;
      const TensorView xv(x.data(), f32, {n, h, w, c}), yv(y.data(), f32, {n, h, w, c}), dyv(dy.data(), f32, {n, h, w, c}),
          dxv(dx.data(), f32, {n, h, w, c});
      auto channel = [&](std::vector<float>& v) { return TensorView(v.data(), f32, {c}); };
      const double local = time_us(reps, [&] {
        check(normkit::batch_norm_forward_training(xv, channel(gamma), channel(beta), yv, channel(rm), channel(rv), channel(mean), channel(rstd),
                                                   options, nullptr, 0),
              "batch_norm_forward_training");
        check(normkit::batch_norm_backward(dyv, xv, channel(mean), channel(rstd), channel(gamma), dxv, channel(dgamma), channel(dbeta), options,
                                           nullptr, 0),
              "batch_norm_backward");
      });
      const double synced = time_us(reps, [&] {
        check(normkit::sync_batch_norm_forward(comm, xv, channel(gamma), channel(beta), yv, channel(rm), channel(rv), channel(mean), channel(rstd),
                                               options),
              "sync_batch_norm_forward");
        check(normkit::sync_batch_norm_backward(comm, dyv, xv, channel(mean), channel(rstd), channel(gamma), n * h * w * ranks, dxv,
                                                channel(dgamma), channel(dbeta), options),
              "sync_batch_norm_backward");
      });
      // (normkit: C summaries forward, 2 C floats backward; PyTorch: mean, invstd (float32) and count per channel forward, 2 C floats backward)
      const std::size_t ours = static_cast<std::size_t>(c) * (sizeof(normkit::StatsSummary) + 2 * sizeof(float));
      const std::size_t pytorch = static_cast<std::size_t>(c) * 2 * sizeof(float) + sizeof(float) + static_cast<std::size_t>(c) * 2 * sizeof(float);
      if (rank == 0) {
        std::printf("{\"case\": \"sync_batch_norm_step_8x7x7x2048_nhwc_f32\", \"ranks\": %d, \"local_step_us\": %.1f, \"sync_step_us\": %.1f, "
                    "\"sync_overhead_share\": %.4f, \"bytes_sent_per_rank\": %zu, \"pytorch_bytes_sent_per_rank\": %zu}\n",
                    ranks, local, synced, (synced - local) / synced, ours, pytorch);
      }
    }
  }
  MPI_Finalize();
  return 0;
}
