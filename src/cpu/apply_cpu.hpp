// The host engine of the elementwise apply (transforms), sharing the kernels' math and plan geometry.
#pragma once

#include "normkit/normalize.hpp"
#include "plan/geometry.hpp"

namespace normkit::cpu {

// out = apply(in) with the coefficients of each kept index; in and out have `geometry`'s shape.
Status apply_affine(const void* in, DType in_dtype, void* out, DType out_dtype, const plan::CanonicalGeometry& geometry,
                    const AffineCoefficients& coefficients, int threads);

}  // namespace normkit::cpu
