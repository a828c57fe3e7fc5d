// The CUDA kernels against the independent reference. Every plan is forced on shapes around its
// thresholds, on misaligned pointers and odd sizes. Runs on a GPU or under ../shared/ptxemu; skips
// otherwise (NORMKIT_REQUIRE_DEVICE=1 turns the skip into a failure).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <utility>
#include <memory>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "device_support.hpp"
#include "normkit/stats.hpp"
#include "plan/stats_plan.hpp"
#include "reference_integer.hpp"
#include "stats_check.hpp"
#include "test_data.hpp"

using namespace normkit;
using normkit::testing::StatsBuffers;

using normkit::testing::Case;
using normkit::testing::numel;

namespace {

// Runs compute_stats on the device (input offset by `misalign` elements from a 256-byte aligned
// allocation) and copies the outputs into `buffers`.
void run_device(const normkit::testing::TypedData& data, const Case& c, const StatsOptions& options, int misalign,
                StatsBuffers* buffers, cudaStream_t stream = nullptr, DType value_dtype = DType::float64) {
  const std::size_t elem = dtype_size(data.dtype);
  DeviceBytes input(data.bytes.size() + 64);
  ASSERT_EQ(cudaMemcpy(input.as() + misalign * elem, data.bytes.data(), data.bytes.size(), cudaMemcpyHostToDevice), cudaSuccess);
  TensorView view(input.as() + misalign * elem, data.dtype, c.shape.data(), static_cast<int>(c.shape.size()), MemorySpace::device);
  StatsOutputs outputs = buffers->make_host_outputs(view, options.axes, value_dtype);
  std::vector<std::unique_ptr<DeviceBytes>> device_outputs;
  for (auto& v : outputs.views) {
    const std::size_t bytes = static_cast<std::size_t>(buffers->kept_numel) * 8;
    device_outputs.push_back(std::make_unique<DeviceBytes>(bytes));
    v.data = device_outputs.back()->ptr;
    v.space = MemorySpace::device;
  }
  std::size_t workspace_bytes = 0;
  const Status ws = stats_workspace_size(view, options, &workspace_bytes);
  ASSERT_TRUE(ws.ok()) << ws.message();
  DeviceBytes workspace(workspace_bytes);
  const Status s = compute_stats(view, options, outputs, workspace.ptr, workspace_bytes, stream);
  ASSERT_TRUE(s.ok()) << s.message();
  CUDA_OK(cudaDeviceSynchronize());
  for (int i = 0; i < kNumStats; ++i) {
    CUDA_OK(cudaMemcpy(buffers->bytes[i].data(), device_outputs[i]->ptr, static_cast<std::size_t>(buffers->kept_numel) * 8,
                       cudaMemcpyDeviceToHost));
  }
}

void check_device(const Case& c, DType dtype, const std::vector<double>& values, StatsOptions options, int misalign,
                  const std::string& label) {
  options.axes = c.axes;
  auto data = normkit::testing::encode(values, dtype);
  StatsBuffers buffers;
  run_device(data, c, options, misalign, &buffers);
  const bool double_acc = dtype == DType::float64 || options.accumulation == Accumulation::float64;
  normkit::testing::expect_matches_reference(data.stored, c.shape, options, double_acc, buffers,
                                             c.name + " " + dtype_name(dtype) + " " + label);
  if (dtype == DType::uint8) {
    // Exact: the exact integers and fractions, and the host engine's bits whatever the plan.
    const std::vector<std::uint8_t> bytes(data.bytes.begin(), data.bytes.end());
    normkit::testing::expect_exact_integer_stats(bytes, c.shape, options, buffers, c.name + " uint8 exact " + label);
    const TensorView host_input(data.data(), dtype, c.shape.data(), static_cast<int>(c.shape.size()));
    StatsBuffers host;
    ASSERT_TRUE(compute_stats(host_input, options, host.make_host_outputs(host_input, options.axes), nullptr, 0).ok());
    for (int i = 0; i < kNumStats; ++i) {
      if (!options.stats.has(static_cast<Stat>(i))) continue;
      EXPECT_EQ(std::memcmp(host.bytes[i].data(), buffers.bytes[i].data(), static_cast<std::size_t>(host.kept_numel) * 8), 0)
          << c.name << " uint8 " << label << ": device and host bits differ in " << stat_name(static_cast<Stat>(i));
    }
  }
}

std::vector<double> data_for(DType dtype, std::int64_t n, unsigned seed) {
  if (dtype == DType::uint8) return normkit::testing::uniform_values(static_cast<std::size_t>(n), 0, 255, seed);
  auto v = normkit::testing::uniform_values(static_cast<std::size_t>(n), -3, 5, seed);
  // Zeros of both signs among them, so l0 counts something (packed non-zero counts of 16-bit input).
  for (std::size_t i = 3; i < v.size(); i += 11) v[i] = 0.0;
  for (std::size_t i = 5; i < v.size(); i += 13) v[i] = -0.0;
  return v;
}

// Shapes on and around the plan thresholds, small enough for the emulator.
const std::vector<Case>& segment_cases() {
  static const std::vector<Case> cases = {
      {{19, 1}, ReduceAxes::of({1}), "rows 1"},
      {{5, 7}, ReduceAxes::of({1}), "rows 7"},
      {{3, 33}, ReduceAxes::of({1}), "rows 33"},
      {{37, 16}, ReduceAxes::of({1}), "rows 16 (one uint8 vector each when aligned)"},
      {{29, 8}, ReduceAxes::of({1}), "rows 8 (short rows: 2 float32 vectors, 1 16-bit)"},
      {{13, 48}, ReduceAxes::of({1}), "rows 48 (short rows: 3 uint8 vectors; 16-bit 6: lanes)"},
      {{11, 64}, ReduceAxes::of({1}), "rows 64 (short rows: 4 uint8 vectors)"},
      {{3, 2, 5, 16}, ReduceAxes::of({0, 2, 3}), "NCHW per-channel, sub-rows of 16"},
      {{2, 4096}, ReduceAxes::of({1}), "rows 4096 (warp max)"},
      {{2, 4097}, ReduceAxes::of({1}), "rows 4097"},
      {{1021}, ReduceAxes::every(), "global 1021"},
      {{3, 4, 5, 7}, ReduceAxes::of({0, 2, 3}), "NCHW per-channel"},
      {{10, 16, 7, 7}, ReduceAxes::of({0, 2, 3}), "NCHW 7 x 7 per-channel (float: spans, one tile)"},
      {{9, 48, 7, 7}, ReduceAxes::of({0, 2, 3}), "NCHW 7 x 7, 48 channels (float: spans, a partial last tile)"},
      {{2, 3, 33, 1}, ReduceAxes::of({0, 2}), "NCHW per-channel odd"},
      {{3, 2, 40, 64}, ReduceAxes::of({0, 2, 3}), "NCHW per-channel, sub-rows of 2560 (sub-groups of lanes)"},
      {{3, 5, 2, 64}, ReduceAxes::of({1, 3}), "kept, reduced, kept, reduced (segments in outer slices)"},
      {{2, 4, 3, 1001}, ReduceAxes::of({1, 3}), "segments in outer slices, odd sub-rows of 1001"},
  };
  return cases;
}

const std::vector<Case>& column_cases() {
  static const std::vector<Case> cases = {
      {{33, 7}, ReduceAxes::of({0}), "columns 7"},
      {{100, 3}, ReduceAxes::of({0}), "columns 3 (NHWC RGB)"},
      {{17, 1, 64}, ReduceAxes::of({0, 1}), "columns 64"},
      {{9, 129}, ReduceAxes::of({0}), "columns 129"},
      {{70, 37}, ReduceAxes::of({0}), "columns 37 (folded: blocks 19 threads across, warps run across rows)"},
      {{1000, 64}, ReduceAxes::of({0}), "columns 64, 1000 rows (row batches and remainder)"},
      {{4099, 3}, ReduceAxes::of({0}), "columns 3, 4099 rows (folded row batches, rows left over)"},
      {{2, 3, 8}, ReduceAxes::of({1}), "batched columns"},
      {{2, 8, 3}, ReduceAxes::of({1}), "batched narrow columns (folded)"},
      {{3, 7, 3}, ReduceAxes::of({1}), "batched narrow columns (unaligned outer: not folded)"},
      {{2, 3, 8}, ReduceAxes::of({}), "nothing reduced"},
      {{3, 2, 70, 8}, ReduceAxes::of({0, 2}), "reduced, kept, reduced, kept (columns in row blocks)"},
      {{5, 3, 9, 3}, ReduceAxes::of({0, 2}), "row blocks of narrow columns"},
      {{2, 4, 600, 4}, ReduceAxes::of({0, 2}), "row blocks with 16-row uint8 batches"},
  };
  return cases;
}

const std::vector<Case>& generic_cases() {
  static const std::vector<Case> cases = {
      {{3, 4, 5, 6}, ReduceAxes::of({0, 2}), "NCHW axes 0,2"},
      {{2, 3, 2, 3, 2}, ReduceAxes::of({1, 3}), "alternating 5-d"},
  };
  return cases;
}

class DeviceStats : public ::testing::TestWithParam<DType> {};

struct ScopedOverride {
  explicit ScopedOverride(const plan::PlanOverride& o) : value(o) { plan::set_plan_override(&value); }
  ~ScopedOverride() { plan::set_plan_override(nullptr); }
  plan::PlanOverride value;
};

}  // namespace

