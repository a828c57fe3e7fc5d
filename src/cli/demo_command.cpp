// `normkit demo [--data DIR] [--out DIR] [--device auto|cpu|cuda] [--gpu N]`: the main job on real data.
// Fashion-MNIST's training images (gzip IDX, Debian's dataset-fashion-mnist) -> exact data-set statistics
// in [0, 1] units (the pooled std, and labelled as such the mean of per-image stds) and the per-pixel
// statistics' range -> the training and test sets normalized three ways (z-score with the training set's
// statistics, per-pixel z-score, per-sample L2), each result described -> the device used and the
// throughput. Without the data set it says so and uses a generated batch.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "cli/cli_common.hpp"
#include "cli/device_memory.hpp"
#include "io/idx.hpp"
#include "io/npy.hpp"
#include "normkit/normalize.hpp"
#include "normkit/stats.hpp"

namespace normkit::cli {
namespace {

constexpr const char* kDefaultData = "/usr/share/datasets/fashion-mnist";

struct DemoArgs {
  std::string data = kDefaultData;
  std::string out;
  DeviceChoice device = DeviceChoice::automatic;
  int gpu = kGpuUnset;
};

DemoArgs parse_args(const std::vector<std::string>& args) {
  DemoArgs parsed;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto take_value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw UsageError{"option " + arg + " needs a value"};
      return args[++i];
    };
    if (arg == "--data") {
      parsed.data = take_value();
    } else if (arg == "--out" || arg == "-o") {
      parsed.out = take_value();
    } else if (arg == "--device") {
      parsed.device = parse_device_option(take_value());
    } else if (arg == "--gpu") {
      parsed.gpu = parse_gpu_option(take_value());
    } else {
      throw UsageError{"unexpected argument '" + arg + "'"};
    }
  }
  return parsed;
}

// Statistics of `x` over `axes` as float64 arrays of the kept size, on the host.
struct Described {
  std::vector<double> mean, std, min, max;
};

Status describe(const TensorView& x, const ReduceAxes& axes, Arena& arena, Described* d) {
  StatsOptions o;
  o.axes = axes;
  o.stats = StatSet{Stat::mean, Stat::std, Stat::min, Stat::max};
  std::array<std::int64_t, kMaxDims> kept{};
  int kept_ndim = 0;
  NORMKIT_RETURN_IF_ERROR(kept_shape(x, axes, &kept, &kept_ndim));
  std::int64_t n = 1;
  for (int i = 0; i < kept_ndim; ++i) n *= kept[i];
  const std::size_t bytes = static_cast<std::size_t>(n) * 8;
  StatsOutputs outputs;
  std::vector<double>* host[4] = {&d->mean, &d->std, &d->min, &d->max};
  const Stat which[4] = {Stat::mean, Stat::std, Stat::min, Stat::max};
  void* p[4] = {};
  for (int i = 0; i < 4; ++i) {
    NORMKIT_RETURN_IF_ERROR(arena.make(nullptr, bytes, &p[i]));
    outputs[which[i]] = TensorView(p[i], DType::float64, kept.data(), kept_ndim, arena.space());
  }
  std::size_t workspace_bytes = 0;
  NORMKIT_RETURN_IF_ERROR(stats_workspace_size(x, o, &workspace_bytes));
  void* workspace = nullptr;
  if (workspace_bytes) NORMKIT_RETURN_IF_ERROR(arena.make(nullptr, workspace_bytes, &workspace));
  NORMKIT_RETURN_IF_ERROR(compute_stats(x, o, outputs, workspace, workspace_bytes));
  for (int i = 0; i < 4; ++i) {
    host[i]->resize(static_cast<std::size_t>(n));
    NORMKIT_RETURN_IF_ERROR(arena.fetch(p[i], host[i]->data(), bytes));
  }
  return Status::success();
}

