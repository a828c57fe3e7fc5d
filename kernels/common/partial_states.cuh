// Arrays of LocalMoments in the workspace or in shared memory, one state per 16-byte-aligned record
// (48 bytes for float, 80 for double: count, mean, m2, shift | min, max, abs_sum, nonzero | NaN, +Inf,
// -Inf counts): a state moves with three (five) 16-byte accesses from one address, with no per-field
// 64-bit address arithmetic, and an odd number of 16-byte words per record keeps consecutive threads on
// distinct shared-memory banks.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "math/integer_moments.hpp"
#include "math/moments.hpp"

namespace normkit::kernels {

template <typename State>
struct PartialStates;

template <typename Acc>
struct PartialStates<math::LocalMoments<Acc>> {
  void* base;      // n records of kStoredMomentsBytes<Acc>, 16-byte aligned
  std::int64_t n;  // number of states

  static constexpr std::size_t bytes_per_state = math::kStoredMomentsBytes<Acc>;
  __device__ __forceinline__ void store(std::int64_t i, const math::LocalMoments<Acc>& s) const {
    char* record = static_cast<char*>(base) + i * static_cast<std::int64_t>(bytes_per_state);
    if constexpr (sizeof(Acc) == 4) {
      reinterpret_cast<float4*>(record)[0] = make_float4(s.count, s.mean, s.m2, s.shift);
      reinterpret_cast<float4*>(record)[1] = make_float4(s.min, s.max, s.abs_sum, s.nonzero);
      reinterpret_cast<int4*>(record)[2] = make_int4(s.nan_count, s.posinf_count, s.neginf_count, 0);
    } else {
      reinterpret_cast<double2*>(record)[0] = make_double2(s.count, s.mean);
      reinterpret_cast<double2*>(record)[1] = make_double2(s.m2, s.shift);
      reinterpret_cast<double2*>(record)[2] = make_double2(s.min, s.max);
      reinterpret_cast<double2*>(record)[3] = make_double2(s.abs_sum, s.nonzero);
      reinterpret_cast<int4*>(record)[4] = make_int4(s.nan_count, s.posinf_count, s.neginf_count, 0);
    }
  }

  __device__ __forceinline__ math::LocalMoments<Acc> load(std::int64_t i) const {
    return load_record(static_cast<const char*>(base) + i * static_cast<std::int64_t>(bytes_per_state));
  }
  // The state at a record address (a walk over records advances a pointer instead of multiplying).
  static __device__ __forceinline__ math::LocalMoments<Acc> load_record(const char* record) {
    math::LocalMoments<Acc> s;
    int4 counts;
    if constexpr (sizeof(Acc) == 4) {
      const float4 a = reinterpret_cast<const float4*>(record)[0];
      const float4 b = reinterpret_cast<const float4*>(record)[1];
      counts = reinterpret_cast<const int4*>(record)[2];
      s.count = a.x, s.mean = a.y, s.m2 = a.z, s.shift = a.w;
      s.min = b.x, s.max = b.y, s.abs_sum = b.z, s.nonzero = b.w;
    } else {
      const double2 a = reinterpret_cast<const double2*>(record)[0];
      const double2 b = reinterpret_cast<const double2*>(record)[1];
      const double2 c = reinterpret_cast<const double2*>(record)[2];
      const double2 d = reinterpret_cast<const double2*>(record)[3];
      counts = reinterpret_cast<const int4*>(record)[4];
      s.count = a.x, s.mean = a.y, s.m2 = b.x, s.shift = b.y;
      s.min = c.x, s.max = c.y, s.abs_sum = d.x, s.nonzero = d.y;
    }
    s.nan_count = counts.x, s.posinf_count = counts.y, s.neginf_count = counts.z;
    return s;
  }
};


// Exact uint8 states: 48-byte records (count, Σx | Σx², non-zeros | min lanes, max lanes), the size of the
// float records, so plans size workspace and shared memory alike.
template <>
struct PartialStates<math::IntegerMoments> {
  void* base;
  std::int64_t n;

  static constexpr std::size_t bytes_per_state = 48;

  __device__ __forceinline__ void store(std::int64_t i, const math::IntegerMoments& s) const {
    char* record = static_cast<char*>(base) + i * static_cast<std::int64_t>(bytes_per_state);
    reinterpret_cast<ulonglong2*>(record)[0] = make_ulonglong2(s.count, s.sum);
    reinterpret_cast<ulonglong2*>(record)[1] = make_ulonglong2(s.sum_sq, s.nonzero);
    reinterpret_cast<uint4*>(record)[2] = make_uint4(s.min_lanes, s.max_lanes, 0u, 0u);
  }

  __device__ __forceinline__ math::IntegerMoments load(std::int64_t i) const {
    return load_record(static_cast<const char*>(base) + i * static_cast<std::int64_t>(bytes_per_state));
  }
  static __device__ __forceinline__ math::IntegerMoments load_record(const char* record) {
    const ulonglong2 a = reinterpret_cast<const ulonglong2*>(record)[0];
    const ulonglong2 b = reinterpret_cast<const ulonglong2*>(record)[1];
    const uint4 c = reinterpret_cast<const uint4*>(record)[2];
    return math::IntegerMoments{a.x, a.y, b.x, b.y, c.x, c.y};
  }
};
static_assert(sizeof(math::IntegerMoments) <= 48, "an integer state fits its record");

}  // namespace normkit::kernels
