// normkit::Normalizer: a fitted scaler that owns its state (normalize.hpp documents the methods, their
// formulas and edge cases).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "normkit/normalize_types.hpp"
#include "normkit/stats_types.hpp"
#include "normkit/status.hpp"
#include "normkit/tensor.hpp"

namespace normkit {

// The fitted state as host arrays (one element a kept index, C order of the kept shape): the raw statistics
// and the forward transform's coefficients y = (x - center) * scale + offset (NaN filled with `fill` first
// when imputing; `fill` is NaN otherwise).
struct NormalizerState {
  std::vector<std::int64_t> kept_shape;
  std::vector<StatsSummary> summaries;
  std::vector<double> center, scale, offset, fill;
};

// A fitted scaler with its state: adapt over batches, transform, inverse-transform, save, load.
//
// The state lives in `space`: per kept index the raw statistics (StatsSummary) and the derived
// coefficients. adapt() accumulates across calls like scikit-learn's partial_fit. Keras' adapt() restarts
// on every call; call reset() first for that behaviour. Unlike the free functions, a Normalizer owns
// memory. On the device it allocates its state and scratch with cudaMallocAsync on the call's stream at
// the first adapt() (and again when a larger scratch is needed). save() and all_nan_features() copy to the
// host and synchronize the stream; so does the first transform(), inverse_transform() or save() after an
// adapt(), which checks the fit for +-Inf (one index copied back; normalize.hpp: fits on +-Inf are
// rejected, naming the feature, as scikit-learn rejects them). adapt() itself does not synchronize.
class Normalizer {
 public:
  Normalizer();
  ~Normalizer();
  Normalizer(Normalizer&&) noexcept;
  Normalizer& operator=(Normalizer&&) noexcept;
  Normalizer(const Normalizer&) = delete;
  Normalizer& operator=(const Normalizer&) = delete;

  // Configures a new, empty normalizer (drops any previous state).
  Status init(const NormalizerOptions& options, MemorySpace space);

  // Merges `batch` into the statistics. The first batch fixes the kept shape; later ones must match it.
  Status adapt(const TensorView& batch, Stream stream = nullptr);
  // Merges the statistics another normalizer with the same options adapted (its fitted_state().summaries: host
  // memory, kept_numel of them, from batches of `batch_dtype`), as adapt() merges a batch: the first call (or
  // adapt) fixes the kept shape, later ones merge with Chan's formula (merge_summaries). Adapting batches b0,
  // b1, ... here and merging the states of fresh normalizers each adapted on one of them, in the same order,
  // give the same bits on the host (normkit-mpi fit deals files to ranks this way). Errors: not configured,
  // a kept shape that differs from the adapted one, null summaries.
  Status adapt_summaries(const std::vector<std::int64_t>& kept_shape, const StatsSummary* summaries, DType batch_dtype,
                         Stream stream = nullptr);
  // Forgets the statistics (keeps options and space).
  void reset();
  // Sets the statistics directly (Keras Normalization(mean=..., variance=...)): host float64 arrays of
  // the kept shape, as if adapted on data with that mean and population variance.
  Status set_mean_variance(const std::vector<std::int64_t>& kept_shape, const std::vector<double>& mean,
                           const std::vector<double>& variance);

  // out = transform(in) / inverse_transform(in); in has the adapted kept shape on the kept axes.
  Status transform(const TensorView& in, const TensorView& out, Stream stream = nullptr);
  Status inverse_transform(const TensorView& in, const TensorView& out, Stream stream = nullptr);

  // Saves as safetensors (temporary file + rename): tensors count (int64), mean, m2, min, max, maxabs,
  // nan_count (int64) and the derived center, scale, offset (float64, kept shape); string metadata
  // with the method, axes, parameters and normkit version. Loadable with safetensors.numpy.load_file.
  Status save(const std::string& path, Stream stream = nullptr) const;
  // The fitted state on the host (for device state: copied back, the stream synchronized; the same check of
  // the fit for +-Inf as transform()).
  Status fitted_state(NormalizerState* out, Stream stream = nullptr) const;
  // Loads a saved normalizer into `space`, validating the whole file.
  Status load(const std::string& path, MemorySpace space);

  const NormalizerOptions& options() const;
  bool adapted() const;
  std::vector<std::int64_t> kept_shape() const;
  // Number of kept slices whose fitted values were all NaN (filled with 0 by impute); for device state it
  // copies the summaries to the host and synchronizes, and returns -1 if that copy fails.
  std::int64_t all_nan_features() const;

 private:
  struct State;
  Status transform_impl(const TensorView& in, const TensorView& out, bool inverse, Stream stream, const char* op);
  std::unique_ptr<State> state_;
};

}  // namespace normkit
