// Image normalize on the host: every input x output dtype and layout pair, crop, mirror, channel reversal,
// padded rows and odd shapes against the float64 reference; argument errors; the plan's tiles.
#include <gtest/gtest.h>

#include <cstring>

#include "image_check.hpp"
#include "math/image.hpp"
#include "plan/image_plan.hpp"

namespace normkit::testing {
namespace {

const DType kInputs[] = {DType::uint8, DType::float16, DType::bfloat16, DType::float32};
const DType kOutputs[] = {DType::float32, DType::float16, DType::bfloat16};
const ImageLayout kLayouts[] = {ImageLayout::nhwc, ImageLayout::nchw};

void check(ImageCase k) {
  SCOPED_TRACE(k.name());
  ImageData d = make_image_data(k);
  expect_image_near_reference(k, d, run_image_host(k, d));
}

TEST(ImageHost, EveryDtypeAndLayoutPair) {
  for (DType in : kInputs) {
    for (DType out : kOutputs) {
      for (ImageLayout from : kLayouts) {
        for (ImageLayout to : kLayouts) check(image_case(3, 3, 5, 7, in, out, from, to));
      }
    }
  }
}

TEST(ImageHost, CropMirrorReversalAndPaddedRows) {
  for (ImageLayout from : kLayouts) {
    for (ImageLayout to : kLayouts) {
      ImageCase k = image_case(3, 3, 9, 11, DType::uint8, DType::float32, from, to);
      k.options.crop_y = 2, k.options.crop_x = 3, k.options.crop_height = 5, k.options.crop_width = 6;
      check(k);
      k.options.mirror = true;
      check(k);
      k.options.mirror = false;
      k.mirror_flags = {1, 0, 1};
      k.options.reverse_channels = true;
      check(k);
      k.row_padding = 5;
      check(k);
      k.in = DType::bfloat16, k.out = DType::float16;
      k.options.units = PixelUnits::pixel;
      check(k);
    }
  }
}

// A crop window of its own for every image (random crops), with origins outside the image clamped into it.
TEST(ImageHost, PerImageCropOriginsClampedIntoTheImage) {
  for (ImageLayout from : kLayouts) {
    for (ImageLayout to : kLayouts) {
      ImageCase k = image_case(4, 3, 9, 13, DType::uint8, DType::float32, from, to);
      k.options.crop_height = 5, k.options.crop_width = 6;
      k.crop_origins = {0, 0, 4, 7, -3, 99, 2, 3};  // corner, far corner, clamped both ways, inside
      k.mirror_flags = {0, 1, 1, 0};
      check(k);
      k.row_padding = 2, k.in = DType::bfloat16, k.out = DType::float16, k.options.units = PixelUnits::pixel;
      check(k);
    }
  }
  ImageCase k = image_case(2, 1, 4, 4, DType::float32, DType::float32, ImageLayout::nhwc, ImageLayout::nhwc);
  k.crop_origins = {1, 1, 0, 0};  // (a window of the whole image: every origin clamps to 0)
  check(k);
  // Errors: a crop origin in the options too, the wrong dtype or count.
  ImageData d = make_image_data(k);
  std::vector<float> y(static_cast<std::size_t>(k.out_elements()));
  std::vector<std::int64_t> origins = {0, 0, 0, 0};
  std::vector<std::int32_t> narrow = {0, 0, 0, 0};
  ImageNormalizeOptions o = k.call_options();
  o.crop_y = 1, o.crop_height = 2;
  Status s = image_normalize_crops(k.x_view(d.x.data()), TensorView(y.data(), DType::float32, {2, 2, 4, 1}), o,
                                   TensorView(origins.data(), DType::int64, {2, 2}));
  EXPECT_NE(s.message().find("crop_origins gives"), std::string::npos) << s.message();
  s = image_normalize_crops(k.x_view(d.x.data()), k.y_view(y.data()), k.call_options(), TensorView(narrow.data(), DType::float32, {2, 2}));
  EXPECT_EQ(s.code(), StatusCode::unsupported_dtype) << s.message();
  s = image_normalize_crops(k.x_view(d.x.data()), k.y_view(y.data()), k.call_options(), TensorView(origins.data(), DType::int64, {3}));
  EXPECT_EQ(s.code(), StatusCode::shape_mismatch) << s.message();
  s = image_normalize_crops(k.x_view(d.x.data()), k.y_view(y.data()), k.call_options(), TensorView(origins.data(), DType::int64, {2, 2}));
  EXPECT_TRUE(s.ok()) << s.message();
  s = image_normalize_crops(k.x_view(d.x.data()), k.y_view(y.data()), k.call_options(), TensorView(origins.data(), DType::int64, {1, 4}));
  EXPECT_EQ(s.code(), StatusCode::shape_mismatch) << "a [1, 4] array of origins (2 N values, not [N, 2])";
}

TEST(ImageHost, OddShapesAndChannelCounts) {
  for (std::int64_t c : {1, 3, 4, 16}) {
    for (auto hw : {std::pair<std::int64_t, std::int64_t>{1, 1}, {1, 33}, {31, 1}, {7, 13}}) {
      for (ImageLayout from : kLayouts) {
        check(image_case(2, c, hw.first, hw.second, DType::uint8, DType::float16, from, ImageLayout::nchw));
        check(image_case(2, c, hw.first, hw.second, DType::float32, DType::float32, from, ImageLayout::nhwc));
      }
    }
  }
}

TEST(ImageHost, PixelUnitsScaleShiftAndEps) {
  ImageCase k = image_case(2, 3, 4, 5, DType::uint8, DType::float32, ImageLayout::nhwc, ImageLayout::nchw);
  k.options.units = PixelUnits::pixel;
  k.options.mean = {123.675, 116.28, 103.53};
  k.options.std = {58.395, 57.12, 57.375};
  check(k);
  k.options.global_scale = 64.0, k.options.global_shift = 128.0, k.options.eps = 1.5;
  check(k);
  k.options.std = {0.0, 1.0, 2.0};  // std 0 with eps > 0
  check(k);
}

TEST(ImageHost, UnitAndPixelUnitsAgreeForUint8) {
  // mean 0.5 in [0, 1] units is 127.5 in pixel units: the same normalized values (to rounding).
  ImageCase unit = image_case(1, 1, 3, 3, DType::uint8, DType::float32, ImageLayout::nhwc, ImageLayout::nchw);
  unit.options.mean = {0.5}, unit.options.std = {0.25};
  ImageCase pixel = unit;
  pixel.options.units = PixelUnits::pixel;
  pixel.options.mean = {127.5}, pixel.options.std = {63.75};
  ImageData d = make_image_data(unit);
  const std::vector<double> a = decode(run_image_host(unit, d), DType::float32), b = decode(run_image_host(pixel, d), DType::float32);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6);
}

TEST(ImageHost, NanAndInfinityPropagate) {
  ImageCase k = image_case(1, 1, 1, 3, DType::float32, DType::float16, ImageLayout::nhwc, ImageLayout::nchw);
  std::vector<float> x = {NAN, INFINITY, 1.0f};
  std::vector<std::uint16_t> y(3);
  ASSERT_TRUE(image_normalize(k.x_view(x.data()), k.y_view(y.data()), k.call_options()).ok());
  EXPECT_TRUE(std::isnan(decode_half(y[0])));
  EXPECT_TRUE(std::isinf(decode_half(y[1])));
}

TEST(ImageHost, EmptyBatchAndEmptyCropAreNoOps) {
  ImageCase k = image_case(0, 3, 4, 4, DType::uint8, DType::float32, ImageLayout::nhwc, ImageLayout::nchw);
  EXPECT_TRUE(image_normalize(k.x_view(nullptr), k.y_view(nullptr), k.call_options()).ok());
  k.n = 1;
  k.options.crop_width = 0;
  std::vector<std::uint8_t> x(48);
  EXPECT_TRUE(image_normalize(k.x_view(x.data()), k.y_view(nullptr), k.call_options()).ok());
}

// Each bad argument: an error naming it, y untouched.
TEST(ImageHost, ArgumentErrorsNameTheArgumentAndWriteNothing) {
  const ImageCase base = image_case(2, 3, 4, 5, DType::uint8, DType::float32, ImageLayout::nhwc, ImageLayout::nchw);
  std::vector<std::uint8_t> x(static_cast<std::size_t>(base.in_elements()) * 8, 7);
  std::vector<float> y(static_cast<std::size_t>(base.out_elements()) * 4, 42.0f);
  auto expect_error = [&](ImageCase k, const std::string& argument, TensorView xv = TensorView(), TensorView yv = TensorView(),
                          TensorView flags = TensorView()) {
    if (xv.ndim == 0) xv = k.x_view(x.data());
    if (yv.ndim == 0) yv = k.y_view(y.data());
    const Status s = image_normalize(xv, yv, k.call_options(), flags);
    EXPECT_FALSE(s.ok()) << argument;
    EXPECT_NE(s.message().find("'" + argument), std::string::npos) << s.message();
    for (float v : y) ASSERT_EQ(v, 42.0f) << argument;
  };
  ImageCase k = base;
  k.options.units = PixelUnits::unspecified;
  expect_error(k, "options.units");
  k = base, k.options.mean.pop_back();
  expect_error(k, "options.mean");
  k = base, k.options.std[1] = 0.0;
  expect_error(k, "options.std[1]");
  k = base, k.options.std[2] = -1.0, k.options.eps = 1.0;
  expect_error(k, "options.std[2]");
  k = base, k.options.mean[0] = NAN;
  expect_error(k, "options.mean[0]");
  k = base, k.options.eps = -1.0;
  expect_error(k, "options.eps");
  k = base, k.options.crop_y = 5;
  expect_error(k, "options.crop_y");
  k = base, k.options.crop_x = 1, k.options.crop_width = 5;
  expect_error(k, "options.crop_width");
  k = base;
  expect_error(k, "y.shape", TensorView(), TensorView(y.data(), DType::float32, {2, 3, 4, 4}));
  expect_error(k, "y.dtype", TensorView(), TensorView(y.data(), DType::float64, {2, 3, 4, 5}));
  expect_error(k, "x.dtype", TensorView(x.data(), DType::float64, {2, 4, 5, 3}));
  expect_error(k, "x.ndim", TensorView(x.data(), DType::uint8, {2, 4, 15}));
  expect_error(k, "x.shape", TensorView(x.data(), DType::uint8, {2, 4, 1, 17}));
  std::vector<std::uint8_t> flags = {1, 0};
  k = base, k.options.mirror = true;
  expect_error(k, "mirror_flags", TensorView(), TensorView(), TensorView(flags.data(), DType::uint8, {2}));
  k = base;
  expect_error(k, "mirror_flags.shape", TensorView(), TensorView(), TensorView(flags.data(), DType::uint8, {1}));
  k = base, k.row_padding = 1;
  ImageNormalizeOptions o = k.call_options();
  o.row_pitch_bytes = 14;  // a row is 15 bytes
  const Status s = image_normalize(k.x_view(x.data()), k.y_view(y.data()), o);
  EXPECT_NE(s.message().find("'options.row_pitch_bytes'"), std::string::npos) << s.message();
  // y overlapping x
  k = base;
  expect_error(k, "y.data", TensorView(), TensorView(x.data() + 4, DType::float32, {2, 3, 4, 5}));
}

// The split float32 formula of 16-bit input to float32 output: within 1 ulp x max(1, |y|) of the exact value,
// over float16's whole finite range of the ImageNet-like coefficients and far-from-zero ones.
TEST(ImageMath, SplitFormulaWithinOneUlp) {
  struct Coefficients { double mean, std, shift; bool allowed; };
  const Coefficients cases[] = {{123.675, 58.395, 0.0, true}, {0.485, 0.229, 0.0, true}, {100.0, 333.0, 5.0, true}, {-0.5, 0.0081, -0.25, true},
                                {0.0, 1.0, 0.0, true}, {0.0, 0.25, 1.0, true} /* S = 4: 12 bits */, {3.0, 0.5, 0.0, true},
                                {60000.1, 0.229, 0.0, false} /* |B| > 256: float64 */};
  for (const Coefficients& c : cases) {
    const math::ImageCoefficients k = math::image_coefficients(1, &c.mean, &c.std, 0.0, 1.0, c.shift, 1.0);
    ASSERT_EQ(k.split, c.allowed) << c.mean;
    if (!k.split) continue;
    for (std::uint32_t bits = 0; bits < 0x7c00; bits += 7) {  // every 7th finite positive float16, and its negative
      for (std::uint32_t sign : {0u, 0x8000u}) {
        const double x = decode_half(static_cast<std::uint16_t>(bits | sign));
        const double exact = (x - c.mean) / c.std + c.shift;
        const float got = math::image_value_split(static_cast<float>(x), k.splits[0]);
        ASSERT_LE(std::fabs(got - exact), 0x1p-23 * std::fmax(1.0, std::fabs(exact))) << "x " << x << " mean " << c.mean;
      }
    }
    EXPECT_EQ(math::image_value_split(INFINITY, k.splits[0]), INFINITY);
    EXPECT_EQ(math::image_value_split(-INFINITY, k.splits[0]), -INFINITY);
    EXPECT_TRUE(std::isnan(math::image_value_split(NAN, k.splits[0])));
  }
  // bfloat16's range needs |S| <= 1/2 besides
  const double mean = 0.485, std_unit = 0.229, std_pixel = 58.395;
  EXPECT_FALSE(math::image_coefficients(1, &mean, &std_unit, 0.0, 1.0, 0.0, 1.0).split_bfloat16);
  EXPECT_TRUE(math::image_coefficients(1, &mean, &std_pixel, 0.0, 1.0, 0.0, 1.0).split_bfloat16);
}

TEST(ImagePlan, WholeRowsWhileARowFitsElseCutRows) {
  plan::ImageGeometry g;
  g.batch = 256, g.channels = 3, g.in_height = g.out_height = 224, g.in_width = g.out_width = 224;
  g.in_element_bytes = 1, g.out_element_bytes = 4, g.row_pitch = 224 * 3;
  plan::ImagePlan p = plan::choose_image_plan(g, true, 8, 132, 233472);
  EXPECT_EQ(p.tile_cols, 224);
  // (as many tiles as the target's rows give, their rows evened out: no short last tile)
  const std::int64_t most_rows = plan::ImagePolicy::kTileInputBytes / (224 * 3);
  EXPECT_EQ(p.row_tiles, (224 + most_rows - 1) / most_rows);
  EXPECT_EQ(p.tile_rows, (224 + p.row_tiles - 1) / p.row_tiles);
  EXPECT_LE(p.tile_rows, most_rows);
  EXPECT_EQ(p.tiles, 256 * p.row_tiles);
  EXPECT_EQ(p.grid, 132 * plan::ImagePolicy::kBlocksPerSm);
  EXPECT_EQ(p.threads, plan::ImagePolicy::kThreads);
  EXPECT_LE(p.shared_bytes, 48u * 1024);
  // A SM that holds fewer such blocks (sm_80: 164 KB, sm_86: 100 KB) gets a grid it can hold at once.
  EXPECT_EQ(plan::choose_image_plan(g, true, 8, 108, 167936).grid, 108 * 3);
  EXPECT_EQ(plan::choose_image_plan(g, true, 8, 84, 102400).grid, 84 * 2);
  // A row of 4096 float32 pixels of 4 channels: cut into columns.
  g.in_width = g.out_width = 4096, g.channels = 4, g.in_element_bytes = 4, g.row_pitch = 4096 * 16;
  p = plan::choose_image_plan(g, false, 8, 132, 233472);
  EXPECT_EQ(p.tile_rows, 1);
  EXPECT_EQ(p.tile_cols, plan::ImagePolicy::kTileInputBytes / 16);
  EXPECT_EQ(p.col_tiles, (4096 + p.tile_cols - 1) / p.tile_cols);
  // Narrow images: rows bounded by their padded shared memory; small tiles take fewer threads.
  g.in_width = g.out_width = 1, g.channels = 16, g.in_nhwc = false, g.in_element_bytes = 4, g.row_pitch = 4;
  p = plan::choose_image_plan(g, false, 8, 132, 233472);
  EXPECT_LE(p.shared_bytes, 48u * 1024);
  g.in_height = g.out_height = 1;
  p = plan::choose_image_plan(g, false, 8, 132, 233472);
  EXPECT_EQ(p.threads, 32);
  // The override forces small tiles.
  const plan::ImageOverride o{64};
  plan::set_image_override(&o);
  g.in_height = g.out_height = 224, g.in_width = g.out_width = 224, g.channels = 3, g.in_nhwc = true, g.in_element_bytes = 1, g.row_pitch = 672;
  p = plan::choose_image_plan(g, true, 8, 132, 233472);
  plan::set_image_override(nullptr);
  EXPECT_EQ(p.tile_rows, 1);
  EXPECT_EQ(p.tile_cols, 16);  // (64 / 3 = 21 columns, cut to a multiple of 16: whole output packs)
  EXPECT_EQ(p.col_tiles, 14);
}

}  // namespace
}  // namespace normkit::testing
