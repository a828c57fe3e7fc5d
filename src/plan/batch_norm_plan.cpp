// BatchNorm backward plans (batch_norm_plan.hpp): shape and dtype in, launch shape out.
#include "plan/batch_norm_plan.hpp"

#include <algorithm>
#include <numeric>

namespace normkit::plan {
namespace {

int pow2_at_least(std::int64_t v, int cap) {
  int p = 1;
  while (p < v && p < cap) p *= 2;
  return p;
}

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

}  // namespace

std::size_t round_up_256(std::size_t bytes) { return (bytes + 255) / 256 * 256; }

ChannelPlan choose_channel_plan(const ChannelGeometry& g, DType dtype) {
  ChannelPlan p;
  if (g.channels == 0) return p;  // (no channels: nothing to launch, no partials)
  const int wide = static_cast<int>(16 / dtype_size(dtype));  // elements in 16 bytes
  // Spans: BatchNorm channels first whose segments are not whole packs but at least one, in rows that are
  // whole packs (a 7 x 7 bfloat16 backward took elements one by one in the segments walk: 35.6% modelled).
  const std::int64_t span_step = wide / std::gcd(g.inner, static_cast<std::int64_t>(wide));  // channels a span of whole packs
  const std::int64_t span_most = std::int64_t{256} * wide / std::max<std::int64_t>(1, g.inner) / span_step * span_step;
  if (g.inner > 1 && !g.per_sample && g.samples == 1 && g.inner % wide != 0 && g.inner >= wide && (g.channels * g.inner) % wide == 0 &&
      span_most >= span_step) {
    p.walk = ChannelWalk::spans;
    p.vec = wide;
    p.span_channels = std::min(span_most, ceil_div(g.channels, span_step) * span_step);
    p.span_packs = p.span_channels * g.inner / wide;
    p.threads = static_cast<int>(ceil_div(p.span_packs, 32) * 32);
    p.channel_tiles = ceil_div(g.channels, p.span_channels);
    // Parts as the segments walk spreads them (about kMaxSegmentParts blocks), each at least
    // kChannelPartElements elements.
    const std::int64_t max_parts = std::max<std::int64_t>(1, kMaxSegmentParts / p.channel_tiles);
    p.rows_per_part = std::max({std::int64_t{1}, ceil_div(kChannelPartElements, p.span_channels * g.inner), ceil_div(g.outer, max_parts)});
    p.parts = g.outer == 0 ? 0 : ceil_div(g.outer, p.rows_per_part);
    p.blocks = p.parts * p.channel_tiles;
    p.sum_lanes = pow2_at_least(g.flat_channels(), 32);
    return p;
  }
  if (g.inner > 1) {
    p.walk = ChannelWalk::segments;
    p.vec = g.inner % wide == 0 ? wide : 1;
    const std::int64_t packs = g.inner / p.vec;
    // Lanes enough for a segment's packs in one batch each (at most a warp): short segments (7 x 7) take
    // narrow groups, several segments a warp in flight at once.
    p.group_lanes = pow2_at_least(ceil_div(packs, kChunkPacksPerLane), 32);
    p.chunk_packs = std::min<std::int64_t>(packs, std::int64_t{p.group_lanes} * kChunkPacksPerLane);
    p.chunks_per_segment = ceil_div(packs, p.chunk_packs);
    const std::int64_t items = g.outer * p.chunks_per_segment;
    const std::int64_t groups = 256 / p.group_lanes;
    // Parts spread the channel over about kMaxSegmentParts / C blocks each (never fewer than one a channel),
    // each with at least a group's worth of items and kChannelPartElements elements.
    const std::int64_t max_parts = std::max<std::int64_t>(1, kMaxSegmentParts / std::max<std::int64_t>(1, g.channels));
    p.items_per_part = std::max({groups, kChannelPartElements / (p.chunk_packs * p.vec), ceil_div(items, max_parts)});
    p.items_per_part = std::max<std::int64_t>(1, std::min(p.items_per_part, items));
    // As many groups a partial as it has items (a warp at least, 256 threads at most); a block of one
    // partial, or of several channels' whole sums when a channel has too few items to fill one (a block of
    // 8-lane groups holding 32 segments of 256 float16 values instead of one: 23% -> 80% modelled for a
    // GroupNorm backward of 102 x 1280 x 16 x 16). The channels a block holds do not change any sum's order.
    p.groups_per_channel = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(groups, p.items_per_part)));
    p.parts = items == 0 ? 0 : ceil_div(items, p.items_per_part);
    if (p.parts == 1) {
      p.channels_per_block = static_cast<int>(std::min<std::int64_t>(groups / p.groups_per_channel, g.flat_channels()));
      p.channels_per_block = std::max(1, p.channels_per_block);
    }
    // (a warp at least: the groups' shuffles take whole warps; groups past the block's channels idle)
    p.threads = std::max(32, p.channels_per_block * p.groups_per_channel * p.group_lanes);
    p.blocks = p.parts * ceil_div(g.flat_channels(), p.channels_per_block);
  } else {
    p.walk = ChannelWalk::columns;
    p.vec = g.channels % wide == 0 ? wide : 1;
    const std::int64_t packs = g.channels / p.vec;
    // The narrowest power of two from 8 (a row's 128 contiguous bytes at 16-byte packs) to 32 that leaves
    // the fewest lanes of the last tile idle: C = 320 float16 is 40 packs, 5 tiles of 8 rather than 64 lanes
    // with 24 idle.
    p.block_x = pow2_at_least(packs, 32);
    for (int bx = std::min(8, p.block_x); bx < p.block_x; bx *= 2) {
      if (ceil_div(packs, bx) * bx < ceil_div(packs, p.block_x) * p.block_x) {
        p.block_x = bx;
        break;
      }
    }
    p.block_y = 256 / p.block_x;
    p.threads = 256;
    p.channel_tiles = ceil_div(packs, p.block_x);
    const std::int64_t trip = std::int64_t{p.block_y} * kColumnRowBatch;
    const std::int64_t max_parts = std::max<std::int64_t>(1, kMaxColumnParts / p.channel_tiles);
    const std::int64_t part_elements = g.per_sample ? kSamplePartElements : kChannelPartElements;
    const std::int64_t spread = g.per_sample ? 1 : ceil_div(g.outer, max_parts);
    const std::int64_t rows = std::max(part_elements / (std::int64_t{p.block_x} * p.vec), spread);
    p.rows_per_part = ceil_div(std::max<std::int64_t>(1, rows), trip) * trip;
    p.parts = g.outer == 0 ? 0 : ceil_div(g.outer, p.rows_per_part);
    p.blocks = p.parts * p.channel_tiles * g.samples;
  }
  p.sum_lanes = pow2_at_least(g.flat_channels(), 32);
  return p;
}

BatchNormBackwardWorkspace batch_norm_backward_workspace(const ChannelGeometry& g, const ChannelPlan& p) {
  BatchNormBackwardWorkspace w;
  const std::size_t c = static_cast<std::size_t>(g.flat_channels());
  w.sums = round_up_256(2 * c * sizeof(float));
  w.partials = round_up_256(2 * static_cast<std::size_t>(p.parts) * c * sizeof(float));
  w.total = w.sums + w.partials;
  return w;
}

}  // namespace normkit::plan
