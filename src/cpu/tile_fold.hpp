// The host engine's SIMD inner loops, compiled once per instruction set and chosen at run time.
#pragma once

#include <cstddef>
#include <cstdint>

#include "math/moments.hpp"

namespace normkit::cpu {

constexpr int kMaxTileColumns = 256;  // columns per column tile
constexpr int kMaxSpanLanes = 16;     // interleaved lanes a span is folded into (8 for SSE2, 16 for AVX2)
constexpr int kMaxTransposedRowLength = 24;  // rows_f32/f64: rows up to this length are folded transposed (tile_fold_impl.inc)

// Each function folds a tile into per-column states (see tile_fold_impl.inc): spans as `span_lanes`
// interleaved columns of a contiguous tile, column tiles as `cols` columns with a row stride.
struct TileFold {
  const char* name;
  int span_lanes;
  void (*span_f32)(const float* tile, int rows, math::MomentState<float>* lanes);
  void (*span_f64)(const double* tile, int rows, math::MomentState<double>* lanes);
  void (*columns_f32)(const float* tile, int rows, int cols, std::ptrdiff_t stride, math::MomentState<float>* states);
  void (*columns_f64)(const double* tile, int rows, int cols, std::ptrdiff_t stride, math::MomentState<double>* states);
  // `rows` contiguous rows of `length` values, one state each (short per-sample rows).
  void (*rows_f32)(const float* x, std::int64_t rows, int length, math::MomentState<float>* out);
  void (*rows_f64)(const double* x, std::int64_t rows, int length, math::MomentState<double>* out);
  // float16 bits to float32 (every value exact; F16C quiets signalling NaN): vcvtph2ps where the CPU has
  // F16C (with AVX2), else the vectorized math::half_to_float.
  void (*halves_to_floats)(const std::uint16_t* in, std::int64_t n, float* out);
};

// AVX2 (with F16C) when the CPU has it (and the build could compile it), SSE2 otherwise. NORMKIT_HOST_ISA=sse2 forces
// the baseline (tests compare both).
const TileFold& tile_fold() noexcept;

namespace sse2 { extern const TileFold kTileFold; }
namespace avx2 { extern const TileFold kTileFold; }

}  // namespace normkit::cpu
