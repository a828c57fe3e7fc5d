// Vectorized loads with conversion to the accumulation type: the one place kernels read input from.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

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

// A pack as the words it is loaded in (uint4, uint2 or a 32-bit word), converted only after every load of
// a batch has been issued: a struct of 8- or 16-bit members is unpacked right at its load in PTX, which
// puts the load's first use before the next load.
// (float32 and float64 packs load as themselves: as uint4, their conversion cost more than it saved.)
template <typename T, int VEC>
using RawPack = std::conditional_t<sizeof(T) < 4 && sizeof(T) * VEC == 16, uint4,
                                   std::conditional_t<sizeof(T) < 4 && sizeof(T) * VEC == 8, uint2, Pack<T, VEC>>>;

template <typename T, int VEC>
__device__ __forceinline__ RawPack<T, VEC> load_raw_pack(const T* __restrict__ p) {
  return *reinterpret_cast<const RawPack<T, VEC>*>(p);
}

// Row B of a batch, B rows of pitch_bytes after `base`: one IMAD.WIDE from a 32-bit pitch (a 64-bit
// addition is two integer operations, and nvcc turns base + B * pitch into a chain of them).
template <int B, typename T>
__device__ __forceinline__ const T* row_at(const T* base, int pitch_bytes) {
  if constexpr (B == 0) {
    return base;
  } else {
    std::int64_t offset;
    asm("mul.wide.s32 %0, %1, %2;" : "=l"(offset) : "r"(pitch_bytes), "n"(B));
    return reinterpret_cast<const T*>(reinterpret_cast<const char*>(base) + offset);
  }
}

// Raw packs of sizeof...(B) rows pitch_bytes apart from `row`, every load issued before any use.
template <typename Raw, typename T, int... B>
__device__ __forceinline__ void load_rows(const T* row, int pitch_bytes, Raw* raw, std::integer_sequence<int, B...>) {
  ((raw[B] = *reinterpret_cast<const Raw*>(row_at<B>(row, pitch_bytes))), ...);
}

// Converts a raw pack into out[0, VEC). BF16_WORDS: bfloat16 words widen by one integer op per value (the
// low half shifted up, the high half masked); through 16-bit registers nvcc spent a zero-extension, a
// shift and a move on each - but could recompute them where registers ran short (the segment kernels'
// 32-value batches with packed extremes spill with the word form).
template <typename Acc, typename T, int VEC, bool BF16_WORDS = true>
__device__ __forceinline__ void convert_raw_pack(const RawPack<T, VEC>& raw, Acc* out) {
  if constexpr (BF16_WORDS && std::is_same_v<T, math::bfloat16_bits> && std::is_same_v<Acc, float> && VEC % 2 == 0 &&
                !std::is_same_v<RawPack<T, VEC>, Pack<T, VEC>>) {
    std::uint32_t words[VEC / 2];
    memcpy(words, &raw, sizeof(words));
NORMKIT_UNROLL
    for (int i = 0; i < VEC / 2; ++i) {
      out[2 * i] = __uint_as_float(words[i] << 16);
      out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
  } else {
    Pack<T, VEC> pack;
    memcpy(&pack, &raw, sizeof(pack));
NORMKIT_UNROLL
    for (int i = 0; i < VEC; ++i) out[i] = math::to_acc<Acc>(pack.v[i]);
  }
}

template <typename Acc, typename T>
__device__ __forceinline__ Acc load_one(const T* __restrict__ p) {
  return math::to_acc<Acc>(*p);
}

// Number of leading elements of p to handle one by one before p is aligned for VEC-element accesses.
template <typename T, int VEC>
__device__ __forceinline__ int elements_to_alignment(const T* p) {
  const std::uintptr_t index = reinterpret_cast<std::uintptr_t>(p) / sizeof(T);
  return static_cast<int>((VEC - index % VEC) % VEC);
}

}  // namespace normkit::kernels
