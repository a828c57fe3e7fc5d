#include "cpu/image_cpu.hpp"

#include <cstring>
#include <vector>

#include "cpu/parallel_items.hpp"
#include "math/dtype_dispatch.hpp"

namespace normkit::cpu {
namespace {

template <typename In, typename Out>
void normalize_rows(const kernels::ImageLaunch& call, std::int64_t begin, std::int64_t end) {
  using Compute = math::image_compute_t<In, Out>;
  const plan::ImageGeometry& g = call.geometry;
  const math::ImageCoefficients& k = call.coefficients;
  const std::int64_t channels = g.channels, height = g.out_height, width = g.out_width;
  // uint8: the kernel's tables; else its per-channel coefficients in the arithmetic type.
  std::vector<Out> table;
  Compute center[math::kImageMaxChannels], scale[math::kImageMaxChannels];
  if constexpr (std::is_same_v<In, std::uint8_t>) {
    table.resize(static_cast<std::size_t>(channels) * 256);
    for (std::int64_t c = 0; c < channels; ++c) {
      for (int v = 0; v < 256; ++v) table[c * 256 + v] = math::image_table_entry<Out>(v, k.center[c], k.scale[c], k.shift);
    }
  }
  for (std::int64_t c = 0; c < channels; ++c) {
    center[c] = static_cast<Compute>(k.center[c]);
    scale[c] = static_cast<Compute>(k.scale[c]);
  }
  const Compute shift = static_cast<Compute>(k.shift);
  const unsigned char* const x = static_cast<const unsigned char*>(call.x);
  Out* const y = static_cast<Out*>(call.y);
  for (std::int64_t item = begin; item < end; ++item) {  // one output row of one image
    const std::int64_t n = item / height, i = item % height;
    const bool mirrored = call.mirror_all || (call.mirror_flags != nullptr && call.mirror_flags[n] != 0);
    const std::int64_t origin = call.crop_origins == nullptr ? g.origin_bytes()
                                                             : math::clamped_crop_origin_bytes(call.crop_origins + 2 * n, g.max_crop_y(),
                                                                                               g.max_crop_x(), g.row_pitch, g.pixel_bytes());
    const unsigned char* const row = x + n * g.image_bytes() + origin + i * g.row_pitch;
    for (std::int64_t c = 0; c < channels; ++c) {
      const std::int64_t c_in = call.reverse_channels ? channels - 1 - c : c;
      const unsigned char* const source = g.in_nhwc ? row + c_in * g.in_element_bytes : row + c_in * g.plane_bytes();
      // y[n, c, i, j] at ((n C + c) H + i) W + j (nchw) or ((n H + i) W + j) C + c (nhwc)
      Out* const out = g.out_nhwc ? y + (n * height + i) * width * channels + c : y + ((n * channels + c) * height + i) * width;
      const std::int64_t out_step = g.out_nhwc ? channels : 1;
      for (std::int64_t j = 0; j < width; ++j) {
        const std::int64_t j_in = mirrored ? width - 1 - j : j;
        In v;
        std::memcpy(&v, source + j_in * g.pixel_bytes(), sizeof(In));
        if constexpr (std::is_same_v<In, std::uint8_t>) {
          out[j * out_step] = table[c * 256 + v];
        } else if (math::image_split_allowed<In, Out>(k)) {
          math::store_as(&out[j * out_step], math::image_value_split(math::to_acc<float>(v), k.splits[c]));
        } else {
          math::store_as(&out[j * out_step], math::image_value<Compute>(math::to_acc<Compute>(v), center[c], scale[c], shift));
        }
      }
    }
  }
}

}  // namespace

Status image_normalize(const kernels::ImageLaunch& call, int threads) {
  constexpr const char* kOp = "image_normalize";
  const std::int64_t rows = call.geometry.batch * call.geometry.out_height;
  if (call.geometry.out_numel() == 0) return Status::success();
  return math::visit_image_dtypes(call.in, call.out, kOp, [&](auto in_tag, auto out_tag) -> Status {
    using In = typename decltype(in_tag)::type;
    using Out = typename decltype(out_tag)::type;
    // (a few rows a thread at least: each builds its own tables)
    parallel_items(rows, static_cast<int>(std::min<std::int64_t>(threads, rows / 16 + 1)),
                   [&](std::int64_t begin, std::int64_t end) { normalize_rows<In, Out>(call, begin, end); });
    return Status::success();
  });
}

}  // namespace normkit::cpu
