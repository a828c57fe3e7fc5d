// The host engine: the same statistics as the kernels, on host memory, sharing their math.
#pragma once

#include <cstdint>

#include "math/stats_sink.hpp"
#include "normkit/status.hpp"
#include "plan/geometry.hpp"

namespace normkit::cpu {

// Computes every slice of `geometry` over `input` and hands each to `sink`. Work is split into the same
// kind of work items as the kernels (segments / column tiles / slices) over `threads` threads; partial
// states are merged in a fixed order, so results are bitwise reproducible for a given thread count.
Status compute_stats(const void* input, DType dtype, bool double_accumulation, const plan::CanonicalGeometry& geometry,
                     const math::StatsSink& sink, int threads);

// uint8 input in exact integers (stats_cpu_uint8.cpp): the same bits for every thread count, and the
// kernels' bits. compute_stats hands uint8 here.
Status compute_integer_stats(const std::uint8_t* input, const plan::CanonicalGeometry& geometry, const math::StatsSink& sink,
                             int threads);

}  // namespace normkit::cpu
