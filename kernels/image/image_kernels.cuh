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
  std::int64_t x_bytes = 0;  // the bytes x spans (every padded row)
  std::int64_t image_bytes = 0, plane_bytes = 0, row_pitch = 0, origin_bytes = 0;
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
  __device__ __forceinline__ explicit TileDivisor(unsigned d) : magic((0x80000000u + d - 1) / d) {}
  __device__ __forceinline__ unsigned div(unsigned n) const { return __umulhi(n << 1, magic); }
};

__device__ __forceinline__ void cp_async_16(void* shared_dst, const void* global_src) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(shared_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(global_src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
// Waits until at most `kPending` of the committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(kPending) : "memory"); }

// Everything a block derives from a tile's index.
struct ImageTile {
  std::int64_t n;
  int oh0, ow0, rows, cols;
  bool mirrored;
  const unsigned char* in;  // the source of the tile's (row 0, column 0)
  // Runs: rows adjacent in memory form one run a plane, planes adjacent too one run for the tile. Run
  // (plane p, row r) starts at shared offset p * plane_stride + r * row_stride plus its global address mod 16.
  int row_stride, plane_stride, runs_per_plane, run_count, run_length;
  std::int64_t run_pitch, run_plane;  // global step between runs of a plane, and between planes' runs

  __device__ __forceinline__ ImageTile(const ImageKernelArgs& a, std::int64_t image, int tile_in_image) {
    n = image;
    const int tr = a.col_tiles == 1 ? tile_in_image : tile_in_image / a.col_tiles;
    oh0 = tr * a.tile_rows;
    ow0 = (tile_in_image - tr * a.col_tiles) * a.tile_cols;
    rows = min(a.tile_rows, a.out_height - oh0);
    cols = min(a.tile_cols, a.out_width - ow0);
    mirrored = a.mirror_all || (a.mirror_flags != nullptr && a.mirror_flags[n] != 0);
    const int source_col0 = mirrored ? a.out_width - ow0 - cols : ow0;  // the tile's first input column in the crop
    in = a.x + n * a.image_bytes + a.origin_bytes + static_cast<std::int64_t>(oh0) * a.row_pitch +
         static_cast<std::int64_t>(source_col0) * a.pixel_bytes;
    const int planes = a.in_nhwc ? 1 : a.channels;
    const int row_bytes = cols * a.pixel_bytes;  // a row of a plane
    const bool rows_merged = a.row_pitch == row_bytes;
    const bool planes_merged = rows_merged && (planes == 1 || a.plane_bytes == static_cast<std::int64_t>(rows) * row_bytes);
    row_stride = rows_merged ? row_bytes : (row_bytes + 15) / 16 * 16 + 16;
    plane_stride = planes_merged ? rows * row_bytes : rows_merged ? (rows * row_bytes + 15) / 16 * 16 + 16 : rows * row_stride;
    run_pitch = rows_merged ? 0 : a.row_pitch;
    run_plane = planes_merged ? 0 : a.plane_bytes;
    runs_per_plane = rows_merged ? 1 : rows;
    run_count = (planes_merged ? 1 : planes) * runs_per_plane;
    run_length = row_bytes * (rows_merged ? rows : 1) * (planes_merged ? planes : 1);
  }
};

// The divisions of a tile shape, recomputed only when a block's tile shape changes (edge tiles): those of
// the copy and those of the write, kept apart (the next tile's copy and this tile's write overlap).
struct CopyDivisors {
  int rows = -1, cols = -1;
  TileDivisor by_slots{1}, by_runs{1};
  __device__ __forceinline__ void update(const ImageTile& t) {
    if (t.rows == rows && t.cols == cols) return;
    rows = t.rows, cols = t.cols;
    by_slots = TileDivisor(static_cast<unsigned>(t.run_length / 16 + 2));
    by_runs = TileDivisor(static_cast<unsigned>(t.runs_per_plane));
  }
};
struct WriteDivisors {
  int rows = -1, cols = -1;
  TileDivisor by_plane{1}, by_cols{1}, by_rows{1}, by_row{1};
  __device__ __forceinline__ void update(const ImageKernelArgs& a, const ImageTile& t) {
    if (t.rows == rows && t.cols == cols) return;
    rows = t.rows, cols = t.cols;
    by_plane = TileDivisor(static_cast<unsigned>(t.rows * t.cols));
    by_cols = TileDivisor(static_cast<unsigned>(t.cols));
    by_rows = TileDivisor(static_cast<unsigned>(t.rows));
    by_row = TileDivisor(static_cast<unsigned>(a.out_nhwc ? t.cols * a.channels : t.cols));
  }
};

// Phase 1: the tile's input into `buffer`. Every 16-byte chunk that holds bytes of a run goes by one
// cp.async copy (slot i of a run: its i-th chunk from the run's first byte rounded down to 16), bytes around
// the run included: they lie in the sectors the run touches, and in its own padded place in shared memory.
// Only a chunk reaching outside x (a run at the very start or end of the batch) is copied byte by byte.
__device__ __forceinline__ void copy_tile(const ImageTile& t, const CopyDivisors& d, unsigned char* buffer, const unsigned char* x_begin,
                                          const unsigned char* x_end) {
  const int slots_per_run = t.run_length / 16 + 2;
  // Slot i of run k: the chunk at the run's first byte rounded down to 16, plus 16 i, into its place.
  auto copy_slot = [&](int k, int i) {
    const int plane = static_cast<int>(d.by_runs.div(static_cast<unsigned>(k)));
    const int row = k - plane * t.runs_per_plane;
    const unsigned char* const run = t.in + plane * t.run_plane + row * t.run_pitch;
    const unsigned char* const chunk = reinterpret_cast<const unsigned char*>(reinterpret_cast<std::uintptr_t>(run) & ~std::uintptr_t{15}) + 16 * i;
    if (chunk >= run + t.run_length) return;
    unsigned char* const dst = buffer + plane * t.plane_stride + row * t.row_stride + 16 * i;
    if (chunk >= x_begin && chunk + 16 <= x_end) {
      cp_async_16(dst, chunk);
    } else {
      for (int b = 0; b < 16; ++b) {
        if (chunk + b >= run && chunk + b < run + t.run_length) dst[b] = chunk[b];
      }
    }
  };
  if (slots_per_run >= static_cast<int>(blockDim.x)) {
    // Long runs (a merged tile, or planes): run by run, no division a chunk.
    for (int k = 0; k < t.run_count; ++k) {
      for (int i = threadIdx.x; i < slots_per_run; i += blockDim.x) copy_slot(k, i);
    }
  } else {
    const int slots = t.run_count * slots_per_run;
    for (int j = threadIdx.x; j < slots; j += blockDim.x) {
      const int k = static_cast<int>(d.by_slots.div(static_cast<unsigned>(j)));
      copy_slot(k, j - k * slots_per_run);
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
  const TileDivisor by_channels(static_cast<unsigned>(a.channels));
  const bool aligned_y = (reinterpret_cast<std::uintptr_t>(a.y) & 15) == 0;

  // Tiles blockIdx.x + j * gridDim.x as (image, tile of the image), stepped without dividing.
  const int per_image = a.row_tiles * a.col_tiles;
  const int step_tiles = static_cast<int>(gridDim.x % per_image);
  const std::int64_t step_images = gridDim.x / per_image;
  std::int64_t index = blockIdx.x, image = blockIdx.x / per_image;
  int tile_in_image = static_cast<int>(blockIdx.x - image * per_image);
  auto advance = [&]() {
    index += gridDim.x;
    image += step_images;
    tile_in_image += step_tiles;
    if (tile_in_image >= per_image) tile_in_image -= per_image, ++image;
  };

  CopyDivisors dc;
  WriteDivisors d;
  int buffer = 0;
  {
    const ImageTile first(a, image, tile_in_image);
    dc.update(first);
    copy_tile(first, dc, shared + a.table_bytes, a.x, a.x + a.x_bytes);
  }
  cp_async_commit();
  while (index < a.tiles) {
    // The next tile's copy goes out before this tile is written (the tiles are rebuilt from their indices
    // rather than kept: registers).
    const std::int64_t this_image = image;
    const int this_tile = tile_in_image;
    advance();
    if (index < a.tiles) {
      const ImageTile next(a, image, tile_in_image);
      dc.update(next);
      copy_tile(next, dc, shared + a.table_bytes + (buffer ^ 1) * a.buffer_bytes, a.x, a.x + a.x_bytes);
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const ImageTile t(a, this_image, this_tile);
    d.update(a, t);

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
        return table[(c << 8) | v];
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
          const unsigned r = d.by_cols.div(e0), q = e0 - r * cols;
          const unsigned pixel = r * t.row_stride + mirror_base + q * step;  // source of the pack's first pixel, channel 0, plane 0
          const unsigned row_low = tile_in_low + r * static_cast<unsigned>(t.run_pitch);
          Out* out = tile_out + static_cast<std::int64_t>(r) * a.out_width + q;
          for (int c = 0; c < a.channels; ++c, out += plane_out) {
            const unsigned c_in = a.reverse_channels ? a.channels - 1 - c : c;
            const unsigned o = decltype(in_nhwc)::value
                                   ? pixel + ((row_low & 15u) + c_in * sizeof(In))
                                   : pixel + c_in * t.plane_stride + ((row_low + c_in * static_cast<unsigned>(t.run_plane)) & 15u);
            [[maybe_unused]] const Out* const table_c = table + (c << 8);
            Pack<Out, kVec> pack;
NORMKIT_UNROLL
            for (int v = 0; v < kVec; ++v) {
              const In x = *reinterpret_cast<const In*>(input + o + v * (kFixedStep != 0 ? kFixedStep : step));
              if constexpr (kTable) {
                pack.v[v] = table_c[x];
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
    } else if (nhwc_packs) {
      const int row_length = cols * a.channels;  // output elements of a tile row
      const int packs = out_length * out_runs / kVec;
      Out* const tile_out = y + ((n * a.out_height + oh0) * a.out_width + ow0) * a.channels;  // tile row 0
      for (int i = threadIdx.x; i < packs; i += blockDim.x) {
        const unsigned e0 = static_cast<unsigned>(i * kVec);
        const unsigned r = d.by_row.div(e0), q = e0 - r * row_length;
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
          r = d.by_cols.div(p);
          j = p - r * cols;
        } else {
          c = d.by_plane.div(e);
          const unsigned q = e - c * tile_pixels;
          r = d.by_cols.div(q);
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
          const int c = whole_rows ? run : static_cast<int>(d.by_rows.div(static_cast<unsigned>(run)));
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
