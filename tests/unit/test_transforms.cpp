// Transforms on the host against the independent reference: every method x dtype pair x axis pattern,
// inverses, streaming adapt, save/load, corrupted state files, Lp normalization.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "io/safetensors.hpp"
#include "normkit/normalize.hpp"
#include "reference_transform.hpp"
#include "stats_check.hpp"
#include "transform_check.hpp"
#include "test_data.hpp"

using namespace normkit;
using normkit::testing::Case;
using normkit::testing::numel;
using normkit::testing::decode;
using normkit::testing::expect_close;

namespace {

// Fits a host Normalizer on `values` stored as `in`, transforms into `out` and compares with the reference.
void check_method(const Case& c, DType in, DType out, const std::vector<double>& values, NormalizerOptions o) {
  o.axes = c.axes;
  o.fitted_dtype = in;  // as adapt sets it
  auto data = normkit::testing::encode(values, in);
  TensorView input(data.data(), in, c.shape.data(), static_cast<int>(c.shape.size()));
  Normalizer n;
  ASSERT_TRUE(n.init(o, MemorySpace::host).ok());
  const Status adapted = n.adapt(input);
  ASSERT_TRUE(adapted.ok()) << adapted.message();
  std::vector<unsigned char> result(data.stored.size() * dtype_size(out));
  TensorView output(result.data(), out, c.shape.data(), static_cast<int>(c.shape.size()));
  const Status s = n.transform(input, output);
  ASSERT_TRUE(s.ok()) << s.message();
  const auto expected = normkit::testing::reference_transform(
      data.stored, c.shape, normkit::testing::reduced_mask(static_cast<int>(c.shape.size()), c.axes), o);
  expect_close(decode(result, out), expected, out,
               c.name + " " + method_name(o.method) + " " + dtype_name(in) + "->" + dtype_name(out));
}

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {{37, 5}, ReduceAxes::of({0}), "per-feature 5"},
      {{19, 64}, ReduceAxes::of({0}), "per-feature 64"},
      {{6, 33}, ReduceAxes::of({1}), "per-sample 33"},
      {{3, 4, 5, 7}, ReduceAxes::of({0, 2, 3}), "NCHW per-channel"},
      {{2, 5, 7, 3}, ReduceAxes::of({0, 1, 2}), "NHWC per-channel"},
      {{3, 4, 5, 6}, ReduceAxes::of({0, 2}), "axes 0,2 (columns in row blocks)"},
      {{3, 2, 4, 9}, ReduceAxes::of({1, 3}), "axes 1,3 (rows repeating their kept index)"},
      {{2, 3, 2, 3, 4}, ReduceAxes::of({1, 3}), "alternating 5-d (generic)"},
      {{101}, ReduceAxes::every(), "global"},
  };
  return all;
}

std::vector<double> values_for(DType in, std::int64_t n, unsigned seed) {
  auto v = in == DType::uint8 ? normkit::testing::uniform_values(static_cast<std::size_t>(n), 0, 255, seed)
                              : normkit::testing::uniform_values(static_cast<std::size_t>(n), -4, 6, seed);
  return v;
}

std::vector<NormalizerOptions> method_variants() {
  std::vector<NormalizerOptions> v;
  NormalizerOptions o;
  v.push_back(o);  // zscore, sklearn
  o.zero_variance = ZeroVariance::keras;
  v.push_back(o);
  o = {};
  o.with_mean = false;
  v.push_back(o);
  o = {};
  o.method = Method::minmax;
  o.range_min = -1;
  o.range_max = 2;
  v.push_back(o);
  o.clip = true;
  v.push_back(o);
  o = {};
  o.method = Method::maxabs;
  v.push_back(o);
  o = {};
  o.method = Method::rescale;
  o.scale = 1.0 / 255;
  o.offset = -0.5;
  v.push_back(o);
  o = {};
  o.method = Method::decimal;
  v.push_back(o);
  o = {};
  o.method = Method::zscore;  // rescale then z-score, one apply
  o.scale = 1.0 / 127.5;
  o.offset = -1;
  v.push_back(o);
  return v;
}

class Transforms : public ::testing::TestWithParam<DType> {};

}  // namespace

TEST_P(Transforms, EveryMethodAndPatternMatchesReference) {
  const DType in = GetParam();
  const DType out = in == DType::uint8 ? DType::float32 : in;  // the default output
  unsigned seed = 1;
  for (const NormalizerOptions& o : method_variants()) {
    for (const Case& c : cases()) check_method(c, in, out, values_for(in, numel(c.shape), seed++), o);
  }
}

