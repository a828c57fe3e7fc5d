// Vectorized loads with conversion to the accumulation type: the one place kernels read input from.
#pragma once

#include <cstdint>

#include "math/element_types.hpp"

namespace normkit::kernels {

// VEC elements moved by one access: alignas makes the compiler emit a single 16/8/4-byte load.
template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

// Loads VEC elements at p (which must be aligned to sizeof(T) * VEC) and converts them to Acc.
template <typename Acc, typename T, int VEC>
__device__ __forceinline__ void load_pack(const T* __restrict__ p, Acc (&out)[VEC]) {
  const Pack<T, VEC> pack = *reinterpret_cast<const Pack<T, VEC>*>(p);
NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) out[i] = math::to_acc<Acc>(pack.v[i]);
}

template <typename Acc, typename T>
__device__ __forceinline__ Acc load_one(const T* __restrict__ p) {
  return math::to_acc<Acc>(*p);
}

// Number of leading elements of p to handle one by one before p is aligned for VEC-element accesses.
template <typename T, int VEC>
__device__ __forceinline__ std::int64_t elements_to_alignment(const T* p) {
  const std::uintptr_t index = reinterpret_cast<std::uintptr_t>(p) / sizeof(T);
  return static_cast<std::int64_t>((VEC - index % VEC) % VEC);
}

}  // namespace normkit::kernels
