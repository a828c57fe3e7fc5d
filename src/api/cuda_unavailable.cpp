// Device entry points of a build without CUDA: every device call reports that CUDA is unavailable.
#include "kernels/stats/stats_launch.hpp"

namespace normkit::kernels {
namespace {
Status unavailable(const char* operation) {
  return Status(StatusCode::cuda_unavailable,
                std::string("normkit::") + operation + ": normkit was built without CUDA (NORMKIT_ENABLE_CUDA=OFF)");
}
}  // namespace

Status launch_stats(const DeviceStatsCall&, Stream) { return unavailable("compute_stats"); }
Status launch_merge_summaries(StatsSummary*, const StatsSummary*, std::int64_t, Stream) { return unavailable("merge_summaries"); }
Status launch_finalize_summaries(const StatsSummary*, std::int64_t, const math::StatsSink&, Stream) {
  return unavailable("finalize_stats");
}
Status current_device_info(plan::DeviceInfo*) { return unavailable("compute_stats"); }
Status check_device_pointer(const void*, const char* operation, const char*) { return unavailable(operation); }
bool device_present() noexcept { return false; }

}  // namespace normkit::kernels
