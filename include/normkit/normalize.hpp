// Transforms: every scaler users know from scikit-learn and Keras, as one fused elementwise apply, and
// stateful normalizers that adapt over many batches and save/load their state.
//
// Every fitted method is applied as, per kept index k (the statistics' index, see stats.hpp):
//
//   x' = isnan(x) ? fill[k] : x                 (only with mean imputation)
//   y  = (x' - center[k]) * scale[k] + offset[k]
//   y  = min(max(y, a), b)                      (only min-max with clip)
//
// with center/scale/offset computed in float64 from the statistics. The subtraction keeps the center
// apart from the offset (no folding into x*scale + shift, which loses ~0.06 at mean 1e6 in float32) and
// the float32 path subtracts the center as a float pair, so large offsets stay exact.
//
// Methods, with the statistics of the fitted data (population variance, NaN ignored as scikit-learn does):
//   zscore      y = (x - mean) / s. By default (ZeroVariance::sklearn, StandardScaler) s = std, except for a
//               constant feature, whose s is 1 (y = x - mean). A feature is constant by scikit-learn's rule
//               (_is_constant_feature): its variance is within the float64 rounding error of computing it
//               over n values, var <= n eps var + (n eps mean)^2 with eps = 2^-52, n the values fitted
//               (non-NaN; with impute_nan all of them). The bound grows with n: at n = 10 a spread of
//               1e-14 around 1 is scaled, at n = 10000 a spread of 1e-12 around 1 is constant; a spread
//               of 1e-14 around 0 is always scaled. The rule holds for every input dtype (statistics are
//               float64, as scikit-learn's). ZeroVariance::keras (Normalization) uses s = max(std,
//               epsilon), with epsilon 1e-7 by default; a constant feature then becomes (x - mean) * 1e7.
//               with_mean = false uses mean 0 (the rule above still uses the mean); with_std = false uses
//               s = 1.
//   minmax      y = (x - min) * (b - a) / (max - min) + a, with feature_range (a, b), default (0, 1)
//               (MinMaxScaler). A range below scikit-learn's near-zero floor counts as 1, so
//               y = a + (x - min). clip clips y to [a, b]. Rejects a >= b.
//   maxabs      y = x / max|x| (MaxAbsScaler); a max|x| below the near-zero floor counts as 1 (y = x).
//               The near-zero floor is scikit-learn's _handle_zeros_in_scale: 10 eps of the dtype it holds
//               the statistic in, which follows Options::fitted_dtype: float32 data 10 * 2^-23 (1.19e-6),
//               float16 10 * 2^-10 (9.8e-3), float64 and uint8 (converted to float64) 10 * 2^-52
//               (2.2e-15); bfloat16, which NumPy lacks, counts as float32.
//   rescale     y = x * scale + offset (Keras Rescaling, e.g. scale 1/255). It needs no statistics.
//   decimal     y = x / 10^j, where j is the smallest integer (possibly negative) with max|x| / 10^j < 1.
//               max|x| = 0 gives j = 0, and max|x| = 100 gives j = 3 (exact powers of ten are exact).
//   impute_mean NaN -> the NaN-ignoring mean of its feature (SimpleImputer(strategy="mean")); other values
//               are unchanged. An all-NaN feature is filled with 0 (and Normalizer::adapt reports it).
//
// Composition:
//   * Options::scale / Options::offset rescale first for every method: x -> x * scale + offset, then the
//     method runs on the rescaled values, as one apply. Rescale then z-score is one pass.
//   * Options::impute_nan fills NaN with the feature mean before any method. The method is then fitted as
//     scikit-learn's Pipeline([SimpleImputer, scaler]) would fit it: the filled values count, so the
//     variance is M2 / (count + NaN count).
//   * Without imputation, NaN stays NaN in transform, and fitting ignores NaN.
//
// Infinity: fitting on data that holds +-Inf is an error, as in scikit-learn ("Input contains infinity")
// for every fitted method (all but rescale). Normalizer::transform, inverse_transform and save return
// invalid_argument naming the first such feature and its +Inf/-Inf counts; the state file is not written.
// compute_coefficients cannot report per-slice errors without synchronizing, so it marks such slices with
// NaN center, scale and offset (their transform is NaN). Transforming +-Inf with fitted coefficients keeps
// IEEE arithmetic (Inf in, +-Inf or NaN out) where scikit-learn's transform raises: a check would cost the
// device apply a synchronization to report it. This is the one documented divergence.
//
// Inverse: x = (y - offset) / scale + center, for every fitted method (scikit-learn inverse_transform,
// Keras Normalization(invert=True)). Clipping and imputation are not undone.
//
// Per-sample Lp normalization (scikit-learn Normalizer, keras.utils.normalize) is stateless: y = x / ||x||_p
// along the last axis, p in {1, 2, inf}. A zero norm leaves the row unchanged. It has no inverse. Rows of up
// to 1024 elements whose starts are 16-byte aligned take one read on the device (the row stays in
// registers); longer rows take two (their norms, then the apply). The host reads each row once from memory.
//
// Dtypes: inputs float32, float64, float16, bfloat16, uint8. Outputs float32, float64, float16, bfloat16.
// The default output is the input's float type, and float32 for uint8. In-place (out.data == in.data) is
// allowed when the dtypes match. Device calls follow stats.hpp: stream-ordered, no synchronization, no
// allocation in the free functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "normkit/normalize_types.hpp"
#include "normkit/normalizer.hpp"
#include "normkit/stats.hpp"

namespace normkit {

// Checks the options (feature range, scale, epsilon, ...). `operation` names the caller in messages.
Status validate_options(const NormalizerOptions& options, const std::string& operation);

// Computes the coefficients of `options.method` (or of its inverse) from n summaries (accumulated with
// accumulate_stats over options.axes). Summaries and coefficient arrays live in `space`.
Status compute_coefficients(const StatsSummary* summaries, std::int64_t n, const NormalizerOptions& options,
                            bool inverse, const AffineCoefficients& coefficients, MemorySpace space, Stream stream = nullptr);

// out = apply(in) with coefficients indexed by the kept index of `axes` (their arrays have kept-numel
// elements). `out` has the input's shape.
Status apply_affine(const TensorView& in, const ReduceAxes& axes, const AffineCoefficients& coefficients,
                    const TensorView& out, Stream stream = nullptr);

// Per-sample Lp normalization along the last axis. Device calls need workspace_bytes of scratch from
// normalize_lp_workspace_size (the row norms of the two-read path; the one-read path uses none).
Status normalize_lp_workspace_size(const TensorView& in, std::size_t* bytes);
Status normalize_lp(const TensorView& in, LpNorm p, const TensorView& out, void* workspace, std::size_t workspace_bytes,
                    Stream stream = nullptr);

}  // namespace normkit
