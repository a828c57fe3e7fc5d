// Comparing transform outputs (any output dtype) with the reference, shared by host and device tests.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "normkit/dtype.hpp"
#include "test_data.hpp"

namespace normkit::testing {

inline std::vector<double> decode(const std::vector<unsigned char>& bytes, DType dtype) {
  const std::size_t n = bytes.size() / dtype_size(dtype);
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char* p = bytes.data() + i * dtype_size(dtype);
    switch (dtype) {
      case DType::float32: { float f; std::memcpy(&f, p, 4); v[i] = f; break; }
      case DType::float64: std::memcpy(&v[i], p, 8); break;
      case DType::float16: { std::uint16_t h; std::memcpy(&h, p, 2); v[i] = decode_half(h); break; }
      case DType::bfloat16: { std::uint16_t h; std::memcpy(&h, p, 2); v[i] = decode_bfloat16(h); break; }
      default: v[i] = NAN;
    }
  }
  return v;
}

inline double tolerance(DType out) {
  switch (out) {
    case DType::float64: return 1e-10;
    case DType::float16: return 2e-3;
    case DType::bfloat16: return 1e-2;
    default: return 2e-5;
  }
}

inline void expect_close(const std::vector<double>& actual, const std::vector<double>& expected, DType out, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  const double tol = tolerance(out);
  int failures = 0;
  for (std::size_t i = 0; i < actual.size() && failures < 5; ++i) {
    const double e = expected[i], a = actual[i];
    const bool ok = std::isnan(e) ? std::isnan(a) : std::fabs(a - e) <= tol * (1 + std::fabs(e));
    if (!ok) {
      ++failures;
      ADD_FAILURE() << what << ": element " << i << " = " << a << ", reference " << e;
    }
  }
}

// Data of subnormal float32/bfloat16 magnitude, and affine coefficients whose scale is beyond FLT_MAX (as
// 1 / std of such data is): y = (x - center) * scale lies in about [-6, 4].
constexpr double kSubnormalCenter = 2e-40, kSubnormalScale = 5e39;
inline std::vector<double> subnormal_values(std::size_t n, unsigned seed) { return uniform_values(n, -1e-39, 1e-39, seed); }
inline std::vector<double> subnormal_affine_reference(const std::vector<double>& stored) {
  std::vector<double> y(stored.size());
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = (stored[i] - kSubnormalCenter) * kSubnormalScale;
  return y;
}

}  // namespace normkit::testing