TEST_P(DeviceStats, DefaultPlansMatchReference) {
  REQUIRE_DEVICE();
  unsigned seed = 1;
  for (const auto* group : {&segment_cases(), &column_cases(), &generic_cases()}) {
    for (const Case& c : *group) check_device(c, GetParam(), data_for(GetParam(), numel(c.shape), seed++), {}, 0, "default");
  }
}

TEST_P(DeviceStats, ForcedSegmentPlansMisalignedAndSplit) {
  REQUIRE_DEVICE();
  for (plan::StatsKernel kernel : {plan::StatsKernel::segment_warp, plan::StatsKernel::segment_block}) {
    for (int vector : {0, 1}) {
      for (std::int64_t splits : {1, 3}) {
        plan::PlanOverride o;
        o.force_kernel = true;
        o.kernel = kernel;
        o.vector_elems = vector;
        o.splits = splits;
        ScopedOverride scoped(o);
        const std::string label = std::string(plan::stats_kernel_name(kernel)) + (vector == 1 ? " scalar" : " vector") +
                                  " splits " + std::to_string(splits);
        for (const Case& c : segment_cases()) {
          for (int misalign : {0, 1}) {
            for (Accumulation acc : {Accumulation::automatic, Accumulation::float64}) {
              StatsOptions options;
              options.accumulation = acc;
              check_device(c, GetParam(), data_for(GetParam(), numel(c.shape), 7), options, misalign,
                           label + " misalign " + std::to_string(misalign) + (acc == Accumulation::float64 ? " acc64" : ""));
            }
          }
        }
      }
    }
  }
}

TEST_P(DeviceStats, ForcedColumnPlansMisalignedAndSplit) {
  REQUIRE_DEVICE();
  for (int vector : {0, 1}) {
    for (std::int64_t splits : {1, 2, 5}) {
      plan::PlanOverride o;
      o.vector_elems = vector;
      o.splits = splits;
      ScopedOverride scoped(o);
      for (const Case& c : column_cases()) {
        for (int misalign : {0, 1}) {
          for (Accumulation acc : {Accumulation::automatic, Accumulation::float64}) {
            StatsOptions options;
            options.accumulation = acc;
            check_device(c, GetParam(), data_for(GetParam(), numel(c.shape), 9), options, misalign,
                         std::string(vector == 1 ? "scalar" : "vector") + " splits " + std::to_string(splits) +
                             (acc == Accumulation::float64 ? " acc64" : ""));
          }
        }
      }
    }
  }
}

