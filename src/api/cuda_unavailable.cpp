// Device entry points of a build without CUDA: every device call reports that CUDA is unavailable, and
// the queries answer "no device".
#include "kernels/batch_norm/batch_norm_launch.hpp"
#include "kernels/common/device_runtime.hpp"
#include "kernels/group_norm/group_norm_launch.hpp"
#include "kernels/image/image_launch.hpp"
#include "kernels/layer_norm/layer_norm_launch.hpp"
#include "kernels/stats/stats_launch.hpp"
#include "kernels/transform/transform_launch.hpp"

namespace normkit::kernels {
namespace {
Status unavailable(const char* operation) {
  return Status(StatusCode::cuda_unavailable,
                std::string("normkit::") + operation + ": normkit was built without CUDA (NORMKIT_ENABLE_CUDA=OFF)");
}
}  // namespace

Status launch_image_normalize(const ImageLaunch&, const plan::ImagePlan&, Stream) { return unavailable("image_normalize"); }

// Statistics and transform launchers.
Status launch_stats(const DeviceStatsCall&, Stream) { return unavailable("compute_stats"); }
Status launch_merge_summaries(StatsSummary*, const StatsSummary*, std::int64_t, Stream) { return unavailable("merge_summaries"); }
Status launch_finalize_summaries(const StatsSummary*, std::int64_t, const math::StatsSink&, Stream) {
  return unavailable("finalize_stats");
}
Status launch_merge_integer_summaries(IntegerSummary*, const IntegerSummary*, std::int64_t, Stream) {
  return unavailable("merge_integer_summaries");
}
Status launch_finalize_integer_summaries(const IntegerSummary*, std::int64_t, const math::StatsSink&, Stream) {
  return unavailable("finalize_integer_stats");
}
Status launch_apply(const void*, DType, void*, DType, const plan::CanonicalGeometry&, const plan::ApplyPlan&,
                    const AffineCoefficients&, Stream) { return unavailable("apply_affine"); }
Status launch_lp_rows(const void*, DType, void*, DType, std::int64_t, std::int64_t, LpNorm, int, Stream) {
  return unavailable("normalize_lp");
}
Status launch_coefficients(const StatsSummary*, std::int64_t, const NormalizerOptions&, bool, const AffineCoefficients&,
                           Stream) { return unavailable("compute_coefficients"); }
Status launch_first_infinite_fit(const StatsSummary*, std::int64_t, const NormalizerOptions&, std::int64_t*, Stream) {
  return unavailable("Normalizer");
}
Status launch_lp_coefficients(const StatsSummary*, std::int64_t, LpNorm, const AffineCoefficients&, Stream) {
  return unavailable("normalize_lp");
}

Status launch_row_norm_forward(const plan::RowNormForwardCall&, const plan::RowNormPlan&, Stream) {
  return unavailable("layer_norm_forward");
}
Status launch_row_norm_backward(const plan::RowNormBackwardCall&, const plan::RowNormPlan&, void*, Stream) {
  return unavailable("layer_norm_backward");
}

Status launch_batch_norm_finalize(const StatsSummary*, std::int64_t, float*, float*, float*, float*, float, const math::RunningUpdate&,
                                  const float*, const float*, const AffineCoefficients*, Stream) {
  return unavailable("batch_norm_finalize");
}
Status launch_batch_norm_affine(const float*, const float*, bool, float, const float*, const float*, std::int64_t,
                                const AffineCoefficients&, Stream) {
  return unavailable("batch_norm_normalize");
}
Status launch_batch_norm_eval_param_grads(const float*, const float*, const float*, float, std::int64_t, float*, float*, Stream) {
  return unavailable("batch_norm_backward_eval");
}
Status launch_batch_norm_backward_reduce(const BatchNormBackwardCall&, float*, float*, float*, Stream) {
  return unavailable("batch_norm_backward_reduce");
}
Status launch_batch_norm_backward_apply(const BatchNormBackwardCall&, const float*, const float*, double, void*, float*, float*, Stream) {
  return unavailable("batch_norm_backward_apply");
}

// Device runtime.
bool device_present() noexcept { return false; }
Status current_device_info(plan::DeviceInfo*) { return unavailable("compute_stats"); }
Status check_device_pointer(const void*, const char* operation, const char*) { return unavailable(operation); }
bool is_device_only_memory(const void*) noexcept { return false; }
Status device_allocate(void**, std::size_t, Stream, const char* operation) { return unavailable(operation); }
void device_free(void*, Stream) noexcept {}
Status copy_to_device(void*, const void*, std::size_t, Stream, const char* operation) { return unavailable(operation); }
Status copy_on_device(void*, const void*, std::size_t, Stream, const char* operation) { return unavailable(operation); }
Status add_on_device(float*, const float*, std::int64_t, Stream, const char* operation) { return unavailable(operation); }
Status copy_to_host_sync(void*, const void*, std::size_t, Stream, const char* operation) { return unavailable(operation); }
Status synchronize_stream(Stream, const char*) { return Status::success(); }
Status current_device(int*, const char* operation) { return unavailable(operation); }
Status set_current_device(int, const char* operation) { return unavailable(operation); }
Status stream_create(Stream*, const char* operation) { return unavailable(operation); }
void stream_destroy(Stream) noexcept {}
Status event_create(Event*, const char* operation) { return unavailable(operation); }
void event_destroy(Event) noexcept {}
Status event_record(Event, Stream, const char* operation) { return unavailable(operation); }
Status stream_wait_event(Stream, Event, const char* operation) { return unavailable(operation); }
Status event_synchronize(Event, const char* operation) { return unavailable(operation); }
Status pinned_allocate(void**, std::size_t, const char* operation) { return unavailable(operation); }
void pinned_free(void*) noexcept {}
Status select_device(int, const char* operation, std::string*) { return unavailable(operation); }
Status synchronize_device(const char* operation) { return unavailable(operation); }
Status device_count(int*, const char* operation) { return unavailable(operation); }

Status launch_group_norm_finalize(const StatsSummary*, std::int64_t, const math::GroupShape&, float, const float*, const float*, float*, float*,
                                  const AffineCoefficients&, Stream) {
  return unavailable("group_norm_forward");
}
Status launch_group_norm_grad_coefficients(const math::GroupShape&, const float*, const float*, const float*, const float*, const float*,
                                           double, math::ChannelGradCoefficients*, float*, float*, Stream) {
  return unavailable("group_norm_backward");
}

}  // namespace normkit::kernels
