// Device peers of the statistics and BatchNorm benchmarks, on the same data and shapes, in the same run (a GPU
// machine: scripts/gpu-check.sh): what a CUDA user would otherwise write or call.
//   two_pass  mean, then the mean of squared deviations, in float64 accumulators: threads on adjacent columns
//             over chunks of rows with float64 atomics (per_feature), or a warp a row (per_sample*)
//   cub       cub::DeviceSegmentedReduce (per_sample*: rows are segments) and cub::DeviceReduce (global) twice:
//             the sums, then the squared deviations through a transform iterator
//   cudnn     cuDNN's batch norm (cudnnBatchNormalization{ForwardTraining,ForwardInference,Backward}, spatial
//             mode; NHWC in the persistent mode) on bench_layers.cpp's float32 ResNet-50 shapes, when cuDNN is
//             found (NORMKIT_BENCH_CUDNN)
// Names: device/peers/<peer>/<pattern>/float32/<size> with the statistics' `of_copy`, and
// device/peers/cudnn/batch_norm/<pass>/<layout>/f32/<shape>/<size> with the layers' (x's bytes read and written
// against a copy's). Each case checks its first result against a float64 host computation and reports an error
// instead of a speed when it is wrong.
#include <cub/device/device_reduce.cuh>
#include <cub/device/device_segmented_reduce.cuh>
#include <cuda/std/functional>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/transform_iterator.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "bench_common.hpp"

#if defined(NORMKIT_BENCH_CUDNN)
#include <cudnn.h>
#endif

using namespace normkit;
using namespace normkit::bench;

namespace {

// v[i] /= by: sums into means (CUB and the column passes give sums).
__global__ void divide(double* v, std::int64_t n, double by) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) v[i] /= by;
}

// ---- two_pass --------------------------------------------------------------------------------------------------

// per_feature: threads on adjacent columns (coalesced), each over a chunk of kColumnChunk rows, adding its partial
// sum of x - shift (or of (x - shift)²) to out[column] with a float64 atomic.
constexpr std::int64_t kColumnChunk = 1024;

template <bool kSquares>
__global__ void column_pass(const float* x, std::int64_t rows, std::int64_t cols, const double* shift, double* out) {
  const std::int64_t j = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  const double m = kSquares ? shift[j] : 0.0;
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.y) * kColumnChunk, last = min(rows, first + kColumnChunk);
  double s = 0;
  for (std::int64_t i = first; i < last; ++i) {
    const double d = x[i * cols + j] - m;
    s += kSquares ? d * d : d;
  }
  atomicAdd(out + j, s);
}

// per_sample: a warp a row; the mean (kSquares false) or the mean of squared deviations from mean[row].
template <bool kSquares>
__global__ void row_pass(const float* x, std::int64_t rows, std::int64_t cols, const double* mean, double* out) {
  const std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  const float* r = x + row * cols;
  const double m = kSquares ? mean[row] : 0.0;
  double s = 0;
  for (std::int64_t j = lane; j < cols; j += 32) {
    const double d = r[j] - m;
    s += kSquares ? d * d : d;
  }
  for (int offset = 16; offset > 0; offset /= 2) s += __shfl_down_sync(0xffffffffu, s, offset);
  if (lane == 0) out[row] = s / static_cast<double>(cols);
}

// ---- cub ---------------------------------------------------------------------------------------------------------

// (x[i] - mean[i / cols])² for a flat index i: the second pass's input.
struct SquaredDeviation {
  const float* x;
  const double* mean;
  std::int64_t cols;
  __host__ __device__ double operator()(std::int64_t i) const {
    const double d = x[i] - mean[i / cols];
    return d * d;
  }
};

struct RowOffset {
  std::int64_t cols;
  __host__ __device__ std::int64_t operator()(std::int64_t r) const { return r * cols; }
};

struct ToDouble {
  __host__ __device__ double operator()(float v) const { return v; }
};

class CubStats {
 public:
  CubStats(const float* x, Matrix m, double* mean, double* var) : x_(x), m_(m), mean_(mean), var_(var) {
    run(nullptr, &bytes_);
    cudaMalloc(&temp_, bytes_ ? bytes_ : 1);
  }
  ~CubStats() { cudaFree(temp_); }
  CubStats(const CubStats&) = delete;
  CubStats& operator=(const CubStats&) = delete;
  void operator()() { run(temp_, &bytes_); }

