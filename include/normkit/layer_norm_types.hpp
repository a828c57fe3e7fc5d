// Value types of the LayerNorm / RMSNorm layer (layer_norm.hpp): options only, no operations.
#pragma once

#include <cstdint>

namespace normkit {

// Which row normalization a call computes.
enum class RowNorm : std::uint8_t {
  layer_norm,  // y = (x - mean) * rstd * gamma + beta,   rstd = 1 / sqrt(var + eps), var biased
  rms_norm,    // y = x * rstd * gamma,                   rstd = 1 / sqrt(mean(x²) + eps)
};

// Where a 16-bit layer rounds the normalized value (float32 inputs: the two are the same).
enum class CastMode : std::uint8_t {
  float32,      // x̂ * gamma + beta in float32, rounded to y's dtype once (torch.nn.functional.layer_norm,
                // F.rms_norm, Keras, Apex)
  input_dtype,  // x̂ rounded to x's dtype first, then * gamma (+ beta) in float32 and rounded again
                // (Hugging Face Llama/Mistral RMSNorm: `weight * hidden.to(input_dtype)`)
};

// Rows per dgamma/dbeta partial of the backward: a constant of the API, not of the GPU or the batch, so
// that a row's contribution to the parameter gradients is summed with the same neighbours in every batch
// that holds the same rows at the same offsets, on every GPU model and on the host.
constexpr std::int64_t kLayerNormRowsPerPartial = 32;

struct LayerNormOptions {
  RowNorm kind = RowNorm::layer_norm;
  // The trailing axes normalized over (PyTorch's len(normalized_shape); Keras's axis=-1 is 1). The leading
  // axes are rows.
  int normalized_ndim = 1;
  // Added to the variance (mean square for RMSNorm) before the square root; >= 0, rounded to float32.
  // There is no universal default (see layer_norm.hpp): PyTorch LayerNorm 1e-5, Keras LayerNormalization
  // 1e-3, PyTorch rms_norm(eps=None) the input dtype's machine epsilon.
  double eps = 1e-5;
  CastMode cast_mode = CastMode::float32;
  // Gemma's RMSNorm: the weight is 1 + gamma (the 1 added in float32); dgamma is unchanged.
  bool gamma_offset = false;
};

}  // namespace normkit
