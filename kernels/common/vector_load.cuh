// Vectorized loads with conversion to the accumulation type, and vectorized stores with conversion to
// the output type: the one place kernels read input from and write output to.
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

// Converts a raw pack into out[0, VEC). bfloat16 words widen by one integer op per value (the low half
// shifted up, the high half masked), written straight into float registers; through 16-bit registers nvcc
// spent a zero-extension, a shift and a move on each (segment kernels, bfloat16 NCHW with every
// statistic: 80% -> 83% modelled).
template <typename Acc, typename T, int VEC>
__device__ __forceinline__ void convert_raw_pack(const RawPack<T, VEC>& raw, Acc* out) {
  if constexpr (std::is_same_v<T, math::bfloat16_bits> && std::is_same_v<Acc, float> && VEC % 2 == 0 &&
                !std::is_same_v<RawPack<T, VEC>, Pack<T, VEC>>) {
    std::uint32_t words[VEC / 2];
    memcpy(words, &raw, sizeof(words));
NORMKIT_UNROLL
    for (int i = 0; i < VEC / 2; ++i) {
      // (straight into float registers: __uint_as_float of the integer result added a mov per value)
      asm("shl.b32 %0, %1, 16;" : "=f"(out[2 * i]) : "r"(words[i]));
      asm("and.b32 %0, %1, 0xffff0000;" : "=f"(out[2 * i + 1]) : "r"(words[i]));
    }
  } else if constexpr (std::is_same_v<T, std::uint8_t> && std::is_same_v<Acc, float> &&
                       !std::is_same_v<RawPack<T, VEC>, Pack<T, VEC>>) {
    // math::small_uint_to_acc from the word: one PRMT builds 0x4B0000xx from byte i (selector bytes: i, two
    // zero bytes of 0x4B000000, then its 0x4B), one subtraction; unpacking a byte pack first cost a shift,
    // a mask and a zero-extension per value.
    std::uint32_t words[VEC / 4];
    memcpy(words, &raw, sizeof(words));
NORMKIT_UNROLL
    for (int i = 0; i < VEC; ++i) out[i] = __uint_as_float(__byte_perm(words[i / 4], 0x4B000000u, 0x7540u + i % 4)) - 8388608.0f;
  } else {
    Pack<T, VEC> pack;
    memcpy(&pack, &raw, sizeof(pack));
NORMKIT_UNROLL
    for (int i = 0; i < VEC; ++i) out[i] = math::to_acc<Acc>(pack.v[i]);
  }
}

// Loads a pack at p (aligned to sizeof(T) * VEC) as raw words and converts it into out[0, VEC).
template <typename Acc, typename T, int VEC>
__device__ __forceinline__ void load_converted(const T* __restrict__ p, Acc* out) {
  convert_raw_pack<Acc, T, VEC>(load_raw_pack<T, VEC>(p), out);
}

// Stores kWords 32-bit words at y with one vector instruction (st.global.cs.v4/v2.u32: streaming, the
// output is written once). Plain struct or uint4 assignments were split into 4-byte stores by nvcc 13
// (seen in the traffic profile: 25% store efficiency); the __stcs intrinsics keep the vector store.
template <int kWords, typename Out>
__device__ __forceinline__ void store_words(Out* __restrict__ y, const std::uint32_t* w) {
  static_assert(kWords == 1 || kWords == 2 || kWords == 4, "a store of 4, 8 or 16 bytes");
  if constexpr (kWords == 4) {
    __stcs(reinterpret_cast<uint4*>(y), make_uint4(w[0], w[1], w[2], w[3]));
  } else if constexpr (kWords == 2) {
    __stcs(reinterpret_cast<uint2*>(y), make_uint2(w[0], w[1]));
  } else {
    __stcs(reinterpret_cast<unsigned int*>(y), w[0]);
  }
}

// The 32-bit words of one output element (two for float64).
__device__ __forceinline__ void to_words(float v, std::uint32_t* w) { w[0] = __float_as_uint(v); }
__device__ __forceinline__ void to_words(double v, std::uint32_t* w) {
  w[0] = static_cast<std::uint32_t>(__double2loint(v));
  w[1] = static_cast<std::uint32_t>(__double2hiint(v));
}

// Stores a pack of output elements with one vector instruction.
template <typename Out, int VEC>
__device__ __forceinline__ void store_pack(Out* __restrict__ y, const Pack<Out, VEC>& pack) {
  constexpr int kWords = static_cast<int>(sizeof(Out) * VEC / 4);
  if constexpr (kWords == 1 || kWords == 2 || kWords == 4) {
    std::uint32_t w[kWords];
    if constexpr (sizeof(Out) == 2) {
NORMKIT_UNROLL
      for (int i = 0; i < kWords; ++i) {
        w[i] = static_cast<std::uint32_t>(pack.v[2 * i].bits) | (static_cast<std::uint32_t>(pack.v[2 * i + 1].bits) << 16);
      }
    } else {
NORMKIT_UNROLL
      for (int i = 0; i < VEC; ++i) to_words(pack.v[i], w + i * (sizeof(Out) / 4));
    }
    store_words<kWords>(y, w);
  } else {
    *reinterpret_cast<Pack<Out, VEC>*>(y) = pack;
  }
}

// Converts VEC computed values to Out (math::store_as) and stores them as one pack. 16-bit outputs from
// float convert two values per instruction (math::float_pair_to_half_bits: the same rounding).
template <typename Out, int VEC, typename Compute>
__device__ __forceinline__ void store_converted(Out* __restrict__ y, const Compute* v) {
  constexpr int kWords = static_cast<int>(sizeof(Out) * VEC / 4);
  if constexpr (sizeof(Out) == 2 && std::is_same_v<Compute, float> && (kWords == 1 || kWords == 2 || kWords == 4)) {
    std::uint32_t w[kWords];
NORMKIT_UNROLL
    for (int i = 0; i < kWords; ++i) {
      w[i] = std::is_same_v<Out, math::float16_bits> ? math::float_pair_to_half_bits(v[2 * i], v[2 * i + 1])
                                                     : math::float_pair_to_bfloat16_bits(v[2 * i], v[2 * i + 1]);
    }
    store_words<kWords>(y, w);
  } else {
    Pack<Out, VEC> pack;
NORMKIT_UNROLL
    for (int i = 0; i < VEC; ++i) math::store_as(&pack.v[i], v[i]);
    store_pack(y, pack);
  }
}

// A pack read element by element (p aligned to its element only) into the words a vector load gives: the
// misaligned twin of load_raw_pack, so that both feed the same conversion.
template <typename T, int VEC>
__device__ __forceinline__ RawPack<T, VEC> load_raw_elements(const T* __restrict__ p) {
  Pack<T, VEC> pack;
NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) pack.v[i] = p[i];
  RawPack<T, VEC> raw;
  memcpy(&raw, &pack, sizeof(raw));
  return raw;
}

// Converts and stores VEC values element by element (the misaligned twin of store_converted).
template <typename Out, int VEC, typename Compute>
__device__ __forceinline__ void store_elements(Out* __restrict__ y, const Compute* v) {
NORMKIT_UNROLL
  for (int i = 0; i < VEC; ++i) math::store_as(y + i, v[i]);
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