 private:
  // (with temp == nullptr: the temporary storage both passes need)
  void run(void* temp, std::size_t* bytes) {
    const std::int64_t segments = m_.rows, cols = m_.cols;
    const auto offsets = thrust::make_transform_iterator(thrust::counting_iterator<std::int64_t>(0), RowOffset{cols});
    const auto values = thrust::make_transform_iterator(x_, ToDouble{});
    const auto deviations = thrust::make_transform_iterator(thrust::counting_iterator<std::int64_t>(0), SquaredDeviation{x_, mean_, cols});
    std::size_t first = 0, second = 0;
    if (segments == 1) {  // global: one reduction over everything
      cub::DeviceReduce::Sum(temp, temp ? *bytes : first, values, mean_, cols);
      if (temp) divide<<<1, 1>>>(mean_, 1, static_cast<double>(cols));
      cub::DeviceReduce::Sum(temp, temp ? *bytes : second, deviations, var_, cols);
      if (temp) divide<<<1, 1>>>(var_, 1, static_cast<double>(cols));
    } else {
      cub::DeviceSegmentedReduce::Sum(temp, temp ? *bytes : first, values, mean_, segments, offsets, offsets + 1);
      const int blocks = static_cast<int>((segments + 255) / 256);
      if (temp) divide<<<blocks, 256>>>(mean_, segments, static_cast<double>(cols));
      cub::DeviceSegmentedReduce::Sum(temp, temp ? *bytes : second, deviations, var_, segments, offsets, offsets + 1);
      if (temp) divide<<<blocks, 256>>>(var_, segments, static_cast<double>(cols));
    }
    if (!temp) *bytes = std::max(first, second);
  }
  const float* x_;
  Matrix m_;
  double *mean_, *var_;
  void* temp_ = nullptr;
  std::size_t bytes_ = 0;
};

// ---- the statistics peers' benchmark ----------------------------------------------------------------------------

enum class Peer { two_pass, cub };

// The float64 mean and variance of kept index k (a column or a row) of the host data.
void host_moments(const std::vector<float>& x, Matrix m, std::int64_t k, double* mean, double* var) {
  const std::int64_t n = m.per_feature ? m.rows : m.cols;
  auto at = [&](std::int64_t i) { return static_cast<double>(m.per_feature ? x[static_cast<std::size_t>(i * m.cols + k)] : x[static_cast<std::size_t>(k * m.cols + i)]); };
  double s = 0, q = 0;
  for (std::int64_t i = 0; i < n; ++i) s += at(i);
  *mean = s / static_cast<double>(n);
  for (std::int64_t i = 0; i < n; ++i) q += (at(i) - *mean) * (at(i) - *mean);
  *var = q / static_cast<double>(n);
}

void stats_peer(benchmark::State& state, Peer peer, Matrix m) {
  const std::size_t bytes = static_cast<std::size_t>(m.rows * m.cols) * 4;
  const auto raw = random_bytes(bytes, DType::float32);
  DeviceRotation inputs(bytes, raw.data());
  const std::int64_t kept = m.per_feature ? m.cols : m.rows;
  double *mean = nullptr, *var = nullptr;
  if (!inputs.ok() || cudaMalloc(&mean, static_cast<std::size_t>(kept) * 8) != cudaSuccess ||
      cudaMalloc(&var, static_cast<std::size_t>(kept) * 8) != cudaSuccess) {
    state.SkipWithError("cudaMalloc");
    return;
  }
  DeviceTimer t;
  std::int64_t call = 0;
  std::vector<std::unique_ptr<CubStats>> cub_calls;  // (one plan a rotated buffer)
  auto run = [&](const float* x) {
    if (m.per_feature) {
      const dim3 grid(static_cast<unsigned>((m.cols + 127) / 128), static_cast<unsigned>((m.rows + kColumnChunk - 1) / kColumnChunk));
      const int blocks = static_cast<int>((m.cols + 255) / 256);
      cudaMemsetAsync(mean, 0, static_cast<std::size_t>(m.cols) * 8);
      cudaMemsetAsync(var, 0, static_cast<std::size_t>(m.cols) * 8);
      column_pass<false><<<grid, 128>>>(x, m.rows, m.cols, nullptr, mean);
      divide<<<blocks, 256>>>(mean, m.cols, static_cast<double>(m.rows));
      column_pass<true><<<grid, 128>>>(x, m.rows, m.cols, mean, var);
      divide<<<blocks, 256>>>(var, m.cols, static_cast<double>(m.rows));
    } else {
      const unsigned blocks = static_cast<unsigned>((m.rows + 7) / 8);  // (8 warps a block, a warp a row)
      row_pass<false><<<blocks, 256>>>(x, m.rows, m.cols, nullptr, mean);
      row_pass<true><<<blocks, 256>>>(x, m.rows, m.cols, mean, var);
    }
  };
  if (peer == Peer::cub) {
    for (void* p : inputs.buffers) cub_calls.push_back(std::make_unique<CubStats>(static_cast<const float*>(p), m, mean, var));
  }
  for (auto _ : state) {
    const std::size_t slot = static_cast<std::size_t>(call % static_cast<std::int64_t>(inputs.buffers.size()));
    t.time(state, [&] {
      if (peer == Peer::cub) (*cub_calls[slot])();
      else run(static_cast<const float*>(inputs.buffers[slot]));
    });
    ++call;
  }
  // The first kept index against float64 on the host.
  double got[2] = {0, 0}, want[2] = {0, 0};
  std::vector<float> host(bytes / 4);
  std::memcpy(host.data(), raw.data(), bytes);
  host_moments(host, m, 0, &want[0], &want[1]);
  const bool copied = cudaMemcpy(&got[0], mean, 8, cudaMemcpyDeviceToHost) == cudaSuccess && cudaMemcpy(&got[1], var, 8, cudaMemcpyDeviceToHost) == cudaSuccess;
  if (cudaGetLastError() != cudaSuccess || !copied || std::fabs(got[0] - want[0]) > 1e-9 * std::fabs(want[0]) + 1e-12 ||
      std::fabs(got[1] - want[1]) > 1e-9 * std::fabs(want[1]) + 1e-12) {
    state.SkipWithError("wrong result or CUDA error");
  }
  cub_calls.clear();
  cudaFree(mean);
  cudaFree(var);
  report(state, bytes, "device/" + std::to_string(bytes));
}

