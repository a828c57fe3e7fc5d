// LayerNorm / RMSNorm test cases shared by the host and device tests: seeded data, one call of the public
// API on buffers the caller places (host or device), and the comparison with the float64 reference.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "normkit/layer_norm.hpp"
#include "reference_layer_norm.hpp"
#include "test_data.hpp"
#include "transform_check.hpp"

namespace normkit::testing {

struct LayerNormCase {
  std::int64_t rows = 4, n = 32;
  DType x = DType::float32, param = DType::float32;
  bool gamma = true, beta = true;
  LayerNormOptions options;
  double center = 0.0;  // the data's mean (a large one tests the two-pass variance)
  unsigned seed = 1;

  std::string name() const {
    return std::string(options.kind == RowNorm::layer_norm ? "layer_norm" : "rms_norm") + " rows " + std::to_string(rows) +
           " n " + std::to_string(n) + " x " + dtype_name(x) + " param " + dtype_name(param) + (gamma ? " gamma" : "") +
           (beta ? " beta" : "") + (options.cast_mode == CastMode::input_dtype ? " input_dtype" : "") +
           (options.gamma_offset ? " offset" : "") + " center " + std::to_string(center);
  }
};

struct LayerNormData {
  TypedData x, dy, gamma, beta;
};

inline LayerNormData make_layer_norm_data(const LayerNormCase& c) {
  const std::size_t numel = static_cast<std::size_t>(c.rows * c.n);
  LayerNormData d;
  d.x = encode(normal_values(numel, c.center, 1.0, c.seed), c.x);
  d.dy = encode(normal_values(numel, 0.0, 1.0, c.seed + 1), c.x);
  d.gamma = encode(c.gamma ? uniform_values(static_cast<std::size_t>(c.n), 0.5, 1.5, c.seed + 2) : std::vector<double>{}, c.param);
  const bool beta = c.beta && c.options.kind == RowNorm::layer_norm;
  d.beta = encode(beta ? uniform_values(static_cast<std::size_t>(c.n), -0.5, 0.5, c.seed + 3) : std::vector<double>{}, c.param);
  return d;
}

// What a call wrote, as bytes in host memory.
struct LayerNormResult {
  std::vector<unsigned char> y, dx, dgamma, dbeta;
  std::vector<float> mean, rstd;
};

inline bool same_bits(const void* a, const void* b, std::size_t bytes) { return std::memcmp(a, b, bytes) == 0; }

inline void expect_same_bits(const LayerNormResult& a, const LayerNormResult& b, const std::string& what) {
  EXPECT_TRUE(a.y == b.y) << what << ": y";
  EXPECT_TRUE(a.mean.size() == b.mean.size() && same_bits(a.mean.data(), b.mean.data(), a.mean.size() * 4)) << what << ": mean";
  EXPECT_TRUE(a.rstd.size() == b.rstd.size() && same_bits(a.rstd.data(), b.rstd.data(), a.rstd.size() * 4)) << what << ": rstd";
  EXPECT_TRUE(a.dx == b.dx) << what << ": dx";
  EXPECT_TRUE(a.dgamma == b.dgamma) << what << ": dgamma";
  EXPECT_TRUE(a.dbeta == b.dbeta) << what << ": dbeta";
}

// Relative error budget of float32 arithmetic over a row of n (plus the output's rounding).
inline double accumulation_tolerance(std::int64_t n) { return 4e-7 * (8.0 + std::sqrt(static_cast<double>(n))); }

inline void expect_near_scaled(const std::vector<double>& got, const std::vector<double>& want, const std::vector<double>& scale,
                               double rel, double out_rel, double out_abs, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int reported = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double tol = rel * scale[i] + out_rel * std::fabs(want[i]) + out_abs + 1e-30;
    if (!(std::fabs(got[i] - want[i]) <= tol) && reported++ < 5) {
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << want[i] << " (tolerance " << tol << ")";
    }
  }
}

inline double output_rounding(DType d) { return d == DType::float32 ? 0.0 : (d == DType::float16 ? 1.0 / 2048 : 1.0 / 256); }
// Absolute rounding of tiny results: float16 below 2^-14 is subnormal, spaced 2^-24.
inline double output_rounding_abs(DType d) { return d == DType::float16 ? 0x1p-24 : 0.0; }

