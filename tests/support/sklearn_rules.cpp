#include "sklearn_rules.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <utility>

#include "io/npy.hpp"
#include "reference_transform.hpp"
#include "transform_check.hpp"

namespace normkit::testing {
namespace {

struct RuleCase {
  const char* name;
  NormalizerOptions options;
  std::vector<DType> dtypes;
  double ill_conditioned_tolerance;  // 0: the dtype's usual tolerance
};

std::vector<RuleCase> rule_cases() {
  NormalizerOptions standard, no_mean, minmax, maxabs;
  no_mean.with_mean = false;
  minmax.method = Method::minmax;
  maxabs.method = Method::maxabs;
  const std::vector<DType> both = {DType::float64, DType::float32};
  const std::vector<DType> three = {DType::float64, DType::float32, DType::float16};
  return {
      {"standard_tiny_spread", standard, both, 0},
      {"standard_n10", standard, both, 0.05},
      {"standard_n10000_no_mean", no_mean, both, 0},
      {"minmax_tiny_range", minmax, three, 0},
      {"maxabs_tiny_max", maxabs, three, 0},
  };
}

bool read_fixture(const std::string& file, io::NpyArray* a) {
  const Status s = io::read_npy(std::string(NORMKIT_FIXTURES_DIR) + "/" + file, a);
  EXPECT_TRUE(s.ok()) << file << ": " << s.message();
  return s.ok();
}

}  // namespace

std::vector<SklearnRuleFixture> sklearn_rule_fixtures() {
  std::vector<SklearnRuleFixture> all;
  for (const RuleCase& c : rule_cases()) {
    for (DType dtype : c.dtypes) {
      const std::string stem = std::string("rules_") + c.name + "_" + dtype_name(dtype);
      io::NpyArray input, expected;
      if (!read_fixture(stem + "_input.npy", &input) || !read_fixture(stem + "_expected.npy", &expected)) continue;
      EXPECT_EQ(input.dtype, dtype) << stem;
      EXPECT_EQ(expected.dtype, DType::float64) << stem;
      EXPECT_EQ(input.shape, expected.shape) << stem;
      SklearnRuleFixture f;
      f.label = std::string(c.name) + " " + dtype_name(dtype);
      f.options = c.options;
      f.options.fitted_dtype = dtype;
      f.dtype = dtype;
      f.shape = input.shape;
      f.bytes = input.data;
      f.values = decode(input.data, dtype);
      f.expected = decode(expected.data, DType::float64);
      f.tolerance = c.ill_conditioned_tolerance > 0 ? c.ill_conditioned_tolerance : tolerance(dtype);
      all.push_back(std::move(f));
    }
  }
  return all;
}

void expect_sklearn_rule(const SklearnRuleFixture& f, const std::vector<double>& actual, const std::string& where) {
  const std::vector<double> reference = reference_transform(f.values, f.shape, {true, false}, f.options);
  ASSERT_EQ(actual.size(), f.expected.size()) << f.label;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    for (auto [want, from] : {std::pair<double, const char*>{f.expected[i], "scikit-learn"}, {reference[i], "reference"}}) {
      EXPECT_LE(std::fabs(actual[i] - want), f.tolerance * (1 + std::fabs(want)))
          << where << " " << f.label << " element " << i << ": " << actual[i] << ", " << from << " " << want;
    }
  }
}

}  // namespace normkit::testing