#if defined(NORMKIT_BENCH_CUDNN)
// ---- cudnn batch norm --------------------------------------------------------------------------------------------

enum class Pass { training, inference, backward };

void cudnn_batch_norm(benchmark::State& state, Pass pass, bool nhwc, std::vector<std::int64_t> nchw) {
  const int n = static_cast<int>(nchw[0]), c = static_cast<int>(nchw[1]), h = static_cast<int>(nchw[2]), w = static_cast<int>(nchw[3]);
  const std::size_t bytes = static_cast<std::size_t>(n) * c * h * w * 4;
  const auto raw = random_bytes(bytes, DType::float32);
  DeviceRotation xs(bytes, raw.data()), dys(bytes, raw.data());
  void *y = nullptr, *params = nullptr;
  cudnnHandle_t handle = nullptr;
  cudnnTensorDescriptor_t data = nullptr, channel = nullptr;
  const bool ready = xs.ok() && dys.ok() && cudaMalloc(&y, bytes) == cudaSuccess && cudaMalloc(&params, 8 * static_cast<std::size_t>(c) * 4) == cudaSuccess &&
                     cudnnCreate(&handle) == CUDNN_STATUS_SUCCESS && cudnnCreateTensorDescriptor(&data) == CUDNN_STATUS_SUCCESS &&
                     cudnnCreateTensorDescriptor(&channel) == CUDNN_STATUS_SUCCESS &&
                     cudnnSetTensor4dDescriptor(data, nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, c, h, w) == CUDNN_STATUS_SUCCESS;
  const cudnnBatchNormMode_t mode = nhwc ? CUDNN_BATCHNORM_SPATIAL_PERSISTENT : CUDNN_BATCHNORM_SPATIAL;
  if (!ready || cudnnDeriveBNTensorDescriptor(channel, data, mode) != CUDNN_STATUS_SUCCESS) {
    state.SkipWithError("cuDNN or cudaMalloc set-up failed");
  } else {
    // params: scale, bias, running mean, running var, saved mean, saved inverse std, dscale, dbias (C floats each)
    float* p = static_cast<float*>(params);
    std::vector<float> init(8 * static_cast<std::size_t>(c), 0.0f);
    for (int i = 0; i < c; ++i) init[i] = 1.5f, init[3 * c + i] = 1.0f;
    cudaMemcpy(params, init.data(), init.size() * 4, cudaMemcpyHostToDevice);
    const float one = 1.0f, zero = 0.0f;
    const double eps = 1e-5;
    // (the backward's saved statistics from one training call)
    cudnnBatchNormalizationForwardTraining(handle, mode, &one, &zero, data, xs.at(0), data, y, channel, p, p + c, 0.1, p + 2 * c, p + 3 * c, eps,
                                           p + 4 * c, p + 5 * c);
    DeviceTimer t;
    std::int64_t call = 0;
    cudnnStatus_t status = CUDNN_STATUS_SUCCESS;
    for (auto _ : state) {
      const void* x = xs.at(call);
      void* dy = dys.at(call);
      ++call;
      t.time(state, [&] {
        if (pass == Pass::training) {
          status = cudnnBatchNormalizationForwardTraining(handle, mode, &one, &zero, data, x, data, y, channel, p, p + c, 0.1, p + 2 * c, p + 3 * c, eps,
                                                          p + 4 * c, p + 5 * c);
        } else if (pass == Pass::inference) {
          status = cudnnBatchNormalizationForwardInference(handle, CUDNN_BATCHNORM_SPATIAL, &one, &zero, data, x, data, y, channel, p, p + c, p + 2 * c,
                                                           p + 3 * c, eps);
        } else {
          status = cudnnBatchNormalizationBackward(handle, mode, &one, &zero, &one, &zero, data, x, data, dy, data, y, channel, p, p + 6 * c, p + 7 * c, eps,
                                                   p + 4 * c, p + 5 * c);
        }
      });
    }
    // The saved mean of channel 0 (training) against float64 on the host.
    if (status != CUDNN_STATUS_SUCCESS || cudaGetLastError() != cudaSuccess) {
      state.SkipWithError(cudnnGetErrorString(status));
    } else if (pass == Pass::training) {
      const float* hx = reinterpret_cast<const float*>(raw.data());
      double s = 0;
      const std::int64_t spatial = static_cast<std::int64_t>(h) * w;
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t k = 0; k < spatial; ++k) s += nhwc ? hx[(i * spatial + k) * c] : hx[(i * c) * spatial + k];
      float got = 0;
      cudaMemcpy(&got, p + 4 * c, 4, cudaMemcpyDeviceToHost);
      if (std::fabs(got - s / static_cast<double>(n * spatial)) > 1e-4) state.SkipWithError("wrong saved mean");
    }
  }
  const int reads = pass == Pass::training ? 2 : pass == Pass::inference ? 1 : 4;  // (as bench_layers counts normkit's)
  report_read_write(state, bytes * reads, bytes, "device/" + std::to_string(bytes));
  if (channel) cudnnDestroyTensorDescriptor(channel);
  if (data) cudnnDestroyTensorDescriptor(data);
  if (handle) cudnnDestroy(handle);
  cudaFree(y);
  cudaFree(params);
}
#endif

}  // namespace

