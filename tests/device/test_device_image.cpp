// Image normalize kernel: the host engine's bits and the float64 reference on every dtype and layout pair,
// crop, mirror flags, reversal, padded rows, odd shapes, misaligned pointers, small forced tiles (rows cut
// into columns, partial tiles) and graph capture.
#include <gtest/gtest.h>

#include "device_support.hpp"
#include "image_check.hpp"
#include "plan/image_plan.hpp"

namespace normkit::testing {
namespace {

struct ForcedTiles {
  plan::ImageOverride o;
  explicit ForcedTiles(std::int64_t bytes) : o{bytes} { plan::set_image_override(bytes > 0 ? &o : nullptr); }
  ~ForcedTiles() { plan::set_image_override(nullptr); }
};

// Runs the case on the device (x `offset` bytes past an allocation's start, y `out_offset`): y's bytes.
std::vector<unsigned char> run_image_device(const ImageCase& k, ImageData& d, std::size_t offset = 0, std::size_t out_offset = 0,
                                            int replays = 0) {
  const std::size_t y_bytes = static_cast<std::size_t>(k.out_elements()) * dtype_size(k.out);
  std::vector<unsigned char> y(y_bytes, 0xcd);
  DeviceCopy dx = to_device(d.x.data(), d.x.bytes.size(), offset);
  DeviceCopy dy = to_device(y.data(), y_bytes, out_offset);
  DeviceCopy dflags = to_device(k.mirror_flags.data(), k.mirror_flags.size());
  const TensorView flags = k.mirror_flags.empty() ? TensorView() : TensorView(dflags.ptr(), DType::uint8, {k.n}, MemorySpace::device);
  DeviceCopy dorigins = to_device(k.crop_origins.data(), k.crop_origins.size() * sizeof(std::int64_t));
  run_on_new_stream(replays, [&](cudaStream_t stream) {
    const TensorView x = k.x_view(dx.ptr(), MemorySpace::device), y = k.y_view(dy.ptr(), MemorySpace::device);
    const Status s = k.crop_origins.empty()
                         ? image_normalize(x, y, k.call_options(), flags, stream)
                         : image_normalize_crops(x, y, k.call_options(), TensorView(dorigins.ptr(), DType::int64, {k.n, 2}, MemorySpace::device), flags,
                                                 stream);
    EXPECT_TRUE(s.ok()) << k.name() << ": " << s.message();
  });
  from_device(y, dy);
  return y;
}

void check(const ImageCase& k, std::size_t offset = 0, std::size_t out_offset = 0) {
  SCOPED_TRACE(k.name() + " offsets " + std::to_string(offset) + "/" + std::to_string(out_offset));
  ImageData d = make_image_data(k);
  const std::vector<unsigned char> device = run_image_device(k, d, offset, out_offset);
  expect_image_near_reference(k, d, device);
  EXPECT_EQ(device, run_image_host(k, d)) << "device bits differ from the host engine's";
}

const ImageLayout kLayouts[] = {ImageLayout::nhwc, ImageLayout::nchw};

TEST(ImageDevice, EveryDtypeAndLayoutPair) {
  REQUIRE_DEVICE();
  for (DType in : {DType::uint8, DType::float16, DType::bfloat16, DType::float32}) {
    for (DType out : {DType::float32, DType::float16, DType::bfloat16}) {
      for (ImageLayout from : kLayouts) {
        for (ImageLayout to : kLayouts) check(image_case(2, 3, 5, 7, in, out, from, to));
      }
    }
  }
}

TEST(ImageDevice, CropMirrorFlagsReversalPaddedRowsAndMisalignment) {
  REQUIRE_DEVICE();
  for (ImageLayout from : kLayouts) {
    for (ImageLayout to : kLayouts) {
      ImageCase k = image_case(3, 3, 9, 37, DType::uint8, DType::float32, from, to);
      k.options.crop_y = 2, k.options.crop_x = 3, k.options.crop_height = 5, k.options.crop_width = 29;
      k.mirror_flags = {1, 0, 1};
      k.options.reverse_channels = true;
      check(k);
      k.row_padding = 3;
      check(k, 5, 4);
      k.in = DType::float16, k.out = DType::bfloat16, k.options.units = PixelUnits::pixel;
      check(k, 2, 2);
    }
  }
}

// Per-image crop windows (device origins, clamped in the kernel) on every layout pair, with mirror flags,
// padded rows, several tiles an image and the host engine's bits.
TEST(ImageDevice, PerImageCropOrigins) {
  REQUIRE_DEVICE();
  for (ImageLayout from : kLayouts) {
    for (ImageLayout to : kLayouts) {
      ImageCase k = image_case(4, 3, 9, 37, DType::uint8, DType::float16, from, to);
      k.options.crop_height = 5, k.options.crop_width = 29;
      k.crop_origins = {0, 0, 4, 8, -3, 99, 2, 3};
      k.mirror_flags = {0, 1, 1, 0};
      check(k);
      k.row_padding = 3, k.in = DType::float32, k.out = DType::float32, k.options.units = PixelUnits::pixel;
      check(k, 4, 0);
    }
  }
  ImageCase big = image_case(3, 3, 70, 300, DType::uint8, DType::float32, ImageLayout::nhwc, ImageLayout::nchw);  // (tiles of cut rows)
  big.options.crop_height = 61, big.options.crop_width = 257;
  big.crop_origins = {9, 43, 0, 0, 5, 1};
  check(big);
  // Long runs (float32 rows of 2.4 KB: the run-by-run copy and its edge-image range checks), the last image's
  // window at its far corner, x misaligned, every image mirrored.
  ImageCase runs = image_case(3, 3, 6, 200, DType::float32, DType::float32, ImageLayout::nhwc, ImageLayout::nhwc);
  runs.options.units = PixelUnits::pixel, runs.options.crop_height = 4, runs.options.crop_width = 190, runs.options.mirror = true;
  runs.crop_origins = {1, 3, 0, 0, 99, 99};
  check(runs, 4, 0);
}

TEST(ImageDevice, OddShapesAndChannelCounts) {
  REQUIRE_DEVICE();
  for (std::int64_t c : {1, 3, 4}) {
    for (auto hw : {std::pair<std::int64_t, std::int64_t>{1, 1}, {3, 33}, {17, 1}}) {
      for (ImageLayout from : kLayouts) {
        check(image_case(2, c, hw.first, hw.second, DType::uint8, DType::float16, from, ImageLayout::nchw));
        check(image_case(2, c, hw.first, hw.second, DType::float32, DType::float32, from, ImageLayout::nhwc));
      }
    }
  }
  check(image_case(1, 16, 3, 5, DType::bfloat16, DType::float32, ImageLayout::nchw, ImageLayout::nhwc));
}

// Small forced tiles: rows cut into column tiles (partial last tile, mirrored tiles swap their sources),
// several row tiles, merged and unmerged runs.
TEST(ImageDevice, ForcedSmallTiles) {
  REQUIRE_DEVICE();
  for (std::int64_t bytes : {24, 100, 700}) {
    ForcedTiles forced(bytes);
    for (ImageLayout from : kLayouts) {
      for (ImageLayout to : kLayouts) {
        ImageCase k = image_case(2, 3, 6, 45, DType::uint8, DType::float32, from, to);
        k.mirror_flags = {0, 1};
        check(k);
        k.options.crop_x = 4, k.options.crop_width = 33, k.options.crop_y = 1;
        k.in = DType::float32, k.out = DType::float16;
        k.options.units = PixelUnits::pixel;
        check(k, 4);
      }
    }
  }
}

// Widths whose rows hold whole 16-byte output packs take the fast walks (nchw output; nhwc from nhwc without
// mirror or reversal); a misaligned y or a mirror sends the same shapes through the general walk.
TEST(ImageDevice, PackAlignedRows) {
  REQUIRE_DEVICE();
  for (std::int64_t bytes : {0, 100}) {
    ForcedTiles forced(bytes);
    for (ImageLayout from : kLayouts) {
      for (ImageLayout to : kLayouts) {
        for (DType out : {DType::float32, DType::float16}) {
          ImageCase k = image_case(2, 3, 5, 48, DType::uint8, out, from, to);
          check(k);
          check(k, 0, 4);  // misaligned y
          k.mirror_flags = {1, 0};
          k.options.reverse_channels = true;
          check(k);
          k.in = DType::bfloat16, k.options.units = PixelUnits::pixel, k.w = 16, k.c = 4;
          k.options.mean.push_back(0.5), k.options.std.push_back(0.25);
          check(k, 2);
          k.mirror_flags.clear(), k.options.reverse_channels = false;
          check(k);
        }
      }
    }
  }
}

// Three channels to nhwc output whose rows hold whole packs: the lane-rotated walk, from either layout, with
// mirror flags and reversal, every dtype pair (uint8's tables, float32's float64 formula, 16-bit input's split
// float32 formula, 16-bit output's paired conversions); a partial last group of 96 packs; nchw planes whose
// size is not a multiple of 16 bytes (the general walk) beside ones that are.
TEST(ImageDevice, ThreeChannelNhwcOutput) {
  REQUIRE_DEVICE();
  for (std::int64_t bytes : {0, 200}) {
    ForcedTiles forced(bytes);
    for (ImageLayout from : kLayouts) {
      for (DType in : {DType::uint8, DType::float16, DType::bfloat16, DType::float32}) {
        for (DType out : {DType::float32, DType::float16, DType::bfloat16}) {
          for (std::int64_t w : {48, 40}) {
            ImageCase k = image_case(2, 3, 5, w, in, out, from, ImageLayout::nhwc);
            check(k);
            k.mirror_flags = {1, 0};
            k.options.reverse_channels = true;
            check(k, in == DType::uint8 ? 1 : in == DType::float32 ? 4 : 2);  // (x one element off its 16 bytes)
          }
        }
      }
    }
  }
  // Padded rows and a crop (one run a row: tile rows r > 0 at their own alignment; nchw planes of 416 bytes),
  // with and without forced tiles of 4 and 3 rows (a short last tile).
  for (std::int64_t bytes : {0, 400}) {
    ForcedTiles forced(bytes);
    for (ImageLayout from : kLayouts) {
      for (DType out : {DType::float32, DType::float16}) {
        ImageCase k = image_case(2, 3, 8, 48, DType::uint8, out, from, ImageLayout::nhwc);
        k.row_padding = 4;
        k.options.crop_x = 3, k.options.crop_width = 32, k.options.crop_height = 7;
        check(k);
        k.mirror_flags = {0, 1};
        k.options.reverse_channels = true;
        check(k);
      }
    }
  }
  // Tiles of many groups of 96 packs: each warp takes several.
  check(image_case(2, 3, 32, 64, DType::uint8, DType::float32, ImageLayout::nhwc, ImageLayout::nhwc));
  check(image_case(2, 3, 32, 64, DType::float32, DType::bfloat16, ImageLayout::nchw, ImageLayout::nhwc));
}

TEST(ImageDevice, CapturedInAGraph) {
  REQUIRE_DEVICE();
  ImageCase k = image_case(2, 3, 8, 8, DType::uint8, DType::bfloat16, ImageLayout::nhwc, ImageLayout::nchw);
  ImageData d = make_image_data(k);
  expect_image_near_reference(k, d, run_image_device(k, d, 0, 0, 2));
}

TEST(ImageDevice, MirrorFlagsOnTheHostAreAnError) {
  REQUIRE_DEVICE();
  ImageCase k = image_case(2, 3, 4, 4, DType::uint8, DType::float32, ImageLayout::nhwc, ImageLayout::nchw);
  DeviceBytes x(96), y(384);
  std::uint8_t flags[2] = {1, 0};
  const Status s = image_normalize(k.x_view(x.ptr, MemorySpace::device), k.y_view(y.ptr, MemorySpace::device), k.call_options(),
                                   TensorView(flags, DType::uint8, {2}));
  EXPECT_NE(s.message().find("'mirror_flags.space'"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace normkit::testing
