// Transform kernels against the independent reference, on a GPU or under ../shared/ptxemu: every input x
// output dtype pair on every walk (rows, columns, folded columns, generic), forced scalar and generic
// plans, misaligned pointers, Lp normalization and the device Normalizer (adapt, inverse, save/load).
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "device_support.hpp"
#include "normkit/normalize.hpp"
#include "plan/apply_plan.hpp"
#include "reference_transform.hpp"
#include "sklearn_rules.hpp"
#include "stats_check.hpp"
#include "transform_check.hpp"
#include "test_data.hpp"

using namespace normkit;
using normkit::testing::Case;
using normkit::testing::numel;
using normkit::testing::decode;
using normkit::testing::expect_close;

namespace {

// Device Normalizer: adapt on `values`, transform into `out` (input offset by in_shift elements, output
// by out_shift), compare with the reference; then inverse-transform back.
void check_device(const Case& c, DType in, DType out, const std::vector<double>& values, NormalizerOptions o, int in_shift,
                  int out_shift, const std::string& label) {
  o.axes = c.axes;
  o.fitted_dtype = in;  // as adapt sets it
  auto data = normkit::testing::encode(values, in);
  const std::size_t n = data.stored.size();
  DeviceBytes d_in(data.bytes.size() + 64), d_out(n * dtype_size(out) + 64), d_back(n * dtype_size(in == DType::uint8 ? DType::float32 : in) + 64);
  unsigned char* in_ptr = d_in.as() + in_shift * dtype_size(in);
  unsigned char* out_ptr = d_out.as() + out_shift * dtype_size(out);
  ASSERT_EQ(cudaMemcpy(in_ptr, data.bytes.data(), data.bytes.size(), cudaMemcpyHostToDevice), cudaSuccess);
  const int nd = static_cast<int>(c.shape.size());
  TensorView input(in_ptr, in, c.shape.data(), nd, MemorySpace::device);
  TensorView output(out_ptr, out, c.shape.data(), nd, MemorySpace::device);
  Normalizer normalizer;
  ASSERT_TRUE(normalizer.init(o, MemorySpace::device).ok());
  const Status a = normalizer.adapt(input);
  ASSERT_TRUE(a.ok()) << a.message();
  const Status t = normalizer.transform(input, output);
  ASSERT_TRUE(t.ok()) << t.message();
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<unsigned char> result(n * dtype_size(out));
  CUDA_OK(cudaMemcpy(result.data(), out_ptr, result.size(), cudaMemcpyDeviceToHost));
  const auto expected = normkit::testing::reference_transform(data.stored, c.shape,
                                                              normkit::testing::reduced_mask(nd, c.axes), o);
  const std::string what = c.name + " " + method_name(o.method) + " " + dtype_name(in) + "->" + dtype_name(out) + " " + label;
  expect_close(decode(result, out), expected, out, what);
}

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {{37, 8}, ReduceAxes::of({0}), "per-feature 8 (columns, vector)"},
      {{36, 3}, ReduceAxes::of({0}), "per-feature 3 (columns, folded by 4)"},
      {{2, 256, 3}, ReduceAxes::of({0, 1}), "NHWC 3 channels (columns, warp-wide fold)"},
      {{200, 128}, ReduceAxes::of({0}), "per-feature 128, 200 rows (columns, row batches and remainder)"},
      {{2, 8192, 3}, ReduceAxes::of({0, 1}), "NHWC 3 channels, 8192 pixels (folded row batches)"},
      {{2, 8, 3}, ReduceAxes::of({1}), "batched columns (outer slices)"},
      {{35, 3}, ReduceAxes::of({0}), "per-feature 3, 35 rows (no fold: generic)"},
      {{6, 70}, ReduceAxes::of({1}), "per-sample 70 (rows)"},
      {{300, 16}, ReduceAxes::of({1}), "per-sample 16 (rows, lane groups of 2-4)"},
      {{70, 17}, ReduceAxes::of({1}), "per-sample 17 (rows, groups, each row its own head and tail)"},
      {{90, 64}, ReduceAxes::of({1}), "per-sample 64 (rows, groups of 8-32)"},
      {{45, 5}, ReduceAxes::of({1}), "per-sample 5 (rows, scalar groups of 8)"},
      {{260, 2}, ReduceAxes::of({1}), "per-sample 2 (rows, scalar groups of 2)"},
      {{2, 1100}, ReduceAxes::of({1}), "per-sample 1100 (block rows)"},
      {{3, 4, 5, 7}, ReduceAxes::of({0, 2, 3}), "NCHW per-channel (rows; float32: spans)"},
      {{24, 8, 7, 7}, ReduceAxes::of({0, 2, 3}), "NCHW 7 x 7 per-channel (spans of one element size: tiles of 40 (16-bit) or 20 rows, a partial last one, two trips on one block)"},
      {{48, 49}, ReduceAxes::of({1}), "per-sample 49 (spans)"},
      {{3, 4, 5, 6}, ReduceAxes::of({0, 2}), "axes 0,2 (columns in row blocks, scalar: the generic walk)"},
      {{3, 5, 9, 8}, ReduceAxes::of({0, 2}), "axes 0,2 (columns in row blocks, vector)"},
      {{2, 3, 8, 6}, ReduceAxes::of({0, 2}), "axes 0,2 (columns in row blocks, folded)"},
      {{3, 2, 4, 40}, ReduceAxes::of({1, 3}), "axes 1,3 (rows repeating their kept index)"},
      {{2, 3, 2, 3, 4}, ReduceAxes::of({1, 3}), "alternating 5-d (generic)"},
      {{257}, ReduceAxes::every(), "global"},
  };
  return all;
}