// Forward outputs against the reference.
inline void expect_forward_near_reference(const LayerNormCase& c, const LayerNormData& d, const LayerNormResult& r) {
  const LayerNormReference ref = layer_norm_reference(d.x.stored, c.rows, c.n, d.gamma.stored, d.beta.stored, c.options, c.x);
  const double rel = accumulation_tolerance(c.n) * (1.0 + std::fabs(c.center));
  std::vector<double> y_scale(ref.y.size());
  for (std::size_t i = 0; i < y_scale.size(); ++i) {
    const std::size_t col = i % static_cast<std::size_t>(c.n);
    const double w = d.gamma.stored.empty() ? 1.0 : std::fabs(d.gamma.stored[col]) + (c.options.gamma_offset ? 1.0 : 0.0);
    // (x̂ rounded to x's dtype: its rounding error times the weight)
    const double xhat_round = c.options.cast_mode == CastMode::input_dtype ? output_rounding(c.x) : 0.0;
    y_scale[i] = (std::fabs(ref.y[i]) + w * 4) * (rel + xhat_round) + w * xhat_round;
  }
  expect_near_scaled(decode(r.y, c.x), ref.y, y_scale, 1.0, output_rounding(c.x), output_rounding_abs(c.x), c.name() + ": y");
  std::vector<double> mean(r.mean.begin(), r.mean.end()), rstd(r.rstd.begin(), r.rstd.end());
  if (!r.mean.empty()) {
    std::vector<double> scale(ref.mean.size(), 1.0 + std::fabs(c.center));
    expect_near_scaled(mean, ref.mean, scale, rel, 0.0, 0.0, c.name() + ": mean");
  }
  if (!r.rstd.empty()) expect_near_scaled(rstd, ref.rstd, ref.rstd, rel * (1.0 + c.center * c.center), 0.0, 0.0, c.name() + ": rstd");
}

// Backward outputs against the reference (which takes its own statistics of x).
inline void expect_backward_near_reference(const LayerNormCase& c, const LayerNormData& d, const LayerNormResult& r) {
  const LayerNormGradReference ref = layer_norm_grad_reference(d.dy.stored, d.x.stored, c.rows, c.n, d.gamma.stored, c.options, c.x);
  const double rel = accumulation_tolerance(c.n) * (1.0 + c.center * c.center);
  if (!r.dx.empty()) expect_near_scaled(decode(r.dx, c.x), ref.dx, ref.dx_scale, rel * 4, output_rounding(c.x), output_rounding_abs(c.x),
                                        c.name() + ": dx");
  const double rows_rel = accumulation_tolerance(c.rows) + rel;
  const double xhat_round = c.options.cast_mode == CastMode::input_dtype ? output_rounding(c.x) : 0.0;
  if (!r.dgamma.empty()) {
    expect_near_scaled(decode(r.dgamma, c.param), ref.dgamma, ref.dgamma_scale, rows_rel * 4 + xhat_round, output_rounding(c.param),
                       output_rounding_abs(c.param), c.name() + ": dgamma");
  }
  if (!r.dbeta.empty()) {
    expect_near_scaled(decode(r.dbeta, c.param), ref.dbeta, ref.dbeta_scale, rows_rel * 4, output_rounding(c.param),
                       output_rounding_abs(c.param), c.name() + ": dbeta");
  }
}

inline TensorView host_view(void* data, DType dtype, std::int64_t rows, std::int64_t n) {
  return TensorView(data, dtype, {rows, n});
}

inline TensorView param_view(TypedData& t, std::int64_t n) {
  return t.stored.empty() ? TensorView() : TensorView(t.data(), t.dtype, {n});
}

