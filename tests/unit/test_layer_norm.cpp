// LayerNorm / RMSNorm on the host: against the float64 reference, the reference against finite
// differences, determinism (threads, batch sizes) and argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "layer_norm_check.hpp"
#include "normkit/layer_norm.hpp"
#include "normkit/stats.hpp"
#include "plan/layer_norm_plan.hpp"

namespace normkit::testing {
namespace {

void check_case(const LayerNormCase& c) {
  LayerNormData d = make_layer_norm_data(c);
  const LayerNormResult r = run_layer_norm_host(c, d);
  expect_forward_near_reference(c, d, r);
  expect_backward_near_reference(c, d, r);
}

TEST(HostLayerNorm, MatchesReferenceOnEveryLayoutThreshold) {
  // 1..32: lane groups; 768, 1000, 1024: a warp or more; 4096/4097: the backward's one-read limit in scalar
  // packs; 8192/8193: the backward's in 16-byte packs and the forward's in scalar packs; 12289: odd, read
  // twice; 16385: past the forward's limit.
  for (std::int64_t n : {1, 7, 32, 768, 1000, 1024, 4096, 4097, 8192, 8193, 12289, 16384, 16385, 65536}) {
    for (DType x : {DType::float32, DType::float16, DType::bfloat16}) {
      for (RowNorm kind : {RowNorm::layer_norm, RowNorm::rms_norm}) {
        LayerNormCase c;
        c.rows = n > 4096 ? 3 : 37;  // 37: two partial blocks of rows
        c.n = n;
        c.x = x;
        c.param = (n % 2 == 0) ? x : DType::float32;
        c.options.kind = kind;
        c.center = kind == RowNorm::layer_norm ? 3.0 : 0.5;
        check_case(c);
      }
    }
  }
}

TEST(HostLayerNorm, ConventionOptions) {
  for (DType x : {DType::float32, DType::float16, DType::bfloat16}) {
    LayerNormCase c;
    c.rows = 40;
    c.n = 96;
    c.x = x;
    c.param = x;
    c.options.cast_mode = CastMode::input_dtype;
    check_case(c);
    c.options.kind = RowNorm::rms_norm;
    c.options.gamma_offset = true;
    check_case(c);
    c.gamma = false;
    c.options.gamma_offset = false;
    check_case(c);
    c.options.kind = RowNorm::layer_norm;
    c.beta = false;
    c.options.eps = 1e-3;
    c.options.cast_mode = CastMode::float32;
    check_case(c);
  }
}

TEST(HostLayerNorm, LargeMeanKeepsTheVariance) {
  LayerNormCase c;
  c.rows = 5;
  c.n = 1000;
  c.center = 1e4;
  check_case(c);
  c.n = 16385;  // read twice: the shifted sums
  check_case(c);
}

TEST(HostLayerNorm, EdgeValues) {
  LayerNormCase c;
  c.rows = 3;
  c.n = 8;
  c.beta = false;
  c.gamma = false;
  LayerNormData d = make_layer_norm_data(c);
  float* x = reinterpret_cast<float*>(d.x.data());
  for (int i = 0; i < 8; ++i) x[i] = 2.5f;     // row 0 constant
  x[8 + 3] = NAN;                               // row 1 holds NaN
  c.options.eps = 0.0;
  LayerNormResult r = run_layer_norm_host(c, d, false);
  const float* y = reinterpret_cast<const float*>(r.y.data());
  EXPECT_EQ(r.mean[0], 2.5f);
  EXPECT_TRUE(std::isinf(r.rstd[0]));  // var = eps = 0: rstd Inf, y = 0 * Inf = NaN (as PyTorch)
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_TRUE(std::isnan(r.mean[1]) && std::isnan(y[8]) && std::isnan(y[15]));
  EXPECT_TRUE(std::isfinite(y[16]) && std::isfinite(y[23]));
  c.options.eps = 1e-5;
  r = run_layer_norm_host(c, d, false);
  y = reinterpret_cast<const float*>(r.y.data());
  EXPECT_EQ(y[0], 0.0f);  // a constant row: x̂ = 0
}

// A constant row's mean is its value exactly (shifted by the row's first value), so x̂ = 0 and y = beta,
// also where Σx times 1/n would round (7 x 1.875), and on rows read twice.
TEST(HostLayerNorm, ConstantRowsGiveBeta) {
  for (std::int64_t n : {7, 1000, 16385}) {
    LayerNormCase c;
    c.rows = 2;
    c.n = n;
    c.gamma = true;
    c.beta = true;
    LayerNormData d = make_layer_norm_data(c);
    float* x = reinterpret_cast<float*>(d.x.data());
    for (std::int64_t i = 0; i < 2 * n; ++i) x[i] = 1.875f;
    const LayerNormResult r = run_layer_norm_host(c, d, false);
    const float* y = reinterpret_cast<const float*>(r.y.data());
    const float* beta = reinterpret_cast<const float*>(d.beta.data());
    EXPECT_EQ(r.mean[0], 1.875f) << n;
    for (std::int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], beta[i]) << n << " " << i;
  }
}

TEST(HostLayerNorm, TrailingAxesNormalized) {
  // x [2, 3, 4, 5] over the last two axes: 6 rows of 20.
  LayerNormCase c;
  c.rows = 6;
  c.n = 20;
  LayerNormData d = make_layer_norm_data(c);
  LayerNormResult flat = run_layer_norm_host(c, d, false);
  std::vector<unsigned char> y(d.x.bytes.size());
  std::vector<float> rstd(6), mean(6);
  LayerNormOptions o;
  o.normalized_ndim = 2;
  const TensorView x4(d.x.data(), DType::float32, {2, 3, 4, 5});
  ASSERT_TRUE(layer_norm_forward(x4, TensorView(d.gamma.data(), DType::float32, {4, 5}), TensorView(d.beta.data(), DType::float32, {4, 5}),
                                 TensorView(y.data(), DType::float32, {2, 3, 4, 5}), TensorView(mean.data(), DType::float32, {2, 3, 1, 1}),
                                 TensorView(rstd.data(), DType::float32, {6}), o)
                  .ok());
  EXPECT_TRUE(y == flat.y);
  EXPECT_TRUE(same_bits(rstd.data(), flat.rstd.data(), 24));
}

// The parameter gradients of rows [0, 64) do not change when 32 more rows with dy = 0 follow (partials of
// 32 rows, summed in a fixed order), nor with the host's thread count.
TEST(HostLayerNorm, DeterministicAcrossBatchSizesAndThreads) {
  for (std::int64_t n : {24, 768, 5000}) {
    LayerNormCase c;
    c.rows = 96;
    c.n = n;
    c.x = DType::bfloat16;
    LayerNormData d = make_layer_norm_data(c);
    std::memset(d.dy.bytes.data() + 64 * n * 2, 0, 32 * n * 2);
    const LayerNormResult big = run_layer_norm_host(c, d);
    LayerNormCase small = c;
    small.rows = 64;
    const LayerNormResult part = run_layer_norm_host(small, d);
    EXPECT_TRUE(big.dgamma == part.dgamma) << n;
    EXPECT_TRUE(big.dbeta == part.dbeta) << n;
    set_host_threads(3);
    const LayerNormResult three = run_layer_norm_host(c, d);
    set_host_threads(1);
    const LayerNormResult one = run_layer_norm_host(c, d);
    set_host_threads(0);
    expect_same_bits(big, three, "3 threads");
    expect_same_bits(big, one, "1 thread");
  }
}

// The reference's backward is the gradient of its forward: for L = Σ y * dy, the directional derivative
// along v, by central differences, equals Σ dx * v (and likewise for gamma, beta).
TEST(LayerNormReference, GradientMatchesFiniteDifferences) {
  for (RowNorm kind : {RowNorm::layer_norm, RowNorm::rms_norm}) {
    const std::int64_t rows = 3, n = 17;
    LayerNormOptions o;
    o.kind = kind;
    o.gamma_offset = kind == RowNorm::rms_norm;
    const std::vector<double> x = normal_values(rows * n, 0.3, 1.0, 7), dy = normal_values(rows * n, 0.0, 1.0, 8);
    const std::vector<double> gamma = uniform_values(n, 0.5, 1.5, 9);
    const std::vector<double> beta = kind == RowNorm::layer_norm ? uniform_values(n, -0.5, 0.5, 10) : std::vector<double>{};
    const std::vector<double> v = normal_values(rows * n, 0.0, 1.0, 11), vg = normal_values(n, 0.0, 1.0, 12);
    auto loss = [&](double h, double hg) {
      std::vector<double> xs = x, gs = gamma;
      for (std::size_t i = 0; i < xs.size(); ++i) xs[i] += h * v[i];
      for (std::size_t i = 0; i < gs.size(); ++i) gs[i] += hg * vg[i];
      const LayerNormReference f = layer_norm_reference(xs, rows, n, gs, beta, o, DType::float32);
      double l = 0;
      for (std::size_t i = 0; i < f.y.size(); ++i) l += f.y[i] * dy[i];
      return l;
    };
    const LayerNormGradReference g = layer_norm_grad_reference(dy, x, rows, n, gamma, o, DType::float32);
    const double h = 1e-5;
    double want_x = 0, want_g = 0;
    for (std::size_t i = 0; i < v.size(); ++i) want_x += g.dx[i] * v[i];
    for (std::size_t i = 0; i < vg.size(); ++i) want_g += g.dgamma[i] * vg[i];
    EXPECT_NEAR((loss(h, 0) - loss(-h, 0)) / (2 * h), want_x, 1e-6 * (1 + std::fabs(want_x)));
    EXPECT_NEAR((loss(0, h) - loss(0, -h)) / (2 * h), want_g, 1e-6 * (1 + std::fabs(want_g)));
  }
}

TEST(HostLayerNorm, ArgumentErrors) {
  std::vector<float> x(24), y(24), g(6), g5(5), stat(4), dx(24);
  const TensorView xv(x.data(), DType::float32, {4, 6}), yv(y.data(), DType::float32, {4, 6});
  const TensorView gv(g.data(), DType::float32, {6}), sv(stat.data(), DType::float32, {4});
  LayerNormOptions o;
  auto message = [](const Status& s) { return s.ok() ? std::string("ok") : s.message(); };
  Status s = layer_norm_forward(xv, TensorView(g5.data(), DType::float32, {5}), TensorView(), yv, TensorView(), TensorView(), o);
  EXPECT_EQ(s.code(), StatusCode::shape_mismatch);
  EXPECT_NE(message(s).find("gamma.shape"), std::string::npos) << message(s);
  o.eps = -1;
  s = layer_norm_forward(xv, gv, TensorView(), yv, TensorView(), TensorView(), o);
  EXPECT_NE(message(s).find("options.eps"), std::string::npos) << message(s);
  o = LayerNormOptions{};
  o.normalized_ndim = 3;
  s = layer_norm_forward(xv, gv, TensorView(), yv, TensorView(), TensorView(), o);
  EXPECT_NE(message(s).find("normalized_ndim"), std::string::npos) << message(s);
  o = LayerNormOptions{};
  s = layer_norm_forward(xv, gv, TensorView(), TensorView(y.data(), DType::float16, {4, 6}), TensorView(), TensorView(), o);
  EXPECT_EQ(s.code(), StatusCode::unsupported_dtype);
  s = layer_norm_forward(xv, gv, TensorView(), TensorView(x.data() + 1, DType::float32, {4, 6}), TensorView(), TensorView(), o);
  EXPECT_NE(message(s).find("overlapping"), std::string::npos) << message(s);
  s = layer_norm_forward(xv, gv, TensorView(), yv, TensorView(stat.data(), DType::float32, {3}), TensorView(), o);
  EXPECT_NE(message(s).find("mean.shape"), std::string::npos) << message(s);
  s = layer_norm_forward(TensorView(x.data(), DType::float64, {4, 6}), gv, TensorView(), yv, TensorView(), TensorView(), o);
  EXPECT_NE(message(s).find("x.dtype"), std::string::npos) << message(s);
  s = layer_norm_forward(TensorView(x.data(), DType::float32, {4, 0}), TensorView(), TensorView(), TensorView(y.data(), DType::float32, {4, 0}),
                         TensorView(), TensorView(), o);
  EXPECT_NE(message(s).find("normalized shape"), std::string::npos) << message(s);
  o.kind = RowNorm::rms_norm;
  s = layer_norm_forward(xv, gv, gv, yv, TensorView(), TensorView(), o);
  EXPECT_NE(message(s).find("beta"), std::string::npos) << message(s);
  // Backward
  o = LayerNormOptions{};
  const TensorView dxv(dx.data(), DType::float32, {4, 6});
  s = layer_norm_backward(yv, xv, TensorView(), sv, gv, dxv, TensorView(), TensorView(), o, nullptr, 0);
  EXPECT_EQ(s.code(), StatusCode::null_pointer);
  EXPECT_NE(message(s).find("mean"), std::string::npos) << message(s);
  std::vector<float> dg(6);
  s = layer_norm_backward(yv, xv, sv, TensorView(stat.data(), DType::float32, {4}), TensorView(), dxv,
                          TensorView(dg.data(), DType::float32, {6}), TensorView(), o, nullptr, 0);
  EXPECT_NE(message(s).find("dgamma"), std::string::npos) << message(s);
  s = layer_norm_backward(yv, xv, sv, sv, gv, TensorView(y.data(), DType::float32, {4, 6}), TensorView(), TensorView(), o, nullptr, 0);
  EXPECT_NE(message(s).find("dx.data"), std::string::npos) << message(s);  // dx overlaps dy
  o.kind = RowNorm::rms_norm;
  s = layer_norm_backward(yv, xv, TensorView(), sv, gv, dxv, TensorView(), TensorView(dg.data(), DType::float32, {6}), o, nullptr, 0);
  EXPECT_NE(message(s).find("dbeta"), std::string::npos) << message(s);
  s = layer_norm_backward(yv, xv, sv, sv, gv, dxv, TensorView(), TensorView(), o, nullptr, 0);
  EXPECT_NE(message(s).find("'mean'"), std::string::npos) << message(s);
}

TEST(HostLayerNorm, NoRowsGiveZeroParameterGradients) {
  std::vector<float> g(5, 1.0f), dg(5, 7.0f), db(5, 7.0f);
  float dummy = 0;
  const TensorView empty(&dummy, DType::float32, {0, 5});
  const Status s = layer_norm_backward(empty, empty, TensorView(&dummy, DType::float32, {0}), TensorView(&dummy, DType::float32, {0}),
                                       TensorView(g.data(), DType::float32, {5}), TensorView(), TensorView(dg.data(), DType::float32, {5}),
                                       TensorView(db.data(), DType::float32, {5}), LayerNormOptions{}, nullptr, 0);
  ASSERT_TRUE(s.ok()) << s.message();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(dg[i], 0.0f);
  // (no rows: the saved statistics may be absent)
  dg.assign(5, 7.0f);
  const Status absent = layer_norm_backward(empty, empty, TensorView(), TensorView(), TensorView(g.data(), DType::float32, {5}), TensorView(),
                                            TensorView(dg.data(), DType::float32, {5}), TensorView(), LayerNormOptions{}, nullptr, 0);
  ASSERT_TRUE(absent.ok()) << absent.message();
  EXPECT_EQ(dg[0], 0.0f);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(db[i], 0.0f);
}

TEST(LayerNormPlan, LayoutsDependOnNAndDtypeOnly) {
  using plan::row_norm_backward_layout;
  using plan::row_norm_forward_layout;
  EXPECT_EQ(row_norm_forward_layout(768, DType::float16).vec, 8);
  EXPECT_EQ(row_norm_forward_layout(768, DType::float16).threads, 32);  // 96 packs, 4 a thread (32 values)
  EXPECT_EQ(row_norm_forward_layout(1000, DType::float32).vec, 4);
  EXPECT_EQ(row_norm_forward_layout(12289, DType::bfloat16).vec, 1);
  EXPECT_FALSE(row_norm_forward_layout(12289, DType::bfloat16).one_read);  // scalar packs: 16 values a thread
  EXPECT_TRUE(row_norm_forward_layout(8191, DType::bfloat16).one_read);
  EXPECT_EQ(row_norm_forward_layout(8191, DType::bfloat16).threads, 512);
  EXPECT_TRUE(row_norm_forward_layout(8192, DType::float32).one_read);
  EXPECT_EQ(row_norm_forward_layout(8192, DType::float32).threads, 256);
  EXPECT_TRUE(row_norm_forward_layout(16384, DType::float16).one_read);
  EXPECT_FALSE(row_norm_forward_layout(16385, DType::float32).one_read);
  EXPECT_FALSE(row_norm_forward_layout(16392, DType::float16).one_read);
  EXPECT_EQ(row_norm_forward_layout(1, DType::float32).threads, 1);
  EXPECT_TRUE(row_norm_backward_layout(8192, DType::float16).one_read);
  EXPECT_FALSE(row_norm_backward_layout(8200, DType::float16).one_read);
  EXPECT_FALSE(row_norm_backward_layout(8196, DType::float32).one_read);
  EXPECT_FALSE(row_norm_backward_layout(4097, DType::float32).one_read);  // scalar packs: 8 values a thread
  EXPECT_EQ(row_norm_backward_layout(64, DType::float32).groups, 32);  // 8 threads a row: 32 groups
  EXPECT_EQ(row_norm_backward_layout(4096, DType::float32).groups, 1);
  // The launch shape follows the SM count; the layout does not.
  const auto a = plan::choose_row_norm_forward_plan(100000, 768, DType::float16, true, 132);
  const auto b = plan::choose_row_norm_forward_plan(100000, 768, DType::float16, false, 8);
  EXPECT_EQ(a.layout.threads, b.layout.threads);
  EXPECT_NE(a.grid, b.grid);
  EXPECT_FALSE(b.vector_access);
  // Shared memory: the forward's w and beta (n floats each); the backward's w and every thread's sums.
  EXPECT_EQ(a.shared_bytes, 2u * 768 * 4);
  const auto bwd = plan::choose_row_norm_backward_plan(4096, 768, DType::float16, true, 132);
  EXPECT_EQ(bwd.shared_bytes, (768u + static_cast<std::size_t>(bwd.block_threads) * plan::row_norm_backward_accumulator_floats(8)) * 4);
  EXPECT_EQ(plan::choose_row_norm_backward_plan(4096, 16392, DType::float16, true, 132).shared_bytes, 0u);  // read twice
  EXPECT_EQ(plan::row_norm_partials(33), 2);
  EXPECT_EQ(plan::row_norm_backward_workspace_bytes(33, 10), 2u * 2 * 10 * 4);
}

}  // namespace
}  // namespace normkit::testing