TEST_P(Transforms, EveryOutputDtype) {
  const DType in = GetParam();
  for (DType out : {DType::float32, DType::float64, DType::float16, DType::bfloat16}) {
    for (const Case& c : cases()) check_method(c, in, out, values_for(in, numel(c.shape), 3), NormalizerOptions{});
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, Transforms,
                         ::testing::Values(DType::float32, DType::float64, DType::float16, DType::bfloat16, DType::uint8),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(TransformEdges, ConstantFeatureSklearnVersusKeras) {
  std::vector<float> x = {5, 1, 5, 2, 5, 3};  // column 0 constant
  TensorView in(x.data(), DType::float32, {3, 2});
  std::vector<float> y(6);
  TensorView out(y.data(), DType::float32, {3, 2});
  Normalizer sk;
  ASSERT_TRUE(sk.init({}, MemorySpace::host).ok());
  ASSERT_TRUE(sk.adapt(in).ok());
  ASSERT_TRUE(sk.transform(in, out).ok());
  EXPECT_EQ(y[0], 0.0f);  // x - mean with scale 1
  NormalizerOptions keras;
  keras.zero_variance = ZeroVariance::keras;
  Normalizer k;
  ASSERT_TRUE(k.init(keras, MemorySpace::host).ok());
  ASSERT_TRUE(k.adapt(in).ok());
  x[0] = 5.5f;
  ASSERT_TRUE(k.transform(in, out).ok());
  EXPECT_NEAR(y[0], 0.5e7, 1.0);  // divides by epsilon 1e-7 (keras#20011)
}

TEST(TransformEdges, LargeOffsetStaysExactInFloat32) {
  const auto v = normkit::testing::normal_values(4096, 1e6, 1.0, 5);
  auto data = normkit::testing::encode(v, DType::float32);
  TensorView in(data.data(), DType::float32, {4096, 1});
  std::vector<float> y(4096);
  TensorView out(y.data(), DType::float32, {4096, 1});
  Normalizer n;
  ASSERT_TRUE(n.init({}, MemorySpace::host).ok());
  ASSERT_TRUE(n.adapt(in).ok());
  ASSERT_TRUE(n.transform(in, out).ok());
  const auto expected = normkit::testing::reference_transform(data.stored, {4096, 1}, {true, false}, NormalizerOptions{});
  double worst = 0;
  for (std::size_t i = 0; i < y.size(); ++i) worst = std::fmax(worst, std::fabs(y[i] - expected[i]));
  EXPECT_LT(worst, 1e-5);  // folding the center into a shift would lose ~0.06 here
}

TEST(TransformEdges, DecimalScalingExactPowersOfTen) {
  for (auto [maxabs, divisor] : {std::pair<double, double>{100, 1000}, {99.5, 100}, {0.01, 0.1}, {0.011, 0.1}, {1, 10}, {0, 1}}) {
    std::vector<double> x = {maxabs, -maxabs / 2};
    TensorView in(x.data(), DType::float64, {2});
    std::vector<double> y(2);
    TensorView out(y.data(), DType::float64, {2});
    NormalizerOptions o;
    o.method = Method::decimal;
    o.axes = ReduceAxes::every();
    Normalizer n;
    ASSERT_TRUE(n.init(o, MemorySpace::host).ok());
    ASSERT_TRUE(n.adapt(in).ok());
    ASSERT_TRUE(n.transform(in, out).ok());
    EXPECT_DOUBLE_EQ(y[0], maxabs / divisor) << maxabs;
  }
}

TEST(TransformEdges, ImputeMeanAndAllNanFeature) {
  std::vector<float> x = {1, NAN, NAN, NAN, 3, NAN};  // [3, 2]: column 0 mean 2, column 1 all NaN
  TensorView in(x.data(), DType::float32, {3, 2});
  std::vector<float> y(6);
  TensorView out(y.data(), DType::float32, {3, 2});
  NormalizerOptions o;
  o.method = Method::impute_mean;
  Normalizer n;
  ASSERT_TRUE(n.init(o, MemorySpace::host).ok());
  ASSERT_TRUE(n.adapt(in).ok());
  ASSERT_TRUE(n.transform(in, out).ok());
  EXPECT_EQ(y[0], 1);
  EXPECT_EQ(y[2], 2);  // NaN -> mean of column 0
  EXPECT_EQ(y[1], 0);  // all-NaN column filled with 0
  EXPECT_EQ(n.all_nan_features(), 1);
  // NaN stays NaN without imputation.
  Normalizer z;
  ASSERT_TRUE(z.init({}, MemorySpace::host).ok());
  ASSERT_TRUE(z.adapt(in).ok());
  ASSERT_TRUE(z.transform(in, out).ok());
  EXPECT_TRUE(std::isnan(y[2]));
  // Fused imputation before z-score: fitted like Pipeline([SimpleImputer, StandardScaler]).
  std::vector<double> values(x.begin(), x.end());
  NormalizerOptions fused;
  fused.impute_nan = true;
  check_method({{3, 2}, ReduceAxes::of({0}), "impute+zscore"}, DType::float32, DType::float32, values, fused);
}

TEST(TransformEdges, InverseRoundTripsEveryMethod) {
  const auto v = normkit::testing::uniform_values(40 * 6, -3, 7, 9);
  for (NormalizerOptions o : method_variants()) {
    if (o.clip) continue;  // clipping is not undone
    std::vector<double> x(v), y(v.size()), back(v.size());
    TensorView in(x.data(), DType::float64, {40, 6}), out(y.data(), DType::float64, {40, 6}), round(back.data(), DType::float64, {40, 6});
    Normalizer n;
    ASSERT_TRUE(n.init(o, MemorySpace::host).ok());
    ASSERT_TRUE(n.adapt(in).ok());
    ASSERT_TRUE(n.transform(in, out).ok());
    ASSERT_TRUE(n.inverse_transform(out, round).ok());
    for (std::size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(back[i], x[i], 1e-9) << method_name(o.method);
  }
}

TEST(TransformEdges, AdaptOverBatchesEqualsWhole) {
  const auto v = normkit::testing::uniform_values(50 * 4, -3, 7, 10);
  std::vector<float> x(v.begin(), v.end());
  for (Method m : {Method::zscore, Method::minmax, Method::maxabs, Method::decimal}) {
    NormalizerOptions o;
    o.method = m;
    Normalizer whole, batched;
    ASSERT_TRUE(whole.init(o, MemorySpace::host).ok());
    ASSERT_TRUE(batched.init(o, MemorySpace::host).ok());
    TensorView all(x.data(), DType::float32, {50, 4});
    ASSERT_TRUE(whole.adapt(all).ok());
    std::int64_t row = 0;
    for (std::int64_t rows : {7, 30, 13}) {
      TensorView batch(x.data() + row * 4, DType::float32, {rows, 4});
      ASSERT_TRUE(batched.adapt(batch).ok());
      row += rows;
    }
    std::vector<float> a(200), b(200);
    TensorView out_a(a.data(), DType::float32, {50, 4}), out_b(b.data(), DType::float32, {50, 4});
    ASSERT_TRUE(whole.transform(all, out_a).ok());
    ASSERT_TRUE(batched.transform(all, out_b).ok());
    for (int i = 0; i < 200; ++i) ASSERT_NEAR(a[i], b[i], 1e-5) << method_name(m);
  }
  // A batch with another kept shape is rejected.
  Normalizer n;
  ASSERT_TRUE(n.init({}, MemorySpace::host).ok());
  ASSERT_TRUE(n.adapt(TensorView(x.data(), DType::float32, {50, 4})).ok());
  const Status s = n.adapt(TensorView(x.data(), DType::float32, {40, 5}));
  EXPECT_EQ(s.code(), StatusCode::shape_mismatch);
  EXPECT_NE(s.message().find("[4]"), std::string::npos) << s.message();
}

// Merging the states of normalizers that each adapted one batch (in order) gives adapt()'s bits over the batches:
// what normkit-mpi fit relies on. A kept shape that differs is rejected.
TEST(TransformEdges, AdaptSummariesEqualsAdaptingTheBatches) {
  auto v = normkit::testing::uniform_values(60 * 3, -3, 7, 11);
  for (std::size_t i = 0; i < v.size(); i += 3) v[i] += 1e6;  // (a far offset: Chan's merge's rounding shows)
  std::vector<double> x(v.begin(), v.end());
  NormalizerOptions o;
  Normalizer adapted, merged;
  ASSERT_TRUE(adapted.init(o, MemorySpace::host).ok());
  ASSERT_TRUE(merged.init(o, MemorySpace::host).ok());
  std::int64_t row = 0;
  for (std::int64_t rows : {17, 0, 30, 13}) {
    TensorView batch(x.data() + row * 3, DType::float64, {rows, 3});
    ASSERT_TRUE(adapted.adapt(batch).ok());
    Normalizer alone;
    NormalizerState state;
    ASSERT_TRUE(alone.init(o, MemorySpace::host).ok());
    ASSERT_TRUE(alone.adapt(batch).ok());
    ASSERT_TRUE(alone.fitted_state(&state).ok());
    ASSERT_TRUE(merged.adapt_summaries(state.kept_shape, state.summaries.data(), DType::float64).ok());
    row += rows;
  }
  NormalizerState a, b;
  ASSERT_TRUE(adapted.fitted_state(&a).ok());
  ASSERT_TRUE(merged.fitted_state(&b).ok());
  ASSERT_EQ(a.summaries.size(), 3u);
  EXPECT_EQ(std::memcmp(a.summaries.data(), b.summaries.data(), 3 * sizeof(StatsSummary)), 0);
  EXPECT_EQ(a.scale, b.scale);
  const StatsSummary one{};
  const Status s = merged.adapt_summaries({4}, &one, DType::float64);
  EXPECT_EQ(s.code(), StatusCode::shape_mismatch) << s.message();
  Normalizer unconfigured;
  EXPECT_FALSE(unconfigured.adapt_summaries({1}, &one, DType::float64).ok());
}

TEST(TransformEdges, InPlaceAndValidation) {
  std::vector<float> x = {1, 2, 3, 4};
  TensorView in(x.data(), DType::float32, {4});
  NormalizerOptions o;
  o.axes = ReduceAxes::every();
  Normalizer n;
  ASSERT_TRUE(n.init(o, MemorySpace::host).ok());
  ASSERT_TRUE(n.adapt(in).ok());
  ASSERT_TRUE(n.transform(in, in).ok());  // in place
  EXPECT_NEAR(x[0], -1.3416407, 1e-6);
  std::vector<std::uint16_t> h(4);
  EXPECT_EQ(n.transform(in, TensorView(x.data(), DType::float16, {4})).code(), StatusCode::invalid_argument);  // in place, other dtype
  EXPECT_EQ(n.transform(in, TensorView(h.data(), DType::uint8, {4})).code(), StatusCode::unsupported_dtype);
  EXPECT_EQ(n.transform(in, TensorView(h.data(), DType::float16, {2, 2})).code(), StatusCode::shape_mismatch);
  NormalizerOptions bad;
  bad.method = Method::minmax;
  bad.range_min = 1;
  bad.range_max = 1;
  const Status s = n.init(bad, MemorySpace::host);
  EXPECT_EQ(s.code(), StatusCode::invalid_argument);
  EXPECT_NE(s.message().find("feature_range"), std::string::npos);
  bad = {};
  bad.scale = 0;
  EXPECT_EQ(n.init(bad, MemorySpace::host).code(), StatusCode::invalid_argument);
  Normalizer fresh;
  ASSERT_TRUE(fresh.init({}, MemorySpace::host).ok());
  EXPECT_EQ(fresh.transform(in, in).code(), StatusCode::invalid_argument);  // not adapted
}

TEST(TransformEdges, SetMeanVarianceLikeKeras) {
  Normalizer n;
  ASSERT_TRUE(n.init({}, MemorySpace::host).ok());
  ASSERT_TRUE(n.set_mean_variance({2}, {10, -1}, {4, 0.25}).ok());
  std::vector<float> x = {12, 0, 8, -1.5};
  std::vector<float> y(4);
  ASSERT_TRUE(n.transform(TensorView(x.data(), DType::float32, {2, 2}), TensorView(y.data(), DType::float32, {2, 2})).ok());
  EXPECT_FLOAT_EQ(y[0], 1);
  EXPECT_FLOAT_EQ(y[1], 2);
  EXPECT_FLOAT_EQ(y[2], -1);
  EXPECT_FLOAT_EQ(y[3], -1);
}

namespace {

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "/normkit_" + name; }

Normalizer fitted(NormalizerOptions o, std::vector<float>& x) {
  Normalizer n;
  EXPECT_TRUE(n.init(o, MemorySpace::host).ok());
  EXPECT_TRUE(n.adapt(TensorView(x.data(), DType::float32, {static_cast<std::int64_t>(x.size() / 3), 3})).ok());
  return n;
}

}  // namespace

TEST(NormalizerState, SaveLoadTransformIsBitwiseEqual) {
  const auto v = normkit::testing::uniform_values(30 * 3, -3, 7, 11);
  std::vector<float> x(v.begin(), v.end());
  for (NormalizerOptions o : method_variants()) {
    o.impute_nan = o.method == Method::zscore;
    Normalizer n = fitted(o, x);
    const std::string path = temp_path(std::string("state_") + method_name(o.method) + ".safetensors");
    const Status saved = n.save(path);
    ASSERT_TRUE(saved.ok()) << saved.message();
    Normalizer loaded;
    const Status s = loaded.load(path, MemorySpace::host);
    ASSERT_TRUE(s.ok()) << s.message();
    EXPECT_EQ(loaded.options().method, o.method);
    EXPECT_EQ(loaded.kept_shape(), std::vector<std::int64_t>{3});
    std::vector<float> a(x.size()), b(x.size());
    TensorView in(x.data(), DType::float32, {30, 3});
    ASSERT_TRUE(n.transform(in, TensorView(a.data(), DType::float32, {30, 3})).ok());
    ASSERT_TRUE(loaded.transform(in, TensorView(b.data(), DType::float32, {30, 3})).ok());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << method_name(o.method);
    // Adapting resumes after a load: one more batch equals adapting both in one object.
    ASSERT_TRUE(loaded.adapt(in).ok());
    ASSERT_TRUE(n.adapt(in).ok());
    ASSERT_TRUE(n.transform(in, TensorView(a.data(), DType::float32, {30, 3})).ok());
    ASSERT_TRUE(loaded.transform(in, TensorView(b.data(), DType::float32, {30, 3})).ok());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << method_name(o.method);
    std::remove(path.c_str());
  }
}

TEST(NormalizerState, CorruptFilesGiveClearErrors) {
  const auto v = normkit::testing::uniform_values(12, -3, 7, 12);
  std::vector<float> x(v.begin(), v.end());
  Normalizer n = fitted({}, x);
  const std::string good = temp_path("good.safetensors");
  ASSERT_TRUE(n.save(good).ok());
  std::ifstream f(good, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::uint64_t header_length;
  std::memcpy(&header_length, bytes.data(), 8);
  const std::string header = bytes.substr(8, header_length);
  auto write = [](const std::string& path, const std::string& content) {
    std::ofstream(path, std::ios::binary) << content;
  };
  auto expect_load_error = [&](const std::string& content, StatusCode code, const char* word, const char* label) {
    const std::string path = temp_path(std::string("corrupt_") + label);
    write(path, content);
    Normalizer l;
    const Status s = l.load(path, MemorySpace::host);
    EXPECT_EQ(s.code(), code) << label << ": " << s.message();
    EXPECT_NE(s.message().find(word), std::string::npos) << label << ": " << s.message();
    std::remove(path.c_str());
  };
  auto with_header = [&](std::string h) {
    while (h.size() % 8) h += ' ';
    std::string out(8, '\0');
    const std::uint64_t len = h.size();
    std::memcpy(&out[0], &len, 8);
    return out + h + bytes.substr(8 + header_length);
  };
  auto replace = [](std::string s, const std::string& from, const std::string& to) {
    const auto pos = s.find(from);
    if (pos != std::string::npos) s.replace(pos, from.size(), to);
    return s;
  };
  expect_load_error(bytes.substr(0, bytes.size() - 5), StatusCode::bad_file, "", "truncated");
  std::string huge = bytes;
  const std::uint64_t too_long = 1u << 30;
  std::memcpy(&huge[0], &too_long, 8);
  expect_load_error(huge, StatusCode::bad_file, "header", "header length");
  expect_load_error(with_header(replace(header, "\"dtype\":\"I64\"", "\"dtype\":\"F64\"")), StatusCode::bad_file, "count", "wrong dtype");
  expect_load_error(with_header(replace(header, "\"method\":\"zscore\"", "\"method\":\"sorcery\"")), StatusCode::bad_file, "method", "bad method");
  expect_load_error(with_header(replace(header, "\"with_mean\":\"true\"", "\"with_mean\":true")), StatusCode::bad_file, "string", "non-string metadata");
  expect_load_error(with_header(replace(header, "\"kept_shape\":\"[3]\"", "\"kept_shape\":\"[4]\"")), StatusCode::bad_file, "shape", "shape mismatch");
  expect_load_error(with_header(replace(header, "\"format\":\"normkit-normalizer\"", "\"format\":\"other\"")), StatusCode::bad_file, "format", "format");
  expect_load_error(with_header(replace(header, "\"fitted_dtype\":\"float32\"", "\"fitted_dtype\":\"float17\"")), StatusCode::bad_file,
                    "fitted_dtype", "bad fitted dtype");
  // Offsets past the end and overlapping: edit the first data_offsets pair.
  const auto at = header.find("\"data_offsets\":[");
  ASSERT_NE(at, std::string::npos);
  const auto close = header.find(']', at);
  const std::string first_offsets = header.substr(at, close - at + 1);
  expect_load_error(with_header(replace(header, first_offsets, "\"data_offsets\":[0,99999]")), StatusCode::bad_file, "", "past the end");
  expect_load_error(with_header(replace(header, first_offsets, "\"data_offsets\":[8,32]")), StatusCode::bad_file, "", "overlapping");
  std::remove(good.c_str());
}

// The fitted dtype decides scikit-learn's near-zero floor: adapt takes the widest of its batches, save and
// load keep it, and files without it (normkit 0.1.0) count as float64.
TEST(NormalizerState, FittedDtypeIsTheWidestBatchAndSurvivesSaveLoad) {
  std::vector<float> x32 = {1e-7f, 2, -5e-8f, 1};  // max|x| of column 0 below 10 eps(float32), above 10 eps(float64)
  std::vector<double> x64 = {1e-7, 2, -5e-8, 1};
  NormalizerOptions o;
  o.method = Method::maxabs;
  Normalizer n;
  ASSERT_TRUE(n.init(o, MemorySpace::host).ok());
  ASSERT_TRUE(n.adapt(TensorView(x32.data(), DType::float32, {2, 2})).ok());
  EXPECT_EQ(n.options().fitted_dtype, DType::float32);
  std::vector<float> y(4);
  ASSERT_TRUE(n.transform(TensorView(x32.data(), DType::float32, {2, 2}), TensorView(y.data(), DType::float32, {2, 2})).ok());
  EXPECT_EQ(y[0], 1e-7f);  // unscaled, as MaxAbsScaler on float32
  const std::string path = temp_path("fitted_dtype.safetensors");
  ASSERT_TRUE(n.save(path).ok());
  Normalizer loaded;
  ASSERT_TRUE(loaded.load(path, MemorySpace::host).ok());
  EXPECT_EQ(loaded.options().fitted_dtype, DType::float32);
  ASSERT_TRUE(n.adapt(TensorView(x64.data(), DType::float64, {2, 2})).ok());
  EXPECT_EQ(n.options().fitted_dtype, DType::float64);
  ASSERT_TRUE(n.transform(TensorView(x32.data(), DType::float32, {2, 2}), TensorView(y.data(), DType::float32, {2, 2})).ok());
  EXPECT_FLOAT_EQ(y[0], 1.0f);  // scaled: the statistic is float64 now
  // A file without the key (written before it existed) loads as float64.
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  f.close();
  const auto at = bytes.find("\"fitted_dtype\"");
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, 14, "\"unknown_key\" ");
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  Normalizer old;
  const Status s = old.load(path, MemorySpace::host);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(old.options().fitted_dtype, DType::float64);
  std::remove(path.c_str());
}

// scikit-learn rejects +-Inf in fit ("Input contains infinity"); so does every fitted method here, with the
// feature named, and no state file. NaN stays ignored. Transforming +-Inf keeps IEEE arithmetic.
TEST(SklearnRules, FitRejectsInfinityNamingTheFeature) {
  for (DType dtype : {DType::float64, DType::float32}) {
    const auto data = normkit::testing::encode({INFINITY, 5, 1, 6, NAN, 7}, dtype);
    std::vector<unsigned char> bytes = data.bytes, result(bytes.size());
    TensorView in(bytes.data(), dtype, {3, 2}), out(result.data(), dtype, {3, 2});
    for (Method m : {Method::zscore, Method::minmax, Method::maxabs, Method::decimal, Method::impute_mean}) {
      NormalizerOptions o;
      o.method = m;
      Normalizer n;
      ASSERT_TRUE(n.init(o, MemorySpace::host).ok());
      ASSERT_TRUE(n.adapt(in).ok());  // partial fits accumulate; the fit is checked when it is used
      const Status t = n.transform(in, out);
      EXPECT_EQ(t.code(), StatusCode::invalid_argument) << method_name(m);
      EXPECT_NE(t.message().find("feature 0 of kept shape [2] holds 1 +Inf and 0 -Inf values"), std::string::npos) << t.message();
      EXPECT_NE(t.message().find("Normalizer::transform"), std::string::npos) << t.message();
      const std::string path = temp_path("infinite_fit.safetensors");
      const Status saved = n.save(path);
      EXPECT_EQ(saved.code(), StatusCode::invalid_argument) << saved.message();
      EXPECT_FALSE(std::ifstream(path).good()) << "a state file was written for a rejected fit";
      EXPECT_EQ(n.inverse_transform(in, out).code(), StatusCode::invalid_argument);
    }
    NormalizerOptions rescale;
    rescale.method = Method::rescale;
    rescale.scale = 2;
    Normalizer r;
    ASSERT_TRUE(r.init(rescale, MemorySpace::host).ok());
    ASSERT_TRUE(r.adapt(in).ok());
    ASSERT_TRUE(r.transform(in, out).ok()) << "rescale fits nothing and accepts Inf";
    EXPECT_TRUE(std::isinf(normkit::testing::decode(result, dtype)[0]));
  }
  // The index in a multi-dimensional kept shape, and -Inf.
  std::vector<double> x(2 * 2 * 3, 1.0);
  x[6 + 5] = -INFINITY;  // sample 1, kept index [1, 2]
  x[3] = -INFINITY;      // sample 0, kept index [1, 0]: the first in kept order
  Normalizer n;
  ASSERT_TRUE(n.init({}, MemorySpace::host).ok());
  ASSERT_TRUE(n.adapt(TensorView(x.data(), DType::float64, {2, 2, 3})).ok());
  std::vector<double> y(x.size());
  const Status t = n.transform(TensorView(x.data(), DType::float64, {2, 2, 3}), TensorView(y.data(), DType::float64, {2, 2, 3}));
  EXPECT_NE(t.message().find("feature [1, 0] of kept shape [2, 3] holds 0 +Inf and 1 -Inf values"), std::string::npos) << t.message();
  // Inf to transform with a fit on finite data: IEEE arithmetic (a documented divergence).
  std::vector<double> finite = {1, 2, 3, 4};
  Normalizer fin;
  ASSERT_TRUE(fin.init({}, MemorySpace::host).ok());
  ASSERT_TRUE(fin.adapt(TensorView(finite.data(), DType::float64, {4})).ok());
  std::vector<double> inf_in = {INFINITY, -INFINITY, 2.5, 0}, inf_out(4);
  ASSERT_TRUE(fin.transform(TensorView(inf_in.data(), DType::float64, {4}), TensorView(inf_out.data(), DType::float64, {4})).ok());
  EXPECT_EQ(inf_out[0], INFINITY);
  EXPECT_EQ(inf_out[1], -INFINITY);
  EXPECT_EQ(inf_out[2], 0.0);
}

// compute_coefficients cannot report per-slice errors without synchronizing on the device: it marks the
// slices whose fit holds +-Inf with NaN coefficients, in both directions, and leaves the others alone.
TEST(SklearnRules, CoefficientsOfAnInfiniteFitAreNaN) {
  StatsSummary finite{2, 0, 0, 0, 2, 1.5, 0.5, 1, 2, 3}, infinite = finite;
  infinite.posinf_count = 1;
  infinite.max = INFINITY;
  const StatsSummary summaries[2] = {infinite, finite};
  for (bool inverse : {false, true}) {
    double center[2], scale[2], offset[2], fill[2];
    AffineCoefficients c{center, scale, offset, fill};
    NormalizerOptions o;
    o.impute_nan = true;
    ASSERT_TRUE(compute_coefficients(summaries, 2, o, inverse, c, MemorySpace::host).ok());
    EXPECT_TRUE(std::isnan(center[0]) && std::isnan(scale[0]) && std::isnan(offset[0])) << inverse;
    EXPECT_TRUE(std::isfinite(center[1]) && std::isfinite(scale[1]) && std::isfinite(offset[1])) << inverse;
    o.method = Method::rescale;
    ASSERT_TRUE(compute_coefficients(summaries, 2, o, inverse, c, MemorySpace::host).ok());
    EXPECT_EQ(scale[0], 1.0);
  }
}

TEST(LpNormalize, RowsByTheirNormZeroRowUnchanged) {
  std::vector<double> v = normkit::testing::uniform_values(5 * 7, -2, 3, 13);
  for (int j = 0; j < 7; ++j) v[2 * 7 + j] = 0;  // a zero row
  for (LpNorm p : {LpNorm::l1, LpNorm::l2, LpNorm::linf}) {
    for (DType in : {DType::float32, DType::float16, DType::float64}) {
      auto data = normkit::testing::encode(v, in);
      TensorView input(data.data(), in, {5, 7});
      std::vector<unsigned char> y(v.size() * dtype_size(in));
      TensorView output(y.data(), in, {5, 7});
      const Status s = normalize_lp(input, p, output, nullptr, 0);
      ASSERT_TRUE(s.ok()) << s.message();
      expect_close(decode(y, in), normkit::testing::reference_lp(data.stored, 7, p), in, "lp");
    }
  }
}

TEST(TransformEdges, ApplyRejectsPartialOverlapAndBadArguments) {
  std::vector<float> x(10, 1.0f);
  std::vector<double> center(1, 0.0), scale(1, 1.0), offset(1, 0.0);
  AffineCoefficients c;
  c.center = center.data();
  c.scale = scale.data();
  c.offset = offset.data();
  TensorView in(x.data(), DType::float32, {8});
  const Status overlap = apply_affine(in, ReduceAxes::every(), c, TensorView(x.data() + 1, DType::float32, {8}));
  EXPECT_EQ(overlap.code(), StatusCode::invalid_argument);
  EXPECT_NE(overlap.message().find("overlapping"), std::string::npos) << overlap.message();
  EXPECT_TRUE(apply_affine(in, ReduceAxes::every(), c, in).ok());  // in place, same dtype
  c.scale = nullptr;
  EXPECT_EQ(apply_affine(in, ReduceAxes::every(), c, in).code(), StatusCode::null_pointer);
  Normalizer n;
  ASSERT_TRUE(n.init({}, MemorySpace::host).ok());
  EXPECT_EQ(n.set_mean_variance({2}, {NAN, 1}, {1, 1}).code(), StatusCode::invalid_argument);
  EXPECT_EQ(n.set_mean_variance({1, 1, 1, 1, 1, 1, 1, 1, 1}, {1}, {1}).code(), StatusCode::invalid_argument);
  std::vector<float> big(1, 0.0f);
  TensorView ten_dims(big.data(), DType::float32, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1});
  EXPECT_EQ(n.adapt(ten_dims).code(), StatusCode::invalid_argument);  // more than 8 dims: an error, not a crash
}

TEST(LpNormalize, NanRowBecomesNanAndHugeValuesDoNotOverflow) {
  std::vector<float> x = {NAN, 2, 4, 1e20f, 1e20f, 0};  // rows [NaN, 2, 4] and [1e20, 1e20, 0]
  std::vector<float> y(6);
  for (LpNorm p : {LpNorm::l1, LpNorm::l2, LpNorm::linf}) {
    ASSERT_TRUE(normalize_lp(TensorView(x.data(), DType::float32, {2, 3}), p, TensorView(y.data(), DType::float32, {2, 3}), nullptr, 0).ok());
    EXPECT_TRUE(std::isnan(y[1]) && std::isnan(y[2]));
    const float expected = p == LpNorm::l1 ? 0.5f : (p == LpNorm::l2 ? 0.70710678f : 1.0f);
    EXPECT_NEAR(y[3], expected, 1e-6);
  }
}

// 1 / std and 1 / norm of subnormal float32 or bfloat16 data exceed FLT_MAX: the float apply takes such a
// scale as two factors (math::split_scale) instead of rounding it to Inf (which made y Inf or NaN).
TEST(TransformEdges, ScalesBeyondFloatRangeOnSubnormalData) {
  const std::vector<std::int64_t> shape = {6, 8};
  for (DType in : {DType::float32, DType::bfloat16}) {
    auto data = normkit::testing::encode(normkit::testing::subnormal_values(48, 3), in);
    TensorView input(data.data(), in, shape.data(), 2);
    std::vector<float> y(48);
    TensorView output(y.data(), DType::float32, shape.data(), 2);
    for (auto [axes, kept] : {std::pair{ReduceAxes::of({0}), 8}, {ReduceAxes::of({1}), 6}, {ReduceAxes::every(), 1}}) {
      std::vector<double> center(kept, normkit::testing::kSubnormalCenter), scale(kept, normkit::testing::kSubnormalScale), offset(kept, 0.0);
      AffineCoefficients c;
      c.center = center.data();
      c.scale = scale.data();
      c.offset = offset.data();
      ASSERT_TRUE(apply_affine(input, axes, c, output).ok());
      expect_close(std::vector<double>(y.begin(), y.end()), normkit::testing::subnormal_affine_reference(data.stored), DType::float32,
                   std::string("affine ") + dtype_name(in) + " kept " + std::to_string(kept));
    }
    for (LpNorm p : {LpNorm::l1, LpNorm::l2, LpNorm::linf}) {
      ASSERT_TRUE(normalize_lp(input, p, output, nullptr, 0).ok());
      expect_close(std::vector<double>(y.begin(), y.end()), normkit::testing::reference_lp(data.stored, 8, p), DType::float32,
                   std::string("lp ") + dtype_name(in));
    }
  }
  // The other way: L1 norms of values near FLT_MAX exceed it, and 1 / norm is below FLT_MIN.
  auto huge = normkit::testing::encode(normkit::testing::uniform_values(48, -3e38, 3e38, 4), DType::float32);
  std::vector<float> y(48);
  ASSERT_TRUE(normalize_lp(TensorView(huge.data(), DType::float32, shape.data(), 2), LpNorm::l1,
                           TensorView(y.data(), DType::float32, shape.data(), 2), nullptr, 0).ok());
  expect_close(std::vector<double>(y.begin(), y.end()), normkit::testing::reference_lp(huge.stored, 8, LpNorm::l1), DType::float32, "lp l1 huge");
}
