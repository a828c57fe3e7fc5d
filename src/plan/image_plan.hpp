// How image normalize walks a batch: the geometry of a call and the kernel's tiles. Pure host functions.
//
// A tile is `tile_rows` output rows of `tile_cols` columns of one image (whole rows when a row's input fits
// the tile), every channel. Its input (a run of bytes per row, or one run when the rows are adjacent in
// memory) is copied to shared memory with 16-byte cp.async copies at the global alignment, then each output
// element is read from there in the output's order: both sides coalesced whatever the layouts, crop, mirror
// and channel order. A block walks tiles blockIdx.x, blockIdx.x + grid, ... with two input buffers (the next
// tile's copy in flight while it writes one), building uint8's tables once.
#pragma once

#include <cstddef>
#include <cstdint>

#include "normkit/dtype.hpp"

namespace normkit::plan {

struct ImageGeometry {
  std::int64_t batch = 0, channels = 0, in_height = 0, in_width = 0;
  std::int64_t out_height = 0, out_width = 0, crop_y = 0, crop_x = 0;
  bool in_nhwc = true, out_nhwc = false;
  int in_element_bytes = 1, out_element_bytes = 4;
  std::int64_t row_pitch = 0;  // bytes from one input row to the next (resolved: never 0)

  // Bytes of a pixel within an input row: all its channels (nhwc) or one (nchw).
  std::int64_t pixel_bytes() const { return in_nhwc ? channels * in_element_bytes : in_element_bytes; }
  // Bytes from one input channel plane to the next (nchw) and from one image to the next.
  std::int64_t plane_bytes() const { return in_height * row_pitch; }
  std::int64_t image_bytes() const { return in_nhwc ? plane_bytes() : channels * plane_bytes(); }
  // Offset of the crop window's first pixel in an image (channel 0's plane).
  std::int64_t origin_bytes() const { return crop_y * row_pitch + crop_x * pixel_bytes(); }
  // The highest crop origin (row, column) that keeps the window inside the image (per-image origins clamp to it).
  std::int64_t max_crop_y() const { return in_height - out_height; }
  std::int64_t max_crop_x() const { return in_width - out_width; }
  std::int64_t out_numel() const { return batch * channels * out_height * out_width; }
};

// Tile policy. The model (scripts/check_model.py, image cases) binds these constants.
struct ImagePolicy {
  // Input bytes a tile aims at: whole rows while a row fits (rows = this / row bytes, then evened out over
  // the image's tiles), else a row cut into columns. As large as two buffers and float32 tables allow: the
  // per-tile work of a block (tile geometry, copy set-up, the write's set-up) is a large share of its issue
  // (uint8 -> float16, 224 x 224 x 3: 0.75 issue cycles an element at 16 KB, 0.62 at 22 KB, modelled).
  static constexpr std::int64_t kTileInputBytes = 22528;
  // Output elements of a tile at most (and so every index a block divides): 2^15 keeps the kernel's
  // multiply-high divisions exact.
  static constexpr std::int64_t kMaxTileElements = 1 << 15;
  // Threads of a block and blocks a SM, resident together (the kernel's launch bounds: at most 128
  // registers a thread; the grid is this many blocks a SM). Each thread works out a tile's geometry, its
  // copy and its walk's set-up, so fewer threads a tile spread that over more elements: 128 threads x 4
  // blocks against 256 x 3 took uint8 -> float16 nhwc -> nchw from 0.61 to 0.51 issue cycles an element
  // and float32 nchw -> nhwc bfloat16 from 2.6 to 2.0 (modelled), with 4 tiles' copies in flight a SM.
  // (Four blocks' shared memory, 4 x 48 KB, fits sm_90's 227 KB a SM; sm_80's 164 KB holds three.)
  static constexpr int kThreads = 128;
  static constexpr int kBlocksPerSm = 4;
  // Dynamic shared memory of a block at most: the tables and two input buffers stay within the default
  // 48 KB with the kernel's static shared memory (kernels::ImageBlockConstants, at most kStaticShared bytes).
  // Each row run of a buffer is padded to 16 bytes plus 16 for its alignment: narrow rows cost more shared
  // memory than bytes.
  static constexpr std::int64_t kStaticShared = 512;
  static constexpr std::int64_t kMaxShared = 49152 - kStaticShared;
};

struct ImagePlan {
  std::int64_t tile_rows = 1, tile_cols = 1;  // output rows and columns of a tile
  std::int64_t row_tiles = 1, col_tiles = 1;  // tiles of an image
  std::int64_t tiles = 0;                     // batch * row_tiles * col_tiles
  std::int64_t grid = 0;                      // blocks (0: nothing to do), each walking tiles a grid apart
  int threads = ImagePolicy::kThreads;
  std::size_t table_bytes = 0;   // shared memory before the input: uint8's tables or the coefficients
  std::size_t buffer_bytes = 0;  // one input buffer (a tile's runs)
  std::size_t shared_bytes = 0;  // dynamic shared memory of a block: tables and two buffers
};

// Test-only: a smaller tile input size on later plans of this thread (forces cut rows and many tiles).
struct ImageOverride {
  std::int64_t tile_input_bytes = 0;
};
void set_image_override(const ImageOverride* override_or_null) noexcept;

// `compute_bytes`: sizeof of the kernel's arithmetic type (coefficients in shared memory); uint8 input keeps
// a table of 256 output values a channel instead. `shared_per_sm`: the device's shared memory a SM (bytes).
ImagePlan choose_image_plan(const ImageGeometry& g, bool uint8_input, int compute_bytes, int sm_count, std::int64_t shared_per_sm);

// Shared memory of a tile's input: every run padded to 16 bytes plus 16 for its alignment.
std::size_t image_tile_input_bytes(const ImageGeometry& g, std::int64_t tile_rows, std::int64_t tile_cols);

}  // namespace normkit::plan
