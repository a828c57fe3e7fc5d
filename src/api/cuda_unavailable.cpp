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
bool is_device_only_memory(const void*) noexcept { return false; }
Status synchronize_stream(Stream) { return Status::success(); }

}  // namespace normkit::kernels

#include "kernels/transform/transform_launch.hpp"

namespace normkit::kernels {
namespace {
Status no_cuda(const char* operation) {
  return Status(StatusCode::cuda_unavailable,
                std::string("normkit::") + operation + ": normkit was built without CUDA (NORMKIT_ENABLE_CUDA=OFF)");
}
}  // namespace
Status launch_apply(const void*, DType, void*, DType, const plan::CanonicalGeometry&, const plan::ApplyPlan&,
                    const AffineCoefficients&, Stream) { return no_cuda("apply_affine"); }
Status launch_lp_rows(const void*, DType, void*, DType, std::int64_t, std::int64_t, LpNorm, int, Stream) {
  return no_cuda("normalize_lp");
}
Status launch_coefficients(const StatsSummary*, std::int64_t, const NormalizerOptions&, bool, const AffineCoefficients&,
                           Stream) { return no_cuda("compute_coefficients"); }
Status launch_lp_coefficients(const StatsSummary*, std::int64_t, LpNorm, const AffineCoefficients&, Stream) {
  return no_cuda("normalize_lp");
}
Status device_allocate(void**, std::size_t, Stream) { return no_cuda("Normalizer"); }
void device_free(void*, Stream) noexcept {}
Status copy_to_device(void*, const void*, std::size_t, Stream) { return no_cuda("Normalizer"); }
Status copy_to_host_sync(void*, const void*, std::size_t, Stream) { return no_cuda("Normalizer"); }
Status device_memset_zero(void*, std::size_t, Stream) { return no_cuda("Normalizer"); }
}  // namespace normkit::kernels
