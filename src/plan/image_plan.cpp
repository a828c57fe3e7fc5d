#include "plan/image_plan.hpp"

#include <algorithm>

namespace normkit::plan {
namespace {

thread_local const ImageOverride* g_override = nullptr;

std::int64_t round_up16(std::int64_t v) { return (v + 15) / 16 * 16; }

}  // namespace

void set_image_override(const ImageOverride* override_or_null) noexcept { g_override = override_or_null; }

std::size_t image_tile_input_bytes(const ImageGeometry& g, std::int64_t tile_rows, std::int64_t tile_cols) {
  const std::int64_t planes = g.in_nhwc ? 1 : g.channels;
  return static_cast<std::size_t>(planes * tile_rows * (round_up16(tile_cols * g.pixel_bytes()) + 16));
}

ImagePlan choose_image_plan(const ImageGeometry& g, bool uint8_input, int compute_bytes, int sm_count, std::int64_t shared_per_sm) {
  ImagePlan p;
  if (g.out_numel() == 0) return p;
  // (uint8: its tables; else center and scale in the arithmetic type, and math::ImageSplit's 16 bytes a channel)
  p.table_bytes = static_cast<std::size_t>(round_up16(uint8_input ? g.channels * 256 * g.out_element_bytes : g.channels * (2 * compute_bytes + 16)));
  const std::int64_t max_buffer = (ImagePolicy::kMaxShared - static_cast<std::int64_t>(p.table_bytes)) / 2;
  const std::int64_t target = g_override != nullptr && g_override->tile_input_bytes > 0 ? g_override->tile_input_bytes
                                                                                         : ImagePolicy::kTileInputBytes;
  const std::int64_t pixel_in = g.channels * g.in_element_bytes;  // input bytes of an output pixel
  const std::int64_t row_in = g.out_width * pixel_in;
  const std::int64_t max_pixels = ImagePolicy::kMaxTileElements / g.channels;
  const std::int64_t row_shared = static_cast<std::int64_t>(image_tile_input_bytes(g, 1, g.out_width));
  if (row_in <= target && g.out_width <= max_pixels && row_shared <= max_buffer) {
    p.tile_cols = g.out_width;
    const std::int64_t rows = std::min({target / row_in, max_pixels / g.out_width, max_buffer / row_shared});
    const std::int64_t most = std::clamp<std::int64_t>(rows, 1, g.out_height);
    const std::int64_t tiles = (g.out_height + most - 1) / most;
    p.tile_rows = (g.out_height + tiles - 1) / tiles;  // (as many tiles, as even as they go)
  } else {
    p.tile_rows = 1;
    // (a multiple of 16 columns: every tile's output starts at a whole 16-byte pack)
    const std::int64_t planes = g.in_nhwc ? 1 : g.channels;
    const std::int64_t cols = std::min({target / pixel_in, max_pixels, (max_buffer / planes - 31) / g.pixel_bytes()});
    p.tile_cols = std::clamp<std::int64_t>(cols >= 16 ? cols / 16 * 16 : cols, 1, g.out_width);
  }
  p.row_tiles = (g.out_height + p.tile_rows - 1) / p.tile_rows;
  p.col_tiles = (g.out_width + p.tile_cols - 1) / p.tile_cols;
  p.tiles = g.batch * p.row_tiles * p.col_tiles;
  // Small tiles (small images) take fewer threads: at least two 16-byte output stores a thread.
  const std::int64_t out_elements = g.channels * p.tile_rows * p.tile_cols;
  const std::int64_t stores = out_elements * g.out_element_bytes / 16;
  p.threads = static_cast<int>(std::clamp<std::int64_t>((stores / 2 + 31) / 32 * 32, 32, ImagePolicy::kThreads));
  p.buffer_bytes = image_tile_input_bytes(g, p.tile_rows, p.tile_cols);
  p.shared_bytes = p.table_bytes + 2 * p.buffer_bytes;
  // Blocks a SM the grid counts on: kBlocksPerSm, or as many as the SM's shared memory holds (sm_80: 3,
  // sm_86/89: 2; the runtime reserves 1 KB a block): blocks that cannot all be resident run the last ones
  // as a second, partial wave.
  const std::int64_t per_block = static_cast<std::int64_t>(p.shared_bytes) + ImagePolicy::kStaticShared + 1024;
  const std::int64_t resident = std::clamp<std::int64_t>(shared_per_sm / per_block, 1, ImagePolicy::kBlocksPerSm);
  p.grid = std::min<std::int64_t>(p.tiles, static_cast<std::int64_t>(std::max(sm_count, 1)) * resident);
  return p;
}

}  // namespace normkit::plan
