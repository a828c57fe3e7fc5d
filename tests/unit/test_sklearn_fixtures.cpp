// normkit against scikit-learn's own output on committed fixtures (tests/fixtures/generate_fixtures.py):
// constant columns, zero rows, NaN, negative values, a 1e6 offset; where scikit-learn calls a feature
// constant or a scale zero, per dtype.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "io/npy.hpp"
#include "normkit/normalize.hpp"
#include "sklearn_rules.hpp"
#include "transform_check.hpp"

using namespace normkit;

namespace {

std::vector<double> load(const std::string& name, std::vector<std::int64_t>* shape = nullptr) {
  io::NpyArray a;
  const Status s = io::read_npy(std::string(NORMKIT_FIXTURES_DIR) + "/" + name, &a);
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(a.dtype, DType::float64);
  if (shape) *shape = a.shape;
  std::vector<double> v(a.data.size() / 8);
  std::memcpy(v.data(), a.data.data(), a.data.size());
  return v;
}

void expect_matches(const std::vector<double>& actual, const std::vector<double>& expected, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    if (std::isnan(expected[i])) {
      ASSERT_TRUE(std::isnan(actual[i])) << what << " element " << i;
    } else {
      ASSERT_NEAR(actual[i], expected[i], 1e-9 * (1 + std::fabs(expected[i]))) << what << " element " << i;
    }
  }
}

std::vector<double> fit_transform(const std::string& input, NormalizerOptions o, bool inverse_after = false) {
  std::vector<std::int64_t> shape;
  std::vector<double> x = load(input, &shape);
  TensorView in(x.data(), DType::float64, shape.data(), static_cast<int>(shape.size()));
  std::vector<double> y(x.size()), back(x.size());
  TensorView out(y.data(), DType::float64, shape.data(), static_cast<int>(shape.size()));
  Normalizer n;
  EXPECT_TRUE(n.init(o, MemorySpace::host).ok());
  EXPECT_TRUE(n.adapt(in).ok());
  EXPECT_TRUE(n.transform(in, out).ok());
  if (!inverse_after) return y;
  EXPECT_TRUE(n.inverse_transform(out, TensorView(back.data(), DType::float64, shape.data(), static_cast<int>(shape.size()))).ok());
  return back;
}

}  // namespace

TEST(Sklearn, StandardScaler) {
  expect_matches(fit_transform("input.npy", {}), load("expected_standard.npy"), "StandardScaler");
  NormalizerOptions no_mean;
  no_mean.with_mean = false;
  expect_matches(fit_transform("input.npy", no_mean), load("expected_standard_no_mean.npy"), "with_mean=False");
  expect_matches(fit_transform("input.npy", {}, true), load("expected_standard_inverse.npy"), "inverse_transform");
  expect_matches(fit_transform("input_nan.npy", {}), load("expected_standard_nan.npy"), "NaN ignored in fit, kept");
}

TEST(Sklearn, MinMaxAndMaxAbs) {
  NormalizerOptions o;
  o.method = Method::minmax;
  o.range_min = -1;
  o.range_max = 2;
  expect_matches(fit_transform("input.npy", o), load("expected_minmax.npy"), "MinMaxScaler((-1, 2))");
  o.range_min = 0;
  o.range_max = 1;
  expect_matches(fit_transform("input_nan.npy", o), load("expected_minmax_nan.npy"), "MinMaxScaler with NaN");
  o.method = Method::maxabs;
  expect_matches(fit_transform("input.npy", o), load("expected_maxabs.npy"), "MaxAbsScaler");
}

TEST(Sklearn, ImputerAndPipeline) {
  NormalizerOptions o;
  o.method = Method::impute_mean;
  expect_matches(fit_transform("input_nan.npy", o), load("expected_impute_mean.npy"), "SimpleImputer(mean)");
  NormalizerOptions fused;
  fused.impute_nan = true;
  expect_matches(fit_transform("input_nan.npy", fused), load("expected_impute_then_standard.npy"), "imputer + scaler");
}

TEST(Sklearn, NormalizerRows) {
  std::vector<std::int64_t> shape;
  std::vector<double> x = load("input.npy", &shape);
  for (auto [p, name] : {std::pair<LpNorm, const char*>{LpNorm::l1, "l1"}, {LpNorm::l2, "l2"}, {LpNorm::linf, "max"}}) {
    std::vector<double> y(x.size());
    TensorView in(x.data(), DType::float64, shape.data(), 2), out(y.data(), DType::float64, shape.data(), 2);
    ASSERT_TRUE(normalize_lp(in, p, out, nullptr, 0).ok());
    expect_matches(y, load(std::string("expected_normalizer_") + name + ".npy"), name);
  }
}

// scikit-learn's rules for constant features (StandardScaler) and near-zero scales (MinMaxScaler,
// MaxAbsScaler) per input dtype, on the rule fixtures scikit-learn itself wrote.
TEST(SklearnRules, ConstantFeaturesAndNearZeroScalesOnTheHost) {
  const auto fixtures = normkit::testing::sklearn_rule_fixtures();
  ASSERT_EQ(fixtures.size(), 12u);
  for (const auto& f : fixtures) {
    std::vector<unsigned char> input = f.bytes, result(f.bytes.size());
    const int nd = static_cast<int>(f.shape.size());
    TensorView in(input.data(), f.dtype, f.shape.data(), nd), out(result.data(), f.dtype, f.shape.data(), nd);
    NormalizerOptions o = f.options;
    o.fitted_dtype = DType::float64;  // adapt sets it from the batch
    Normalizer n;
    ASSERT_TRUE(n.init(o, MemorySpace::host).ok());
    ASSERT_TRUE(n.adapt(in).ok());
    EXPECT_EQ(n.options().fitted_dtype, f.dtype) << f.label;
    const Status s = n.transform(in, out);
    ASSERT_TRUE(s.ok()) << s.message();
    normkit::testing::expect_sklearn_rule(f, normkit::testing::decode(result, f.dtype), "host");
  }
}
