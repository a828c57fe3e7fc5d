// Image normalize test cases shared by the host and device tests: seeded batches in either layout (with
// padded rows), an independent float64 reference written from the formula, and the tolerance of the issue
// (2 ulp of y's dtype x max(1, |reference|)).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "normkit/image.hpp"
#include "transform_check.hpp"

namespace normkit::testing {

struct ImageCase {
  std::int64_t n = 2, c = 3, h = 5, w = 7;
  DType in = DType::uint8, out = DType::float32;
  ImageNormalizeOptions options;
  std::vector<std::uint8_t> mirror_flags;  // empty: none
  std::vector<std::int64_t> crop_origins;  // (row, column) an image, any values (clamped); empty: options' crop
  std::int64_t row_padding = 0;            // elements of padding after every input row
  unsigned seed = 1;

  std::int64_t out_h() const { return options.crop_height < 0 ? h - options.crop_y : options.crop_height; }
  std::int64_t out_w() const { return options.crop_width < 0 ? w - options.crop_x : options.crop_width; }
  bool in_nhwc() const { return options.layout == ImageLayout::nhwc; }
  bool out_nhwc() const { return options.out_layout == ImageLayout::nhwc; }
  // Elements of an input row including padding.
  std::int64_t row_elements() const { return (in_nhwc() ? w * c : w) + row_padding; }
  std::int64_t in_elements() const { return n * c * h * row_elements() / (in_nhwc() ? c : 1); }
  std::int64_t out_elements() const { return n * c * out_h() * out_w(); }
  std::string name() const {
    return std::string("image ") + dtype_name(in) + (in_nhwc() ? " nhwc " : " nchw ") + "[" + std::to_string(n) + ", " + std::to_string(c) + ", " +
           std::to_string(h) + ", " + std::to_string(w) + "] -> " + dtype_name(out) + (out_nhwc() ? " nhwc" : " nchw") + " crop " +
           std::to_string(options.crop_y) + "," + std::to_string(options.crop_x) + "," + std::to_string(out_h()) + "," +
           std::to_string(out_w()) + (options.mirror ? " mirror" : "") + (mirror_flags.empty() ? "" : " mirror flags") + (crop_origins.empty() ? "" : " crop origins") +
           (options.reverse_channels ? " reversed" : "") + " pad " + std::to_string(row_padding);
  }
  TensorView x_view(void* data, MemorySpace space = MemorySpace::host) const {
    return in_nhwc() ? TensorView(data, in, {n, h, w, c}, space) : TensorView(data, in, {n, c, h, w}, space);
  }
  TensorView y_view(void* data, MemorySpace space = MemorySpace::host) const {
    return out_nhwc() ? TensorView(data, out, {n, out_h(), out_w(), c}, space) : TensorView(data, out, {n, c, out_h(), out_w()}, space);
  }
  ImageNormalizeOptions call_options() const {
    ImageNormalizeOptions o = options;
    o.row_pitch_bytes = row_padding > 0 ? row_elements() * static_cast<std::int64_t>(dtype_size(in)) : 0;
    return o;
  }
};

// ImageNet's statistics in the units the input needs (unit for uint8 unless the case says pixel).
inline ImageCase image_case(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, DType in, DType out, ImageLayout from,
                            ImageLayout to) {
  ImageCase k;
  k.n = n, k.c = c, k.h = h, k.w = w, k.in = in, k.out = out;
  k.options.layout = from;
  k.options.out_layout = to;
  k.options.units = in == DType::uint8 ? PixelUnits::unit : PixelUnits::pixel;
  const double mean[4] = {0.485, 0.456, 0.406, 0.5}, std[4] = {0.229, 0.224, 0.225, 0.25};
  for (std::int64_t i = 0; i < c; ++i) {
    k.options.mean.push_back(mean[i % 4] + 0.01 * static_cast<double>(i / 4));
    k.options.std.push_back(std[i % 4]);
  }
  return k;
}

struct ImageData {
  TypedData x;                  // in the case's layout, padded rows (padding holds values never read)
  std::vector<double> logical;  // stored values as [N, H, W, C]
};

inline ImageData make_image_data(const ImageCase& k) {
  const bool u8 = k.in == DType::uint8;
  std::vector<double> values = uniform_values(static_cast<std::size_t>(k.in_elements()), u8 ? 0.0 : -0.5, u8 ? 256.0 : 1.5, k.seed);
  if (u8) {
    for (double& v : values) v = std::floor(v);
  }
  ImageData d;
  d.x = encode(values, k.in);
  d.logical.resize(static_cast<std::size_t>(k.n * k.h * k.w * k.c));
  const std::int64_t row = k.row_elements();
  for (std::int64_t n = 0; n < k.n; ++n) {
    for (std::int64_t i = 0; i < k.h; ++i) {
      for (std::int64_t j = 0; j < k.w; ++j) {
        for (std::int64_t c = 0; c < k.c; ++c) {
          const std::int64_t at = k.in_nhwc() ? (n * k.h + i) * row + j * k.c + c : ((n * k.c + c) * k.h + i) * row + j;
          d.logical[((n * k.h + i) * k.w + j) * k.c + c] = d.x.stored[at];
        }
      }
    }
  }
  return d;
}

// y from the formula in float64, in the case's output layout.
inline std::vector<double> image_reference(const ImageCase& k, const ImageData& d) {
  const ImageNormalizeOptions& o = k.options;
  const double u = k.in == DType::uint8 && o.units == PixelUnits::unit ? 1.0 / 255.0 : 1.0;
  const std::int64_t oh = k.out_h(), ow = k.out_w();
  std::vector<double> y(static_cast<std::size_t>(k.out_elements()));
  for (std::int64_t n = 0; n < k.n; ++n) {
    const bool mirrored = o.mirror || (!k.mirror_flags.empty() && k.mirror_flags[n] != 0);
    for (std::int64_t c = 0; c < k.c; ++c) {
      const std::int64_t source_c = o.reverse_channels ? k.c - 1 - c : c;
      for (std::int64_t i = 0; i < oh; ++i) {
        for (std::int64_t j = 0; j < ow; ++j) {
          // (per-image origins: clamped so that the window lies inside the image)
          const std::int64_t y0 = k.crop_origins.empty() ? o.crop_y : std::min(std::max<std::int64_t>(k.crop_origins[2 * n], 0), k.h - oh);
          const std::int64_t x0 = k.crop_origins.empty() ? o.crop_x : std::min(std::max<std::int64_t>(k.crop_origins[2 * n + 1], 0), k.w - ow);
          const std::int64_t si = y0 + i, sj = x0 + (mirrored ? ow - 1 - j : j);
          const double x = d.logical[((n * k.h + si) * k.w + sj) * k.c + source_c];
          const double v = (u * x - o.mean[c]) * o.global_scale / std::sqrt(o.std[c] * o.std[c] + o.eps) + o.global_shift;
          y[k.out_nhwc() ? ((n * oh + i) * ow + j) * k.c + c : ((n * k.c + c) * oh + i) * ow + j] = v;
        }
      }
    }
  }
  return y;
}

inline double ulp_of(DType d) { return d == DType::float32 ? 0x1p-23 : d == DType::float16 ? 0x1p-10 : 0x1p-7; }

inline void expect_image_near_reference(const ImageCase& k, const ImageData& d, const std::vector<unsigned char>& y_bytes) {
  const std::vector<double> got = decode(y_bytes, k.out), want = image_reference(k, d);
  ASSERT_EQ(got.size(), want.size()) << k.name();
  int reported = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double tol = 2 * ulp_of(k.out) * std::fmax(1.0, std::fabs(want[i]));
    if (!(std::fabs(got[i] - want[i]) <= tol) && !(std::isnan(got[i]) && std::isnan(want[i]))) {
      ADD_FAILURE() << k.name() << ": y[" << i << "] = " << got[i] << ", reference " << want[i] << " (tolerance " << tol << ")";
      if (++reported == 5) return;
    }
  }
}

// Runs the case on host memory; y's bytes.
inline std::vector<unsigned char> run_image_host(const ImageCase& k, ImageData& d) {
  std::vector<unsigned char> y(static_cast<std::size_t>(k.out_elements()) * dtype_size(k.out), 0xcd);
  std::vector<std::uint8_t> flags = k.mirror_flags;
  const TensorView f = flags.empty() ? TensorView() : TensorView(flags.data(), DType::uint8, {k.n});
  std::vector<std::int64_t> origins = k.crop_origins;
  const Status s = origins.empty() ? image_normalize(k.x_view(d.x.data()), k.y_view(y.data()), k.call_options(), f)
                                   : image_normalize_crops(k.x_view(d.x.data()), k.y_view(y.data()), k.call_options(),
                                                           TensorView(origins.data(), DType::int64, {k.n, 2}), f);
  EXPECT_TRUE(s.ok()) << k.name() << ": " << s.message();
  return y;
}

}  // namespace normkit::testing