// A deterministic stand-in for the data set: n images of 28 x 28 with a bright blob on a dark background.
io::NpyArray generated_images(std::int64_t n, std::uint32_t seed) {
  io::NpyArray a;
  a.dtype = DType::uint8;
  a.shape = {n, 28, 28};
  a.data.resize(static_cast<std::size_t>(n) * 784);
  std::uint32_t state = seed;
  for (std::int64_t i = 0; i < n; ++i) {
    for (int y = 0; y < 28; ++y) {
      for (int x = 0; x < 28; ++x) {
        state = state * 1664525u + 1013904223u;
        const double r2 = (x - 13.5) * (x - 13.5) + (y - 13.5) * (y - 13.5);
        const double v = 220.0 * std::exp(-r2 / 60.0) + (state >> 28);
        a.data[static_cast<std::size_t>(i) * 784 + y * 28 + x] = static_cast<unsigned char>(std::min(255.0, v));
      }
    }
  }
  return a;
}

struct Split {
  const char* name;
  io::NpyArray images;  // uint8 [N, H, W]
  void* data = nullptr;  // in the arena
};

struct Method {
  const char* name;
  const char* what;
};
constexpr Method kMethods[3] = {{"zscore", "z-score with the training set's mean and std"},
                                {"pixel_zscore", "per-pixel z-score (the training set's per-pixel mean and std)"},
                                {"l2", "per-sample L2 (each image a unit vector)"}};

int fail(const Status& s) {
  std::fprintf(stderr, "normkit demo: error: %s\n", s.message().c_str());
  return kExitBadData;
}

}  // namespace

void print_demo_help() {
  std::printf(
      "usage: normkit demo [--data DIR] [--out DIR] [--device auto|cpu|cuda] [--gpu N]\n\n"
      "The main job on real data: Fashion-MNIST's gzip IDX files (DIR, default %s: Debian's\n"
      "dataset-fashion-mnist) -> exact data-set statistics of the 60000 training images in [0, 1] units, the\n"
      "per-pixel statistics' range -> the training and test sets normalized three ways (z-score with the\n"
      "training set's statistics, per-pixel z-score, per-sample L2) and each result described. Without the data\n"
      "set it says so and uses a generated batch.\n\n"
      "  --out DIR   also write each result as DIR/<train|test>_<zscore|pixel_zscore|l2>.npy (float32)\n"
      "  --device D  auto (CUDA when available, else the host), cpu or cuda\n",
      kDefaultData);
}

