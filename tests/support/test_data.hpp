// Seeded test inputs stored in any input dtype, and the exact values the library reads back.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "normkit/dtype.hpp"

namespace normkit::testing {

// Independent float16/bfloat16 codecs (round to nearest even via the host's float arithmetic).
inline std::uint16_t encode_half(double value) {
  const float f = static_cast<float>(value);
  if (std::isnan(f)) return 0x7e00;
  const std::uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(f));
  if (a >= 65520.0) return sign | 0x7c00;
  if (a < std::ldexp(1.0, -14)) return sign | static_cast<std::uint16_t>(std::nearbyint(a * std::ldexp(1.0, 24)));
  int e = 0;
  const double m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  double mant = std::nearbyint((m * 2 - 1) * 1024);
  int exp = e - 1 + 15;
  if (mant == 1024) { mant = 0; ++exp; }
  if (exp >= 31) return sign | 0x7c00;
  return sign | static_cast<std::uint16_t>((exp << 10) | static_cast<int>(mant));
}
inline double decode_half(std::uint16_t h) {
  const int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (exp == 31) return mant ? std::nan("") : sign * INFINITY;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  return sign * std::ldexp(1024 + mant, exp - 25);
}
inline std::uint16_t encode_bfloat16(double value) {
  const float f = static_cast<float>(value);
  std::uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (std::isnan(f)) return 0x7fc0;
  return static_cast<std::uint16_t>((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}
inline double decode_bfloat16(std::uint16_t b) {
  const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// A tensor's bytes in `dtype`, plus the values as stored (after rounding) for the reference.
struct TypedData {
  DType dtype;
  std::vector<unsigned char> bytes;
  std::vector<double> stored;
  void* data() { return bytes.data(); }
};

inline TypedData encode(const std::vector<double>& values, DType dtype) {
  TypedData t{dtype, std::vector<unsigned char>(values.size() * dtype_size(dtype)), std::vector<double>(values.size())};
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double v = values[i];
    unsigned char* p = t.bytes.data() + i * dtype_size(dtype);
    switch (dtype) {
      case DType::float32: { const float f = static_cast<float>(v); std::memcpy(p, &f, 4); t.stored[i] = f; break; }
      case DType::float64: { std::memcpy(p, &v, 8); t.stored[i] = v; break; }
      case DType::float16: { const std::uint16_t h = encode_half(v); std::memcpy(p, &h, 2); t.stored[i] = decode_half(h); break; }
      case DType::bfloat16: { const std::uint16_t b = encode_bfloat16(v); std::memcpy(p, &b, 2); t.stored[i] = decode_bfloat16(b); break; }
      case DType::uint8: {
        const double c = std::isnan(v) ? 0 : std::fmin(255, std::fmax(0, std::nearbyint(v)));
        *p = static_cast<unsigned char>(c); t.stored[i] = c; break;
      }
      case DType::int64: { const std::int64_t q = static_cast<std::int64_t>(v); std::memcpy(p, &q, 8); t.stored[i] = static_cast<double>(q); break; }
    }
  }
  return t;
}

// n values uniform in [lo, hi) (uint8-friendly when lo >= 0), from a fixed seed.
inline std::vector<double> uniform_values(std::size_t n, double lo, double hi, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

inline std::vector<double> normal_values(std::size_t n, double mean, double stddev, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(mean, stddev);
  std::vector<double> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

}  // namespace normkit::testing
