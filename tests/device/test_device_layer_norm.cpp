// LayerNorm / RMSNorm kernels on a GPU or under ../shared/ptxemu: the same bits as the host engine (which
// sums in the kernels' order) on every layout, against the float64 reference, with forced scalar loads and a
// one-block grid, deterministic across batch sizes, and captured in a CUDA graph.
#include <cstring>
#include <utility>
#include <vector>

#include "device_support.hpp"
#include "layer_norm_check.hpp"
#include "normkit/layer_norm.hpp"
#include "plan/layer_norm_plan.hpp"

using namespace normkit;
using namespace normkit::testing;

namespace {

TensorView device_view(void* p, DType dtype, std::initializer_list<std::int64_t> shape) {
  return p ? TensorView(p, dtype, shape, MemorySpace::device) : TensorView();
}

// Forward then backward on the device (optionally captured in a graph and replayed), results copied back.
LayerNormResult run_device(const LayerNormCase& c, LayerNormData& d, bool graph = false) {
  const bool centered = c.options.kind == RowNorm::layer_norm;
  LayerNormResult r;
  r.y.resize(d.x.bytes.size());
  r.dx.resize(d.x.bytes.size());
  r.mean.resize(centered ? c.rows : 0);
  r.rstd.resize(c.rows);
  if (c.gamma) r.dgamma.resize(static_cast<std::size_t>(c.n) * dtype_size(c.param));
  if (centered) r.dbeta.resize(static_cast<std::size_t>(c.n) * dtype_size(c.param));
  DeviceCopy x = to_device(d.x.data(), d.x.bytes.size()), dy = to_device(d.dy.data(), d.dy.bytes.size());
  DeviceCopy gamma = to_device(d.gamma.data(), d.gamma.bytes.size()), beta = to_device(d.beta.data(), d.beta.bytes.size());
  DeviceCopy y = to_device(r.y.data(), r.y.size()), dx = to_device(r.dx.data(), r.dx.size());
  DeviceCopy mean = to_device(r.mean.data(), r.mean.size() * 4), rstd = to_device(r.rstd.data(), r.rstd.size() * 4);
  DeviceCopy dgamma = to_device(r.dgamma.data(), r.dgamma.size()), dbeta = to_device(r.dbeta.data(), r.dbeta.size());
  const TensorView xv = device_view(x.ptr(), c.x, {c.rows, c.n});
  std::size_t workspace_bytes = 0;
  EXPECT_TRUE(layer_norm_backward_workspace_size(xv, c.options, &workspace_bytes).ok());
  DeviceBytes workspace(workspace_bytes);
  const TensorView meanv = device_view(mean.ptr(), DType::float32, {c.rows}), rstdv = device_view(rstd.ptr(), DType::float32, {c.rows});
  run_on_new_stream(graph ? 2 : 0, [&](cudaStream_t stream) {
    Status s = layer_norm_forward(xv, device_view(gamma.ptr(), c.param, {c.n}), device_view(beta.ptr(), c.param, {c.n}),
                                  device_view(y.ptr(), c.x, {c.rows, c.n}), meanv, rstdv, c.options, stream);
    EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
    s = layer_norm_backward(device_view(dy.ptr(), c.x, {c.rows, c.n}), xv, meanv, rstdv, device_view(gamma.ptr(), c.param, {c.n}),
                            device_view(dx.ptr(), c.x, {c.rows, c.n}), device_view(dgamma.ptr(), c.param, {c.n}),
                            device_view(dbeta.ptr(), c.param, {c.n}), c.options, workspace.ptr, workspace_bytes, stream);
    EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
  });
  from_device(r.y, y);
  from_device(r.dx, dx);
  from_device(r.mean, mean);
  from_device(r.rstd, rstd);
  from_device(r.dgamma, dgamma);
  from_device(r.dbeta, dbeta);
  return r;
}

LayerNormCase make_case(std::int64_t rows, std::int64_t n, DType x, DType param, RowNorm kind) {
  LayerNormCase c;
  c.rows = rows;
  c.n = n;
  c.x = x;
  c.param = param;
  c.options.kind = kind;
  c.center = 1.5;
  return c;
}

void expect_device_equals_host(const LayerNormCase& c) {
  LayerNormData d = make_layer_norm_data(c);
  const LayerNormResult host = run_layer_norm_host(c, d);
  const LayerNormResult device = run_device(c, d);
  expect_same_bits(host, device, c.name());
  expect_forward_near_reference(c, d, device);
  expect_backward_near_reference(c, d, device);
}

// Every layout: lane groups (n 1..32), block-wide groups, the backward's one-read limit in scalar packs
// (4096/4097) and in 16-byte packs (8192/8200), the forward's (16384), odd rows; each dtype pair and both kinds.
TEST(DeviceLayerNorm, SameBitsAsHostOnEveryLayout) {
  REQUIRE_DEVICE();
  for (std::int64_t n : {1, 7, 30, 32, 200, 1000, 4097, 8193}) {
    for (DType x : {DType::float32, DType::float16, DType::bfloat16}) {
      const DType param = n % 2 == 0 ? x : DType::float32;
      for (RowNorm kind : {RowNorm::layer_norm, RowNorm::rms_norm}) {
        expect_device_equals_host(make_case(n >= 4096 ? 2 : 35, n, x, param, kind));
      }
    }
  }
  expect_device_equals_host(make_case(3, 4096, DType::bfloat16, DType::bfloat16, RowNorm::layer_norm));
  expect_device_equals_host(make_case(2, 8192, DType::float16, DType::float32, RowNorm::layer_norm));
  // Rows read twice: the backward in 16-byte packs past 8192, the forward past 16384.
  expect_device_equals_host(make_case(2, 8200, DType::bfloat16, DType::bfloat16, RowNorm::rms_norm));
  expect_device_equals_host(make_case(1, 16392, DType::float16, DType::float16, RowNorm::layer_norm));
  expect_device_equals_host(make_case(1, 16385, DType::float32, DType::float32, RowNorm::layer_norm));
}

// Rows read twice (past the one-read limits: 16392 in 16-byte packs, 8193 in scalar packs) on every dtype
// pair, so that every instantiation of the long-row kernels runs.
TEST(DeviceLayerNorm, LongRowsOnEveryDtypePair) {
  REQUIRE_DEVICE();
  const std::pair<DType, DType> pairs[] = {{DType::float32, DType::float32},  {DType::float16, DType::float32},
                                           {DType::bfloat16, DType::float32}, {DType::float16, DType::float16},
                                           {DType::bfloat16, DType::bfloat16}};
  for (const auto& [x, param] : pairs) {
    for (std::int64_t n : {16392, 8193}) expect_device_equals_host(make_case(1, n, x, param, RowNorm::layer_norm));
  }
}

TEST(DeviceLayerNorm, ConventionOptions) {
  REQUIRE_DEVICE();
  for (DType x : {DType::float16, DType::bfloat16}) {
    LayerNormCase c = make_case(33, 64, x, x, RowNorm::rms_norm);
    c.options.cast_mode = CastMode::input_dtype;
    c.options.gamma_offset = true;
    expect_device_equals_host(c);
    c.options.kind = RowNorm::layer_norm;
    c.options.gamma_offset = false;
    c.beta = false;
    expect_device_equals_host(c);
    c.gamma = false;
    expect_device_equals_host(c);
  }
}

// Scalar loads (misaligned callers) and a one-block grid (the grid-stride loops) keep the layout: same bits.
TEST(DeviceLayerNorm, ForcedLaunchShapesKeepTheBits) {
  REQUIRE_DEVICE();
  for (std::int64_t n : {24, 520, 4100}) {
    LayerNormCase c = make_case(70, n, DType::bfloat16, DType::float32, RowNorm::layer_norm);
    if (n > 4096) c.rows = 3;
    LayerNormData d = make_layer_norm_data(c);
    const LayerNormResult plain = run_device(c, d);
    plan::RowNormOverride force;
    force.force_scalar = true;
    plan::set_row_norm_override(&force);
    const LayerNormResult scalar = run_device(c, d);
    force.force_scalar = false;
    force.max_blocks = 1;
    const LayerNormResult one_block = run_device(c, d);
    plan::set_row_norm_override(nullptr);
    expect_same_bits(plain, scalar, c.name() + " scalar");
    expect_same_bits(plain, one_block, c.name() + " one block");
  }
}

// dgamma/dbeta of rows [0, 64) equal those of a batch of 96 whose last 32 rows have dy = 0.
TEST(DeviceLayerNorm, ParameterGradientsIndependentOfBatchSize) {
  REQUIRE_DEVICE();
  LayerNormCase c = make_case(96, 40, DType::float16, DType::float32, RowNorm::layer_norm);
  LayerNormData d = make_layer_norm_data(c);
  std::memset(d.dy.bytes.data() + 64 * 40 * 2, 0, 32 * 40 * 2);
  const LayerNormResult big = run_device(c, d);
  c.rows = 64;
  const LayerNormResult small = run_device(c, d);
  EXPECT_TRUE(big.dgamma == small.dgamma);
  EXPECT_TRUE(big.dbeta == small.dbeta);
}

// A training step (forward + backward) captured in a CUDA graph and replayed gives the same bits.
TEST(DeviceLayerNorm, CapturedInAGraph) {
  REQUIRE_DEVICE();
  LayerNormCase c = make_case(40, 96, DType::bfloat16, DType::bfloat16, RowNorm::layer_norm);
  LayerNormData d = make_layer_norm_data(c);
  expect_same_bits(run_device(c, d), run_device(c, d, true), "graph");
}

// The fused residual block on the device against the host engine, bit for bit (h, y, statistics, dx with the
// residual gradient, dgamma/dbeta): rows read once and twice (forward past 16384, backward past 8192), scalar
// packs (n odd), both kinds.
ResidualResult run_residual_device(const LayerNormCase& c, LayerNormData& d, TypedData& residual, TypedData& residual_grad) {
  const bool centered = c.options.kind == RowNorm::layer_norm;
  ResidualResult out;
  LayerNormResult& r = out.r;
  r.y.resize(d.x.bytes.size());
  r.dx.resize(d.x.bytes.size());
  out.h.resize(d.x.bytes.size());
  r.mean.resize(centered ? c.rows : 0);
  r.rstd.resize(c.rows);
  if (c.gamma) r.dgamma.resize(static_cast<std::size_t>(c.n) * dtype_size(c.param));
  if (centered) r.dbeta.resize(static_cast<std::size_t>(c.n) * dtype_size(c.param));
  DeviceCopy x = to_device(d.x.data(), d.x.bytes.size()), dy = to_device(d.dy.data(), d.dy.bytes.size());
  DeviceCopy res = to_device(residual.data(), residual.bytes.size()), dres = to_device(residual_grad.data(), residual_grad.bytes.size());
  DeviceCopy gamma = to_device(d.gamma.data(), d.gamma.bytes.size()), beta = to_device(d.beta.data(), d.beta.bytes.size());
  DeviceCopy y = to_device(r.y.data(), r.y.size()), dx = to_device(r.dx.data(), r.dx.size()), h = to_device(out.h.data(), out.h.size());
  DeviceCopy mean = to_device(r.mean.data(), r.mean.size() * 4), rstd = to_device(r.rstd.data(), r.rstd.size() * 4);
  DeviceCopy dgamma = to_device(r.dgamma.data(), r.dgamma.size()), dbeta = to_device(r.dbeta.data(), r.dbeta.size());
  const auto rows = [&](const DeviceCopy& p) { return device_view(p.ptr(), c.x, {c.rows, c.n}); };
  std::size_t workspace_bytes = 0;
  EXPECT_TRUE(layer_norm_backward_workspace_size(rows(x), c.options, &workspace_bytes).ok());
  DeviceBytes workspace(workspace_bytes);
  const TensorView meanv = device_view(mean.ptr(), DType::float32, {c.rows}), rstdv = device_view(rstd.ptr(), DType::float32, {c.rows});
  run_on_new_stream(0, [&](cudaStream_t stream) {
    Status s = layer_norm_forward_residual(rows(x), rows(res), rows(h), device_view(gamma.ptr(), c.param, {c.n}),
                                           device_view(beta.ptr(), c.param, {c.n}), rows(y), meanv, rstdv, c.options, stream);
    EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
    s = layer_norm_backward_residual(rows(dy), rows(h), rows(dres), meanv, rstdv, device_view(gamma.ptr(), c.param, {c.n}), rows(dx),
                                     device_view(dgamma.ptr(), c.param, {c.n}), device_view(dbeta.ptr(), c.param, {c.n}), c.options,
                                     workspace.ptr, workspace_bytes, stream);
    EXPECT_TRUE(s.ok()) << c.name() << ": " << s.message();
  });
  from_device(out.h, h);
  from_device(r.y, y);
  from_device(r.dx, dx);
  from_device(r.mean, mean);
  from_device(r.rstd, rstd);
  from_device(r.dgamma, dgamma);
  from_device(r.dbeta, dbeta);
  return out;
}

TEST(DeviceLayerNorm, FusedResidualSameBitsAsHost) {
  REQUIRE_DEVICE();
  // (every instantiation: each dtype pair, 16-byte and scalar packs, one read and two)
  for (std::int64_t n : {7, 1000, 4097, 8193, 8200, 16392}) {
    for (DType x : {DType::float32, DType::float16, DType::bfloat16}) {
      for (int k = 0; k < 2; ++k) {
        const DType param = k == 0 ? x : DType::float32;
        if (k == 1 && x == DType::float32) continue;
        const RowNorm kind = (n + k) % 2 == 0 ? RowNorm::layer_norm : RowNorm::rms_norm;
        LayerNormCase c = make_case(n > 4096 ? 2 : 19, n, x, param, kind);
        LayerNormData d = make_layer_norm_data(c);
        const std::size_t numel = static_cast<std::size_t>(c.rows * c.n);
        TypedData residual = encode(normal_values(numel, -0.5, 1.0, 27), x), residual_grad = encode(normal_values(numel, 0.0, 1.0, 28), x);
        const ResidualResult host = run_layer_norm_residual_host(c, d, residual, residual_grad);
        const ResidualResult device = run_residual_device(c, d, residual, residual_grad);
        EXPECT_TRUE(host.h == device.h) << c.name() << ": h";
        expect_same_bits(host.r, device.r, c.name() + " residual");
      }
    }
  }
}

TEST(DeviceLayerNorm, WorkspaceTooSmallIsAnError) {
  REQUIRE_DEVICE();
  DeviceBytes x(64 * 4), dx(64 * 4), g(8 * 4), dg(8 * 4), stat(8 * 4), ws(16);
  const TensorView xv(x.ptr, DType::float32, {8, 8}, MemorySpace::device);
  const TensorView sv(stat.ptr, DType::float32, {8}, MemorySpace::device);
  const Status s = layer_norm_backward(xv, xv, sv, sv, TensorView(g.ptr, DType::float32, {8}, MemorySpace::device),
                                       TensorView(dx.ptr, DType::float32, {8, 8}, MemorySpace::device),
                                       TensorView(dg.ptr, DType::float32, {8}, MemorySpace::device), TensorView(), LayerNormOptions{},
                                       ws.ptr, 16);
  EXPECT_EQ(s.code(), StatusCode::workspace_too_small);
}

}  // namespace
