// Minimum, maximum and non-zero counts of 16-bit floats kept as packed pairs: one min.{f16,bf16}x2 and one max per two
// values (1 issue cycle each on sm_90) instead of a float min and max per value (2 cycles each). PTX's
// min/max return the other operand when one is NaN, so words holding NaN may be added as they are: the
// result is the extreme over the non-NaN values (±Inf included), as the statistics define min and max.
#pragma once

#include <cstdint>
#include <type_traits>

#include "math/element_types.hpp"
#include "math/moments.hpp"

namespace normkit::kernels {

template <typename T>
struct PairExtremes {
  static_assert(std::is_same_v<T, math::float16_bits> || std::is_same_v<T, math::bfloat16_bits>, "16-bit floats only");
  static constexpr bool kHalf = std::is_same_v<T, math::float16_bits>;
  std::uint32_t min_pair = kHalf ? 0x7c007c00u : 0x7f807f80u;  // +Inf, +Inf
  std::uint32_t max_pair = kHalf ? 0xfc00fc00u : 0xff80ff80u;  // -Inf, -Inf

  __device__ __forceinline__ void add(std::uint32_t pair) {
    if constexpr (kHalf) {
      asm("min.f16x2 %0, %0, %1;" : "+r"(min_pair) : "r"(pair));
      asm("max.f16x2 %0, %0, %1;" : "+r"(max_pair) : "r"(pair));
    } else {
      asm("min.bf16x2 %0, %0, %1;" : "+r"(min_pair) : "r"(pair));
      asm("max.bf16x2 %0, %0, %1;" : "+r"(max_pair) : "r"(pair));
    }
  }

  // Value `lane` (0: low half, 1: high half) of a pair, as float.
  static __device__ __forceinline__ float value(std::uint32_t pair, int lane) {
    return math::to_acc<float>(T{static_cast<std::uint16_t>(pair >> (16 * lane))});
  }

  // The words of a 16-byte pack (8 values).
  __device__ __forceinline__ void add_words(const uint4& w) {
    add(w.x);
    add(w.y);
    add(w.z);
    add(w.w);
  }

  // Folds lane `lane` into s's min and max.
  template <typename Acc>
  __device__ __forceinline__ void fold_lane(math::LocalMoments<Acc>& s, int lane) const {
    s.min = math::min_of(s.min, static_cast<Acc>(value(min_pair, lane)));
    s.max = math::max_of(s.max, static_cast<Acc>(value(max_pair, lane)));
  }

  // Folds both lanes into one state (the pairs held values of the same slice).
  template <typename Acc>
  __device__ __forceinline__ void fold(math::LocalMoments<Acc>& s) const {
    fold_lane(s, 0);
    fold_lane(s, 1);
  }
};

// Non-zero counts of 16-bit floats as packed pairs: set.neu.f16x2 against 0 puts 1.0 in each half that
// is not ±0 - for bfloat16 words too, whose zeros have the same bits (any other bits compare unequal
// under .neu, NaN patterns included) - and add.f16x2 counts them, exactly up to 2048 per half: two issue
// cycles per two values instead of a compare and a predicated add per value (3 cycles each). The count
// of a batch is added only when the batch took the finite fast path (the per-value path counts itself).
struct PairNonzeros {
  std::uint32_t counts = 0;  // two half-precision counters

  __device__ __forceinline__ void add(std::uint32_t pair) {
    asm("add.f16x2 %0, %0, %1;" : "+r"(counts) : "r"(of(pair).counts));
  }
  // The counts of one pair (starting from them saves adding to zero).
  static __device__ __forceinline__ PairNonzeros of(std::uint32_t pair) {
    PairNonzeros n;
    asm("set.neu.f16x2.f16x2 %0, %1, %2;" : "=r"(n.counts) : "r"(pair), "r"(0u));
    return n;
  }
  __device__ __forceinline__ void add_words(const uint4& w) {
    add(w.x);
    add(w.y);
    add(w.z);
    add(w.w);
  }
  // Another pair's counts added (exact while each half stays <= 2048).
  __device__ __forceinline__ void add_counts(const PairNonzeros& other) {
    asm("add.f16x2 %0, %0, %1;" : "+r"(counts) : "r"(other.counts));
  }
  // The count of half `lane` (0: low), and of both.
  __device__ __forceinline__ float lane(int l) const {
    return math::to_acc<float>(math::float16_bits{static_cast<std::uint16_t>(counts >> (16 * l))});
  }
  __device__ __forceinline__ float total() const { return lane(0) + lane(1); }
};

// Stand in for PairExtremes and PairNonzeros where the input is not 16-bit.
struct NoPairExtremes {};
struct NoPairNonzeros {};

}  // namespace normkit::kernels
