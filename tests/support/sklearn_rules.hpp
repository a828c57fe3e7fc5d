// scikit-learn's decision rules (constant feature, near-zero scale) on the committed rule fixtures of
// tests/fixtures/generate_fixtures.py: each case's input per dtype and what scikit-learn itself made of it.
// Host and device tests run the same cases and compare with both scikit-learn and the reference.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "normkit/normalize.hpp"

namespace normkit::testing {

struct SklearnRuleFixture {
  std::string label;                   // "<case> <dtype>"
  NormalizerOptions options;           // fitted_dtype set to the input's dtype; axes: per feature
  DType dtype = DType::float64;        // of the input, also the output's (float64 for the expected values)
  std::vector<std::int64_t> shape;
  std::vector<unsigned char> bytes;    // the input as stored
  std::vector<double> values;          // the input as doubles
  std::vector<double> expected;        // scikit-learn's output
  // Allowed |normkit - expected| / (1 + |expected|). Cases whose output is ill-conditioned (x - mean of a
  // spread of 1e-14 around 1 loses ~2% to one ulp of the mean in any float64 implementation) get a wider
  // one; it still tells a scaled feature (+-1) from an unscaled one (+-1e-14) by 12 orders of magnitude.
  double tolerance = 0;
};

// Every case x dtype that generate_fixtures.py wrote (fails the calling test if a file is missing).
std::vector<SklearnRuleFixture> sklearn_rule_fixtures();

// Compares normkit's output for `f` (decoded to double) with scikit-learn's and with the reference.
void expect_sklearn_rule(const SklearnRuleFixture& f, const std::vector<double>& actual, const std::string& where);

}  // namespace normkit::testing