std::vector<double> values_for(DType in, std::int64_t n, unsigned seed) {
  return in == DType::uint8 ? normkit::testing::uniform_values(static_cast<std::size_t>(n), 0, 255, seed)
                            : normkit::testing::uniform_values(static_cast<std::size_t>(n), -4, 6, seed);
}

class DeviceTransforms : public ::testing::TestWithParam<DType> {};

struct ScopedApplyOverride {
  explicit ScopedApplyOverride(const plan::ApplyOverride& o) : value(o) { plan::set_apply_override(&value); }
  ~ScopedApplyOverride() { plan::set_apply_override(nullptr); }
  plan::ApplyOverride value;
};

}  // namespace

TEST_P(DeviceTransforms, EveryOutputDtypeEveryWalk) {
  REQUIRE_DEVICE();
  const DType in = GetParam();
  for (DType out : {DType::float32, DType::float64, DType::float16, DType::bfloat16}) {
    unsigned seed = 1;
    for (const Case& c : cases()) {
      check_device(c, in, out, values_for(in, numel(c.shape), seed++), {}, 0, 0, "aligned");
    }
  }
}

TEST_P(DeviceTransforms, MisalignedForcedScalarAndGeneric) {
  REQUIRE_DEVICE();
  const DType in = GetParam();
  const DType out = in == DType::uint8 || in == DType::float64 ? DType::float32 : in;
  for (int variant = 0; variant < 3; ++variant) {
    plan::ApplyOverride o;
    o.force_scalar = variant == 1;
    o.force_generic = variant == 2;
    ScopedApplyOverride scoped(o);
    for (const Case& c : cases()) {
      for (auto [in_shift, out_shift] : {std::pair<int, int>{1, 1}, {1, 0}, {0, 3}}) {
        check_device(c, in, out, values_for(in, numel(c.shape), 5), {}, in_shift, out_shift,
                     "variant " + std::to_string(variant) + " shifts " + std::to_string(in_shift) + "/" + std::to_string(out_shift));
      }
    }
  }
}

