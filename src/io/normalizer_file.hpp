// The Normalizer's state file: a safetensors file whose tensors hold the per-slice statistics and the
// derived coefficients (kept shape each) and whose string metadata holds the method, the axes and the
// parameters. The schema is written here once, for save and for load (and for the fuzz target).
//
// Tensors: count, nan_count, posinf_count, neginf_count, nonzero_count (int64); mean, m2, min, max,
// abs_sum, maxabs, center, scale, offset, fill (float64). Metadata (each value a string): format
// "normkit-normalizer", normkit_version, method (method_name), zero_variance ("sklearn" | "keras"), and
// JSON texts: axes ("all" or a list of ints), kept_shape (list), with_mean/with_std/clip/impute_nan
// (true | false), epsilon/scale/offset (numbers), feature_range ([a, b]); fitted_dtype (a dtype name,
// optional: absent in files of normkit 0.1.0, read as float64).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors.hpp"
#include "normkit/normalize_types.hpp"
#include "normkit/stats_types.hpp"
#include "normkit/status.hpp"

namespace normkit::io {

struct NormalizerFileContents {
  NormalizerOptions options;
  std::vector<std::int64_t> kept_shape;
  std::vector<StatsSummary> summaries;  // one per kept index
  // Written by save for readers such as safetensors.numpy; load checks their shape and recomputes them:
  // center, scale, offset, fill, each kept-numel float64 values, one after the other.
  std::vector<double> coefficients;
};

// Builds the file's tensors and metadata. `version` is recorded as normkit_version.
Status encode_normalizer_file(const NormalizerFileContents& contents, const std::string& version, SafetensorsFile* out);

// Reads options, kept shape and summaries back, checking every tensor's presence, dtype and shape and
// every metadata entry; bad_file errors name `path` and the entry. Options are parsed, not validated
// (Normalizer::load validates them). coefficients stays empty.
Status decode_normalizer_file(const SafetensorsFile& file, const std::string& operation, const std::string& path,
                              NormalizerFileContents* out);

}  // namespace normkit::io
