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
Status launch_merge_integer_summaries(IntegerSummary* into, const IntegerSummary* from, std::int64_t n, Stream stream);
Status launch_finalize_integer_summaries(const IntegerSummary* summaries, std::int64_t n, const math::StatsSink& sink,
                                         Stream stream);

}  // namespace normkit::kernels
