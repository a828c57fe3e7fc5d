// `normkit image`: a batch of images normalized in one pass (crop, mirror, channel reversal, layout change).
//
//   normkit image IN.(npy|idx|idx.gz) [--layout nhwc|nchw] (--mean R,G,B --std R,G,B --units pixel|unit |
//                 --from-batch) [--to-layout nchw|nhwc] [--dtype float32|float16|bfloat16] [--crop Y,X,H,W |
//                 --crop H,W --crop-origins ORIGINS.npy] [--mirror] [--reverse-channels] [--eps E] [--scale S] [--shift B] --out OUT.(npy|safetensors)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "cli/cli_common.hpp"
#include "cli/device_memory.hpp"
#include "io/idx.hpp"
#include "io/npy.hpp"
#include "io/safetensors.hpp"
#include "normkit/image.hpp"
#include "normkit/stats.hpp"

namespace normkit::cli {
namespace {

struct ImageArgs {
  std::string input, out;
  std::string crop_origins;  // a .npy of int64 [N, 2]: each image's window origin (row, column)
  bool layout_given = false, from_batch = false, units_given = false;
  ImageNormalizeOptions options;
  DType out_dtype = DType::float32;
  DeviceChoice device = DeviceChoice::automatic;
  int gpu = kGpuUnset;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

ImageLayout parse_layout(const std::string& option, const std::string& v) {
  if (v == "nhwc") return ImageLayout::nhwc;
  if (v == "nchw") return ImageLayout::nchw;
  throw UsageError{option + " expects nhwc or nchw, got '" + v + "'"};
}

std::vector<double> parse_numbers(const std::string& option, const std::string& v) {
  std::vector<double> out;
  for (const std::string& part : split_commas(v)) {
    double d = 0;
    if (!parse_double(part, &d)) throw UsageError{option + " expects comma-separated numbers, got '" + v + "'"};
    out.push_back(d);
  }
  return out;
}

ImageArgs parse(const std::vector<std::string>& args) {
  ImageArgs t;
  std::size_t crop_values = 0;
  ImageNormalizeOptions& o = t.options;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i], inline_value;
    const std::string* inline_ptr = split_inline_option(&arg, &inline_value);
    auto value = [&] { return option_value(args, &i, arg, inline_ptr); };
    auto number = [&]() {
      const std::string v = value();
      double d = 0;
      if (!parse_double(v, &d)) throw UsageError{arg + " expects a number, got '" + v + "'"};
      return d;
    };
    if (arg == "--layout") {
      o.layout = parse_layout(arg, value());
      t.layout_given = true;
    } else if (arg == "--to-layout") {
      o.out_layout = parse_layout(arg, value());
    } else if (arg == "--mean") {
      o.mean = parse_numbers(arg, value());
    } else if (arg == "--std") {
      o.std = parse_numbers(arg, value());
    } else if (arg == "--units") {
      const std::string v = value();
      if (v == "pixel") o.units = PixelUnits::pixel;
      else if (v == "unit") o.units = PixelUnits::unit;
      else throw UsageError{"--units expects pixel (statistics in the input's values, 0..255 for uint8) or unit (0..1), got '" + v + "'"};
      t.units_given = true;
    } else if (arg == "--from-batch") {
      t.from_batch = true;
    } else if (arg == "--dtype") {
      const std::string v = value();
      if (v != "float32" && v != "float16" && v != "bfloat16") throw UsageError{"--dtype expects float32, float16 or bfloat16, got '" + v + "'"};
      parse_dtype(v, &t.out_dtype);
    } else if (arg == "--crop") {
      const std::vector<double> c = parse_numbers(arg, value());
      if (c.size() != 4 && c.size() != 2) throw UsageError{"--crop expects Y,X,H,W (or H,W with --crop-origins)"};
      for (double v : c) {
        if (v != std::floor(v) || v < 0) throw UsageError{"--crop expects non-negative integers Y,X,H,W (or H,W with --crop-origins)"};
      }
      const std::size_t hw = c.size() - 2;  // (H, W: the last two)
      if (c.size() == 4) o.crop_y = static_cast<std::int64_t>(c[0]), o.crop_x = static_cast<std::int64_t>(c[1]);
      o.crop_height = static_cast<std::int64_t>(c[hw]), o.crop_width = static_cast<std::int64_t>(c[hw + 1]);
      crop_values = c.size();
    } else if (arg == "--crop-origins") {
      t.crop_origins = value();
    } else if (arg == "--mirror") {
      o.mirror = true;
    } else if (arg == "--reverse-channels") {
      o.reverse_channels = true;
    } else if (arg == "--eps") {
      o.eps = number();
    } else if (arg == "--scale") {
      o.global_scale = number();
    } else if (arg == "--shift") {
      o.global_shift = number();
    } else if (arg == "--out" || arg == "-o") {
      t.out = value();
    } else if (arg == "--device") {
      t.device = parse_device_option(value());
    } else if (arg == "--gpu") {
      t.gpu = parse_gpu_option(value());
    } else if (!arg.empty() && arg[0] == '-' && arg != "-") {
      throw UsageError{"unknown option '" + arg + "' for image"};
    } else if (t.input.empty()) {
      t.input = arg;
    } else {
      throw UsageError{"one input file (got '" + t.input + "' and '" + arg + "')"};
    }
  }
  if (t.input.empty()) throw UsageError{"missing input file"};
  if (t.out.empty()) throw UsageError{"--out is required"};
  const bool npy = ends_with(t.out, ".npy"), safetensors = ends_with(t.out, ".safetensors");
  if (!npy && !safetensors) throw UsageError{"--out must end in .npy or .safetensors, got '" + t.out + "'"};
  if (npy && t.out_dtype == DType::bfloat16) {
    throw UsageError{"bfloat16 has no .npy dtype (NumPy has none): write OUT.safetensors, or choose --dtype float32|float16"};
  }
  if (t.from_batch) {
    if (!o.mean.empty() || !o.std.empty() || t.units_given) throw UsageError{"--from-batch computes mean and std: no --mean, --std or --units"};
    o.units = PixelUnits::pixel;
  } else if (o.mean.empty() || o.std.empty() || !t.units_given) {
    throw UsageError{"give --mean, --std and --units pixel|unit (the units the statistics are in), or --from-batch"};
  }
  if (!t.crop_origins.empty() && crop_values != 2) throw UsageError{"--crop-origins takes the windows' size as --crop H,W"};
  if (t.crop_origins.empty() && crop_values == 2) throw UsageError{"--crop H,W (a size alone) goes with --crop-origins; else --crop Y,X,H,W"};
  return t;
}

int fail(const Status& status) {
  std::fprintf(stderr, "normkit image: error: %s\n", status.message().c_str());
  return kExitBadData;
}

// Per-channel mean and population std (ddof 0) of the batch over every axis but the channel's, in the
// input's values.
Status batch_statistics(const TensorView& x, ImageLayout layout, Arena& arena, std::vector<double>* mean, std::vector<double>* std) {
  const std::int64_t channels = x.shape[layout == ImageLayout::nhwc ? 3 : 1];
  StatsOptions o;
  o.axes = layout == ImageLayout::nhwc ? ReduceAxes::of({0, 1, 2}) : ReduceAxes::of({0, 2, 3});
  o.stats = {Stat::mean, Stat::std};
  std::size_t workspace_bytes = 0;
  NORMKIT_RETURN_IF_ERROR(stats_workspace_size(x, o, &workspace_bytes));
  void *workspace = nullptr, *out_mean = nullptr, *out_std = nullptr;
  const std::size_t bytes = static_cast<std::size_t>(channels) * sizeof(double);
  if (workspace_bytes) NORMKIT_RETURN_IF_ERROR(arena.make(nullptr, workspace_bytes, &workspace));
  NORMKIT_RETURN_IF_ERROR(arena.make(nullptr, bytes, &out_mean));
  NORMKIT_RETURN_IF_ERROR(arena.make(nullptr, bytes, &out_std));
  StatsOutputs outputs;
  outputs[Stat::mean] = TensorView(out_mean, DType::float64, {channels}, arena.space());
  outputs[Stat::std] = TensorView(out_std, DType::float64, {channels}, arena.space());
  NORMKIT_RETURN_IF_ERROR(compute_stats(x, o, outputs, workspace, workspace_bytes));
  mean->resize(static_cast<std::size_t>(channels));
  std->resize(static_cast<std::size_t>(channels));
  NORMKIT_RETURN_IF_ERROR(arena.fetch(out_mean, mean->data(), bytes));
  return arena.fetch(out_std, std->data(), bytes);
}

int run(ImageArgs& t) {
  io::NpyArray in;
  Status s = io::read_array_file(t.input, &in);
  if (!s.ok()) return fail(s);
  // [N, H, W] (IDX images, or a .npy of grey images): one channel, the same bytes in either layout.
  if (in.shape.size() == 3) {
    in.shape.push_back(1);
    t.options.layout = ImageLayout::nhwc;
  } else if (in.shape.size() == 4) {
    if (!t.layout_given) {
      std::fprintf(stderr, "normkit image: %s is 4-D: say its axis order with --layout nhwc|nchw (try 'normkit image --help')\n",
                   t.input.c_str());
      return kExitUsage;
    }
  } else {
    return fail(Status(StatusCode::invalid_argument, t.input + ": images are [N, H, W] or 4-D ([N, H, W, C] or [N, C, H, W]), got " +
                                                          std::to_string(in.shape.size()) + " axes"));
  }
  bool use_cuda = false;
  s = select_device(t.device, t.gpu, &use_cuda);
  if (!s.ok()) return fail(s);
  Arena arena(use_cuda);
  void* x_data = nullptr;
  s = arena.make(in.data.data(), in.data.size(), &x_data);
  if (!s.ok()) return fail(s);
  const TensorView x(x_data, in.dtype, in.shape.data(), 4, arena.space());
  ImageNormalizeOptions& o = t.options;
  if (t.from_batch) {
    s = batch_statistics(x, o.layout, arena, &o.mean, &o.std);
    if (!s.ok()) return fail(s);
    // (statistics of input channels; mean and std are indexed by output channel)
    if (o.reverse_channels) {
      std::reverse(o.mean.begin(), o.mean.end());
      std::reverse(o.std.begin(), o.std.end());
    }
    std::fprintf(stderr, "normkit image: batch statistics (%s units) mean", in.dtype == DType::uint8 ? "pixel 0..255" : "input");
    for (double m : o.mean) std::fprintf(stderr, " %.6g", m);
    std::fprintf(stderr, ", std");
    for (double v : o.std) std::fprintf(stderr, " %.6g", v);
    std::fprintf(stderr, "\n");
  }
  const bool nhwc = o.layout == ImageLayout::nhwc;
  const std::int64_t n = in.shape[0], c = in.shape[nhwc ? 3 : 1], h = in.shape[nhwc ? 1 : 2], w = in.shape[nhwc ? 2 : 3];
  const std::int64_t oh = o.crop_height < 0 ? h - o.crop_y : o.crop_height, ow = o.crop_width < 0 ? w - o.crop_x : o.crop_width;
  const std::vector<std::int64_t> y_shape =
      o.out_layout == ImageLayout::nhwc ? std::vector<std::int64_t>{n, oh, ow, c} : std::vector<std::int64_t>{n, c, oh, ow};
  std::int64_t y_numel = 0;
  if (oh < 0 || ow < 0 || !checked_numel(y_shape.data(), 4, dtype_size(t.out_dtype), &y_numel)) {
    return fail(Status(StatusCode::invalid_argument, "normkit::image_normalize: argument 'options.crop_*': a window inside the " +
                                                         std::to_string(h) + " x " + std::to_string(w) + " images"));
  }
  std::vector<unsigned char> result(static_cast<std::size_t>(y_numel) * dtype_size(t.out_dtype));
  void* y_data = nullptr;
  s = arena.make(nullptr, result.size(), &y_data);
  if (s.ok() && t.crop_origins.empty()) s = image_normalize(x, TensorView(y_data, t.out_dtype, y_shape.data(), 4, arena.space()), o);
  if (s.ok() && !t.crop_origins.empty()) {  // (a window of its own per image: clamped into the image)
    io::NpyArray origins;
    void* origins_data = nullptr;
    s = io::read_npy(t.crop_origins, &origins);
    if (s.ok()) s = arena.make(origins.data.data(), origins.data.size(), &origins_data);
    if (s.ok()) {
      s = image_normalize_crops(x, TensorView(y_data, t.out_dtype, y_shape.data(), 4, arena.space()), o,
                                TensorView(origins_data, origins.dtype, origins.shape.data(), static_cast<int>(origins.shape.size()), arena.space()));
    }
  }
  if (s.ok() && !result.empty()) s = arena.fetch(y_data, result.data(), result.size());
  if (s.ok()) s = arena.finish();
  if (!s.ok()) return fail(s);
  if (ends_with(t.out, ".npy")) {
    s = io::write_npy_atomic(t.out, t.out_dtype, y_shape, result.data());
  } else {
    io::SafetensorsFile file;
    io::SafetensorsTensor tensor;
    tensor.name = "images";
    tensor.dtype = t.out_dtype;
    tensor.shape = y_shape;
    tensor.data = std::move(result);
    file.tensors.push_back(std::move(tensor));
    file.metadata.push_back({"layout", o.out_layout == ImageLayout::nhwc ? "nhwc" : "nchw"});
    s = io::write_safetensors_atomic(t.out, file);
  }
  if (!s.ok()) return fail(s);
  std::fprintf(stderr, "normkit image: [%lld, %lld, %lld, %lld] %s -> %s %s written to %s\n", static_cast<long long>(y_shape[0]),
               static_cast<long long>(y_shape[1]), static_cast<long long>(y_shape[2]), static_cast<long long>(y_shape[3]),
               dtype_name(in.dtype), dtype_name(t.out_dtype), o.out_layout == ImageLayout::nhwc ? "nhwc" : "nchw", t.out.c_str());
  return kExitOk;
}

}  // namespace

