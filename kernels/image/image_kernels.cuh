// Image normalize kernel: tiles of images (plan/image_plan.hpp), a block taking tiles blockIdx.x,
// blockIdx.x + gridDim.x, ... with two input buffers: the next tile's copy is in flight while the current
// one is written.
//
// Phases of a block:
//   0. uint8's tables (256 output values a channel, in float64 rounded once) or the coefficients.
//   1. copy a tile: its input runs (one a row, or one for rows adjacent in memory; a plane's apiece in nchw)
//      into a shared buffer, each run placed at its global alignment: the 16-byte chunks holding it by
//      cp.async copies.
//   2. write a tile: every output element in output order, 16 bytes a store where the output is aligned,
//      read from shared memory at its source position (crop, mirror, channel reversal, the input layout).
// Preconditions (the launcher's): a tile holds at most 2^15 output elements; the input of every tile lies
// inside x; y is aligned to its element.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/common/vector_load.cuh"
#include "math/image.hpp"
#include "plan/image_plan.hpp"

namespace normkit::kernels {

struct ImageKernelArgs {
  const unsigned char* x = nullptr;
  void* y = nullptr;
  const std::uint8_t* mirror_flags = nullptr;  // per image, or nullptr
  const std::int64_t* crop_origins = nullptr;  // (row, column) per image, clamped to the max below; or nullptr
  std::int64_t max_crop_y = 0, max_crop_x = 0;
  const unsigned char* x_origin = nullptr;  // x + origin_bytes (without crop_origins), else x
  std::int64_t x_bytes = 0;  // the bytes x spans (every padded row)
  std::int64_t batch = 0;
  std::int64_t image_bytes = 0, plane_bytes = 0, row_pitch = 0;
  int channels = 1, pixel_bytes = 1, in_element_bytes = 1;
  int out_height = 0, out_width = 0;
  int tile_rows = 1, tile_cols = 1, row_tiles = 1, col_tiles = 1;
  int table_bytes = 0;   // shared memory before the input buffers
  int buffer_bytes = 0;  // shared memory of one input buffer
  std::int64_t tiles = 0;  // batch * row_tiles * col_tiles
  bool in_nhwc = true, out_nhwc = false, mirror_all = false, reverse_channels = false;
  math::ImageCoefficients coefficients;
};

// q = n / d for n * d < 2^31 (here n, d <= 2^15): the high word of 2n * ceil(2^31 / d), one multiply and no
// branch (the doubling folds into the index arithmetic before it).
struct TileDivisor {
  unsigned magic;
  __device__ __forceinline__ static unsigned magic_of(unsigned d) { return (0x80000000u + d - 1) / d; }
  __device__ __forceinline__ unsigned div(unsigned n) const { return __umulhi(n << 1, magic); }
};

// Entry x of a uint8 table whose shared-memory address is `table`: one multiply-add for the address (the
// index (c << 8) | x took a prmt, a shift and an add an element).
template <typename Out>
__device__ __forceinline__ Out table_entry(unsigned table, unsigned x) {
  unsigned address;
  asm("mad.lo.u32 %0, %1, %2, %3;" : "=r"(address) : "r"(x), "n"(static_cast<int>(sizeof(Out))), "r"(table));
  Out out;
  if constexpr (sizeof(Out) == 2) {
    asm volatile("ld.shared.u16 %0, [%1];" : "=h"(out.bits) : "r"(address));
  } else {
    asm volatile("ld.shared.f32 %0, [%1];" : "=f"(out) : "r"(address));
  }
  return out;
}

__device__ __forceinline__ void cp_async_16(void* shared_dst, const void* global_src) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(shared_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(global_src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
// Waits until at most `kPending` of the committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(kPending) : "memory"); }

// What a tile's shape (its rows and columns) fixes: the layout of its input runs in shared memory, and the
// divisors of the copy and the write. Runs: rows adjacent in memory form one run a plane, planes adjacent too
// one run for the tile; run (plane p, row r) starts at shared offset p * plane_stride + r * row_stride plus its
// global address mod 16. Worked out once a block for each of an image's (at most) four tile shapes.
struct ImageTileShape {
  enum Divisor { kSlots, kRuns, kPlane, kCols, kRows, kRow, kDivisors };
  std::int64_t run_pitch, run_plane;  // global step between runs of a plane, and between planes' runs
  int rows, cols;
  int row_stride, plane_stride, runs_per_plane, run_count, run_length;

  __device__ __forceinline__ static ImageTileShape of(const ImageKernelArgs& a, int rows, int cols) {
    ImageTileShape s;
    s.rows = rows, s.cols = cols;
    const int planes = a.in_nhwc ? 1 : a.channels;
    const int row_bytes = cols * a.pixel_bytes;  // a row of a plane
    const bool rows_merged = a.row_pitch == row_bytes;
    const bool planes_merged = rows_merged && (planes == 1 || a.plane_bytes == static_cast<std::int64_t>(rows) * row_bytes);
    s.row_stride = rows_merged ? row_bytes : (row_bytes + 15) / 16 * 16 + 16;
    s.plane_stride = planes_merged ? rows * row_bytes : rows_merged ? (rows * row_bytes + 15) / 16 * 16 + 16 : rows * s.row_stride;
    s.run_pitch = rows_merged ? 0 : a.row_pitch;
    s.run_plane = planes_merged ? 0 : a.plane_bytes;
    s.runs_per_plane = rows_merged ? 1 : rows;
    s.run_count = (planes_merged ? 1 : planes) * s.runs_per_plane;
    s.run_length = row_bytes * (rows_merged ? rows : 1) * (planes_merged ? planes : 1);
    return s;
  }
  // The divisor `which` (a Divisor).
  __device__ __forceinline__ int divisor(const ImageKernelArgs& a, int which) const {
    return which == kSlots ? run_length / 16 + 2
           : which == kRuns ? runs_per_plane
           : which == kPlane ? rows * cols
           : which == kCols ? cols
           : which == kRows ? rows
                            : (a.out_nhwc ? cols * a.channels : cols);
  }
};

// The block's constants, worked out once by the lanes of its first warp in parallel (a division costs about
// 54 issue cycles a warp; redone by every thread at each change of tile shape, the divisions were 15% of a
// uint8 -> float16 call's issue, and the tile geometry a thread built twice a tile as much again, modelled).
struct ImageBlockConstants {
  ImageTileShape shapes[4];  // [2 (last row of tiles) + 1 (last column of tiles)]
  // TileDivisor magics of each shape: slots of a run (chunks + 2), runs of a plane, elements of a plane,
  // columns, rows and output elements of a row
  unsigned magic[4][ImageTileShape::kDivisors];
  unsigned channels_magic;
  unsigned first_image, step_images, step_tiles;  // blockIdx.x / tiles an image, gridDim.x / and % tiles an image
};
static_assert(sizeof(ImageBlockConstants) <= plan::ImagePolicy::kStaticShared, "the plan's share of static shared memory");
constexpr int kImageBlockConstantLanes = 4 * ImageTileShape::kDivisors + 4;
static_assert(kImageBlockConstantLanes <= 32, "a lane a division");

// Everything a block derives from a tile's index (with its shape's constants).
struct ImageTile {
  std::int64_t n;
  int oh0, ow0, rows, cols;
  int shape;  // an index of ImageBlockConstants::shapes
  bool mirrored;
  const unsigned char* in;  // the source of the tile's (row 0, column 0)
  int row_stride, plane_stride, runs_per_plane, run_count, run_length;  // ImageTileShape's
  std::int64_t run_pitch, run_plane;

  __device__ __forceinline__ ImageTile(const ImageKernelArgs& a, const ImageBlockConstants& k, std::int64_t image, int tile_in_image) {
    n = image;
    const int tr = a.col_tiles == 1 ? tile_in_image : tile_in_image / a.col_tiles;
    const int tc = tile_in_image - tr * a.col_tiles;
    oh0 = tr * a.tile_rows;
    ow0 = tc * a.tile_cols;
    shape = (tr == a.row_tiles - 1 ? 2 : 0) + (tc == a.col_tiles - 1 ? 1 : 0);
    const ImageTileShape& s = k.shapes[shape];
    rows = s.rows, cols = s.cols;
    row_stride = s.row_stride, plane_stride = s.plane_stride, runs_per_plane = s.runs_per_plane;
    run_count = s.run_count, run_length = s.run_length, run_pitch = s.run_pitch, run_plane = s.run_plane;
    mirrored = a.mirror_all || (a.mirror_flags != nullptr && a.mirror_flags[n] != 0);
    const int source_col0 = mirrored ? a.out_width - ow0 - cols : ow0;  // the tile's first input column in the crop
    // (the options' crop origin is folded into x_origin: the per-image origins cost a tile one uniform branch)
    in = a.x_origin + n * a.image_bytes + static_cast<std::int64_t>(oh0) * a.row_pitch + static_cast<std::int64_t>(source_col0) * a.pixel_bytes;
    if (a.crop_origins != nullptr) in += math::clamped_crop_origin_bytes(a.crop_origins + 2 * n, a.max_crop_y, a.max_crop_x, a.row_pitch, a.pixel_bytes);
  }
};

// Phase 1: the tile's input into `buffer`. Every 16-byte chunk that holds bytes of a run goes by one
// cp.async copy (slot i of a run: its i-th chunk from the run's first byte rounded down to 16), bytes around
// the run included: they lie in the sectors the run touches, and in its own padded place in shared memory.
// Only a chunk reaching outside x (a run at the very start or end of the batch) is copied byte by byte.
__device__ __forceinline__ void copy_tile(const ImageTile& t, TileDivisor by_slots, TileDivisor by_runs, unsigned char* buffer,
                                          const unsigned char* x_begin, const unsigned char* x_end, bool edge_image) {
  const int slots_per_run = t.run_length / 16 + 2;
  // Run k: its first byte, its first chunk (that byte rounded down to 16) and its place in shared memory.
  auto run_of = [&](int k, const unsigned char*& first, const unsigned char*& chunk0, unsigned char*& dst) {
    const int plane = static_cast<int>(by_runs.div(static_cast<unsigned>(k)));
    const int row = k - plane * t.runs_per_plane;
    first = t.in + plane * t.run_plane + row * t.run_pitch;
    chunk0 = reinterpret_cast<const unsigned char*>(reinterpret_cast<std::uintptr_t>(first) & ~std::uintptr_t{15});
    dst = buffer + plane * t.plane_stride + row * t.row_stride;
  };
  // A chunk reaching outside x: the run's bytes of it, one by one.
  auto copy_bytes = [&](unsigned char* dst, const unsigned char* chunk, const unsigned char* first) {
    for (int b = 0; b < 16; ++b) {
      if (chunk + b >= first && chunk + b < first + t.run_length) dst[b] = chunk[b];
    }
  };
  if (slots_per_run >= static_cast<int>(blockDim.x)) {
    // Long runs (a merged tile, or planes): run by run, the run's arithmetic (and the range of its chunks
    // lying wholly in x) once, an add a chunk.
    for (int k = 0; k < t.run_count; ++k) {
      const unsigned char *first, *chunk0;
      unsigned char* dst;
      run_of(k, first, chunk0, dst);
      const int chunks = static_cast<int>((first + t.run_length - chunk0 + 15) >> 4);
      // (only the batch's first and last images have chunks reaching outside x: the others skip the 64-bit
      // comparisons, a fifth of a float32 tile's set-up)
      int lo = 0, hi = chunks;
      if (edge_image) {
        lo = chunk0 >= x_begin ? 0 : static_cast<int>((x_begin - chunk0 + 15) >> 4);
        hi = x_end - chunk0 >= 16 * static_cast<std::int64_t>(chunks) ? chunks : static_cast<int>((x_end - chunk0) >> 4);
      }
      for (int i = threadIdx.x; i < chunks; i += blockDim.x) {
        if (i >= lo && i < hi) {
          cp_async_16(dst + 16 * i, chunk0 + 16 * i);
        } else {
          copy_bytes(dst + 16 * i, chunk0 + 16 * i, first);
        }
      }
    }
  } else {
    const int slots = t.run_count * slots_per_run;
    for (int j = threadIdx.x; j < slots; j += blockDim.x) {
      const int k = static_cast<int>(by_slots.div(static_cast<unsigned>(j)));
      const int i = j - k * slots_per_run;
      const unsigned char *first, *chunk0;
      unsigned char* dst;
      run_of(k, first, chunk0, dst);
      const unsigned char* const chunk = chunk0 + 16 * i;
      if (chunk >= first + t.run_length) continue;
      if (chunk >= x_begin && chunk + 16 <= x_end) {
        cp_async_16(dst + 16 * i, chunk);
      } else {
        copy_bytes(dst + 16 * i, chunk, first);
      }
    }
  }
}

template <typename In, typename Out>
__global__ void __launch_bounds__(plan::ImagePolicy::kThreads, plan::ImagePolicy::kBlocksPerSm) image_normalize_kernel(const ImageKernelArgs a) {
  using Compute = math::image_compute_t<In, Out>;
  constexpr bool kTable = std::is_same_v<In, std::uint8_t>;
  constexpr int kVec = 16 / static_cast<int>(sizeof(Out));
  extern __shared__ __align__(16) unsigned char shared[];
  Out* const y = static_cast<Out*>(a.y);

  // ---- 0. tables or coefficients --------------------------------------------------------------------------
  const math::ImageCoefficients& k = a.coefficients;
  Out* const table = reinterpret_cast<Out*>(shared);
  [[maybe_unused]] const unsigned table_shared = static_cast<unsigned>(__cvta_generic_to_shared(table));
  Compute* const center = reinterpret_cast<Compute*>(shared);
  Compute* const scale = center + a.channels;
  // 16-bit input to float32: the split float32 formula (math::ImageSplit) when the coefficients allow it
  constexpr bool kSplit = math::image_uses_split<In, Out>;
  math::ImageSplit* const splits = reinterpret_cast<math::ImageSplit*>(scale + a.channels);
  const bool split = math::image_split_allowed<In, Out>(k);
  if constexpr (kTable) {
    for (int i = threadIdx.x; i < a.channels * 256; i += blockDim.x) {
      const int c = i >> 8;
      table[i] = math::image_table_entry<Out>(i & 255, k.center[c], k.scale[c], k.shift);
    }
  } else {
    for (int c = threadIdx.x; c < a.channels; c += blockDim.x) {
      center[c] = static_cast<Compute>(k.center[c]);
      scale[c] = static_cast<Compute>(k.scale[c]);
      if constexpr (kSplit) splits[c] = k.splits[c];
    }
  }
  const Compute shift = static_cast<Compute>(k.shift);
  // One output channel's table (its shared-memory address) or coefficients, and the value of an input
  // element with them.
  struct ChannelCoefficients {
    unsigned table;
    Compute center, scale;
    math::ImageSplit split;
  };
  auto channel_coefficients = [&](unsigned c) {
    ChannelCoefficients out{};
    if constexpr (kTable) {
      out.table = table_shared + (c << 8) * static_cast<unsigned>(sizeof(Out));
    } else if (kSplit && split) {
      out.split = splits[c];
    } else {
      out.center = center[c], out.scale = scale[c];
    }
    return out;
  };
  [[maybe_unused]] auto channel_compute = [&](In x, const ChannelCoefficients& ck) -> Compute {
    if (kSplit && split) return static_cast<Compute>(math::image_value_split(math::to_acc<float>(x), ck.split));
    return math::image_value<Compute>(math::to_acc<Compute>(x), ck.center, ck.scale, shift);
  };
  auto channel_value = [&](In x, const ChannelCoefficients& ck) -> Out {
    if constexpr (kTable) {
      return table_entry<Out>(ck.table, x);
    } else {
      Out out;
      if (kSplit && split) {
        math::store_as(&out, math::image_value_split(math::to_acc<float>(x), ck.split));
      } else {
        math::store_as(&out, math::image_value<Compute>(math::to_acc<Compute>(x), ck.center, ck.scale, shift));
      }
      return out;
    }
  };
  const bool aligned_y = (reinterpret_cast<std::uintptr_t>(a.y) & 15) == 0;

  // The block's divisions, a lane each (ImageBlockConstants); the sync below also publishes the tables.
  __shared__ ImageBlockConstants constants;
  const int per_image = a.row_tiles * a.col_tiles;
  if (threadIdx.x < kImageBlockConstantLanes) {
    const int lane = static_cast<int>(threadIdx.x);
    // the rows and columns of tile shape i
    auto shape_of = [&](int i) {
      const int rows = (i & 2) ? a.out_height - (a.row_tiles - 1) * a.tile_rows : a.tile_rows;
      const int cols = (i & 1) ? a.out_width - (a.col_tiles - 1) * a.tile_cols : a.tile_cols;
      return ImageTileShape::of(a, rows, cols);
    };
    if (lane < 4) constants.shapes[lane] = shape_of(lane);
    unsigned numerator, divisor;
    bool remainder = false;
    const int shape = lane / ImageTileShape::kDivisors, which = lane - shape * ImageTileShape::kDivisors;
    if (shape < 4) {
      divisor = static_cast<unsigned>(shape_of(shape).divisor(a, which));
      numerator = 0x80000000u + divisor - 1;  // TileDivisor::magic_of
    } else {
      divisor = which == 0 ? static_cast<unsigned>(a.channels) : static_cast<unsigned>(per_image);
      numerator = which == 0 ? 0x80000000u + divisor - 1 : which == 1 ? blockIdx.x : gridDim.x;
      remainder = which == 3;
    }
    const unsigned q = numerator / divisor;  // (one division for the 28 lanes)
    const unsigned value = remainder ? numerator - q * divisor : q;
    if (shape < 4) {
      constants.magic[shape][which] = value;
    } else {
      (which == 0 ? constants.channels_magic : which == 1 ? constants.first_image : which == 2 ? constants.step_images : constants.step_tiles) = value;
    }
  }
  __syncthreads();
  const TileDivisor by_channels{constants.channels_magic};
  // The three-channel nhwc walk's constants of a lane, the same for every tile (set up once: a tile of
  // float32 input holds only ~40 values a thread): its channel order and those channels' coefficients.
  constexpr unsigned kDelta = (32u * kVec) % 3u;  // channel shift from pack j to pack j + 1 of a lane
  ChannelCoefficients channel[3];  // output channel (rotation + s) mod 3
  unsigned c0[3];                  // the channel of element 0 of the lane's pack j
  if (a.out_nhwc && a.channels == 3) {
    const unsigned rotation = ((threadIdx.x & 31u) * kVec) % 3u;  // the channel of element 0 of the lane's pack 0
NORMKIT_UNROLL
    for (int s = 0; s < 3; ++s) {
      const unsigned c = rotation + s >= 3 ? rotation + s - 3 : rotation + s;
      channel[s] = channel_coefficients(c);
      c0[s] = rotation + s * kDelta % 3 >= 3 ? rotation + s * kDelta % 3 - 3 : rotation + s * kDelta % 3;
    }
  }

  // Tiles blockIdx.x + j * gridDim.x as (image, tile of the image), stepped without dividing.
  const int step_tiles = static_cast<int>(constants.step_tiles);
  const std::int64_t step_images = constants.step_images;
  std::int64_t index = blockIdx.x, image = constants.first_image;
  int tile_in_image = static_cast<int>(blockIdx.x - constants.first_image * static_cast<unsigned>(per_image));
  auto advance = [&]() {
    index += gridDim.x;
    image += step_images;
    tile_in_image += step_tiles;
    if (tile_in_image >= per_image) tile_in_image -= per_image, ++image;
  };
  auto copy = [&](const ImageTile& t, int into) {
    const unsigned* const m = constants.magic[t.shape];
    copy_tile(t, TileDivisor{m[ImageTileShape::kSlots]}, TileDivisor{m[ImageTileShape::kRuns]},
              shared + a.table_bytes + into * a.buffer_bytes, a.x, a.x + a.x_bytes, t.n == 0 || t.n == a.batch - 1);
  };

  int buffer = 0;
  copy(ImageTile(a, constants, image, tile_in_image), 0);
  cp_async_commit();
  while (index < a.tiles) {
    // The next tile's copy goes out before this tile is written (the tiles are rebuilt from their indices
    // rather than kept: registers).
    const std::int64_t this_image = image;
    const int this_tile = tile_in_image;
    advance();
    if (index < a.tiles) copy(ImageTile(a, constants, image, tile_in_image), buffer ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const ImageTile t(a, constants, this_image, this_tile);
    const unsigned* const magic = constants.magic[t.shape];
    const TileDivisor by_plane{magic[ImageTileShape::kPlane]}, by_cols{magic[ImageTileShape::kCols]},
        by_rows{magic[ImageTileShape::kRows]}, by_row{magic[ImageTileShape::kRow]};

    // ---- 2. write the tile ----------------------------------------------------------------------------------
    const unsigned char* const input = shared + a.table_bytes + buffer * a.buffer_bytes;
    const std::int64_t n = t.n;
    const int rows = t.rows, cols = t.cols, oh0 = t.oh0, ow0 = t.ow0;
    const bool mirrored = t.mirrored;
    // Output runs: out nchw a plane's rows (one run a channel when the tile has whole rows), nhwc a row (one
    // run when whole rows). Element e of run r is element r * out_length + e of the tile in output order.
    const bool whole_rows = cols == a.out_width;
    const int tile_pixels = rows * cols;
    const int out_length = a.out_nhwc ? (whole_rows ? tile_pixels : cols) * a.channels : (whole_rows ? tile_pixels : cols);
    const int out_runs = a.out_nhwc ? (whole_rows ? 1 : rows) : a.channels * (whole_rows ? 1 : rows);
    const unsigned tile_in_low = static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(t.in));

    // Shared-memory offset of the input element of output channel c, tile row r, tile column j.
    auto source_offset = [&](unsigned c, unsigned r, unsigned j) -> unsigned {
      const unsigned c_in = a.reverse_channels ? a.channels - 1 - c : c;
      const unsigned j_in = mirrored ? cols - 1 - j : j;
      const unsigned plane = a.in_nhwc ? 0u : c_in;
      const unsigned misalignment = (tile_in_low + plane * static_cast<unsigned>(t.run_plane) + r * static_cast<unsigned>(t.run_pitch)) & 15u;
      return plane * t.plane_stride + r * t.row_stride + misalignment + j_in * a.pixel_bytes + (a.in_nhwc ? c_in * sizeof(In) : 0u);
    };
    // The output value of the input element at `offset`, for output channel c.
    auto value_from = [&](unsigned offset, unsigned c) -> Out {
      const In v = *reinterpret_cast<const In*>(input + offset);
      if constexpr (kTable) {
        return table_entry<Out>(table_shared + (c << 8) * static_cast<unsigned>(sizeof(Out)), v);
      } else {
        Out out;
        if (split) {
          math::store_as(&out, math::image_value_split(math::to_acc<float>(v), splits[c]));
        } else {
          math::store_as(&out, math::image_value<Compute>(math::to_acc<Compute>(v), center[c], scale[c], shift));
        }
        return out;
      }
    };

    // Fast walks, where every output row starts 16-byte aligned and no pack crosses a row: a pack's sources
    // are then evenly spaced in shared memory (a row's pixels, forwards or mirrored), found with one division
    // a pack. nchw output: a thread takes kVec pixels of a row and writes their pack of every channel
    // (the pixel's source and the output address are worked out once for the C packs). nhwc output from
    // nhwc input, neither mirrored nor reversed: the pack's elements follow the input's, channel by channel.
    const bool nchw_packs = !a.out_nhwc && aligned_y && a.out_width % kVec == 0 && ow0 % kVec == 0 && cols % kVec == 0;
    const bool nhwc_packs = a.out_nhwc && a.in_nhwc && !mirrored && !a.reverse_channels && aligned_y &&
                            (a.out_width * a.channels) % kVec == 0 && (ow0 * a.channels) % kVec == 0 && (cols * a.channels) % kVec == 0;
    const bool nhwc3_packs = a.out_nhwc && a.channels == 3 && aligned_y && (a.out_width * 3) % kVec == 0 && (ow0 * 3) % kVec == 0 &&
                             (cols * 3) % kVec == 0 && (a.in_nhwc || (t.run_plane & 15) == 0) && a.out_width < (1 << 30);
    if (nchw_packs) {
      const int packs = tile_pixels / kVec;
      const std::int64_t plane_out = static_cast<std::int64_t>(a.out_height) * a.out_width;  // output elements of a channel plane
      Out* const tile_out = y + (n * a.channels * a.out_height + oh0) * a.out_width + ow0;  // channel 0, tile row 0
      const int step = mirrored ? -a.pixel_bytes : a.pixel_bytes;
      const unsigned mirror_base = mirrored ? (cols - 1) * a.pixel_bytes : 0u;
      // (the input layout and, for three channels, the step between pixels hoisted out of the loops: the
      // loads take immediate offsets)
      auto walk = [&](auto in_nhwc, auto fixed_step) {
        constexpr int kFixedStep = decltype(fixed_step)::value;  // 0: the run-time step
        for (int i = threadIdx.x; i < packs; i += blockDim.x) {
          const unsigned e0 = static_cast<unsigned>(i * kVec);
          const unsigned r = by_cols.div(e0), q = e0 - r * cols;
          const unsigned pixel = r * t.row_stride + mirror_base + q * step;  // source of the pack's first pixel, channel 0, plane 0
          const unsigned row_low = tile_in_low + r * static_cast<unsigned>(t.run_pitch);
          Out* out = tile_out + static_cast<std::int64_t>(r) * a.out_width + q;
          for (int c = 0; c < a.channels; ++c, out += plane_out) {
            const unsigned c_in = a.reverse_channels ? a.channels - 1 - c : c;
            const unsigned o = decltype(in_nhwc)::value
                                   ? pixel + ((row_low & 15u) + c_in * sizeof(In))
                                   : pixel + c_in * t.plane_stride + ((row_low + c_in * static_cast<unsigned>(t.run_plane)) & 15u);
            [[maybe_unused]] const unsigned table_c = table_shared + (c << 8) * static_cast<unsigned>(sizeof(Out));
            Pack<Out, kVec> pack;
NORMKIT_UNROLL
            for (int v = 0; v < kVec; ++v) {
              const In x = *reinterpret_cast<const In*>(input + o + v * (kFixedStep != 0 ? kFixedStep : step));
              if constexpr (kTable) {
                pack.v[v] = table_entry<Out>(table_c, x);
              } else if (split) {
                math::store_as(&pack.v[v], math::image_value_split(math::to_acc<float>(x), splits[c]));
              } else {
                math::store_as(&pack.v[v], math::image_value<Compute>(math::to_acc<Compute>(x), center[c], scale[c], shift));
              }
            }
            store_pack(out, pack);
          }
        }
      };
      using Three = std::integral_constant<int, 3 * static_cast<int>(sizeof(In))>;
      using MinusThree = std::integral_constant<int, -3 * static_cast<int>(sizeof(In))>;
      using Any = std::integral_constant<int, 0>;
      if (a.in_nhwc) {
        if (step == Three::value) {
          walk(std::true_type{}, Three{});
        } else if (step == MinusThree::value) {
          walk(std::true_type{}, MinusThree{});
        } else {
          walk(std::true_type{}, Any{});
        }
      } else {
        walk(std::false_type{}, Any{});
      }
    } else if (nhwc3_packs) {
      // Three channels to nhwc output, any input layout, mirror and channel order. Packs go in groups of
      // 3 x 32: lane l of a warp takes packs 96 g + 32 j + l (j = 0, 1, 2), so that the channel of its element
      // v, (kVec (32 j + l) + v) mod 3, is the lane's rotation plus a constant of (j, v). A lane sets up the
      // three channels' coefficients (or tables) in its rotated order and the sources' offsets from a pack's
      // first pixel once a tile; a pack then costs its row, its pixel and an add an element.
      const unsigned lane = threadIdx.x & 31u;
      const int row_length = cols * 3;
      const int packs = rows * row_length / kVec;
      const int groups = (packs + 95) / 96;
      const int step = mirrored ? -a.pixel_bytes : a.pixel_bytes;  // from a pixel's source to the next one's
      const unsigned unit = a.in_nhwc ? static_cast<unsigned>(sizeof(In)) : static_cast<unsigned>(t.plane_stride);  // between channels
      const unsigned mirror_base = mirrored ? (cols - 1) * a.pixel_bytes : 0u;
      int slot[3][3];  // source of slot k (elements k, k + 3, ...) of pack j from the pack's first pixel
NORMKIT_UNROLL
      for (int j = 0; j < 3; ++j) {
NORMKIT_UNROLL
        for (int k = 0; k < 3; ++k) {
          const unsigned c = c0[j] + k >= 3 ? c0[j] + k - 3 : c0[j] + k;
          const unsigned c_in = a.reverse_channels ? 2 - c : c;
          slot[j][k] = (c0[j] + k >= 3 ? step : 0) + static_cast<int>(c_in * unit);
        }
      }
      Out* const tile_out = y + ((n * a.out_height + oh0) * a.out_width + ow0) * 3;  // tile row 0
      const unsigned row_out = static_cast<unsigned>(a.out_width) * 3u;  // output elements of an image row (< 2^32: the walk's condition)
      for (int g = static_cast<int>(threadIdx.x >> 5); g < groups; g += static_cast<int>(blockDim.x >> 5)) {
NORMKIT_UNROLL
        for (int j = 0; j < 3; ++j) {
          const int p = g * 96 + j * 32 + static_cast<int>(lane);
          if (p >= packs) break;
          const unsigned e0 = static_cast<unsigned>(p * kVec);
          const unsigned r = by_row.div(e0), q = e0 - r * row_length;
          const unsigned p0 = (q - c0[j]) * 0xAAAAAAABu;  // (q - c0) / 3, exact: q = c0 (mod 3)
          const unsigned base = r * t.row_stride + ((tile_in_low + r * static_cast<unsigned>(t.run_pitch)) & 15u) + mirror_base + p0 * step;
          Out* const out = tile_out + (static_cast<std::uint64_t>(r) * row_out + q);
          // element v = k + 3 m: channel slot (j kDelta + k) mod 3 of the rotation, pixel m (+ the slot's carry)
          if constexpr (kTable) {
            Pack<Out, kVec> pack;
NORMKIT_UNROLL
            for (int v = 0; v < kVec; ++v) {
              const In x = *reinterpret_cast<const In*>(input + base + slot[j][v % 3] + (v / 3) * step);
              pack.v[v] = channel_value(x, channel[(j * kDelta + v) % 3]);
            }
            store_pack(out, pack);
          } else {
            Compute values[kVec];
NORMKIT_UNROLL
            for (int v = 0; v < kVec; ++v) {
              const In x = *reinterpret_cast<const In*>(input + base + slot[j][v % 3] + (v / 3) * step);
              values[v] = channel_compute(x, channel[(j * kDelta + v) % 3]);
            }
            store_converted<Out, kVec>(out, values);
          }
        }
      }
    } else if (nhwc_packs) {
      const int row_length = cols * a.channels;  // output elements of a tile row
      const int packs = out_length * out_runs / kVec;
      Out* const tile_out = y + ((n * a.out_height + oh0) * a.out_width + ow0) * a.channels;  // tile row 0
      for (int i = threadIdx.x; i < packs; i += blockDim.x) {
        const unsigned e0 = static_cast<unsigned>(i * kVec);
        const unsigned r = by_row.div(e0), q = e0 - r * row_length;
        const unsigned o = r * t.row_stride + ((tile_in_low + r * static_cast<unsigned>(t.run_pitch)) & 15u) + q * sizeof(In);
        unsigned c = q - by_channels.div(q) * a.channels;
        Pack<Out, kVec> pack;
NORMKIT_UNROLL
        for (int v = 0; v < kVec; ++v) {
          pack.v[v] = value_from(o + v * sizeof(In), c);
          c = c + 1 == static_cast<unsigned>(a.channels) ? 0u : c + 1;
        }
        store_pack(tile_out + static_cast<std::int64_t>(r) * a.out_width * a.channels + q, pack);
      }
    } else {
      // The value of tile element t (output order).
      auto value_at = [&](unsigned e) -> Out {
        unsigned c, r, j;
        if (a.out_nhwc) {
          const unsigned p = by_channels.div(e);
          c = e - p * a.channels;
          r = by_cols.div(p);
          j = p - r * cols;
        } else {
          c = by_plane.div(e);
          const unsigned q = e - c * tile_pixels;
          r = by_cols.div(q);
          j = q - r * cols;
        }
        return value_from(source_offset(c, r, j), c);
      };
      for (int run = 0; run < out_runs; ++run) {
        const unsigned t0 = static_cast<unsigned>(run) * static_cast<unsigned>(out_length);
        std::int64_t first;  // output element index of the run's start
        if (a.out_nhwc) {
          const int r = whole_rows ? 0 : run;
          first = ((n * a.out_height + oh0 + r) * a.out_width + ow0) * a.channels;
        } else {
          const int c = whole_rows ? run : static_cast<int>(by_rows.div(static_cast<unsigned>(run)));
          const int r = whole_rows ? 0 : run - c * rows;
          first = ((n * a.channels + c) * a.out_height + oh0 + r) * a.out_width + ow0;
        }
        Out* const out = y + first;
        // Whole sectors first, in 16-byte packs (pack i at head + i * kVec: a warp's stores cover whole
        // sectors), then an element a thread of the head (before the first whole sector) and of the tail.
        const int head = min(elements_to_alignment<Out, 2 * kVec>(out), out_length);
        const int packs = (out_length - head) / (2 * kVec) * 2;
        const int tail = head + packs * kVec;
        for (int i = threadIdx.x; i < packs + 4 * kVec; i += blockDim.x) {
          if (i < packs) {
            const int e0 = head + i * kVec;
            Pack<Out, kVec> pack;
NORMKIT_UNROLL
            for (int v = 0; v < kVec; ++v) pack.v[v] = value_at(t0 + e0 + v);
            store_pack(out + e0, pack);
          } else {
            const int b = i - packs;
            const int e = b < 2 * kVec ? b : tail + b - 2 * kVec;
            if (b < 2 * kVec ? e < head : e < out_length) out[e] = value_at(t0 + e);
          }
        }
      }
    }
    __syncthreads();  // (the buffer is free for the copy after next)
    buffer ^= 1;
  }
}

}  // namespace normkit::kernels