int run_demo(const std::vector<std::string>& raw_args) {
  for (const std::string& a : raw_args) {
    if (a == "-h" || a == "--help") {
      print_demo_help();
      return kExitOk;
    }
  }
  DemoArgs args;
  try {
    args = parse_args(raw_args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "normkit demo: %s (try 'normkit demo --help')\n", e.message.c_str());
    return kExitUsage;
  }
  Split splits[2] = {{"train", {}}, {"test", {}}};
  const std::string files[2] = {args.data + "/train-images-idx3-ubyte.gz", args.data + "/t10k-images-idx3-ubyte.gz"};
  bool real = true;
  for (int i = 0; i < 2 && real; ++i) {
    const Status s = io::read_idx(files[i], &splits[i].images);
    if (!s.ok()) {
      std::printf("Fashion-MNIST not found or unreadable (%s)\n  install Debian's dataset-fashion-mnist or pass --data DIR;"
                  " using a generated batch instead\n", s.message().c_str());
      real = false;
    }
  }
  if (!real) {
    splits[0].images = generated_images(1200, 1);
    splits[1].images = generated_images(200, 2);
  }
  for (const Split& s : splits) {
    if (s.images.dtype != DType::uint8 || s.images.shape.size() != 3) {
      return fail(Status(StatusCode::bad_file, std::string(s.name) + " images: expected uint8 [N, H, W], got " + dtype_name(s.images.dtype) +
                                                   " with " + std::to_string(s.images.shape.size()) + " dimensions"));
    }
    if (s.images.shape[0] == 0 || s.images.shape[1] == 0 || s.images.shape[2] == 0) {
      return fail(Status(StatusCode::bad_file, std::string(s.name) + " images: an empty set"));
    }
  }
  // (the test set is normalized with the training set's per-pixel statistics: the same image size)
  if (splits[1].images.shape[1] != splits[0].images.shape[1] || splits[1].images.shape[2] != splits[0].images.shape[2]) {
    return fail(Status(StatusCode::shape_mismatch, "test images are " + std::to_string(splits[1].images.shape[1]) + " x " +
                                                       std::to_string(splits[1].images.shape[2]) + ", training images " +
                                                       std::to_string(splits[0].images.shape[1]) + " x " + std::to_string(splits[0].images.shape[2])));
  }
  bool use_cuda = false;
  Status status = select_device(args.device, args.gpu, &use_cuda);
  if (!status.ok()) return fail(status);
  Arena arena(use_cuda);
  const std::vector<std::int64_t>& shape = splits[0].images.shape;
  std::printf("data: %s\n", real ? args.data.c_str() : "generated");
  for (Split& s : splits) {
    std::printf("  %-5s uint8 [%lld, %lld, %lld]\n", s.name, static_cast<long long>(s.images.shape[0]), static_cast<long long>(s.images.shape[1]),
                static_cast<long long>(s.images.shape[2]));
    status = arena.make(s.images.data.data(), s.images.data.size(), &s.data);
    if (!status.ok()) return fail(status);
  }
  auto view = [&](const Split& s, void* p, DType dtype) { return TensorView(p, dtype, s.images.shape.data(), 3, arena.space()); };

  // Data-set statistics of the training images: exact (uint8 is summed in integers), in [0, 1] units.
  const auto t0 = std::chrono::steady_clock::now();
  Described pooled, per_image, per_pixel;
  const TensorView train = view(splits[0], splits[0].data, DType::uint8);
  if (!(status = describe(train, ReduceAxes::every(), arena, &pooled)).ok()) return fail(status);
  if (!(status = describe(train, ReduceAxes::of({1, 2}), arena, &per_image)).ok()) return fail(status);
  if (!(status = describe(train, ReduceAxes::of({0}), arena, &per_pixel)).ok()) return fail(status);
  double mean_image_std = 0.0;
  for (double v : per_image.std) mean_image_std += v;
  mean_image_std /= static_cast<double>(per_image.std.size());
  const double mean = pooled.mean[0] / 255.0, std = pooled.std[0] / 255.0;
  auto range = [](const std::vector<double>& v) { return std::make_pair(*std::min_element(v.begin(), v.end()) / 255.0, *std::max_element(v.begin(), v.end()) / 255.0); };
  std::printf("\ntraining-set statistics ([0, 1] units, exact):\n");
  std::printf("  mean %.4f  std %.4f   (pooled over every pixel; Fashion-MNIST's published values: 0.2860, 0.3530)\n", mean, std);
  std::printf("  mean of per-image stds %.4f   (a different figure that also circulates; not the pooled std)\n", mean_image_std / 255.0);
  std::printf("  per-pixel mean in [%.4f, %.4f], per-pixel std in [%.4f, %.4f] (over %zu pixels)\n", range(per_pixel.mean).first,
              range(per_pixel.mean).second, range(per_pixel.std).first, range(per_pixel.std).second, per_pixel.mean.size());

  // Coefficients of the two z-scores (pixel units; a pixel of zero spread keeps scale 1, as scikit-learn).
  const std::int64_t pixels = shape[1] * shape[2];
  std::vector<double> center{pooled.mean[0]}, scale{pooled.std[0] > 0 ? 1.0 / pooled.std[0] : 1.0}, offset{0.0};
  std::vector<double> pixel_center = per_pixel.mean, pixel_scale(per_pixel.std.size()), pixel_offset(per_pixel.std.size(), 0.0);
  for (std::size_t k = 0; k < pixel_scale.size(); ++k) pixel_scale[k] = per_pixel.std[k] > 0 ? 1.0 / per_pixel.std[k] : 1.0;
  AffineCoefficients global, per_pixel_coefficients;
  void* arrays[6] = {};
  const std::vector<double>* sources[6] = {&center, &scale, &offset, &pixel_center, &pixel_scale, &pixel_offset};
  for (int i = 0; i < 6; ++i) {
    if (!(status = arena.make(sources[i]->data(), sources[i]->size() * 8, &arrays[i])).ok()) return fail(status);
  }
  global.center = static_cast<double*>(arrays[0]);
  global.scale = static_cast<double*>(arrays[1]);
  global.offset = static_cast<double*>(arrays[2]);
  per_pixel_coefficients.center = static_cast<double*>(arrays[3]);
  per_pixel_coefficients.scale = static_cast<double*>(arrays[4]);
  per_pixel_coefficients.offset = static_cast<double*>(arrays[5]);

  // The three normalizations of both splits.
  const auto t1 = std::chrono::steady_clock::now();
  std::size_t bytes_moved = 0;
  void* results[2][3] = {};
  for (int si = 0; si < 2; ++si) {
    Split& s = splits[si];
    const std::int64_t n = s.images.shape[0];
    const TensorView in = view(s, s.data, DType::uint8);
    const std::size_t out_bytes = static_cast<std::size_t>(n * pixels) * 4;
    for (int m = 0; m < 3; ++m) {
      if (!(status = arena.make(nullptr, out_bytes, &results[si][m])).ok()) return fail(status);
    }
    status = apply_affine(in, ReduceAxes::every(), global, view(s, results[si][0], DType::float32));
    if (status.ok()) status = apply_affine(in, ReduceAxes::of({0}), per_pixel_coefficients, view(s, results[si][1], DType::float32));
    if (status.ok()) {
      const TensorView rows(s.data, DType::uint8, {n, pixels}, arena.space()), out(results[si][2], DType::float32, {n, pixels}, arena.space());
      std::size_t workspace_bytes = 0;
      void* workspace = nullptr;
      status = normalize_lp_workspace_size(rows, &workspace_bytes);
      if (status.ok() && workspace_bytes) status = arena.make(nullptr, workspace_bytes, &workspace);
      if (status.ok()) status = normalize_lp(rows, LpNorm::l2, out, workspace, workspace_bytes);
    }
    if (!status.ok()) return fail(status);
    bytes_moved += 3 * (s.images.data.size() + out_bytes);
  }
  if (!(status = arena.finish()).ok()) return fail(status);
  const auto t2 = std::chrono::steady_clock::now();

  std::printf("\nnormalized (float32, [N, %lld, %lld]):\n", static_cast<long long>(shape[1]), static_cast<long long>(shape[2]));
  std::printf("  %-13s %-5s %10s %10s %10s %10s\n", "method", "split", "min", "max", "mean", "std");
  for (int m = 0; m < 3; ++m) {
    for (int si = 0; si < 2; ++si) {
      Described d;
      if (!(status = describe(view(splits[si], results[si][m], DType::float32), ReduceAxes::every(), arena, &d)).ok()) return fail(status);
      std::printf("  %-13s %-5s %10.4f %10.4f %10.4f %10.4f\n", kMethods[m].name, splits[si].name, d.min[0], d.max[0], d.mean[0], d.std[0]);
    }
  }
  for (const Method& m : kMethods) std::printf("  %-13s %s\n", m.name, m.what);
  const double stats_s = std::chrono::duration<double>(t1 - t0).count(), norm_s = std::chrono::duration<double>(t2 - t1).count();
  std::printf("\ndevice: %s; statistics %.1f ms (%.2f GB/s of images read three times), normalizations %.1f ms (%.2f GB/s read + written)\n",
              use_cuda ? "cuda" : "host", stats_s * 1e3, 3.0 * static_cast<double>(splits[0].images.data.size()) / stats_s / 1e9, norm_s * 1e3,
              static_cast<double>(bytes_moved) / norm_s / 1e9);
  std::fflush(stdout);

  if (!args.out.empty()) {
    for (int si = 0; si < 2; ++si) {
      const std::int64_t n = splits[si].images.shape[0];
      std::vector<float> host(static_cast<std::size_t>(n * pixels));
      for (int m = 0; m < 3; ++m) {
        if (!(status = arena.fetch(results[si][m], host.data(), host.size() * 4)).ok()) return fail(status);
        const std::string path = args.out + "/" + splits[si].name + "_" + kMethods[m].name + ".npy";
        if (!(status = io::write_npy_atomic(path, DType::float32, splits[si].images.shape, host.data())).ok()) return fail(status);
        std::printf("wrote %s\n", path.c_str());
      }
    }
  }
  return kExitOk;
}

}  // namespace normkit::cli