void print_image_help() {
  std::printf(
      "usage: normkit image IN.(npy|idx|idx.gz) [--layout nhwc|nchw] (--mean R,G,B --std R,G,B --units pixel|unit | --from-batch)\n"
      "                     [--to-layout nchw|nhwc] [--dtype float32|float16|bfloat16] [--crop Y,X,H,W | --crop H,W\n"
      "                     --crop-origins ORIGINS.npy] [--mirror]\n"
      "                     [--reverse-channels] [--eps E] [--scale S] [--shift B] --out OUT.(npy|safetensors)\n\n"
      "Normalizes a batch of images in one pass: y[n, c, i, j] = (u x[n, crop_y + i, crop_x + j', c'] - mean[c]) * scale\n"
      "/ sqrt(std[c]^2 + eps) + shift, with j' mirrored by --mirror and c' = C - 1 - c with --reverse-channels\n"
      "(mean and std are indexed by output channel), and the layout change fused (see include/normkit/image.hpp).\n\n"
      "options:\n"
      "  --layout nhwc|nchw     IN's axis order (required for 4-D input; 3-D [N, H, W] input has one channel)\n"
      "  --to-layout nchw|nhwc  the output's axis order (default nchw)\n"
      "  --mean, --std          one value a channel\n"
      "  --units pixel|unit     the units mean and std are in: pixel = the input's values (0..255 for uint8, as DALI's\n"
      "                         123.675), unit = uint8 scaled to 0..1 first (u = 1/255, as torchvision's 0.485). Required.\n"
      "  --from-batch           mean and population std of this batch per channel, over every pixel (the crop\n"
      "                         window's too), in the input's values (reads the batch twice)\n"
      "  --dtype D              output dtype (default float32); bfloat16 only into .safetensors (NumPy has no bfloat16)\n"
      "  --crop Y,X,H,W         the window of every image; --mirror mirrors every image horizontally\n"
      "  --crop-origins F.npy   a window of its own per image (random crops): int64 [N, 2] of (row, column), with the\n"
      "                         windows' size as --crop H,W; origins are clamped into the image\n"
      "  --eps E --scale S --shift B   CV-CUDA's epsilon, globalScale and globalShift (defaults 0, 1, 0)\n"
      "  --device auto|cpu|cuda, --gpu N\n"
      "The .safetensors output holds one tensor, 'images', with the layout in its metadata.\n"
      "exit status: 0 success, 1 bad data, 2 usage error; outputs are written atomically\n");
}

int run_image(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "-h" || a == "--help") {
      print_image_help();
      return kExitOk;
    }
  }
  ImageArgs t;
  try {
    t = parse(args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "normkit image: %s (try 'normkit image --help')\n", e.message.c_str());
    return kExitUsage;
  }
  return run(t);
}

}  // namespace normkit::cli
