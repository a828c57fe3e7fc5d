// Double-double arithmetic (a value as the unevaluated sum hi + lo of two doubles, ~106 bits): just the
// operations the exact integer statistics need to round a fraction of 64-bit integers once. Error-free
// transformations (Knuth's two-sum, the FMA two-product); every product whose error matters is an
// explicit fma, so contraction by the compiler cannot change a result.
#pragma once

#include <cmath>
#include <cstdint>

#include "math/host_device.hpp"

namespace normkit::math {

struct DoubleDouble {
  double hi;
  double lo;
};

// a + b exactly, as s + e with s = fl(a + b).
NORMKIT_HD DoubleDouble two_sum(double a, double b) {
  const double s = a + b;
  const double bb = s - a;
  const double e = (a - (s - bb)) + (b - bb);
  return {s, e};
}

// a * b exactly, as p + e with p = fl(a * b).
NORMKIT_HD DoubleDouble two_prod(double a, double b) {
  const double p = a * b;
  return {p, fma(a, b, -p)};
}

// An unsigned 64-bit integer exactly (its 32-bit halves are exact doubles, and so is their sum's error).
NORMKIT_HD DoubleDouble dd_from_u64(std::uint64_t x) {
  return two_sum(static_cast<double>(static_cast<std::uint32_t>(x >> 32)) * 4294967296.0,
                 static_cast<double>(static_cast<std::uint32_t>(x)));
}

// a - b, to ~2^-104 relative (exact when the difference is representable).
NORMKIT_HD DoubleDouble dd_sub(DoubleDouble a, DoubleDouble b) {
  const DoubleDouble s = two_sum(a.hi, -b.hi);
  return two_sum(s.hi, s.lo + (a.lo - b.lo));
}

// x / d for a double d > 0: one quotient digit, its exact remainder (the products are exact), a second digit.
NORMKIT_HD DoubleDouble dd_div(DoubleDouble x, double d) {
  const double q1 = x.hi / d;
  const DoubleDouble p = two_prod(q1, d);
  const double r = ((x.hi - p.hi) - p.lo) + x.lo;
  return two_sum(q1, r / d);
}

// sqrt(x) for x >= 0 rounded to double (one Newton correction of the double square root of hi).
NORMKIT_HD double dd_sqrt(DoubleDouble x) {
  if (!(x.hi > 0.0)) return x.hi == 0.0 ? 0.0 : sqrt(x.hi);
  const double s = sqrt(x.hi);
  const double e = fma(-s, s, x.hi) + x.lo;
  return s + e / (2.0 * s);
}

}  // namespace normkit::math