TEST_P(DeviceStats, ForcedMergeWidths) {
  REQUIRE_DEVICE();
  // Every merge width (lanes of a warp, or a block) on split segments and split (and folded) columns, with the merge's counts in
  // LocalMoments (what small slices get), in 64 bits across lanes, or widened for every partial.
  const std::pair<int, plan::MergeCounts> widths[] = {{1, plan::MergeCounts::lane_local}, {2, plan::MergeCounts::wide},
                                                      {8, plan::MergeCounts::plan}, {32, plan::MergeCounts::wide},
                                                      {64, plan::MergeCounts::lane_local}, {128, plan::MergeCounts::plan}};
  for (const auto& [lanes, counts] : widths) {
    plan::PlanOverride o;
    o.splits = 7;
    o.merge_lanes = lanes;
    o.merge_counts = counts;
    ScopedOverride scoped(o);
    const std::string label = "merge lanes " + std::to_string(lanes) + " counts " + std::to_string(static_cast<int>(o.merge_counts));
    check_device(segment_cases().back(), GetParam(), data_for(GetParam(), numel(segment_cases().back().shape), 11), {}, 1, label);
    for (const Case& c : column_cases()) check_device(c, GetParam(), data_for(GetParam(), numel(c.shape), 12), {}, 0, label);
  }
}

TEST_P(DeviceStats, FoldedColumnsMergedByTheMergeKernel) {
  REQUIRE_DEVICE();
  // Folded narrow columns whose fold the merge kernel does (as when the wide row spans several blocks),
  // split and unsplit; the default plans fold in the block (column_cases).
  for (std::int64_t splits : {0, 1, 5}) {
    plan::PlanOverride o;
    o.fold_in_merge = true;
    o.splits = splits;
    ScopedOverride scoped(o);
    const std::string label = "fold in merge, splits " + std::to_string(splits);
    for (const Case& c : column_cases()) check_device(c, GetParam(), data_for(GetParam(), numel(c.shape), 14), {}, 0, label);
  }
}

TEST_P(DeviceStats, ForcedSegmentLaneGroups) {
  REQUIRE_DEVICE();
  // Several segments per warp (and a whole warp per segment), split and unsplit, aligned and not.
  for (int lanes : {1, 4, 32}) {
    for (std::int64_t splits : {0, 3}) {
      plan::PlanOverride o;
      o.force_kernel = true;
      o.kernel = plan::StatsKernel::segment_warp;
      o.segment_lanes = lanes;
      o.splits = splits;
      ScopedOverride scoped(o);
      const std::string label = "segment lanes " + std::to_string(lanes) + " splits " + std::to_string(splits);
      for (const Case& c : segment_cases()) check_device(c, GetParam(), data_for(GetParam(), numel(c.shape), 13), {}, lanes == 4, label);
    }
  }
}

TEST_P(DeviceStats, LongUint8RunsWidenTheirByteSums) {
  REQUIRE_DEVICE();
  if (GetParam() != DType::uint8) GTEST_SKIP() << "uint8 only";
  // A lane (segments) or a thread (columns) with more values than one ByteSums holds exactly
  // (kByteSumsMaxValues): its sums are widened into the integer state in chunks, and the last chunk is short.
  {
    plan::PlanOverride o;
    o.force_kernel = true;
    o.kernel = plan::StatsKernel::segment_warp;
    o.segment_lanes = 1;
    ScopedOverride scoped(o);
    const Case c{{2, 70001}, ReduceAxes::of({1}), "rows of 70001 a lane"};
    check_device(c, DType::uint8, data_for(DType::uint8, numel(c.shape), 31), {}, 0, "long lanes");
  }
  {
    plan::PlanOverride o;
    o.splits = 1;  // 256 thread rows of one 4-column block: 4100 rows and a remainder each
    ScopedOverride scoped(o);
    const Case c{{256 * 4100 + 37, 4}, ReduceAxes::of({0}), "columns of 1049637 rows, one split"};
    check_device(c, DType::uint8, data_for(DType::uint8, numel(c.shape), 32), {}, 0, "long columns");
  }
}

TEST_P(DeviceStats, ColumnCountsSetApartByOneNaN) {
  REQUIRE_DEVICE();
  if (GetParam() == DType::uint8) GTEST_SKIP() << "no NaN in uint8";
  // NCHW over axes 0 and 2: each thread walks 2 row blocks of 24 rows (16-bit moments: a 16-row batch
  // folded column by column, then an 8-row batch on the shared path). One NaN in the second block sets
  // one column's count apart from its thread's others; the 8-row batch after it must not share weights.
  StatsOptions options;
  options.stats = StatSet{Stat::count, Stat::mean, Stat::var};
  for (bool ignore_nan : {false, true}) {
    options.ignore_nan = ignore_nan;
    const Case c{{2, 3, 192, 128}, ReduceAxes::of({0, 2}), "NCHW over 0 and 2, one NaN"};
    std::vector<double> values = data_for(GetParam(), numel(c.shape), 41);
    values[static_cast<std::size_t>(3 * 192 * 128)] = std::nan("");  // x[1, 0, 0, 0]
    check_device(c, GetParam(), values, options, 0, ignore_nan ? "nan-ignoring" : "nan-propagating");
  }
}

TEST_P(DeviceStats, ColumnCountsSetApartInARowBlockTail) {
  REQUIRE_DEVICE();
  if (GetParam() == DType::uint8) GTEST_SKIP() << "no NaN in uint8";
  // NCHW over axes 0 and 2 with row blocks of 76 rows: a thread's rows of a block end in a tail taken value
  // by value, and a thread walks every row block of its split in one call. NaNs in the last rows of the
  // first block (one column) set that column's count apart; the next block's batches must not share the
  // Chan weights of its neighbours.
  for (const StatSet stats : {StatSet::all(), StatSet{Stat::count, Stat::mean, Stat::var}}) {
    StatsOptions options;
    options.stats = stats;
    for (bool ignore_nan : {false, true}) {
      options.ignore_nan = ignore_nan;
      const Case c{{4, 3, 76, 128}, ReduceAxes::of({0, 2}), "NCHW over 0 and 2, NaNs in a block's tail"};
      std::vector<double> values = data_for(GetParam(), numel(c.shape), 43);
      for (int r = 60; r < 76; ++r) values[static_cast<std::size_t>(r * 128 + 5)] = std::nan("");  // x[0, 0, r, 5]
      check_device(c, GetParam(), values, options, 0, ignore_nan ? "nan-ignoring" : "nan-propagating");
    }
  }
}