void register_device_peer_benchmarks() {
  if (!cuda_available()) return;
  for (bool large : {false, true}) {
    const char* size = large ? "large" : "small";
    for (const Pattern& p : patterns(large)) {
      const std::string name = p.name;
      Matrix m{};
      if (name == "per_feature") m = Matrix{numel(p.shape) / p.shape.back(), p.shape.back(), true};
      else if (name.rfind("per_sample", 0) == 0) m = Matrix{p.shape[0], p.shape[1], false};
      else if (name == "global") m = Matrix{1, numel(p.shape), false};
      else continue;
      register_copies(static_cast<std::size_t>(numel(p.shape)) * 4);
      const std::string tail = "/" + name + "/float32/" + size;
      if (name != "global") {
        benchmark::RegisterBenchmark(("device/peers/two_pass" + tail).c_str(), [m](benchmark::State& st) { stats_peer(st, Peer::two_pass, m); })
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
      }
      if (name != "per_feature") {
        benchmark::RegisterBenchmark(("device/peers/cub" + tail).c_str(), [m](benchmark::State& st) { stats_peer(st, Peer::cub, m); })
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
      }
    }
#if defined(NORMKIT_BENCH_CUDNN)
    // bench_layers.cpp's float32 BatchNorm shapes: ResNet-50's first (256 x 56 x 56) and last (2048 x 7 x 7) stages,
    // about 64 MB of x (large) or small ones.
    const std::int64_t elems = std::int64_t{64} << 20 >> 2;
    for (bool nhwc : {false, true}) {
      for (auto [side, channels, small_side, small_channels] :
           {std::tuple<std::int64_t, std::int64_t, std::int64_t, std::int64_t>{56, 256, 8, 64}, {7, 2048, 7, 16}}) {
        const std::int64_t n = large ? std::max<std::int64_t>(1, elems / (channels * side * side)) : 2, h = large ? side : small_side,
                           c = large ? channels : small_channels;
        const std::vector<std::int64_t> nchw = {n, c, h, h};
        const std::string shape = nhwc ? std::to_string(n) + "x" + std::to_string(h) + "x" + std::to_string(h) + "x" + std::to_string(c)
                                       : std::to_string(n) + "x" + std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(h);
        register_copies(static_cast<std::size_t>(n * c * h * h) * 4);
        for (auto [pass, what] : {std::pair<Pass, const char*>{Pass::training, "training"}, {Pass::backward, "backward"}, {Pass::inference, "inference"}}) {
          const std::string bench = std::string("device/peers/cudnn/batch_norm/") + what + (nhwc ? "/nhwc" : "/nchw") + "/f32/" + shape + "/" + size;
          benchmark::RegisterBenchmark(bench.c_str(), [pass = pass, nhwc, nchw](benchmark::State& st) { cudnn_batch_norm(st, pass, nhwc, nchw); })
              ->UseManualTime()
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
#endif
  }
}
