// The host engine of the elementwise apply (transforms), sharing the kernels' math and plan geometry.
#pragma once

#include "normkit/normalize_types.hpp"
#include "plan/geometry.hpp"

namespace normkit::cpu {

// out = apply(in) with the coefficients of each kept index; in and out have `geometry`'s shape.
Status apply_affine(const void* in, DType in_dtype, void* out, DType out_dtype, const plan::CanonicalGeometry& geometry,
                    const AffineCoefficients& coefficients, int threads);

// Per-sample Lp normalization of `rows` contiguous rows of `length` elements, one read of each row
// (its norm, accumulated in float64, then the scaled row while it is still in cache).
Status normalize_lp_rows(const void* in, DType in_dtype, void* out, DType out_dtype, std::int64_t rows, std::int64_t length,
                         LpNorm p, int threads);

}  // namespace normkit::cpu
