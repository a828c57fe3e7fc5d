// Arrays of MomentState stored field by field (structure of arrays), in the workspace or in shared
// memory: consecutive threads touch consecutive addresses, so partial states are written and merged
// with coalesced accesses and without shared-memory bank conflicts.
#pragma once

#include <cstdint>

#include "math/moments.hpp"

namespace normkit::kernels {

template <typename Acc>
struct PartialStates {
  void* base;      // 5 * n int64 counters, then 6 * n Acc values
  std::int64_t n;  // number of states

  static constexpr std::size_t bytes_per_state = 5 * sizeof(std::int64_t) + 6 * sizeof(Acc);

  __device__ __forceinline__ std::int64_t* count_field(int f) const { return static_cast<std::int64_t*>(base) + f * n; }
  __device__ __forceinline__ Acc* value_field(int f) const {
    return reinterpret_cast<Acc*>(static_cast<std::int64_t*>(base) + 5 * n) + f * n;
  }

  __device__ __forceinline__ void store(std::int64_t i, const math::MomentState<Acc>& s) const {
    count_field(0)[i] = s.count;
    count_field(1)[i] = s.nan_count;
    count_field(2)[i] = s.posinf_count;
    count_field(3)[i] = s.neginf_count;
    count_field(4)[i] = s.nonzero_count;
    value_field(0)[i] = s.shift;
    value_field(1)[i] = s.mean;
    value_field(2)[i] = s.m2;
    value_field(3)[i] = s.min;
    value_field(4)[i] = s.max;
    value_field(5)[i] = s.abs_sum;
  }

  __device__ __forceinline__ math::MomentState<Acc> load(std::int64_t i) const {
    math::MomentState<Acc> s;
    s.count = count_field(0)[i];
    s.nan_count = count_field(1)[i];
    s.posinf_count = count_field(2)[i];
    s.neginf_count = count_field(3)[i];
    s.nonzero_count = count_field(4)[i];
    s.shift = value_field(0)[i];
    s.mean = value_field(1)[i];
    s.m2 = value_field(2)[i];
    s.min = value_field(3)[i];
    s.max = value_field(4)[i];
    s.abs_sum = value_field(5)[i];
    return s;
  }
};

}  // namespace normkit::kernels