namespace normkit::testing {
namespace {

// The fused pre-norm block: h = x + residual is the float32 sum rounded to x's dtype (bit for bit), y, mean
// and rstd are those of layer_norm_forward on h (bit for bit), and the backward's dx is the plain backward's
// on h plus residual_grad (float32: bit for bit; 16-bit: one rounding apart), dgamma/dbeta the plain ones.
TEST(HostLayerNorm, FusedResidualAddIsTheBlock) {
  for (std::int64_t n : {7, 768, 1000, 16392}) {
    for (DType x : {DType::float32, DType::float16, DType::bfloat16}) {
      for (RowNorm kind : {RowNorm::layer_norm, RowNorm::rms_norm}) {
        LayerNormCase c;
        c.rows = n > 4096 ? 2 : 9;
        c.n = n;
        c.x = x;
        c.param = n % 2 == 0 ? x : DType::float32;
        c.options.kind = kind;
        c.center = 0.75;
        LayerNormData d = make_layer_norm_data(c);
        const std::size_t numel = static_cast<std::size_t>(c.rows * c.n);
        TypedData residual = encode(normal_values(numel, -0.5, 1.0, 17), x), residual_grad = encode(normal_values(numel, 0.0, 1.0, 18), x);
        const ResidualResult fused = run_layer_norm_residual_host(c, d, residual, residual_grad);
        const TypedData h = residual_sum(d.x, residual, x);
        EXPECT_TRUE(fused.h == h.bytes) << c.name() << ": h";
        LayerNormData on_h = d;
        on_h.x = h;
        const LayerNormResult plain = run_layer_norm_host(c, on_h);
        EXPECT_TRUE(fused.r.y == plain.y) << c.name() << ": y";
        EXPECT_EQ(fused.r.mean, plain.mean) << c.name();
        EXPECT_EQ(fused.r.rstd, plain.rstd) << c.name();
        EXPECT_TRUE(fused.r.dgamma == plain.dgamma && fused.r.dbeta == plain.dbeta) << c.name() << ": dgamma/dbeta";
        const std::vector<double> dx = decode(fused.r.dx, x), dx_plain = decode(plain.dx, x);
        for (std::size_t i = 0; i < dx.size(); ++i) {
          const double want = static_cast<double>(static_cast<float>(dx_plain[i]) + static_cast<float>(residual_grad.stored[i]));
          if (x == DType::float32) {
            ASSERT_EQ(dx[i], want) << c.name() << ": dx[" << i << "]";
          } else {
            ASSERT_NEAR(dx[i], want, 2 * output_rounding(x) * (std::fabs(want) + std::fabs(dx_plain[i])) + output_rounding_abs(x))
                << c.name() << ": dx[" << i << "]";
          }
        }
      }
    }
  }
}

TEST(HostLayerNorm, FusedResidualArgumentErrors) {
  std::vector<float> x(12), r(12), h(12), y(12), dx(12), rstd(3);
  const auto v = [](std::vector<float>& b) { return TensorView(b.data(), DType::float32, {3, 4}); };
  LayerNormOptions o;
  o.kind = RowNorm::rms_norm;
  auto message = [](const Status& s) { return s.ok() ? std::string("ok") : s.message(); };
  Status s = layer_norm_forward_residual(v(x), TensorView(), v(h), {}, {}, v(y), {}, {}, o);
  EXPECT_EQ(s.code(), StatusCode::null_pointer);
  EXPECT_NE(message(s).find("residual"), std::string::npos) << message(s);
  s = layer_norm_forward_residual(v(x), v(r), TensorView(), {}, {}, v(y), {}, {}, o);
  EXPECT_NE(message(s).find("residual_out"), std::string::npos) << message(s);
  s = layer_norm_forward_residual(v(x), TensorView(r.data(), DType::float16, {3, 4}), v(h), {}, {}, v(y), {}, {}, o);
  EXPECT_NE(message(s).find("residual.dtype"), std::string::npos) << message(s);
  s = layer_norm_forward_residual(v(x), v(r), v(r), {}, {}, v(y), {}, {}, o);  // the stream updated in place: not allowed
  EXPECT_NE(message(s).find("residual_out.data"), std::string::npos) << message(s);
  s = layer_norm_forward_residual(v(x), v(r), TensorView(h.data(), DType::float32, {4, 3}), {}, {}, v(y), {}, {}, o);
  EXPECT_NE(message(s).find("residual_out.shape"), std::string::npos) << message(s);
  const TensorView rv(rstd.data(), DType::float32, {3});
  s = layer_norm_backward_residual(v(y), v(h), v(r), {}, rv, {}, TensorView(), {}, {}, o, nullptr, 0);
  EXPECT_EQ(s.code(), StatusCode::null_pointer);
  EXPECT_NE(message(s).find("dx"), std::string::npos) << message(s);
  s = layer_norm_backward_residual(v(y), v(h), v(r), {}, rv, {}, v(r), {}, {}, o, nullptr, 0);  // dx over residual_grad
  EXPECT_NE(message(s).find("dx.data"), std::string::npos) << message(s);
  EXPECT_TRUE(layer_norm_backward_residual(v(y), v(h), v(r), {}, rv, {}, v(dx), {}, {}, o, nullptr, 0).ok());
}

}  // namespace
}  // namespace normkit::testing