TEST_P(DeviceStats, MomentsOnlyRequests) {
  REQUIRE_DEVICE();
  // A request without min, max, l0, l1 and linf takes the moments-only vector kernels (float
  // accumulation); every ninth value NaN or ±Inf sends some packs down the per-value path.
  StatsOptions options;
  options.stats = StatSet{Stat::count, Stat::mean, Stat::var, Stat::std, Stat::sum, Stat::l2};
  for (bool with_nan : {false, true}) {
    for (const auto* group : {&segment_cases(), &column_cases()}) {
      for (const Case& c : *group) {
        std::vector<double> values = data_for(GetParam(), numel(c.shape), 21);
        if (with_nan && GetParam() != DType::uint8) {
          for (std::size_t i = 4; i < values.size(); i += 9) values[i] = (i % 2) ? std::nan("") : HUGE_VAL;
        }
        options.ignore_nan = with_nan;
        check_device(c, GetParam(), values, options, 0, with_nan ? "moments only, NaN and Inf" : "moments only");
      }
    }
  }
}

// The spans kernel (channels-first sub-rows of 49 values in rows of whole vectors) with 1, 3 and 11 parts (the
// partial states and their merge; parts of one sample), every statistic and moments only, with NaN and ±Inf in some channels (their
// rows taken value by value) and without.
TEST_P(DeviceStats, SpansPartsAndNonFiniteRows) {
  REQUIRE_DEVICE();
  const DType dtype = GetParam();
  if (dtype == DType::uint8 || dtype == DType::float64) GTEST_SKIP() << "spans take float32, float16 and bfloat16";
  // (48 channels: two tiles for 16-bit values, three for float32; 11 parts: a sample each, so that a part's
  // only row holding ±Inf is caught by its shift alone)
  const Case c{{11, 48, 7, 7}, ReduceAxes::of({0, 2, 3}), "NCHW 7 x 7, 48 channels"};
  for (std::int64_t parts : {1, 3, 11}) {
    plan::PlanOverride o;
    o.force_kernel = true;
    o.kernel = plan::StatsKernel::spans;
    o.splits = parts;
    ScopedOverride scoped(o);
    for (bool moments_only : {false, true}) {
      for (bool non_finite : {false, true}) {
        StatsOptions options;
        if (moments_only) options.stats = StatSet{Stat::count, Stat::mean, Stat::var, Stat::std, Stat::sum, Stat::l2};
        std::vector<double> values = data_for(dtype, numel(c.shape), 33);
        if (non_finite) {
          // channel 3 of sample 2 holds a NaN, channel 41 of sample 7 +Inf, channel 17 of sample 0 -Inf
          values[(2 * 48 + 3) * 49 + 10] = std::nan("");
          values[(7 * 48 + 41) * 49 + 48] = HUGE_VAL;
          values[(0 * 48 + 17) * 49 + 0] = -HUGE_VAL;
        }
        for (bool ignore_nan : {false, true}) {
          options.ignore_nan = ignore_nan;
          check_device(c, dtype, values, options, 0,
                       "spans, " + std::to_string(parts) + " parts" + (moments_only ? ", moments only" : "") +
                           (non_finite ? ", NaN and Inf" : "") + (ignore_nan ? ", ignore NaN" : ""));
        }
      }
    }
  }
}

// Float32 outputs (no summaries): the kernels finalize in float (write_local_slice; uint8 short rows
// straight from their 32-bit sums), with every statistic and with moments only (ddof 1), against the
// reference; uint8 means and variances within one float ulp of the exact fractions. The default plans,
// then lanes of one segment each (rows of 32, 48 and 64 uint8 values take the short-row path too).
TEST_P(DeviceStats, Float32OutputsTakeTheFloatFinalize) {
  REQUIRE_DEVICE();
  for (int step = 0; step < 4; ++step) {
    const bool moments = step % 2 == 1;
    plan::PlanOverride force;
    if (step >= 2) {
      force.force_kernel = true;
      force.kernel = plan::StatsKernel::segment_warp;
      force.segment_lanes = 1;
    }
    ScopedOverride scoped(force);
    StatsOptions options;
    if (moments) options.stats = StatSet{Stat::count, Stat::mean, Stat::var};
    options.ddof = moments ? 1 : 0;
    for (const auto* group : {&segment_cases(), &column_cases()}) {
      if (step >= 2 && group != &segment_cases()) continue;
      for (const Case& c : *group) {
        options.axes = c.axes;
        auto data = normkit::testing::encode(data_for(GetParam(), numel(c.shape), 33), GetParam());
        StatsBuffers buffers;
        run_device(data, c, options, 0, &buffers, nullptr, DType::float32);
        const std::string what = c.name + " " + dtype_name(GetParam()) + (moments ? " moments" : " all") +
                                 (step >= 2 ? ", one lane a segment" : "") + ", float32 outputs";
        normkit::testing::expect_matches_reference(data.stored, c.shape, options, false, buffers, what);
        if (GetParam() != DType::uint8) continue;
        const auto reference = normkit::testing::reference_stats(
            data.stored, c.shape, normkit::testing::reduced_mask(static_cast<int>(c.shape.size()), c.axes), options.ddof, false);
        for (std::size_t k = 0; k < reference.size(); ++k) {
          for (auto [stat, exact] : {std::pair{Stat::mean, reference[k].mean}, {Stat::var, reference[k].var}}) {
            const double got = buffers.value(stat, static_cast<std::int64_t>(k));
            if (std::isnan(exact)) {
              EXPECT_TRUE(std::isnan(got)) << what << ": slice " << k << " " << stat_name(stat);
              continue;
            }
            const float rounded = static_cast<float>(exact);
            const double ulp = std::nextafter(std::fabs(rounded), INFINITY) - std::fabs(rounded);
            EXPECT_LE(std::fabs(got - exact), ulp) << what << ": slice " << k << " " << stat_name(stat);
          }
        }
      }
    }
  }
}

