// Host-side entry points of the transform kernels (plain C++: included by the API layer; a build without
// CUDA links stubs that fail cleanly).
#pragma once

#include <cstddef>
#include <cstdint>

#include "normkit/normalize_types.hpp"
#include "plan/apply_plan.hpp"

namespace normkit::kernels {

Status launch_apply(const void* in, DType in_dtype, void* out, DType out_dtype, const plan::CanonicalGeometry& geometry,
                    const plan::ApplyPlan& plan, const AffineCoefficients& coefficients, Stream stream);
Status launch_coefficients(const StatsSummary* summaries, std::int64_t n, const NormalizerOptions& options, bool inverse,
                           const AffineCoefficients& coefficients, Stream stream);
// Writes to device `*first` the first kept index whose fit holds +-Inf (math::fit_has_infinity), or -1.
Status launch_first_infinite_fit(const StatsSummary* summaries, std::int64_t n, const NormalizerOptions& options,
                                 std::int64_t* first, Stream stream);
// One-read Lp normalization of rows for which plan::lp_one_read_applies() holds.
Status launch_lp_rows(const void* in, DType in_dtype, void* out, DType out_dtype, std::int64_t rows, std::int64_t length,
                      LpNorm p, int sm_count, Stream stream);

// Row norms for normalize_lp: rows' L1/L2/Linf (from the summaries of accumulate_stats) -> center 0,
// scale 1/norm (1 for a zero norm), offset 0.
Status launch_lp_coefficients(const StatsSummary* summaries, std::int64_t n, LpNorm p, const AffineCoefficients& out,
                              Stream stream);

}  // namespace normkit::kernels
