// Launch plans of the BatchNorm backward kernels: pure host functions of x's channel geometry and dtype.
//
// The backward's per-channel sums (Σdy, Σdy·(x - mean)) are split into partials whose element sets and
// summation order depend on the shape and dtype only: never on the GPU (SM count), the pointers'
// alignment (misaligned tensors load the same packs element by element) or the batch's position in memory,
// so two runs and two GPU models give the same bits.
//
//   segments  channel axis first with spatial size S > 1 (NCHW, NCL): channel c owns N segments of S
//             contiguous elements. A segment is cut into chunks of at most group_lanes x
//             kChunkPacksPerLane packs; a partial is `items_per_part` consecutive (segment, chunk) items of
//             one channel, summed by `groups_per_channel` lane groups taking the items round-robin. A block
//             holds one partial, or (one partial a channel, few items: GroupNorm's one segment a sample and
//             channel) `channels_per_block` channels' whole sums side by side.
//   spans     BatchNorm channels first with short segments that are not whole packs (7 x 7, 14 x 14: the
//             segments walk would load element by element) but at least one, in rows of C x S elements that
//             are: a block owns a tile of `span_channels` channels, a span of whole packs in every row, and
//             `rows_per_part` consecutive rows (one partial); thread t owns pack t of the span in each row, its
//             values belonging to at most two channels.
//   columns   channel axis last, or S == 1 (NHWC, [N, C]): rows of C channels. A block owns a tile of
//             block_x packs of channels and `rows_per_part` consecutive rows (one partial); its block_y
//             thread rows take the rows round-robin.
// Partials are summed per channel in a fixed order by a second kernel; dx walks the same way.
#pragma once

#include <cstddef>
#include <cstdint>

#include "normkit/dtype.hpp"

namespace normkit::plan {

// x as [samples, outer, channels, inner], its sums kept per (sample, channel), a "flat channel"
// n * channels + c. BatchNorm (samples 1): channels first -> [1, N, C, S]; channels last -> [1, N*S, C, 1].
// GroupNorm (sums per sample and channel): channels first -> [N, 1, C, S]; channels last -> [N, S, C, 1].
// The partials of a flat channel depend on [outer, channels, inner] only, never on the sample count: a
// sample's sums are the same bits in any batch.
struct ChannelGeometry {
  std::int64_t outer = 0, channels = 0, inner = 1, samples = 1;
  // GroupNorm: sums kept per sample, each sample's parts sized from one sample alone (samples may be 1), so
  // that they are the same in any batch. BatchNorm: parts spread a channel over the whole batch.
  bool per_sample = false;
  std::int64_t per_channel() const { return outer * inner; }  // values a flat channel sums
  std::int64_t flat_channels() const { return samples * channels; }
};

enum class ChannelWalk : std::uint8_t { segments, spans, columns };

struct ChannelPlan {
  ChannelWalk walk = ChannelWalk::segments;
  int vec = 1;               // elements per pack: the unit of the summation order
  int threads = 256;         // threads per block
  // segments
  int group_lanes = 32;      // lanes per (segment, chunk) item, a power of two <= 32
  std::int64_t chunk_packs = 0;         // packs per chunk (<= group_lanes * kChunkPacksPerLane)
  std::int64_t chunks_per_segment = 0;
  std::int64_t items_per_part = 0;      // (segment, chunk) items per partial
  int groups_per_channel = 1;           // lane groups summing a partial: its order (with the lanes')
  int channels_per_block = 1;           // > 1 only when parts == 1
  // spans
  std::int64_t span_channels = 0;       // channels a tile (their S values a row are whole packs)
  std::int64_t span_packs = 0;          // packs of a tile's span in a row (<= threads)
  // columns (and spans: channel_tiles, rows_per_part)
  int block_x = 32, block_y = 8;        // threads over channel packs x thread rows
  std::int64_t channel_tiles = 0;       // ceil(channel packs / block_x); spans: ceil(C / span_channels)
  std::int64_t rows_per_part = 0;
  // both
  std::int64_t parts = 0;               // partials per flat channel
  std::int64_t blocks = 0;              // blocks of the reduce kernel (samples * parts * (channels or tiles))
  int sum_lanes = 32;                   // flat channels a block of the partials' sum covers (1024 / sum_lanes strands)
};

// Packs a lane of a segments chunk loads at once (then sums), rows a column thread loads before it adds any:
// 4 x 2 inputs x 16 bytes in flight a lane keep the walks off the latency bound at 32 warps an SM
// (modelled), in 64 registers.
constexpr int kChunkPacksPerLane = 4;
constexpr int kColumnRowBatch = 4;
// Elements (of each input) a block of the reduce sums at least: enough work a block for its reductions to
// stay a few percent of it.
constexpr std::int64_t kChannelPartElements = 16384;
// Blocks the sums spread over at most, about (segments: kMaxSegmentParts / C parts a channel; columns:
// kMaxColumnParts parts a channel tile): enough to fill an H200's SMs (132 x 3 resident blocks of the segments
// walk, 132 x 2 of the columns walk), few enough for the partials' sum to stay small and each block's
// per-channel setup to stay a small part of its work.
constexpr std::int64_t kMaxSegmentParts = 512;
constexpr std::int64_t kMaxColumnParts = 256;
// Elements a part of a per-sample columns walk (GroupNorm) holds at least: its blocks come from the samples
// as much as from the parts, and smaller parts spent their time on the tile's coefficients (a 12 x 64 x 64 x
// 320 float16 backward, 16384: 50% modelled).
constexpr std::int64_t kSamplePartElements = 65536;

ChannelPlan choose_channel_plan(const ChannelGeometry& g, DType dtype);

// Device workspace of the backward: float32 sum_dy/sum_dy_xmu (a flat channel each) and the partials (2 x
// parts x flat channels), each region 256-byte aligned.
struct BatchNormBackwardWorkspace {
  std::size_t sums = 0, partials = 0, total = 0;
};
BatchNormBackwardWorkspace batch_norm_backward_workspace(const ChannelGeometry& g, const ChannelPlan& p);

std::size_t round_up_256(std::size_t bytes);

}  // namespace normkit::plan