TEST_P(DeviceStats, ForcedGenericPlanOnEveryPattern) {
  REQUIRE_DEVICE();
  plan::PlanOverride o;
  o.force_kernel = true;
  o.kernel = plan::StatsKernel::generic;
  ScopedOverride scoped(o);
  for (Accumulation acc : {Accumulation::automatic, Accumulation::float64}) {
    StatsOptions options;
    options.accumulation = acc;
    for (const auto* group : {&segment_cases(), &column_cases(), &generic_cases()}) {
      for (const Case& c : *group) check_device(c, GetParam(), data_for(GetParam(), numel(c.shape), 3), options, 1, "generic");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, DeviceStats,
                         ::testing::Values(DType::float32, DType::float64, DType::float16, DType::bfloat16, DType::uint8),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(DeviceStatsEdges, NanInfIgnoreNanDdofAndFloat64Accumulation) {
  REQUIRE_DEVICE();
  for (bool ignore_nan : {false, true}) {
    StatsOptions o;
    o.ignore_nan = ignore_nan;
    o.ddof = 1;
    o.accumulation = ignore_nan ? Accumulation::float64 : Accumulation::automatic;
    for (const auto* group : {&segment_cases(), &column_cases(), &generic_cases()}) {
      for (const Case& c : *group) {
        auto v = data_for(DType::float32, numel(c.shape), 11);
        for (std::size_t i = 0; i < v.size(); i += 13) v[i] = NAN;
        for (std::size_t i = 5; i < v.size(); i += 29) v[i] = INFINITY;
        for (std::size_t i = 7; i < v.size(); i += 31) v[i] = -INFINITY;
        check_device(c, DType::float32, v, o, 0, "nan/inf");
        check_device(c, DType::bfloat16, v, o, 1, "nan/inf");
        check_device(c, DType::float16, v, o, 0, "nan/inf (aligned: packed extremes of short rows)");
      }
    }
  }
}

TEST(DeviceStatsEdges, EmptyInputs) {
  REQUIRE_DEVICE();
  check_device({{0, 4}, ReduceAxes::of({0}), "empty rows"}, DType::float32, {}, {}, 0, "");
  check_device({{3, 0, 2}, ReduceAxes::of({1}), "empty middle"}, DType::uint8, {}, {}, 0, "");
}

TEST(DeviceStatsEdges, LargeOffsetFloat32Variance) {
  REQUIRE_DEVICE();
  const auto v = normkit::testing::normal_values(1 << 16, 1e6, 0.1, 21);
  auto data = normkit::testing::encode(v, DType::float32);
  long double mean = 0, m2 = 0;
  for (double x : data.stored) mean += x;
  mean /= data.stored.size();
  for (double x : data.stored) m2 += (x - mean) * (x - mean);
  const double expected = static_cast<double>(m2 / data.stored.size());
  for (const Case& c : {Case{{1 << 16}, ReduceAxes::every(), "global"}, Case{{1 << 8, 1 << 8}, ReduceAxes::every(), "2-d"}}) {
    StatsBuffers b;
    StatsOptions o;
    o.axes = c.axes;
    run_device(data, c, o, 0, &b);
    EXPECT_NEAR(b.value(Stat::var, 0), expected, 1e-3 * expected) << c.name;
  }
}

// Packs fold relative to their first value (math::LocalMoments::push_pack): a drifting ramp (each pack's
// first value far from the partition's first) and packs whose first value is an outlier keep float32
// variance within a few ulps of the float64 reference, per sample, per feature and globally.
TEST(DeviceStatsEdges, PackMomentsAreWellConditioned) {
  REQUIRE_DEVICE();
  const std::size_t n = 1 << 15;
  std::vector<double> ramp(n), outliers(n);
  const auto noise = normkit::testing::uniform_values(n, -1, 1, 33);
  for (std::size_t i = 0; i < n; ++i) {
    ramp[i] = 1000.0 + 0.01 * static_cast<double>(i) + 1e-3 * noise[i];
    outliers[i] = i % 8 == 0 ? 1e4 : 1.0 + noise[i];
  }
  for (const auto* values : {&ramp, &outliers}) {
    auto data = normkit::testing::encode(*values, DType::float32);
    for (const Case& c : {Case{{1 << 15}, ReduceAxes::every(), "global"}, Case{{64, 512}, ReduceAxes::of({1}), "per sample"},
                          Case{{512, 64}, ReduceAxes::of({0}), "per feature"}}) {
      StatsBuffers b;
      StatsOptions o;
      o.axes = c.axes;
      run_device(data, c, o, 0, &b);
      const std::int64_t rows = c.shape.size() == 1 ? 1 : (c.name == std::string("per sample") ? c.shape[0] : c.shape[1]);
      const std::int64_t length = static_cast<std::int64_t>(n) / rows;
      for (std::int64_t k = 0; k < rows; k += 7) {
        long double mean = 0, m2 = 0;
        auto at = [&](std::int64_t i) {
          const std::int64_t index = c.name == std::string("per feature") ? i * rows + k : k * length + i;
          return static_cast<long double>(data.stored[static_cast<std::size_t>(index)]);
        };
        for (std::int64_t i = 0; i < length; ++i) mean += at(i);
        mean /= length;
        for (std::int64_t i = 0; i < length; ++i) m2 += (at(i) - mean) * (at(i) - mean);
        const double expected = static_cast<double>(m2 / length);
        EXPECT_NEAR(b.value(Stat::var, k), expected, 2e-5 * expected) << c.name << " slice " << k;
      }
    }
  }
}

// 1 x 10^7 and 10^7 x 1 (both collapse to a global reduction), and 10^7 kept slices of one value each.
TEST(DeviceStatsEdges, TenMillionElements) {
  REQUIRE_DEVICE();
  const std::int64_t n = 10000000;
  const auto v = normkit::testing::uniform_values(static_cast<std::size_t>(n), -1, 1, 12);
  check_device({{1, n}, ReduceAxes::of({1}), "1 x 1e7"}, DType::float32, v, {}, 0, "");
  check_device({{n, 1}, ReduceAxes::of({0}), "1e7 x 1"}, DType::float16, v, {}, 1, "");
  check_device({{n, 1}, ReduceAxes::of({1}), "1e7 slices of 1"}, DType::float32, v, {}, 0, "");
}

TEST(DeviceStatsEdges, RepeatedRunsAreBitwiseEqual) {
  REQUIRE_DEVICE();
  const Case c{{4, 3000}, ReduceAxes::every(), "split global"};
  auto data = normkit::testing::encode(data_for(DType::float32, 12000, 2), DType::float32);
  StatsBuffers a, b;
  run_device(data, c, {}, 0, &a);
  run_device(data, c, {}, 0, &b);
  for (int i = 0; i < kNumStats; ++i) EXPECT_EQ(std::memcmp(a.bytes[i].data(), b.bytes[i].data(), 8), 0) << i;
}

// A statistics call only enqueues work: it can be captured in a CUDA graph and replayed.
TEST(DeviceStatsGraph, CaptureAndReplay) {
  REQUIRE_DEVICE();
  const std::vector<std::int64_t> shape = {6, 2000};
  auto data = normkit::testing::encode(data_for(DType::float32, 12000, 5), DType::float32);
  DeviceBytes input(data.bytes.size()), mean(8 * 6), var(8 * 6);
  CUDA_OK(cudaMemcpy(input.ptr, data.bytes.data(), data.bytes.size(), cudaMemcpyHostToDevice));
  TensorView view(input.ptr, DType::float32, shape.data(), 2, MemorySpace::device);
  StatsOptions o;
  o.axes = ReduceAxes::of({1});
  o.stats = StatSet{Stat::mean, Stat::var};
  StatsOutputs out;
  out[Stat::mean] = TensorView(mean.ptr, DType::float64, {6}, MemorySpace::device);
  out[Stat::var] = TensorView(var.ptr, DType::float64, {6}, MemorySpace::device);
  plan::PlanOverride force;
  force.force_kernel = true;
  force.kernel = plan::StatsKernel::segment_block;
  force.splits = 4;  // exercise the workspace and the merge kernel inside the graph
  ScopedOverride scoped(force);
  std::size_t ws_bytes = 0;
  ASSERT_TRUE(stats_workspace_size(view, o, &ws_bytes).ok());
  ASSERT_GT(ws_bytes, 0u);
  DeviceBytes workspace(ws_bytes);

  cudaStream_t stream;
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  const Status s = compute_stats(view, o, out, workspace.ptr, ws_bytes, stream);
  cudaGraph_t graph;
  CUDA_OK(cudaStreamEndCapture(stream, &graph));
  ASSERT_TRUE(s.ok()) << s.message();
  cudaGraphExec_t exec;
  CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  CUDA_OK(cudaGraphLaunch(exec, stream));
  CUDA_OK(cudaStreamSynchronize(stream));
  std::vector<double> m(6), v(6);
  CUDA_OK(cudaMemcpy(m.data(), mean.ptr, 48, cudaMemcpyDeviceToHost));
  CUDA_OK(cudaMemcpy(v.data(), var.ptr, 48, cudaMemcpyDeviceToHost));
  const auto ref = normkit::testing::reference_stats(data.stored, shape, {false, true}, 0, false);
  for (int k = 0; k < 6; ++k) {
    EXPECT_NEAR(m[k], ref[k].mean, 1e-5);
    EXPECT_NEAR(v[k], ref[k].var, 1e-4 * ref[k].var);
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

TEST(DeviceStatsStreaming, AccumulateMergeFinalizeOnDevice) {
  REQUIRE_DEVICE();
  const auto values = data_for(DType::float32, 30 * 5, 6);
  auto data = normkit::testing::encode(values, DType::float32);
  DeviceBytes input(data.bytes.size()), summaries(sizeof(StatsSummary) * 5), other(sizeof(StatsSummary) * 5);
  CUDA_OK(cudaMemcpy(input.ptr, data.bytes.data(), data.bytes.size(), cudaMemcpyHostToDevice));
  StatsOptions o;
  o.axes = ReduceAxes::of({0});
  std::int64_t shape[2] = {10, 5};
  auto* rows = input.as<float>();
  std::size_t ws_bytes = 0;  // 5 columns fold 4 rows into 20 wide ones: partial states need scratch
  ASSERT_TRUE(stats_workspace_size(TensorView(rows, DType::float32, shape, 2, MemorySpace::device), o, &ws_bytes).ok());
  DeviceBytes workspace(ws_bytes);
  // Rows 0-9 then 10-19 merged by accumulate; rows 20-29 separately, merged by merge_summaries.
  for (int batch = 0; batch < 2; ++batch) {
    TensorView view(rows + batch * 50, DType::float32, shape, 2, MemorySpace::device);
    ASSERT_TRUE(accumulate_stats(view, o, summaries.as<StatsSummary>(), 5, batch > 0, workspace.ptr, ws_bytes).ok());
  }
  TensorView last(rows + 100, DType::float32, shape, 2, MemorySpace::device);
  ASSERT_TRUE(accumulate_stats(last, o, other.as<StatsSummary>(), 5, false, workspace.ptr, ws_bytes).ok());
  ASSERT_TRUE(merge_summaries(summaries.as<StatsSummary>(), other.as<StatsSummary>(), 5, MemorySpace::device).ok());
  StatsBuffers buffers;
  std::int64_t whole_shape[2] = {30, 5};
  TensorView whole(data.data(), DType::float32, whole_shape, 2);
  StatsOutputs host_outputs = buffers.make_host_outputs(whole, o.axes);
  std::vector<std::unique_ptr<DeviceBytes>> device_outputs;
  StatsOutputs outputs = host_outputs;
  for (auto& v : outputs.views) {
    device_outputs.push_back(std::make_unique<DeviceBytes>(40));
    v.data = device_outputs.back()->ptr;
    v.space = MemorySpace::device;
  }
  ASSERT_TRUE(finalize_stats(summaries.as<StatsSummary>(), 5, o, outputs, MemorySpace::device).ok());
  CUDA_OK(cudaDeviceSynchronize());
  for (int i = 0; i < kNumStats; ++i) CUDA_OK(cudaMemcpy(buffers.bytes[i].data(), device_outputs[i]->ptr, 40, cudaMemcpyDeviceToHost));
  normkit::testing::expect_matches_reference(data.stored, {30, 5}, o, false, buffers, "device streaming");
}

TEST(DeviceStatsValidation, HostPointerLabelledDevice) {
  REQUIRE_DEVICE();
  std::vector<float> host(12, 1.0f);
  TensorView view(host.data(), DType::float32, {3, 4}, MemorySpace::device);
  StatsOutputs out;
  const Status s = compute_stats(view, StatsOptions{}, out, nullptr, 0);
  EXPECT_EQ(s.code(), StatusCode::invalid_argument) << s.message();
  EXPECT_NE(s.message().find("host pointer"), std::string::npos) << s.message();
}

TEST(DeviceIntegerStats, SummariesMergeAndFinalizeMatchTheHostBitwise) {
  REQUIRE_DEVICE();
  // NHWC RGB (folded columns: partials merged per channel) and a global reduction split over blocks.
  const std::vector<Case> cases = {{{1003, 3}, ReduceAxes::of({0}), "NHWC RGB"},
                                   {{5, 4001}, ReduceAxes::of({1}), "rows"},
                                   {{20011}, ReduceAxes::every(), "global"}};
  for (const Case& c : cases) {
    const auto values = data_for(DType::uint8, numel(c.shape), 21);
    auto data = normkit::testing::encode(values, DType::uint8);
    StatsOptions o;
    o.axes = c.axes;
    const TensorView host_view(data.data(), DType::uint8, c.shape.data(), static_cast<int>(c.shape.size()));
    std::array<std::int64_t, kMaxDims> kept{};
    int kept_ndim = 0;
    ASSERT_TRUE(kept_shape(host_view, o.axes, &kept, &kept_ndim).ok());
    std::int64_t n = 1;
    for (int d = 0; d < kept_ndim; ++d) n *= kept[d];
    std::vector<IntegerSummary> expected(static_cast<std::size_t>(n)), twice(static_cast<std::size_t>(n));
    ASSERT_TRUE(accumulate_integer_stats(host_view, o, expected.data(), n, false, nullptr, 0).ok());
    twice = expected;
    ASSERT_TRUE(merge_integer_summaries(twice.data(), expected.data(), n, MemorySpace::host).ok());

    DeviceBytes input(data.bytes.size()), summaries(sizeof(IntegerSummary) * n), other(sizeof(IntegerSummary) * n);
    CUDA_OK(cudaMemcpy(input.ptr, data.bytes.data(), data.bytes.size(), cudaMemcpyHostToDevice));
    const TensorView view(input.ptr, DType::uint8, c.shape.data(), static_cast<int>(c.shape.size()), MemorySpace::device);
    for (std::int64_t splits : {0, 3}) {
      plan::PlanOverride force;
      force.splits = splits;
      ScopedOverride scoped(force);
      std::size_t ws_bytes = 0;
      ASSERT_TRUE(stats_workspace_size(view, o, &ws_bytes).ok());
      DeviceBytes workspace(ws_bytes);
      // accumulate twice (overwrite, then merge), and once more into `other`, merged on the device.
      const Status first = accumulate_integer_stats(view, o, summaries.as<IntegerSummary>(), n, false, workspace.ptr, ws_bytes);
      ASSERT_TRUE(first.ok()) << first.message();
      std::vector<IntegerSummary> got(static_cast<std::size_t>(n));
      CUDA_OK(cudaMemcpy(got.data(), summaries.ptr, sizeof(IntegerSummary) * n, cudaMemcpyDeviceToHost));
      EXPECT_EQ(std::memcmp(got.data(), expected.data(), sizeof(IntegerSummary) * n), 0) << c.name << " splits " << splits;
      for (std::int64_t k = 0; k < n; ++k) {
        const IntegerSummary& g = got[static_cast<std::size_t>(k)];
        const IntegerSummary& e = expected[static_cast<std::size_t>(k)];
        EXPECT_TRUE(g.count == e.count && g.sum == e.sum && g.sum_squares == e.sum_squares && g.nonzero_count == e.nonzero_count &&
                    g.min == e.min && g.max == e.max && g.overflow == e.overflow)
            << c.name << " slice " << k << ": device " << g.count << " " << g.sum << " " << g.sum_squares << " " << g.nonzero_count
            << " " << g.min << " " << g.max << " " << g.overflow << ", host " << e.count << " " << e.sum << " " << e.sum_squares << " "
            << e.nonzero_count << " " << e.min << " " << e.max << " " << e.overflow;
      }
      ASSERT_TRUE(accumulate_integer_stats(view, o, summaries.as<IntegerSummary>(), n, true, workspace.ptr, ws_bytes).ok());
      CUDA_OK(cudaMemcpy(got.data(), summaries.ptr, sizeof(IntegerSummary) * n, cudaMemcpyDeviceToHost));
      EXPECT_EQ(std::memcmp(got.data(), twice.data(), sizeof(IntegerSummary) * n), 0) << c.name << " merged, splits " << splits;
    }
    CUDA_OK(cudaMemcpy(other.ptr, expected.data(), sizeof(IntegerSummary) * n, cudaMemcpyHostToDevice));
    ASSERT_TRUE(merge_integer_summaries(summaries.as<IntegerSummary>(), other.as<IntegerSummary>(), n, MemorySpace::device).ok());
    // Finalize on the device (one slice flagged as overflowed: NaN there) against the host's bits.
    std::vector<IntegerSummary> thrice = twice;
    ASSERT_TRUE(merge_integer_summaries(thrice.data(), expected.data(), n, MemorySpace::host).ok());
    StatsBuffers host, device;
    const StatsOutputs host_outputs = host.make_host_outputs(TensorView(nullptr, DType::uint8, &n, 1), ReduceAxes::of({}));
    ASSERT_TRUE(finalize_integer_stats(thrice.data(), n, o, host_outputs, MemorySpace::host).ok());
    device.make_host_outputs(TensorView(nullptr, DType::uint8, &n, 1), ReduceAxes::of({}));
    StatsOutputs device_outputs = host_outputs;
    std::vector<std::unique_ptr<DeviceBytes>> buffers;
    for (auto& v : device_outputs.views) {
      buffers.push_back(std::make_unique<DeviceBytes>(static_cast<std::size_t>(n) * 8));
      v.data = buffers.back()->ptr;
      v.space = MemorySpace::device;
    }
    IntegerSummary flagged;
    CUDA_OK(cudaMemcpy(&flagged, summaries.as<IntegerSummary>(), sizeof flagged, cudaMemcpyDeviceToHost));
    flagged.overflow = 1;
    CUDA_OK(cudaMemcpy(summaries.as<IntegerSummary>() + (n - 1), &flagged, sizeof flagged, cudaMemcpyHostToDevice));
    ASSERT_TRUE(finalize_integer_stats(summaries.as<IntegerSummary>(), n, o, device_outputs, MemorySpace::device).ok());
    CUDA_OK(cudaDeviceSynchronize());
    for (int i = 0; i < kNumStats; ++i) {
      CUDA_OK(cudaMemcpy(device.bytes[i].data(), buffers[static_cast<std::size_t>(i)]->ptr, static_cast<std::size_t>(n) * 8,
                         cudaMemcpyDeviceToHost));
      EXPECT_EQ(std::memcmp(device.bytes[i].data(), host.bytes[i].data(), static_cast<std::size_t>(n - 1) * 8), 0)
          << c.name << " " << stat_name(static_cast<Stat>(i));
    }
    EXPECT_TRUE(std::isnan(device.value(Stat::mean, n - 1))) << c.name;
  }
}

// Element ranges on the device: runs that split rows and images, merged into empty summaries copied to the
// device, give the whole tensor's statistics (float: the float64 reference; uint8: the host's exact summaries).
TEST(DeviceStatsRanges, RunsThatSplitRowsGiveTheWhole) {
  REQUIRE_DEVICE();
  const std::vector<Case> cases = {{{5, 6, 7, 3}, ReduceAxes::of({0, 1, 2}), "NHWC per-channel"},
                                   {{37, 33}, ReduceAxes::of({0}), "per-feature"},
                                   {{9, 301}, ReduceAxes::of({1}), "per-sample"},
                                   {{4, 3, 5, 7}, ReduceAxes::of({0, 2, 3}), "NCHW per-channel"}};
  for (const Case& c : cases) {
    const std::int64_t n = numel(c.shape);
    StatsOptions o;
    o.axes = c.axes;
    auto data = normkit::testing::encode(data_for(DType::float32, n, 31), DType::float32);
    auto bytes = normkit::testing::encode(data_for(DType::uint8, n, 32), DType::uint8);
    const TensorView host_whole(data.data(), DType::float32, c.shape.data(), static_cast<int>(c.shape.size()));
    std::array<std::int64_t, kMaxDims> kept{};
    int kept_ndim = 0;
    ASSERT_TRUE(kept_shape(host_whole, o.axes, &kept, &kept_ndim).ok());
    std::int64_t slices = 1;
    for (int d = 0; d < kept_ndim; ++d) slices *= kept[d];
    std::vector<IntegerSummary> exact(static_cast<std::size_t>(slices));
    ASSERT_TRUE(accumulate_integer_stats(TensorView(bytes.data(), DType::uint8, c.shape.data(), static_cast<int>(c.shape.size())), o,
                                         exact.data(), slices, false, nullptr, 0).ok());
    DeviceBytes input(data.bytes.size()), byte_input(bytes.bytes.size()), summaries(sizeof(StatsSummary) * slices),
        integer(sizeof(IntegerSummary) * slices);
    CUDA_OK(cudaMemcpy(input.ptr, data.bytes.data(), data.bytes.size(), cudaMemcpyHostToDevice));
    CUDA_OK(cudaMemcpy(byte_input.ptr, bytes.bytes.data(), bytes.bytes.size(), cudaMemcpyHostToDevice));
    for (std::int64_t run : {std::int64_t{97}, n / 3 + 1, n - 1}) {
      const std::string what = c.name + ", runs of " + std::to_string(run);
      const std::vector<StatsSummary> empty(static_cast<std::size_t>(slices), empty_stats_summary());
      const std::vector<IntegerSummary> empty_integer(static_cast<std::size_t>(slices), empty_integer_summary());
      CUDA_OK(cudaMemcpy(summaries.ptr, empty.data(), sizeof(StatsSummary) * slices, cudaMemcpyHostToDevice));
      CUDA_OK(cudaMemcpy(integer.ptr, empty_integer.data(), sizeof(IntegerSummary) * slices, cudaMemcpyHostToDevice));
      for (std::int64_t first = 0; first < n; first += run) {
        const std::int64_t count = std::min(run, n - first);
        TensorView piece(input.as<float>() + first, DType::float32, c.shape.data(), static_cast<int>(c.shape.size()), MemorySpace::device);
        TensorView byte_piece(byte_input.as<std::uint8_t>() + first, DType::uint8, c.shape.data(), static_cast<int>(c.shape.size()),
                              MemorySpace::device);
        std::size_t ws_bytes = 0, byte_ws_bytes = 0;
        ASSERT_TRUE(stats_range_workspace_size(piece, first, count, o, &ws_bytes).ok());
        ASSERT_TRUE(stats_range_workspace_size(byte_piece, first, count, o, &byte_ws_bytes).ok());
        DeviceBytes workspace(std::max(ws_bytes, byte_ws_bytes));
        Status s = accumulate_stats_range(piece, first, count, o, summaries.as<StatsSummary>(), slices, workspace.ptr, ws_bytes);
        ASSERT_TRUE(s.ok()) << what << ": " << s.message();
        s = accumulate_integer_stats_range(byte_piece, first, count, o, integer.as<IntegerSummary>(), slices, workspace.ptr, byte_ws_bytes);
        ASSERT_TRUE(s.ok()) << what << ": " << s.message();
        CUDA_OK(cudaDeviceSynchronize());  // (the workspace goes at the end of the iteration)
      }
      std::vector<StatsSummary> got(static_cast<std::size_t>(slices));
      std::vector<IntegerSummary> got_integer(static_cast<std::size_t>(slices));
      CUDA_OK(cudaMemcpy(got.data(), summaries.ptr, sizeof(StatsSummary) * slices, cudaMemcpyDeviceToHost));
      CUDA_OK(cudaMemcpy(got_integer.data(), integer.ptr, sizeof(IntegerSummary) * slices, cudaMemcpyDeviceToHost));
      EXPECT_EQ(std::memcmp(got_integer.data(), exact.data(), sizeof(IntegerSummary) * slices), 0) << what;
      StatsBuffers buffers;
      const StatsOutputs outputs = buffers.make_host_outputs(TensorView(nullptr, DType::float32, &slices, 1), ReduceAxes::of({}));
      ASSERT_TRUE(finalize_stats(got.data(), slices, o, outputs, MemorySpace::host).ok());
      normkit::testing::expect_matches_reference(data.stored, c.shape, o, false, buffers, what);
    }
  }
}