// One or three blocks: every walk's grid-stride loop takes several trips (float32 short rows: two rows a
// trip, an odd one last), which full grids on these small shapes never do.
TEST_P(DeviceTransforms, SmallGridsWalkTheGridStride) {
  REQUIRE_DEVICE();
  const DType in = GetParam();
  for (std::int64_t blocks : {1, 3}) {
    plan::ApplyOverride o;
    o.max_blocks = blocks;
    ScopedApplyOverride scoped(o);
    for (DType out : {DType::float32, DType::float16, DType::bfloat16}) {
      for (const Case& c : cases()) {
        check_device(c, in, out, values_for(in, numel(c.shape), 11), {}, 0, 0, std::to_string(blocks) + " blocks");
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, DeviceTransforms,
                         ::testing::Values(DType::float32, DType::float64, DType::float16, DType::bfloat16, DType::uint8),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(DeviceTransformMethods, EveryMethodMatchesReference) {
  REQUIRE_DEVICE();
  std::vector<NormalizerOptions> variants(8);
  variants[1].zero_variance = ZeroVariance::keras;
  variants[2].method = Method::minmax;
  variants[2].range_min = -1;
  variants[2].range_max = 2;
  variants[2].clip = true;
  variants[3].method = Method::maxabs;
  variants[4].method = Method::rescale;
  variants[4].scale = 1.0 / 255;
  variants[5].method = Method::decimal;
  variants[6].method = Method::impute_mean;
  variants[7].impute_nan = true;
  for (const NormalizerOptions& o : variants) {
    for (const Case& c : cases()) {
      auto v = values_for(DType::float32, numel(c.shape), 8);
      for (std::size_t i = 0; i < v.size(); i += 7) v[i] = NAN;
      check_device(c, DType::float32, DType::float32, v, o, 0, 0, "nan every 7th");
    }
  }
}

TEST(DeviceTransformMethods, InverseSaveLoadOnDevice) {
  REQUIRE_DEVICE();
  const auto v = values_for(DType::float32, 30 * 3, 4);
  auto data = normkit::testing::encode(v, DType::float32);
  DeviceBytes d_in(data.bytes.size()), d_y(data.bytes.size()), d_back(data.bytes.size()), d_y2(data.bytes.size());
  CUDA_OK(cudaMemcpy(d_in.ptr, data.bytes.data(), data.bytes.size(), cudaMemcpyHostToDevice));
  const std::vector<std::int64_t> shape = {30, 3};
  TensorView in(d_in.ptr, DType::float32, shape.data(), 2, MemorySpace::device);
  TensorView y(d_y.ptr, DType::float32, shape.data(), 2, MemorySpace::device);
  TensorView back(d_back.ptr, DType::float32, shape.data(), 2, MemorySpace::device);
  TensorView y2(d_y2.ptr, DType::float32, shape.data(), 2, MemorySpace::device);
  NormalizerOptions o;
  o.method = Method::minmax;
  Normalizer n;
  ASSERT_TRUE(n.init(o, MemorySpace::device).ok());
  ASSERT_TRUE(n.adapt(in).ok());
  ASSERT_TRUE(n.transform(in, y).ok());
  ASSERT_TRUE(n.inverse_transform(y, back).ok());
  std::vector<float> x_back(90), x_y(90), x_y2(90);
  CUDA_OK(cudaDeviceSynchronize());
  CUDA_OK(cudaMemcpy(x_back.data(), d_back.ptr, 360, cudaMemcpyDeviceToHost));
  for (int i = 0; i < 90; ++i) ASSERT_NEAR(x_back[i], data.stored[i], 1e-5);
  const std::string path = ::testing::TempDir() + "/normkit_device_state.safetensors";
  const Status saved = n.save(path);
  ASSERT_TRUE(saved.ok()) << saved.message();
  Normalizer loaded;
  ASSERT_TRUE(loaded.load(path, MemorySpace::device).ok());
  ASSERT_TRUE(loaded.transform(in, y2).ok());
  CUDA_OK(cudaDeviceSynchronize());
  CUDA_OK(cudaMemcpy(x_y.data(), d_y.ptr, 360, cudaMemcpyDeviceToHost));
  CUDA_OK(cudaMemcpy(x_y2.data(), d_y2.ptr, 360, cudaMemcpyDeviceToHost));
  EXPECT_EQ(std::memcmp(x_y.data(), x_y2.data(), 360), 0);
  // The host engine loads the same file and gives the same numbers within float rounding.
  Normalizer host;
  ASSERT_TRUE(host.load(path, MemorySpace::host).ok());
  std::vector<float> x_host(90);
  ASSERT_TRUE(host.transform(TensorView(data.data(), DType::float32, shape.data(), 2), TensorView(x_host.data(), DType::float32, shape.data(), 2)).ok());
  for (int i = 0; i < 90; ++i) ASSERT_NEAR(x_host[i], x_y[i], 1e-6);
  std::remove(path.c_str());
}

// On the device too, merging the states of normalizers that each adapted one batch gives adapt()'s bits over the
// batches (the first state copied, later ones merged by the device merge, as adapt merges in its kernels).
TEST(DeviceTransformMethods, AdaptSummariesEqualsAdaptingTheBatches) {
  REQUIRE_DEVICE();
  auto v = values_for(DType::float32, 70 * 5, 9);
  for (std::size_t i = 0; i < v.size(); i += 5) v[i] += 1e4;
  auto data = normkit::testing::encode(v, DType::float32);
  const DeviceCopy d_in = to_device(data.bytes.data(), data.bytes.size());
  Normalizer adapted, merged;
  ASSERT_TRUE(adapted.init({}, MemorySpace::device).ok());
  ASSERT_TRUE(merged.init({}, MemorySpace::device).ok());
  std::int64_t row = 0;
  for (std::int64_t rows : {29, 41}) {
    const std::vector<std::int64_t> shape = {rows, 5};
    TensorView batch(static_cast<char*>(d_in.ptr()) + row * 5 * 4, DType::float32, shape.data(), 2, MemorySpace::device);
    ASSERT_TRUE(adapted.adapt(batch).ok());
    Normalizer alone;
    NormalizerState state;
    ASSERT_TRUE(alone.init({}, MemorySpace::device).ok());
    ASSERT_TRUE(alone.adapt(batch).ok());
    ASSERT_TRUE(alone.fitted_state(&state).ok());
    const Status s = merged.adapt_summaries(state.kept_shape, state.summaries.data(), DType::float32);
    ASSERT_TRUE(s.ok()) << s.message();
    row += rows;
  }
  NormalizerState a, b;
  ASSERT_TRUE(adapted.fitted_state(&a).ok());
  ASSERT_TRUE(merged.fitted_state(&b).ok());
  ASSERT_EQ(a.summaries.size(), 5u);
  EXPECT_EQ(std::memcmp(a.summaries.data(), b.summaries.data(), 5 * sizeof(StatsSummary)), 0);
}

// scikit-learn's constant-feature and near-zero-scale rules on the device, on scikit-learn's own fixtures.
TEST(DeviceSklearnRules, ConstantFeaturesAndNearZeroScales) {
  REQUIRE_DEVICE();
  const auto fixtures = normkit::testing::sklearn_rule_fixtures();
  ASSERT_EQ(fixtures.size(), 12u);
  for (const auto& f : fixtures) {
    DeviceBytes d_in(f.bytes.size()), d_out(f.bytes.size());
    CUDA_OK(cudaMemcpy(d_in.ptr, f.bytes.data(), f.bytes.size(), cudaMemcpyHostToDevice));
    const int nd = static_cast<int>(f.shape.size());
    TensorView in(d_in.ptr, f.dtype, f.shape.data(), nd, MemorySpace::device);
    TensorView out(d_out.ptr, f.dtype, f.shape.data(), nd, MemorySpace::device);
    Normalizer n;
    ASSERT_TRUE(n.init(f.options, MemorySpace::device).ok());
    ASSERT_TRUE(n.adapt(in).ok());
    const Status s = n.transform(in, out);
    ASSERT_TRUE(s.ok()) << s.message();
    std::vector<unsigned char> result(f.bytes.size());
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaMemcpy(result.data(), d_out.ptr, result.size(), cudaMemcpyDeviceToHost));
    normkit::testing::expect_sklearn_rule(f, decode(result, f.dtype), "device");
  }
}

// Fitting on +-Inf is an error naming the first such feature (found by the device check over 1000 kept
// indices, past the first block-stride), no state file; compute_coefficients marks the slices with NaN.
TEST(DeviceSklearnRules, FitRejectsInfinityNamingTheFeature) {
  REQUIRE_DEVICE();
  for (DType dtype : {DType::float32, DType::float64}) {
    std::vector<double> v = values_for(dtype, 3 * 1000, 21);
    v[2 * 1000 + 900] = INFINITY;
    v[1 * 1000 + 700] = -INFINITY;
    v[0 * 1000 + 701] = NAN;  // NaN alone is ignored by fit
    auto data = normkit::testing::encode(v, dtype);
    DeviceBytes d_in(data.bytes.size()), d_out(data.bytes.size());
    CUDA_OK(cudaMemcpy(d_in.ptr, data.bytes.data(), data.bytes.size(), cudaMemcpyHostToDevice));
    const std::vector<std::int64_t> shape = {3, 1000};
    TensorView in(d_in.ptr, dtype, shape.data(), 2, MemorySpace::device);
    TensorView out(d_out.ptr, dtype, shape.data(), 2, MemorySpace::device);
    for (Method m : {Method::zscore, Method::minmax, Method::maxabs}) {
      NormalizerOptions o;
      o.method = m;
      Normalizer n;
      ASSERT_TRUE(n.init(o, MemorySpace::device).ok());
      ASSERT_TRUE(n.adapt(in).ok());
      const Status t = n.transform(in, out);
      EXPECT_EQ(t.code(), StatusCode::invalid_argument) << t.message();
      EXPECT_NE(t.message().find("feature 700 of kept shape [1000] holds 0 +Inf and 1 -Inf values"), std::string::npos)
          << t.message();
      const std::string path = ::testing::TempDir() + "/normkit_device_infinite.safetensors";
      EXPECT_EQ(n.save(path).code(), StatusCode::invalid_argument);
      EXPECT_FALSE(std::ifstream(path).good()) << "a state file was written for a rejected fit";
    }
  }
  // The free function on device summaries: NaN coefficients for the infinite slice only.
  StatsSummary host[2] = {{2, 0, 1, 0, 2, 1.5, 0.5, 1, INFINITY, 3}, {2, 0, 0, 0, 2, 1.5, 0.5, 1, 2, 3}};
  DeviceBytes d_summaries(sizeof(host)), d_coefficients(4 * 2 * sizeof(double));
  CUDA_OK(cudaMemcpy(d_summaries.ptr, host, sizeof(host), cudaMemcpyHostToDevice));
  double* c = reinterpret_cast<double*>(d_coefficients.ptr);
  AffineCoefficients coefficients{c, c + 2, c + 4, c + 6};
  ASSERT_TRUE(compute_coefficients(reinterpret_cast<const StatsSummary*>(d_summaries.ptr), 2, {}, false, coefficients,
                                   MemorySpace::device).ok());
  double back[8];
  CUDA_OK(cudaDeviceSynchronize());
  CUDA_OK(cudaMemcpy(back, c, sizeof(back), cudaMemcpyDeviceToHost));
  EXPECT_TRUE(std::isnan(back[0]) && std::isnan(back[2]) && std::isnan(back[4]));
  EXPECT_TRUE(std::isfinite(back[1]) && std::isfinite(back[3]) && std::isfinite(back[5]));
}

// Rows of up to 1024 aligned elements take the one-read kernel; longer or unaligned rows two passes.
TEST(DeviceLp, RowsByTheirNorm) {
  REQUIRE_DEVICE();
  // (4, 16, 40, 64: float32 lane groups of 1, 4, 16 and 16 lanes, several rows a warp, idle groups in the last;
  // one block: every group walks several trips of two rows, the last with row b past the end)
  for (std::int64_t max_blocks : {0, 1}) {
    plan::ApplyOverride o;
    o.max_blocks = max_blocks;
    ScopedApplyOverride scoped(o);
    // (every dtype pair on both kernels: 64 is at most 32 packs for every vector width, 512 more than 32)
    for (std::int64_t length : {64, 512, 1000, 1024, 37, 1025, 16, 4, 40}) {
      for (DType in : {DType::float32, DType::float64, DType::float16, DType::bfloat16, DType::uint8}) {
        for (DType out : {DType::float32, DType::float64, DType::float16, DType::bfloat16}) {
          const bool every_pair = length == 64 || length == 512;
          if (!every_pair && (in != DType::float32 || out != DType::float32) && !(in == DType::bfloat16 && out == DType::bfloat16)) continue;
          const std::int64_t rows = length <= 64 ? (max_blocks ? 301 : 37) : (max_blocks ? 7 : 5);
          std::vector<double> v = values_for(in, rows * length, 6);
          for (std::int64_t j = 0; j < length; ++j) v[static_cast<std::size_t>(3 * length + j)] = 0;  // a zero row stays zero
          auto data = normkit::testing::encode(v, in);
          DeviceBytes d_in(data.bytes.size()), d_out(static_cast<std::size_t>(rows * length) * dtype_size(out));
          CUDA_OK(cudaMemcpy(d_in.ptr, data.bytes.data(), data.bytes.size(), cudaMemcpyHostToDevice));
          TensorView input(d_in.ptr, in, {rows, length}, MemorySpace::device);
          TensorView output(d_out.ptr, out, {rows, length}, MemorySpace::device);
          for (LpNorm p : {LpNorm::l1, LpNorm::l2, LpNorm::linf}) {
            std::size_t bytes = 0;
            ASSERT_TRUE(normalize_lp_workspace_size(input, &bytes).ok());
            DeviceBytes ws(bytes);
            const Status s = normalize_lp(input, p, output, ws.ptr, bytes);
            ASSERT_TRUE(s.ok()) << s.message();
            std::vector<unsigned char> y(static_cast<std::size_t>(rows * length) * dtype_size(out));
            CUDA_OK(cudaDeviceSynchronize());
            CUDA_OK(cudaMemcpy(y.data(), d_out.ptr, y.size(), cudaMemcpyDeviceToHost));
            expect_close(decode(y, out), normkit::testing::reference_lp(data.stored, length, p), out,
                         "device lp length " + std::to_string(length) + " " + dtype_name(in) + "->" + dtype_name(out) +
                             " max blocks " + std::to_string(max_blocks));
          }
        }
      }
    }
  }
}

TEST(DeviceLp, NanRowAndHugeValuesOnBothPaths) {
  REQUIRE_DEVICE();
  for (std::int64_t length : {4, 5}) {  // 16-byte rows take one read, 20-byte rows two
    std::vector<float> x(static_cast<std::size_t>(2 * length), 0.0f);
    x[0] = NAN;
    x[1] = 2;
    x[static_cast<std::size_t>(length)] = 1e20f;
    x[static_cast<std::size_t>(length + 1)] = 1e20f;
    DeviceBytes d_x(x.size() * 4), d_y(x.size() * 4);
    CUDA_OK(cudaMemcpy(d_x.ptr, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    TensorView in(d_x.ptr, DType::float32, {2, length}, MemorySpace::device), out(d_y.ptr, DType::float32, {2, length}, MemorySpace::device);
    std::size_t bytes = 0;
    ASSERT_TRUE(normalize_lp_workspace_size(in, &bytes).ok());
    DeviceBytes ws(bytes);
    ASSERT_TRUE(normalize_lp(in, LpNorm::l2, out, ws.ptr, bytes).ok());
    std::vector<float> y(x.size());
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaMemcpy(y.data(), d_y.ptr, y.size() * 4, cudaMemcpyDeviceToHost));
    EXPECT_TRUE(std::isnan(y[1])) << length;
    EXPECT_NEAR(y[static_cast<std::size_t>(length)], 0.70710678f, 1e-6) << length;
  }
}

// The short-rows kernel's reduce-scatter: with one block, rows g and g + 64 of 16 float32 share lane group
// g's trip; a NaN in either row (a or b, lower or upper half's partial sums) makes that row NaN and only it,
// for every norm, and a zero row beside it stays zero.
TEST(DeviceLp, NanInEitherRowOfAShortRowsTrip) {
  REQUIRE_DEVICE();
  plan::ApplyOverride o;
  o.max_blocks = 1;
  ScopedApplyOverride scoped(o);
  const std::int64_t rows = 130, length = 16;
  std::vector<double> v = values_for(DType::float32, rows * length, 9);
  v[static_cast<std::size_t>(2 * length + 13)] = NAN;   // row 2: a of group 2, an upper lane's pack
  v[static_cast<std::size_t>(66 * length + 1)] = NAN;   // row 66: b of group 2, a lower lane's pack
  for (std::int64_t j = 0; j < length; ++j) v[static_cast<std::size_t>(67 * length + j)] = 0;  // b of group 3
  auto data = normkit::testing::encode(v, DType::float32);
  DeviceBytes d_in(data.bytes.size()), d_out(data.bytes.size());
  CUDA_OK(cudaMemcpy(d_in.ptr, data.bytes.data(), data.bytes.size(), cudaMemcpyHostToDevice));
  TensorView input(d_in.ptr, DType::float32, {rows, length}, MemorySpace::device);
  TensorView output(d_out.ptr, DType::float32, {rows, length}, MemorySpace::device);
  for (LpNorm p : {LpNorm::l1, LpNorm::l2, LpNorm::linf}) {
    std::size_t bytes = 0;
    ASSERT_TRUE(normalize_lp_workspace_size(input, &bytes).ok());
    DeviceBytes ws(bytes);
    ASSERT_TRUE(normalize_lp(input, p, output, ws.ptr, bytes).ok());
    std::vector<float> y(static_cast<std::size_t>(rows * length));
    CUDA_OK(cudaDeviceSynchronize());
    CUDA_OK(cudaMemcpy(y.data(), d_out.ptr, y.size() * 4, cudaMemcpyDeviceToHost));
    const auto expected = normkit::testing::reference_lp(data.stored, length, p);
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t j = 0; j < length; ++j) {
        const std::size_t i = static_cast<std::size_t>(r * length + j);
        if (r == 2 || r == 66) {
          EXPECT_TRUE(std::isnan(y[i])) << "row " << r << " norm " << static_cast<int>(p);
        } else {
          EXPECT_NEAR(y[i], expected[i], 1e-6 * (1 + std::abs(expected[i]))) << "row " << r << " norm " << static_cast<int>(p);
        }
      }
    }
  }
}

// The host test of the same name on the device: scales beyond FLT_MAX (1 / std, 1 / norm of subnormal
// float32 or bfloat16 data) on the column, row and global walks, and on both Lp paths (rows of 8 values
// take the one-read kernel, rows of 10 two reads). Odd rows are smaller than even ones (1e5 times in float32), so that
// the rows a short-rows trip pairs need different factors (the shuffled pre).
TEST(DeviceTransformEdges, ScalesBeyondFloatRangeOnSubnormalData) {
  REQUIRE_DEVICE();
  for (DType in : {DType::float32, DType::bfloat16}) {
    for (std::int64_t length : {8, 10}) {
      const std::vector<std::int64_t> shape = {37, length};
      const std::size_t n = static_cast<std::size_t>(37 * length);
      std::vector<double> values = normkit::testing::subnormal_values(n, 5);
      const double smaller = in == DType::float32 ? 1e-5 : 0.1;  // (bfloat16's subnormals end near 1e-40)
      for (std::size_t i = 0; i < n; ++i) values[i] *= (i / static_cast<std::size_t>(length)) % 2 ? smaller : 1.0;
      auto data = normkit::testing::encode(values, in);
      DeviceBytes d_in(data.bytes.size()), d_out(n * 4), d_c(3 * 37 * 8);
      CUDA_OK(cudaMemcpy(d_in.ptr, data.bytes.data(), data.bytes.size(), cudaMemcpyHostToDevice));
      TensorView input(d_in.ptr, in, shape.data(), 2, MemorySpace::device);
      TensorView output(d_out.ptr, DType::float32, shape.data(), 2, MemorySpace::device);
      std::vector<float> y(n);
      const auto fetch = [&] {
        EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        EXPECT_EQ(cudaMemcpy(y.data(), d_out.ptr, n * 4, cudaMemcpyDeviceToHost), cudaSuccess);
        return std::vector<double>(y.begin(), y.end());
      };
      std::vector<double> coefficients(3 * 37, 0.0);
      for (int k = 0; k < 37; ++k) {
        coefficients[static_cast<std::size_t>(k)] = normkit::testing::kSubnormalCenter;
        coefficients[static_cast<std::size_t>(37 + k)] = normkit::testing::kSubnormalScale;
      }
      CUDA_OK(cudaMemcpy(d_c.ptr, coefficients.data(), coefficients.size() * 8, cudaMemcpyHostToDevice));
      double* c = reinterpret_cast<double*>(d_c.ptr);
      const AffineCoefficients device_coefficients{c, c + 37, c + 2 * 37, nullptr};
      for (const ReduceAxes& axes : {ReduceAxes::of({0}), ReduceAxes::of({1}), ReduceAxes::every()}) {
        ASSERT_TRUE(apply_affine(input, axes, device_coefficients, output).ok());
        expect_close(fetch(), normkit::testing::subnormal_affine_reference(data.stored), DType::float32,
                     std::string("affine ") + dtype_name(in) + " length " + std::to_string(length));
      }
      for (LpNorm p : {LpNorm::l1, LpNorm::l2, LpNorm::linf}) {
        std::size_t bytes = 0;
        ASSERT_TRUE(normalize_lp_workspace_size(input, &bytes).ok());
        DeviceBytes ws(bytes);
        ASSERT_TRUE(normalize_lp(input, p, output, ws.ptr, bytes).ok());
        expect_close(fetch(), normkit::testing::reference_lp(data.stored, length, p), DType::float32,
                     std::string("lp ") + dtype_name(in) + " length " + std::to_string(length));
      }
    }
  }
}

TEST(DeviceTransformValidation, HostCoefficientsForDeviceInput) {
  REQUIRE_DEVICE();
  DeviceBytes d_x(64);
  TensorView in(d_x.ptr, DType::float32, {16}, MemorySpace::device);
  std::vector<double> host(1, 1.0);
  AffineCoefficients c;
  c.center = c.scale = c.offset = host.data();
  const Status s = apply_affine(in, ReduceAxes::every(), c, in);
  EXPECT_EQ(s.code(), StatusCode::invalid_argument) << s.message();
  EXPECT_NE(s.message().find("coefficients.center"), std::string::npos) << s.message();
}