// Forward then backward (from the forward's saved statistics) on host memory.
inline LayerNormResult run_layer_norm_host(const LayerNormCase& c, LayerNormData& d, bool param_grads = true) {
  LayerNormResult r;
  r.y.resize(d.x.bytes.size());
  r.dx.resize(d.x.bytes.size());
  const bool centered = c.options.kind == RowNorm::layer_norm;
  r.mean.resize(centered ? c.rows : 0);
  r.rstd.resize(c.rows);
  const TensorView x = host_view(d.x.data(), c.x, c.rows, c.n);
  const TensorView mean = centered ? TensorView(r.mean.data(), DType::float32, {c.rows}) : TensorView();
  const TensorView rstd(r.rstd.data(), DType::float32, {c.rows});
  Status s = layer_norm_forward(x, param_view(d.gamma, c.n), param_view(d.beta, c.n), host_view(r.y.data(), c.x, c.rows, c.n), mean,
                                rstd, c.options);
  EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
  if (param_grads && c.gamma) r.dgamma.resize(static_cast<std::size_t>(c.n) * dtype_size(c.param));
  if (param_grads && centered) r.dbeta.resize(static_cast<std::size_t>(c.n) * dtype_size(c.param));
  s = layer_norm_backward(host_view(d.dy.data(), c.x, c.rows, c.n), x, mean, rstd, param_view(d.gamma, c.n),
                          host_view(r.dx.data(), c.x, c.rows, c.n),
                          r.dgamma.empty() ? TensorView() : TensorView(r.dgamma.data(), c.param, {c.n}),
                          r.dbeta.empty() ? TensorView() : TensorView(r.dbeta.data(), c.param, {c.n}), c.options, nullptr, 0);
  EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
  return r;
}

// The fused pre-norm block on host memory: h = x + residual (written out), y = norm(h), then the backward
// with residual_grad added to dx. `residual` and `residual_grad` are x-shaped data of x's dtype.
struct ResidualResult {
  LayerNormResult r;
  std::vector<unsigned char> h;
};

inline ResidualResult run_layer_norm_residual_host(const LayerNormCase& c, LayerNormData& d, TypedData& residual, TypedData& residual_grad) {
  ResidualResult out;
  LayerNormResult& r = out.r;
  r.y.resize(d.x.bytes.size());
  r.dx.resize(d.x.bytes.size());
  out.h.resize(d.x.bytes.size());
  const bool centered = c.options.kind == RowNorm::layer_norm;
  r.mean.resize(centered ? c.rows : 0);
  r.rstd.resize(c.rows);
  const TensorView mean = centered ? TensorView(r.mean.data(), DType::float32, {c.rows}) : TensorView();
  const TensorView rstd(r.rstd.data(), DType::float32, {c.rows});
  const TensorView h = host_view(out.h.data(), c.x, c.rows, c.n);
  Status s = layer_norm_forward_residual(host_view(d.x.data(), c.x, c.rows, c.n), host_view(residual.data(), c.x, c.rows, c.n), h,
                                         param_view(d.gamma, c.n), param_view(d.beta, c.n), host_view(r.y.data(), c.x, c.rows, c.n), mean, rstd,
                                         c.options);
  EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
  if (c.gamma) r.dgamma.resize(static_cast<std::size_t>(c.n) * dtype_size(c.param));
  if (centered) r.dbeta.resize(static_cast<std::size_t>(c.n) * dtype_size(c.param));
  s = layer_norm_backward_residual(host_view(d.dy.data(), c.x, c.rows, c.n), h, host_view(residual_grad.data(), c.x, c.rows, c.n), mean, rstd,
                                   param_view(d.gamma, c.n), host_view(r.dx.data(), c.x, c.rows, c.n),
                                   r.dgamma.empty() ? TensorView() : TensorView(r.dgamma.data(), c.param, {c.n}),
                                   r.dbeta.empty() ? TensorView() : TensorView(r.dbeta.data(), c.param, {c.n}), c.options, nullptr, 0);
  EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
  return out;
}

// h = x + residual as the block defines it: added in float32, rounded to x's dtype.
inline TypedData residual_sum(const TypedData& x, const TypedData& residual, DType dtype) {
  std::vector<double> h(x.stored.size());
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = static_cast<double>(static_cast<float>(x.stored[i]) + static_cast<float>(residual.stored[i]));
  return encode(h, dtype);
}

}  // namespace normkit::testing
