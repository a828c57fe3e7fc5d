// bench_normkit: the statistics, transform and layer benchmarks.
//   bench_normkit [--benchmark_filter=REGEX] [--benchmark_format=json]
// Names: {host,device}/{copy,<pattern>,apply/<pattern>,fit_apply,layer_norm,rms_norm,batch_norm,group_norm,image,peers}/...; `of_copy` is the fraction of a copy
// of the same bytes measured in the same run. Benchmarks measure; nothing asserts a speed.
#include <benchmark/benchmark.h>

void register_stats_benchmarks();
void register_transform_benchmarks();
void register_layer_benchmarks();
void register_image_benchmarks();
void register_peer_benchmarks();
#if defined(NORMKIT_BENCH_DEVICE_PEERS)
void register_device_peer_benchmarks();
#endif

int main(int argc, char** argv) {
  register_stats_benchmarks();
  register_transform_benchmarks();
  register_layer_benchmarks();
  register_image_benchmarks();
  register_peer_benchmarks();
#if defined(NORMKIT_BENCH_DEVICE_PEERS)
  register_device_peer_benchmarks();
#endif
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
