// Host-side entry points of the statistics kernels (plain C++: included by the API layer).
#pragma once

#include <cstdint>

#include "math/stats_sink.hpp"
#include "normkit/status.hpp"
#include "normkit/tensor.hpp"
#include "plan/stats_plan.hpp"

namespace normkit::kernels {

struct DeviceStatsCall {
  const void* input = nullptr;
  DType dtype = DType::float32;
  bool double_accumulation = false;
  plan::CanonicalGeometry geometry;
  plan::StatsPlan plan;
  math::StatsSink sink{};
  void* workspace = nullptr;  // plan.workspace_bytes of partial states
};

// Enqueues the plan's kernels (and the partial merge when split) on `stream`. Never synchronizes.
Status launch_stats(const DeviceStatsCall& call, Stream stream);
Status launch_merge_summaries(StatsSummary* into, const StatsSummary* from, std::int64_t n, Stream stream);
Status launch_finalize_summaries(const StatsSummary* summaries, std::int64_t n, const math::StatsSink& sink,
                                 Stream stream);

// SM count of the current device (cached per device).
Status current_device_info(plan::DeviceInfo* info);
// Fails unless p is device-accessible memory (device or managed allocation).
Status check_device_pointer(const void* p, const char* operation, const char* argument);
bool device_present() noexcept;
// True when p is device-only memory (cudaMalloc), which host code must not touch.
bool is_device_only_memory(const void* p) noexcept;
// Waits for the work queued on a stream (Normalizer, before freeing memory another stream used).
Status synchronize_stream(Stream stream);

}  // namespace normkit::kernels
