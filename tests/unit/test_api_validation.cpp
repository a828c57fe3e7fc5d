// Bad arguments give clear errors naming the operation, the argument, expected and got.
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "normkit/stats.hpp"
#include "stats_check.hpp"

using namespace normkit;

namespace {

struct Fixture {
  std::vector<float> data = std::vector<float>(24, 1.0f);
  TensorView input{data.data(), DType::float32, {2, 3, 4}};
  normkit::testing::StatsBuffers buffers;
  StatsOptions options;
  StatsOutputs outputs;
  Status run() {
    outputs = buffers.make_host_outputs(input, options.axes);
    return compute_stats(input, options, outputs, nullptr, 0);
  }
};

void expect_error(const Status& s, StatusCode code, std::initializer_list<const char*> words) {
  EXPECT_EQ(s.code(), code) << s.message();
  for (const char* w : words) EXPECT_NE(s.message().find(w), std::string::npos) << "'" << w << "' not in: " << s.message();
}

}  // namespace

TEST(Validation, AxisOutOfRange) {
  Fixture f;
  f.options.axes = ReduceAxes::of({3});
  std::array<std::int64_t, kMaxDims> kept;
  int nd;
  expect_error(kept_shape(f.input, f.options.axes, &kept, &nd), StatusCode::invalid_argument, {"axis", "[-3, 2]", "got 3"});
  f.outputs = StatsOutputs{};
  expect_error(compute_stats(f.input, f.options, f.outputs, nullptr, 0), StatusCode::invalid_argument,
               {"compute_stats", "axis", "got 3"});
}

TEST(Validation, AxisRepeated) {
  Fixture f;
  f.options.axes = ReduceAxes::of({0, -3});
  expect_error(compute_stats(f.input, f.options, f.outputs, nullptr, 0), StatusCode::invalid_argument, {"axis", "repeated"});
}

TEST(Validation, UnsupportedInputDtype) {
  Fixture f;
  f.input.dtype = DType::int64;
  expect_error(compute_stats(f.input, f.options, f.outputs, nullptr, 0), StatusCode::unsupported_dtype,
               {"input.dtype", "int64"});
}

TEST(Validation, NullPointerWithElements) {
  Fixture f;
  f.input.data = nullptr;
  expect_error(compute_stats(f.input, f.options, f.outputs, nullptr, 0), StatusCode::null_pointer, {"input.data", "nullptr"});
  // A null pointer is fine for an empty tensor.
  TensorView empty(nullptr, DType::float32, {0, 4});
  StatsOptions o;
  o.axes = ReduceAxes::of({0});
  normkit::testing::StatsBuffers b;
  EXPECT_TRUE(compute_stats(empty, o, b.make_host_outputs(empty, o.axes), nullptr, 0).ok());
  EXPECT_EQ(b.value(Stat::count, 3), 0);
}

TEST(Validation, OutputShapeMismatch) {
  Fixture f;
  f.options.axes = ReduceAxes::of({0});
  f.outputs = f.buffers.make_host_outputs(f.input, f.options.axes);
  f.outputs[Stat::var].shape[1] = 5;
  expect_error(compute_stats(f.input, f.options, f.outputs, nullptr, 0), StatusCode::shape_mismatch,
               {"outputs[var].shape", "[3, 4]", "[3, 5]"});
  // keepdims shape [1, 3, 4] is accepted.
  f.outputs = f.buffers.make_host_outputs(f.input, f.options.axes);
  for (auto& v : f.outputs.views) {
    v.ndim = 3;
    v.shape = {1, 3, 4};
  }
  EXPECT_TRUE(compute_stats(f.input, f.options, f.outputs, nullptr, 0).ok());
}

TEST(Validation, OutputDtype) {
  Fixture f;
  f.outputs = f.buffers.make_host_outputs(f.input, f.options.axes);
  f.outputs[Stat::mean].dtype = DType::int64;
  expect_error(compute_stats(f.input, f.options, f.outputs, nullptr, 0), StatusCode::unsupported_dtype,
               {"outputs[mean].dtype", "float32 or float64", "int64"});
}

TEST(Validation, OnlyRequestedOutputsAreChecked) {
  Fixture f;
  f.options.stats = StatSet{Stat::mean};
  f.outputs = f.buffers.make_host_outputs(f.input, f.options.axes);
  f.outputs[Stat::var] = TensorView{};  // not requested
  EXPECT_TRUE(compute_stats(f.input, f.options, f.outputs, nullptr, 0).ok());
}

