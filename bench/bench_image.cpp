// Image normalize benchmarks: ImageNet-sized uint8 batches NHWC -> NCHW float32 / float16 (the layout change
// fused), and float inputs. Names: {host,device}/image/<in layout>_<out layout>/<in>_<out>/<shape>/{small,large};
// bytes/s counts the input read once and the output written once, `of_copy` against a copy of the output's
// size measured in the same run.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "normkit/image.hpp"

using namespace normkit;
using namespace normkit::bench;

namespace {

struct ImageCase {
  std::string name;
  DType in, out;
  bool in_nhwc, out_nhwc;
  std::vector<std::int64_t> shape;  // in the input layout's order
  std::size_t in_bytes() const { return static_cast<std::size_t>(numel(shape)) * dtype_size(in); }
  std::size_t out_bytes() const { return static_cast<std::size_t>(numel(shape)) * dtype_size(out); }
};

const char* short_name(DType d) {
  switch (d) {
    case DType::uint8: return "u8";
    case DType::float16: return "f16";
    case DType::bfloat16: return "bf16";
    default: return "f32";
  }
}

std::vector<ImageCase> image_cases(bool large) {
  const std::int64_t n = large ? 256 : 8;  // 38.5 MB of uint8 pixels (154 MB of float32 output) / 1.2 MB
  struct Spec { DType in, out; bool in_nhwc, out_nhwc; };
  const Spec specs[] = {{DType::uint8, DType::float32, true, false}, {DType::uint8, DType::float16, true, false},
                        {DType::uint8, DType::float16, true, true}, {DType::float16, DType::float32, true, false},
                        {DType::float32, DType::bfloat16, false, true}};
  std::vector<ImageCase> out;
  for (const Spec& s : specs) {
    ImageCase c{"", s.in, s.out, s.in_nhwc, s.out_nhwc, {}};
    c.shape = s.in_nhwc ? std::vector<std::int64_t>{n, 224, 224, 3} : std::vector<std::int64_t>{n, 3, 224, 224};
    c.name = std::string("image/") + (s.in_nhwc ? "nhwc" : "nchw") + "_" + (s.out_nhwc ? "nhwc" : "nchw") + "/" + short_name(s.in) + "_" +
             short_name(s.out) + "/" + std::to_string(n) + "x" + (s.in_nhwc ? "224x224x3" : "3x224x224");
    out.push_back(c);
  }
  return out;
}

ImageNormalizeOptions options_for(const ImageCase& c) {
  ImageNormalizeOptions o;
  o.layout = c.in_nhwc ? ImageLayout::nhwc : ImageLayout::nchw;
  o.out_layout = c.out_nhwc ? ImageLayout::nhwc : ImageLayout::nchw;
  o.units = c.in == DType::uint8 ? PixelUnits::unit : PixelUnits::pixel;
  o.mean = {0.485, 0.456, 0.406};
  o.std = {0.229, 0.224, 0.225};
  return o;
}

TensorView out_view(const ImageCase& c, void* p, MemorySpace space) {
  const std::int64_t n = c.shape[0], ch = c.in_nhwc ? c.shape[3] : c.shape[1], h = c.in_nhwc ? c.shape[1] : c.shape[2],
                     w = c.in_nhwc ? c.shape[2] : c.shape[3];
  return c.out_nhwc ? TensorView(p, c.out, {n, h, w, ch}, space) : TensorView(p, c.out, {n, ch, h, w}, space);
}

void image_bench(benchmark::State& state, const ImageCase& c, MemorySpace space) {
  const ImageNormalizeOptions o = options_for(c);
  std::vector<unsigned char> host_x = random_bytes(c.in_bytes(), c.in);
  Status s;
  if (space == MemorySpace::host) {
    std::vector<unsigned char> y(c.out_bytes());
    const TensorView x(host_x.data(), c.in, c.shape.data(), 4);
    for (auto _ : state) s = image_normalize(x, out_view(c, y.data(), space), o);
  }
#if defined(NORMKIT_WITH_CUDA)
  if (space == MemorySpace::device) {
    DeviceRotation xs(c.in_bytes(), host_x.data()), ys(c.out_bytes(), nullptr);
    if (!xs.ok() || !ys.ok()) {
      state.SkipWithError("cudaMalloc");
      return;
    }
    auto call = [&](std::int64_t k) {
      return image_normalize(TensorView(xs.at(k), c.in, c.shape.data(), 4, space), out_view(c, ys.at(k), space), o);
    };
    s = call(0);  // warm-up
    DeviceTimer t;
    std::int64_t k = 1;
    for (auto _ : state) {
      t.time(state, [&] { s = call(k); });
      ++k;
    }
  }
#endif
  if (!s.ok()) state.SkipWithError(s.message().c_str());
  report_read_write(state, c.in_bytes(), c.out_bytes(), (space == MemorySpace::host ? "host/" : "device/") + std::to_string(c.out_bytes()));
}

}  // namespace

void register_image_benchmarks() {
  for (bool large : {false, true}) {
    for (const ImageCase& c : image_cases(large)) {
      register_copies(c.out_bytes());
      const std::string name = c.name + "/" + (large ? "large" : "small");
      if (!large) {
        benchmark::RegisterBenchmark(("host/" + name).c_str(), [c](benchmark::State& st) { image_bench(st, c, MemorySpace::host); })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
#if defined(NORMKIT_WITH_CUDA)
      if (cuda_available()) {
        benchmark::RegisterBenchmark(("device/" + name).c_str(), [c](benchmark::State& st) { image_bench(st, c, MemorySpace::device); })
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
      }
#endif
    }
  }
}
