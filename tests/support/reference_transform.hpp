// Independent oracle for the transforms: scikit-learn's and Keras' formulas written directly per slice in
// long double (no affine coefficients, no shared code with normkit's math).
#pragma once

#include <cstdint>
#include <vector>

#include "normkit/normalize.hpp"

namespace normkit::testing {

// y for every element of `values` (row-major over `shape`), fitted on the same values with scikit-learn's
// rules as its documentation states them: constant features by _is_constant_feature (float64 eps), zero
// min-max ranges and max|x| below 10 eps of options.fitted_dtype; a slice whose fit holds +-Inf gives NaN
// (scikit-learn raises; normkit's Normalizer reports an error and its coefficients are NaN).
std::vector<double> reference_transform(const std::vector<double>& values, const std::vector<std::int64_t>& shape,
                                        const std::vector<bool>& reduced, const NormalizerOptions& options);

// Rows along the last axis divided by their L1 / L2 / Linf norm (zero rows unchanged).
std::vector<double> reference_lp(const std::vector<double>& values, std::int64_t row_length, LpNorm p);

}  // namespace normkit::testing