TEST(Validation, ShapeOverflow) {
  Fixture f;
  f.input.shape[0] = std::int64_t(1) << 40;
  f.input.shape[1] = std::int64_t(1) << 40;
  expect_error(compute_stats(f.input, f.options, f.outputs, nullptr, 0), StatusCode::overflow, {"input.shape"});
  f.input.shape[0] = -1;
  expect_error(compute_stats(f.input, f.options, f.outputs, nullptr, 0), StatusCode::overflow, {"input.shape"});
}

TEST(Validation, NegativeDdofAndRank) {
  Fixture f;
  f.options.ddof = -1;
  expect_error(f.run(), StatusCode::invalid_argument, {"ddof"});
  Fixture g;
  g.input.ndim = 9;
  expect_error(compute_stats(g.input, g.options, g.outputs, nullptr, 0), StatusCode::invalid_argument, {"input.ndim"});
}

TEST(Validation, DeviceMemoryWithoutDevice) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present";
  Fixture f;
  f.input.space = MemorySpace::device;
  expect_error(compute_stats(f.input, f.options, f.outputs, nullptr, 0), StatusCode::cuda_unavailable, {"device"});
}

TEST(Validation, SummaryCountMismatch) {
  Fixture f;
  f.options.axes = ReduceAxes::of({0});
  std::vector<StatsSummary> s(5);
  expect_error(accumulate_stats(f.input, f.options, s.data(), 5, false, nullptr, 0), StatusCode::shape_mismatch,
               {"num_summaries", "12"});
}

TEST(Validation, KeepingHelperIsKerasConvention) {
  const ReduceAxes r = ReduceAxes::keeping(4, {1});
  ASSERT_EQ(r.count, 3);
  EXPECT_EQ(r.axes[0], 0);
  EXPECT_EQ(r.axes[1], 2);
  EXPECT_EQ(r.axes[2], 3);
  const ReduceAxes last = ReduceAxes::keeping(3, {-1});
  ASSERT_EQ(last.count, 2);
  EXPECT_EQ(last.axes[1], 1);
}

TEST(Validation, MoreThanEightDimsIsAnErrorEverywhere) {
  std::vector<float> data(1, 1.0f);
  TensorView ten_dims(data.data(), DType::float32, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1});
  std::array<std::int64_t, kMaxDims> kept;
  int nd;
  EXPECT_EQ(kept_shape(ten_dims, ReduceAxes::of({9}), &kept, &nd).code(), StatusCode::invalid_argument);
  EXPECT_EQ(kept_shape(ten_dims, ReduceAxes::every(), &kept, &nd).code(), StatusCode::invalid_argument);
  EXPECT_NE(ten_dims.shape_string().find("..."), std::string::npos);
}

TEST(Validation, MisalignedElementPointer) {
  std::vector<float> data(8, 1.0f);
  TensorView in(reinterpret_cast<char*>(data.data()) + 2, DType::float32, {3});
  StatsOutputs out;
  expect_error(compute_stats(in, StatsOptions{}, out, nullptr, 0), StatusCode::invalid_argument, {"input.data", "aligned"});
}

TEST(Validation, OutputsOverlappingTheInput) {
  std::vector<double> data(16, 1.0);
  TensorView in(data.data(), DType::float64, {4, 4});
  StatsOptions o;
  o.axes = ReduceAxes::of({0});
  o.stats = StatSet{Stat::mean};
  StatsOutputs out;
  out[Stat::mean] = TensorView(data.data() + 2, DType::float64, {4});
  expect_error(compute_stats(in, o, out, nullptr, 0), StatusCode::invalid_argument, {"outputs[mean].data", "overlapping"});
}

TEST(Validation, KeepingRejectsAxesOutOfRange) {
  std::vector<float> data(24, 1.0f);
  TensorView in(data.data(), DType::float32, {2, 3, 4});
  std::array<std::int64_t, kMaxDims> kept;
  int nd;
  EXPECT_EQ(kept_shape(in, ReduceAxes::keeping(3, {3}), &kept, &nd).code(), StatusCode::invalid_argument);
  EXPECT_EQ(kept_shape(in, ReduceAxes::keeping(3, {-4}), &kept, &nd).code(), StatusCode::invalid_argument);
  ASSERT_TRUE(kept_shape(in, ReduceAxes::keeping(3, {-1}), &kept, &nd).ok());
  EXPECT_EQ(nd, 1);
  EXPECT_EQ(kept[0], 4);
}
