// End-to-end tests of the `normkit` command line: exit codes, messages, and the statistics it writes to
// .safetensors compared with the independent reference. The binary runs as a child process (NORMKIT_CLI_PATH).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "io/npy.hpp"
#include "io/safetensors.hpp"
#include "normkit/stats.hpp"
#include "normkit/normalize.hpp"
#include "reference_stats.hpp"
#include "reference_transform.hpp"
#include "test_data.hpp"

#ifndef NORMKIT_CLI_PATH
#error "NORMKIT_CLI_PATH must name the normkit executable"
#endif

namespace normkit {
namespace {

namespace fs = std::filesystem;
using testing::ReferenceStats;

struct CliResult {
  int code = -1;
  std::string out;
  std::string err;
};

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') q += "'\\''";
    else q += c;
  }
  return q + "'";
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string join(const std::vector<std::string>& args) {
  std::string s;
  for (const auto& a : args) s += (s.empty() ? "" : " ") + a;
  return s;
}

// Every test gets a fresh directory: data/ holds inputs and outputs (and nothing else, so leftover
// temporaries are visible), capture/ the child's stdout and stderr.
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "normkit_cli_test_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << std::strerror(errno);
    root_ = pattern;
    data_ = root_ / "data";
    capture_ = root_ / "capture";
    fs::create_directories(data_);
    fs::create_directories(capture_);
  }
  void TearDown() override {
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
  }

  // `shell_prefix` runs first in the same shell (e.g. a ulimit).
  CliResult run(const std::vector<std::string>& args, const std::string& shell_prefix = "") {
    const fs::path out = capture_ / "stdout", err = capture_ / "stderr";
    std::string command = shell_prefix + shell_quote(NORMKIT_CLI_PATH);
    for (const auto& a : args) command += " " + shell_quote(a);
    command += " >" + shell_quote(out.string()) + " 2>" + shell_quote(err.string()) + " </dev/null";
    CliResult result;
    const int status = std::system(command.c_str());
    if (status != -1 && WIFEXITED(status)) result.code = WEXITSTATUS(status);
    else result.code = -1000 - status;  // killed by a signal or not run
    result.out = read_text(out);
    result.err = read_text(err);
    return result;
  }

  // Writes values (encoded in dtype) to data/NAME and returns its path.
  std::string write_npy(const std::string& name, DType dtype, const std::vector<std::int64_t>& shape,
                        const std::vector<double>& values, std::vector<double>* stored = nullptr) {
    testing::TypedData typed = testing::encode(values, dtype);
    unsigned char dummy = 0;
    const void* data = typed.bytes.empty() ? static_cast<const void*>(&dummy) : typed.bytes.data();
    const std::string path = (data_ / name).string();
    const Status status = io::write_npy_atomic(path, dtype, shape, data);
    EXPECT_TRUE(status.ok()) << status.message();
    if (stored) *stored = typed.stored;
    return path;
  }

  std::string data_path(const std::string& name) const { return (data_ / name).string(); }

  std::vector<std::string> data_entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(data_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path root_, data_, capture_;
};

// ---------------------------------------------------------------------------------------------------------------
// Reading the safetensors output.

double element(const io::SafetensorsTensor& t, std::int64_t k) {
  switch (t.dtype) {
    case DType::float32: { float v; std::memcpy(&v, t.data.data() + k * 4, 4); return v; }
    case DType::float64: { double v; std::memcpy(&v, t.data.data() + k * 8, 8); return v; }
    case DType::int64: { std::int64_t v; std::memcpy(&v, t.data.data() + k * 8, 8); return static_cast<double>(v); }
    default: ADD_FAILURE() << "unexpected dtype " << dtype_name(t.dtype); return NAN;
  }
}

std::int64_t numel(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto e : shape) n *= e;
  return n;
}

std::string shape_str(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

double ref_value(const ReferenceStats& r, Stat s) {
  switch (s) {
    case Stat::count: return static_cast<double>(r.count);
    case Stat::mean: return r.mean;
    case Stat::var: return r.var;
    case Stat::std: return r.std;
    case Stat::min: return r.min;
    case Stat::max: return r.max;
    case Stat::sum: return r.sum;
    case Stat::l0: return static_cast<double>(r.l0);
    case Stat::l1: return r.l1;
    case Stat::l2: return r.l2;
    case Stat::linf: return r.linf;
  }
  return NAN;
}

// Reads `path` and checks that it holds exactly `stats` (names, dtypes, kept shapes) with the reference's values.
void expect_output_matches(const std::string& path, const std::vector<Stat>& stats, DType input_dtype,
                           const std::vector<double>& stored, const std::vector<std::int64_t>& shape,
                           const std::vector<bool>& reduced, std::int64_t ddof, bool ignore_nan,
                           const std::string& what) {
  io::SafetensorsFile file;
  const Status status = io::read_safetensors(path, &file);
  ASSERT_TRUE(status.ok()) << what << ": " << status.message();
  ASSERT_EQ(file.tensors.size(), stats.size()) << what;

  std::vector<std::int64_t> kept;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (!reduced[d]) kept.push_back(shape[d]);
  }
  const auto reference = testing::reference_stats(stored, shape, reduced, ddof, ignore_nan);
  ASSERT_EQ(static_cast<std::int64_t>(reference.size()), numel(kept)) << what;

  // Magnitude of the data, for float32 tolerances.
  double magnitude = 0;
  for (double v : stored) {
    if (std::isfinite(v)) magnitude = std::fmax(magnitude, std::fabs(v));
  }
  const bool f64 = input_dtype == DType::float64;
  const double eps = f64 ? 1e-12 : 1e-5;

  for (Stat s : stats) {
    const std::string name = stat_name(s);
    const io::SafetensorsTensor* t = file.find(name);
    ASSERT_NE(t, nullptr) << what << ": no tensor '" << name << "'";
    const bool count_like = s == Stat::count || s == Stat::l0;
    const DType expected_dtype = count_like ? DType::int64 : (f64 ? DType::float64 : DType::float32);
    EXPECT_EQ(t->dtype, expected_dtype) << what << ": " << name << " is " << dtype_name(t->dtype);
    EXPECT_EQ(t->shape, kept) << what << ": " << name << " has shape " << shape_str(t->shape) << ", kept shape "
                              << shape_str(kept);
    ASSERT_EQ(t->data.size(), static_cast<std::size_t>(numel(kept)) * dtype_size(t->dtype)) << what << ": " << name;
    if (t->dtype != expected_dtype || t->shape != kept) continue;

    int failures = 0;
    for (std::size_t k = 0; k < reference.size() && failures < 5; ++k) {
      const ReferenceStats& r = reference[k];
      const double actual = element(*t, static_cast<std::int64_t>(k));
      double expected = ref_value(r, s);
      bool ok;
      if (std::isnan(expected)) {
        ok = std::isnan(actual);
      } else if (count_like || s == Stat::min || s == Stat::max) {
        // Exact: min/max are input values, representable in the output dtype.
        if (!f64) expected = static_cast<float>(expected);
        ok = actual == expected;
      } else {
        const double n = static_cast<double>(r.count > 0 ? r.count : 1);
        double scale = magnitude;
        if (s == Stat::var) scale = magnitude * magnitude;
        else if (s == Stat::sum || s == Stat::l1) scale = n * magnitude;
        else if (s == Stat::l2) scale = std::sqrt(n) * magnitude;
        const double tol = eps * (scale + std::fabs(expected)) + (f64 ? 0.0 : 1e-30);
        ok = std::fabs(actual - expected) <= tol;
      }
      if (!ok) {
        ++failures;
        ADD_FAILURE() << what << ": " << name << "[" << k << "] = " << actual << ", reference " << expected
                      << " (count " << r.count << ")";
      }
    }
  }
}

std::vector<Stat> all_stats() {
  std::vector<Stat> v;
  for (int i = 0; i < kNumStats; ++i) v.push_back(static_cast<Stat>(i));
  return v;
}

// Values for a (5, 7, 3) input in `dtype`, with exact zeros for l0.
std::vector<double> sample_values(DType dtype, std::size_t n, unsigned seed) {
  std::vector<double> v;
  switch (dtype) {
    case DType::uint8: v = testing::uniform_values(n, 0, 255.99, seed); break;
    case DType::float16: v = testing::uniform_values(n, -8, 8, seed); break;
    default: v = testing::normal_values(n, 3.0, 10.0, seed); break;
  }
  for (std::size_t i = 0; i < n; i += 11) v[i] = 0;
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// Usage, help and errors.

TEST_F(CliTest, HelpAndVersion) {
  CliResult r = run({"--help"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("usage"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("stats"), std::string::npos) << r.out;

  r = run({"-h"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("usage"), std::string::npos) << r.out;

  r = run({"--version"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("normkit"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find_first_of("0123456789"), std::string::npos) << r.out;

  r = run({"stats", "--help"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("usage: normkit stats"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--axis"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--ignore-nan"), std::string::npos) << r.out;
}

TEST_F(CliTest, NoArgumentsIsUsageError) {
  const CliResult r = run({});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("usage"), std::string::npos);
}

TEST_F(CliTest, UnknownCommandOrOptionIsUsageError) {
  const std::string in = write_npy("x.npy", DType::float32, {2, 3}, {1, 2, 3, 4, 5, 6});
  CliResult r = run({"frobnicate", in});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_FALSE(r.err.empty());
  r = run({"--frobnicate"});
  EXPECT_EQ(r.code, 2) << r.err;
  r = run({"stats", in, "--frobnicate"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--frobnicate"), std::string::npos) << r.err;
  r = run({"stats"});
  EXPECT_EQ(r.code, 2) << "missing input: " << r.err;
  r = run({"stats", in, in, "--axis", "1"});  // (several files are batches along axis 0, which must be reduced)
  EXPECT_EQ(r.code, 2) << "two inputs keeping axis 0: " << r.err;
  r = run({"stats", in, "--axis"});
  EXPECT_EQ(r.code, 2) << "--axis without a value: " << r.err;
}

TEST_F(CliTest, BadOptionValuesAreUsageErrors) {
  const std::string in = write_npy("x.npy", DType::float32, {2, 3}, {1, 2, 3, 4, 5, 6});
  const std::vector<std::vector<std::string>> cases = {
      {"--axis", "garbage"}, {"--axis", "0,,1"}, {"--axis", "1.5"}, {"--axis", ""},      {"--axis", "0x"},
      {"--axis=foo"},        {"--stats", "foo"}, {"--stats", "mean,foo"}, {"--stats", ""}, {"--ddof", "-1"},
      {"--ddof", "one"},     {"--device", "tpu"}, {"--device", ""},  {"--gpu", "-1"},
  };
  for (const auto& extra : cases) {
    std::vector<std::string> args = {"stats", in};
    args.insert(args.end(), extra.begin(), extra.end());
    const CliResult r = run(args);
    EXPECT_EQ(r.code, 2) << join(extra) << ": " << r.err;
    EXPECT_FALSE(r.err.empty()) << join(extra);
  }
}

TEST_F(CliTest, MissingInputFileIsBadData) {
  const CliResult r = run({"stats", data_path("does_not_exist.npy"), "--device", "cpu"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;
}

TEST_F(CliTest, CorruptNpyIsBadData) {
  // Bad magic.
  write_bytes(data_path("bad_magic.npy"), std::string("NOTNUMPY") + std::string(120, ' '));
  CliResult r = run({"stats", data_path("bad_magic.npy"), "--device", "cpu"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;

  // Empty file.
  write_bytes(data_path("empty.npy"), "");
  r = run({"stats", data_path("empty.npy"), "--device", "cpu"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;

  // Truncated data: a valid file with the last bytes cut off.
  const std::vector<double> values = testing::uniform_values(60, -1, 1, 5);
  const std::string good = write_npy("good.npy", DType::float32, {6, 10}, values);
  const std::string bytes = read_text(good);
  ASSERT_GT(bytes.size(), 100u);
  write_bytes(data_path("truncated.npy"), bytes.substr(0, bytes.size() - 10));
  r = run({"stats", data_path("truncated.npy"), "--device", "cpu"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;

  // Truncated header.
  write_bytes(data_path("truncated_header.npy"), bytes.substr(0, 30));
  r = run({"stats", data_path("truncated_header.npy"), "--device", "cpu"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;
}

// A version 1.0 header, padded to 64 bytes.
std::string npy_bytes(const std::string& dict, const std::string& data) {
  std::string header = dict;
  const std::size_t prefix = 10;
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

TEST_F(CliTest, FortranOrderIsRejected) {
  const std::vector<float> values = {1, 2, 3, 4, 5, 6};
  const std::string data(reinterpret_cast<const char*>(values.data()), values.size() * 4);
  // Sanity check of the hand-made header: the same bytes in C order are accepted.
  write_bytes(data_path("c.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", data));
  CliResult r = run({"stats", data_path("c.npy"), "--device", "cpu"});
  ASSERT_EQ(r.code, 0) << r.err;

  write_bytes(data_path("f.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", data));
  r = run({"stats", data_path("f.npy"), "--device", "cpu"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("Fortran"), std::string::npos) << r.err;
}

TEST_F(CliTest, Int64InputIsRejected) {
  const std::string in = write_npy("i.npy", DType::int64, {2, 3}, {1, 2, 3, 4, 5, 6});
  const CliResult r = run({"stats", in, "--device", "cpu", "--out", data_path("s.safetensors")});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(data_path("s.safetensors")));
}

TEST_F(CliTest, UnsupportedNpyDtypeIsRejected) {
  const std::vector<std::int32_t> values = {1, 2, 3, 4};
  const std::string data(reinterpret_cast<const char*>(values.data()), values.size() * 4);
  write_bytes(data_path("i4.npy"), npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }", data));
  const CliResult r = run({"stats", data_path("i4.npy"), "--device", "cpu"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;
}

// ---------------------------------------------------------------------------------------------------------------
// Correctness against the reference.

struct AxisCase {
  std::string arg;
  std::vector<bool> reduced;  // for shape (5, 7, 3)
};

TEST_F(CliTest, StatisticsMatchReference) {
  const std::vector<std::int64_t> shape = {5, 7, 3};
  const std::vector<AxisCase> axis_cases = {
      {"all", {true, true, true}},  {"0", {true, false, false}},   {"1", {false, true, false}},
      {"-1", {false, false, true}}, {"0,2", {true, false, true}},   {"1,2", {false, true, true}},
      {"-3,-2", {true, true, false}},
  };
  const std::vector<DType> dtypes = {DType::float32, DType::float64, DType::float16, DType::uint8};
  unsigned seed = 100;
  for (DType dtype : dtypes) {
    std::vector<double> stored;
    const std::string name = std::string("in_") + dtype_name(dtype) + ".npy";
    const std::string in = write_npy(name, dtype, shape, sample_values(dtype, 105, seed++), &stored);
    for (const AxisCase& axis : axis_cases) {
      const std::string out = data_path("stats.safetensors");
      const std::string what = std::string(dtype_name(dtype)) + " --axis " + axis.arg;
      const CliResult r = run({"stats", in, "--axis", axis.arg, "--device", "cpu", "--out", out});
      ASSERT_EQ(r.code, 0) << what << ": " << r.err;
      expect_output_matches(out, all_stats(), dtype, stored, shape, axis.reduced, 0, false, what);
      fs::remove(out);
    }
  }
}

TEST_F(CliTest, OptionSpellings) {
  // --axis=V, -o, --ddof, and a separate negative --axis value.
  const std::vector<std::int64_t> shape = {5, 7, 3};
  std::vector<double> stored;
  const std::string in = write_npy("in.npy", DType::float32, shape, sample_values(DType::float32, 105, 7), &stored);
  const std::string out = data_path("o.safetensors");

  CliResult r = run({"stats", in, "--axis=-1", "--device=cpu", "--out=" + out});
  ASSERT_EQ(r.code, 0) << r.err;
  expect_output_matches(out, all_stats(), DType::float32, stored, shape, {false, false, true}, 0, false, "--axis=-1");

  r = run({"stats", "--axis", "-2", "-o", out, "--device", "cpu", in});
  ASSERT_EQ(r.code, 0) << r.err;
  expect_output_matches(out, all_stats(), DType::float32, stored, shape, {false, true, false}, 0, false, "--axis -2");

  r = run({"stats", in, "--axis", "0,1", "--ddof", "1", "--device", "cpu", "--out", out});
  ASSERT_EQ(r.code, 0) << r.err;
  expect_output_matches(out, all_stats(), DType::float32, stored, shape, {true, true, false}, 1, false, "--ddof 1");
}

TEST_F(CliTest, DdofAtLeastCountGivesNaNVarAndWarning) {
  const std::vector<double> values = {1, 2, 3, 4, 5, 6};
  const std::string in = write_npy("in.npy", DType::float32, {2, 3}, values);
  const std::string out = data_path("o.safetensors");
  const CliResult r = run({"stats", in, "--axis", "0", "--ddof", "2", "--device", "cpu", "--out", out});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning"), std::string::npos) << r.err;
  expect_output_matches(out, all_stats(), DType::float32, values, {2, 3}, {true, false}, 2, false, "--ddof 2");
}

TEST_F(CliTest, SelectedStatsOnly) {
  const std::vector<std::int64_t> shape = {5, 7, 3};
  std::vector<double> stored;
  const std::string in = write_npy("in.npy", DType::float32, shape, sample_values(DType::float32, 105, 9), &stored);
  const std::string out = data_path("o.safetensors");
  const CliResult r = run({"stats", in, "--axis", "0,2", "--stats", "mean,count", "--device", "cpu", "--out", out});
  ASSERT_EQ(r.code, 0) << r.err;
  expect_output_matches(out, {Stat::mean, Stat::count}, DType::float32, stored, shape, {true, false, true}, 0, false,
                        "--stats mean,count");
  io::SafetensorsFile file;
  ASSERT_TRUE(io::read_safetensors(out, &file).ok());
  ASSERT_EQ(file.tensors.size(), 2u);
  EXPECT_NE(file.find("mean"), nullptr);
  EXPECT_NE(file.find("count"), nullptr);
  EXPECT_EQ(file.find("var"), nullptr);
  // The table shows the selected statistics only.
  const std::string header = r.out.substr(0, r.out.find('\n'));
  EXPECT_NE(header.find("mean"), std::string::npos) << header;
  EXPECT_NE(header.find("count"), std::string::npos) << header;
  EXPECT_EQ(header.find("var"), std::string::npos) << header;
}

TEST_F(CliTest, EmptyInput) {
  const std::string in = write_npy("empty.npy", DType::float32, {0, 4}, {});
  const std::string out = data_path("o.safetensors");
  const CliResult r = run({"stats", in, "--axis", "0", "--device", "cpu", "--out", out});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning"), std::string::npos) << r.err;
  expect_output_matches(out, all_stats(), DType::float32, {}, {0, 4}, {true, false}, 0, false, "empty");
  io::SafetensorsFile file;
  ASSERT_TRUE(io::read_safetensors(out, &file).ok());
  for (std::int64_t k = 0; k < 4; ++k) {
    EXPECT_EQ(element(*file.find("count"), k), 0.0);
    EXPECT_TRUE(std::isnan(element(*file.find("mean"), k)));
    EXPECT_EQ(element(*file.find("sum"), k), 0.0);
  }
}

TEST_F(CliTest, AllNaNColumn) {
  // (4, 3) with column 1 all NaN and a NaN in column 2.
  const double nan = std::nan("");
  const std::vector<double> values = {1, nan, 2, 3, nan, nan, 5, nan, 4, 7, nan, 8};
  const std::string in = write_npy("nan.npy", DType::float32, {4, 3}, values);
  const std::string out = data_path("o.safetensors");

  CliResult r = run({"stats", in, "--axis", "0", "--ignore-nan", "--device", "cpu", "--out", out});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning"), std::string::npos) << r.err;
  expect_output_matches(out, all_stats(), DType::float32, values, {4, 3}, {true, false}, 0, true, "--ignore-nan");
  io::SafetensorsFile file;
  ASSERT_TRUE(io::read_safetensors(out, &file).ok());
  EXPECT_EQ(element(*file.find("count"), 1), 0.0);
  EXPECT_TRUE(std::isnan(element(*file.find("mean"), 1)));
  EXPECT_EQ(element(*file.find("count"), 2), 3.0);
  EXPECT_FLOAT_EQ(element(*file.find("mean"), 2), 14.0f / 3.0f);

  r = run({"stats", in, "--axis", "0", "--device", "cpu", "--out", out});
  ASSERT_EQ(r.code, 0) << r.err;
  expect_output_matches(out, all_stats(), DType::float32, values, {4, 3}, {true, false}, 0, false, "NaN propagates");
  ASSERT_TRUE(io::read_safetensors(out, &file).ok());
  EXPECT_EQ(element(*file.find("count"), 1), 4.0);
  EXPECT_TRUE(std::isnan(element(*file.find("mean"), 1)));
  EXPECT_TRUE(std::isnan(element(*file.find("mean"), 2)));
  EXPECT_EQ(element(*file.find("mean"), 0), 4.0);
}

// ---------------------------------------------------------------------------------------------------------------
// Failures leave no output behind.

TEST_F(CliTest, BadAxisLeavesNoOutput) {
  const std::string in = write_npy("in.npy", DType::float32, {2, 3}, {1, 2, 3, 4, 5, 6});
  const std::string out = data_path("o.safetensors");
  for (const std::string axis : {"5", "-3", "0,0", "1,-1"}) {
    const CliResult r = run({"stats", in, "--axis", axis, "--device", "cpu", "--out", out});
    EXPECT_EQ(r.code, 1) << "--axis " << axis << ": " << r.err;
    EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(out)) << "--axis " << axis;
    EXPECT_EQ(data_entries(), std::vector<std::string>{"in.npy"}) << "--axis " << axis;
  }
}

TEST_F(CliTest, FailureKeepsExistingOutput) {
  const std::string in = write_npy("in.npy", DType::float32, {2, 3}, {1, 2, 3, 4, 5, 6});
  const std::string out = data_path("o.safetensors");
  write_bytes(out, "previous contents");
  const CliResult r = run({"stats", in, "--axis", "5", "--device", "cpu", "--out", out});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_EQ(read_text(out), "previous contents");
  EXPECT_EQ(data_entries(), (std::vector<std::string>{"in.npy", "o.safetensors"}));
}

TEST_F(CliTest, UnwritableOutputLeavesNothing) {
  const std::string in = write_npy("in.npy", DType::float32, {2, 3}, {1, 2, 3, 4, 5, 6});
  const std::string out = data_path("missing_dir/o.safetensors");
  const CliResult r = run({"stats", in, "--device", "cpu", "--out", out});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(data_path("missing_dir")));
  EXPECT_EQ(data_entries(), std::vector<std::string>{"in.npy"});
}

TEST_F(CliTest, SuccessLeavesNoTemporaries) {
  const std::string in = write_npy("in.npy", DType::float32, {2, 3}, {1, 2, 3, 4, 5, 6});
  const CliResult r = run({"stats", in, "--device", "cpu", "--out", data_path("o.safetensors")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(data_entries(), (std::vector<std::string>{"in.npy", "o.safetensors"}));
}

// ---------------------------------------------------------------------------------------------------------------
// Table and device line.

TEST_F(CliTest, TableOnStdoutDeviceOnStderr) {
  const std::string in = write_npy("in.npy", DType::float32, {2, 3}, {1, 2, 3, 4, 5, 6});
  const CliResult r = run({"stats", in, "--axis", "0", "--device", "cpu"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string header = r.out.substr(0, r.out.find('\n'));
  for (int i = 0; i < kNumStats; ++i) {
    EXPECT_NE(header.find(stat_name(static_cast<Stat>(i))), std::string::npos) << header;
  }
  EXPECT_NE(r.out.find("[2]"), std::string::npos) << r.out;  // a row per kept index
  EXPECT_NE(r.err.find("device: cpu"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("device:"), std::string::npos) << r.out;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
}

// ---------------------------------------------------------------------------------------------------------------
// CUDA.

TEST_F(CliTest, DeviceMatchesReference) {
  if (!cuda_available()) {
    const char* require = std::getenv("NORMKIT_REQUIRE_DEVICE");
    if (require != nullptr && std::string(require) == "1") FAIL() << "NORMKIT_REQUIRE_DEVICE=1 but no CUDA device";
    GTEST_SKIP() << "no CUDA device";
  }
  const std::vector<std::int64_t> shape = {33, 17};
  std::vector<double> stored;
  std::vector<double> values = testing::normal_values(33 * 17, -2.0, 5.0, 21);
  for (std::size_t i = 0; i < values.size(); i += 13) values[i] = 0;
  const std::string in = write_npy("in.npy", DType::float32, shape, values, &stored);
  const std::string out = data_path("o.safetensors");
  const std::vector<std::pair<std::string, std::vector<bool>>> cases = {{"0", {true, false}}, {"1", {false, true}}};
  for (const auto& c : cases) {
    const CliResult r = run({"stats", in, "--axis", c.first, "--device", "cuda", "--out", out});
    ASSERT_EQ(r.code, 0) << "--axis " << c.first << ": " << r.err;
    EXPECT_NE(r.err.find("device: cuda"), std::string::npos) << r.err;
    expect_output_matches(out, all_stats(), DType::float32, stored, shape, c.second, 0, false,
                          "cuda --axis " + c.first);
  }
}

TEST_F(CliTest, CudaUnavailableIsBadData) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is available";
  const std::string in = write_npy("in.npy", DType::float32, {2, 3}, {1, 2, 3, 4, 5, 6});
  const CliResult r = run({"stats", in, "--device", "cuda"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;
}


// ---------------------------------------------------------------------------------------------------------------
// fit / apply / normalize

std::vector<double> read_npy_values(const std::string& path, DType* dtype = nullptr) {
  io::NpyArray a;
  const Status s = io::read_npy(path, &a);
  EXPECT_TRUE(s.ok()) << s.message();
  if (dtype) *dtype = a.dtype;
  std::vector<double> v(a.data.size() / std::max<std::size_t>(1, dtype_size(a.dtype)));
  for (std::size_t i = 0; i < v.size(); ++i) {
    const unsigned char* p = a.data.data() + i * dtype_size(a.dtype);
    if (a.dtype == DType::float32) { float f; std::memcpy(&f, p, 4); v[i] = f; }
    else if (a.dtype == DType::float64) std::memcpy(&v[i], p, 8);
    else if (a.dtype == DType::float16) { std::uint16_t h; std::memcpy(&h, p, 2); v[i] = testing::decode_half(h); }
    else v[i] = NAN;
  }
  return v;
}

void expect_near_all(const std::vector<double>& a, const std::vector<double>& b, double tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(b[i])) ASSERT_TRUE(std::isnan(a[i])) << what << " " << i;
    else ASSERT_NEAR(a[i], b[i], tol * (1 + std::fabs(b[i]))) << what << " " << i;
  }
}

TEST_F(CliTest, FitApplyInverseMatchReference) {
  std::vector<double> stored;
  const std::string in = write_npy("x.npy", DType::float32, {40, 5}, sample_values(DType::float32, 200, 3), &stored);
  const std::string state = data_path("state.safetensors");
  CliResult r = run({"fit", in, "--method", "zscore", "--state", state});
  ASSERT_EQ(r.code, 0) << r.err;
  r = run({"apply", in, "--state", state, "--out", data_path("y.npy")});
  ASSERT_EQ(r.code, 0) << r.err;
  DType dtype;
  const auto y = read_npy_values(data_path("y.npy"), &dtype);
  EXPECT_EQ(dtype, DType::float32);
  expect_near_all(y, testing::reference_transform(stored, {40, 5}, {true, false}, NormalizerOptions{}), 2e-5, "zscore");
  r = run({"apply", data_path("y.npy"), "--state", state, "--out", data_path("back.npy"), "--inverse"});
  ASSERT_EQ(r.code, 0) << r.err;
  expect_near_all(read_npy_values(data_path("back.npy")), stored, 1e-5, "inverse");
  r = run({"apply", in, "--state", state, "--out", data_path("y16.npy"), "--dtype", "float16"});
  ASSERT_EQ(r.code, 0) << r.err;
  read_npy_values(data_path("y16.npy"), &dtype);
  EXPECT_EQ(dtype, DType::float16);
}

TEST_F(CliTest, FitOverSeveralFilesEqualsFitOnTheirConcatenation) {
  const auto values = sample_values(DType::float32, 60 * 4, 8);
  const std::string all = write_npy("all.npy", DType::float32, {60, 4}, values);
  const std::string a = write_npy("a.npy", DType::float32, {25, 4}, {values.begin(), values.begin() + 100});
  const std::string b = write_npy("b.npy", DType::float32, {35, 4}, {values.begin() + 100, values.end()});
  ASSERT_EQ(run({"fit", a, b, "--method", "minmax", "--feature-range", "-1,1", "--state", data_path("s2.safetensors")}).code, 0);
  ASSERT_EQ(run({"fit", all, "--method", "minmax", "--feature-range=-1,1", "--state", data_path("s1.safetensors")}).code, 0);
  ASSERT_EQ(run({"apply", all, "--state", data_path("s1.safetensors"), "--out", data_path("y1.npy")}).code, 0);
  ASSERT_EQ(run({"apply", all, "--state", data_path("s2.safetensors"), "--out", data_path("y2.npy")}).code, 0);
  expect_near_all(read_npy_values(data_path("y2.npy")), read_npy_values(data_path("y1.npy")), 1e-6, "streamed fit");
}

// A file fitted in pieces of whole rows (--chunk-bytes, as files larger than memory are) gives the fit of the
// whole file within rounding: zscore (Chan's merges of the pieces) and minmax (exact); with axis 0 kept the
// file is read whole; a truncated file is an error naming it.
TEST_F(CliTest, FitInPiecesOfRowsEqualsFitOfTheWholeFile) {
  const auto values = sample_values(DType::float32, 61 * 6, 12);
  const std::string all = write_npy("all.npy", DType::float32, {61, 6}, values);
  for (const char* method : {"zscore", "minmax"}) {
    ASSERT_EQ(run({"fit", all, "--method", method, "--state", data_path("whole.safetensors")}).code, 0);
    for (const char* chunk : {"24", "100", "1000"}) {  // (one row, four rows and a part, more than 40 rows)
      const CliResult r = run({"fit", all, "--method", method, "--chunk-bytes", chunk, "--state", data_path("pieces.safetensors")});
      ASSERT_EQ(r.code, 0) << r.err;
      ASSERT_EQ(run({"apply", all, "--state", data_path("whole.safetensors"), "--out", data_path("y1.npy")}).code, 0);
      ASSERT_EQ(run({"apply", all, "--state", data_path("pieces.safetensors"), "--out", data_path("y2.npy")}).code, 0);
      expect_near_all(read_npy_values(data_path("y2.npy")), read_npy_values(data_path("y1.npy")), 1e-6,
                      std::string(method) + " fitted in pieces of " + chunk + " bytes");
    }
  }
  const CliResult kept = run({"fit", all, "--method", "zscore", "--axis", "1", "--chunk-bytes", "24", "--state", data_path("rows.safetensors")});
  EXPECT_EQ(kept.code, 0) << kept.err;  // (per-sample statistics: axis 0 kept, the file read whole)
  EXPECT_EQ(run({"fit", all, "--method", "zscore", "--chunk-bytes", "0", "--state", data_path("x.safetensors")}).code, 2);
  const std::string bytes = read_text(all);
  write_bytes(data_path("cut.npy"), bytes.substr(0, bytes.size() - 40));
  const CliResult cut = run({"fit", data_path("cut.npy"), "--method", "zscore", "--chunk-bytes", "24", "--state", data_path("x.safetensors")});
  EXPECT_EQ(cut.code, 1);
  EXPECT_NE(cut.err.find("cut.npy"), std::string::npos) << cut.err;
}

TEST_F(CliTest, NormalizeMethodsAndLpRows) {
  std::vector<double> stored;
  const std::string in = write_npy("x.npy", DType::float64, {9, 6}, sample_values(DType::float64, 54, 4), &stored);
  CliResult r = run({"normalize", in, "--method", "l2", "--out", data_path("l2.npy")});
  ASSERT_EQ(r.code, 0) << r.err;
  expect_near_all(read_npy_values(data_path("l2.npy")), testing::reference_lp(stored, 6, LpNorm::l2), 1e-12, "l2");
  r = run({"normalize", in, "--method", "maxabs", "--axis", "0", "--out", data_path("m.npy")});
  ASSERT_EQ(r.code, 0) << r.err;
  NormalizerOptions o;
  o.method = Method::maxabs;
  expect_near_all(read_npy_values(data_path("m.npy")), testing::reference_transform(stored, {9, 6}, {true, false}, o), 1e-12, "maxabs");
  r = run({"normalize", in, "--method", "rescale", "--scale", "0.5", "--offset", "-1", "--out", data_path("r.npy")});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto rescaled = read_npy_values(data_path("r.npy"));
  EXPECT_NEAR(rescaled[7], stored[7] * 0.5 - 1, 1e-12);
}

TEST_F(CliTest, TransformUsageAndDataErrors) {
  const std::string in = write_npy("x.npy", DType::float32, {4, 3}, sample_values(DType::float32, 12, 5));
  EXPECT_EQ(run({"fit", in, "--method", "zscore"}).code, 2);                                    // no --state
  EXPECT_EQ(run({"apply", in, "--state", data_path("none.safetensors")}).code, 2);              // no --out
  EXPECT_EQ(run({"normalize", in, "--method", "sorcery", "--out", data_path("o.npy")}).code, 2);
  EXPECT_EQ(run({"normalize", in, "--method", "minmax", "--feature-range", "2,1", "--out", data_path("o.npy")}).code, 2);
  EXPECT_EQ(run({"fit", in, "--method", "zscore", "--state", data_path("s.safetensors"), "--bogus"}).code, 2);
  // A corrupt state file is bad data, and no output appears.
  write_bytes(data_path("bad.safetensors"), "not a safetensors file at all");
  const CliResult r = run({"apply", in, "--state", data_path("bad.safetensors"), "--out", data_path("o.npy")});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("error"), std::string::npos);
  EXPECT_FALSE(fs::exists(data_path("o.npy")));
  // A batch of another kept shape is bad data.
  const std::string other = write_npy("other.npy", DType::float32, {4, 2}, sample_values(DType::float32, 8, 6));
  EXPECT_EQ(run({"fit", in, other, "--method", "zscore", "--state", data_path("s.safetensors")}).code, 1);
  EXPECT_FALSE(fs::exists(data_path("s.safetensors")));
  for (const auto& name : data_entries()) EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
}

// The reproducers: fitting on +-Inf fails naming the feature (exit 1, nothing written); the tiny
// spread around 0 that an absolute floor used to leave alone is scaled as StandardScaler scales it.
TEST_F(CliTest, FitRejectsInfinityAndScalesTinySpreads) {
  const std::string inf = write_npy("i.npy", DType::float64, {2, 2}, {INFINITY, 5, 1, 6});
  CliResult r = run({"normalize", inf, "--method", "zscore", "--out", data_path("y.npy")});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("feature 0 of kept shape [2] holds 1 +Inf and 0 -Inf values"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(data_path("y.npy")));
  if (cuda_available()) {  // the device check finds the same feature
    r = run({"normalize", inf, "--method", "zscore", "--device", "cuda", "--out", data_path("y.npy")});
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_NE(r.err.find("feature 0 of kept shape [2] holds 1 +Inf and 0 -Inf values"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(data_path("y.npy")));
  }
  r = run({"fit", inf, "--method", "minmax", "--state", data_path("s.safetensors")});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("feature 0"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(data_path("s.safetensors")));
  for (const auto& name : data_entries()) EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
  const std::string tiny = write_npy("t.npy", DType::float64, {2, 1}, {1e-14, -1e-14});
  r = run({"normalize", tiny, "--method", "zscore", "--out", data_path("z.npy")});
  ASSERT_EQ(r.code, 0) << r.err;
  expect_near_all(read_npy_values(data_path("z.npy")), {1, -1}, 1e-12, "StandardScaler on [[1e-14], [-1e-14]]");
  r = run({"normalize", "--help"});
  EXPECT_NE(r.out.find("n*eps*var + (n*eps*mean)^2"), std::string::npos) << r.out;
}

TEST_F(CliTest, TransformsOnDeviceMatchHost) {
  if (!cuda_available()) {
    const char* require = std::getenv("NORMKIT_REQUIRE_DEVICE");
    if (require && std::string(require) == "1") FAIL() << "no CUDA device (required)";
    GTEST_SKIP() << "no CUDA device and no emulator";
  }
  const std::string in = write_npy("x.npy", DType::float32, {33, 7}, sample_values(DType::float32, 231, 9));
  ASSERT_EQ(run({"fit", in, "--method", "zscore", "--device", "cuda", "--state", data_path("d.safetensors")}).code, 0);
  ASSERT_EQ(run({"fit", in, "--method", "zscore", "--device", "cpu", "--state", data_path("h.safetensors")}).code, 0);
  const CliResult r = run({"apply", in, "--state", data_path("d.safetensors"), "--device", "cuda", "--out", data_path("yd.npy")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("device: cuda"), std::string::npos);
  ASSERT_EQ(run({"apply", in, "--state", data_path("h.safetensors"), "--device", "cpu", "--out", data_path("yh.npy")}).code, 0);
  expect_near_all(read_npy_values(data_path("yd.npy")), read_npy_values(data_path("yh.npy")), 1e-6, "device vs host");
  ASSERT_EQ(run({"normalize", in, "--method", "l1", "--device", "cuda", "--out", data_path("l1.npy")}).code, 0);
}

}  // namespace
}  // namespace normkit

// ---------------------------------------------------------------------------------------------------------------
// IDX input, several files, and the demo

namespace normkit {
namespace {

std::string idx_bytes(const std::vector<std::uint32_t>& shape, const std::vector<unsigned char>& values) {
  std::string s{'\0', '\0', '\x08', static_cast<char>(shape.size())};
  for (std::uint32_t d : shape) s += std::string{static_cast<char>(d >> 24), static_cast<char>(d >> 16), static_cast<char>(d >> 8), static_cast<char>(d)};
  return s + std::string(values.begin(), values.end());
}

std::map<std::string, std::vector<double>> read_stats_file(const std::string& path) {
  io::SafetensorsFile file;
  const Status s = io::read_safetensors(path, &file);
  EXPECT_TRUE(s.ok()) << s.message();
  std::map<std::string, std::vector<double>> out;
  for (const auto& t : file.tensors) {
    for (std::int64_t k = 0; k < numel(t.shape); ++k) out[t.name].push_back(element(t, k));
  }
  return out;
}

TEST_F(CliTest, IdxFilesAndSeveralFilesEqualTheirConcatenation) {
  // uint8: two IDX batches [3, 2, 2] + [2, 2, 2] against the .npy of all 5 images, per pixel and overall:
  // the same sums, counts and extremes (integer summaries), the float32 moments within an ulp (float32
  // outputs of the exact fractions may round either way on the device: stats.hpp).
  std::vector<unsigned char> pixels(20);
  for (int i = 0; i < 20; ++i) pixels[i] = static_cast<unsigned char>((i * 37 + 11) % 256);
  write_bytes(data_ / "a.idx", idx_bytes({3, 2, 2}, {pixels.begin(), pixels.begin() + 12}));
  write_bytes(data_ / "b.idx", idx_bytes({2, 2, 2}, {pixels.begin() + 12, pixels.end()}));
  ASSERT_TRUE(io::write_npy_atomic(data_path("all.npy"), DType::uint8, {5, 2, 2}, pixels.data()).ok());
  for (const std::string axis : {"all", "0"}) {
    ASSERT_EQ(run({"stats", data_path("a.idx"), data_path("b.idx"), "--axis", axis, "--out", data_path("two.safetensors")}).code, 0);
    const CliResult whole = run({"stats", data_path("all.npy"), "--axis", axis, "--out", data_path("one.safetensors")});
    ASSERT_EQ(whole.code, 0) << whole.err;
    auto two = read_stats_file(data_path("two.safetensors")), one = read_stats_file(data_path("one.safetensors"));
    for (const char* exact : {"count", "sum", "min", "max", "l0", "l1", "linf"}) EXPECT_EQ(two[exact], one[exact]) << exact << " --axis " << axis;
    for (const auto& [name, v] : one) expect_near_all(two[name], v, 2.4e-7, name + " --axis " + axis);
  }
  // float32 over two .npy files: Chan's merge, equal to float32 rounding.
  const auto values = sample_values(DType::float32, 40 * 3, 9);
  write_npy("f_all.npy", DType::float32, {40, 3}, values);
  write_npy("f_a.npy", DType::float32, {15, 3}, {values.begin(), values.begin() + 45});
  write_npy("f_b.npy", DType::float32, {25, 3}, {values.begin() + 45, values.end()});
  ASSERT_EQ(run({"stats", data_path("f_a.npy"), data_path("f_b.npy"), "--axis", "0", "--out", data_path("f2.safetensors")}).code, 0);
  ASSERT_EQ(run({"stats", data_path("f_all.npy"), "--axis", "0", "--out", data_path("f1.safetensors")}).code, 0);
  auto two = read_stats_file(data_path("f2.safetensors")), one = read_stats_file(data_path("f1.safetensors"));
  for (const auto& [name, v] : one) expect_near_all(two[name], v, 1e-6, "float32 streamed " + name);
  // Batches of another shape or dtype, and axis 0 kept, are errors.
  write_bytes(data_ / "labels.idx", idx_bytes({5}, {1, 2, 3, 4, 5}));
  CliResult r = run({"stats", data_path("a.idx"), data_path("labels.idx")});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("labels.idx holds uint8 [5]; the first file's batches are uint8 [N, 2, 2]"), std::string::npos) << r.err;
  r = run({"stats", data_path("a.idx"), data_path("f_a.npy")});
  EXPECT_EQ(r.code, 1) << r.err;
  r = run({"stats", data_path("a.idx"), data_path("b.idx"), "--axis", "1,2"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("must reduce axis 0"), std::string::npos) << r.err;
  // A corrupt IDX file: exit 1, the file named.
  write_bytes(data_ / "short.idx", idx_bytes({4, 2, 2}, {1, 2, 3}));
  r = run({"stats", data_path("short.idx")});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("short.idx: truncated"), std::string::npos) << r.err;
}

// One file streamed in pieces of --chunk-bytes gives its in-memory statistics: uint8 exactly (counts,
// extremes; the rest within float32 rounding of the exact fractions), float32 within rounding, for pieces of one
// element, of sizes that split rows and images (and do not divide the file), and of more than the file; on the
// host and (where there is one, or the emulator) on the device.
TEST_F(CliTest, ChunkedStatsEqualInMemory) {
  std::vector<unsigned char> pixels(7 * 5 * 3);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<unsigned char>((i * 53 + 7) % 256);
  write_bytes(data_ / "u8.idx", idx_bytes({7, 5, 3}, pixels));
  const auto values = sample_values(DType::float32, 41 * 6, 10);
  write_npy("f32.npy", DType::float32, {41, 6}, values);
  for (const char* file : {"u8.idx", "f32.npy"}) {
    for (const char* axis : {"all", "0", "0,1"}) {
      ASSERT_EQ(run({"stats", data_path(file), "--axis", axis, "--out", data_path("whole.safetensors")}).code, 0);
      auto whole = read_stats_file(data_path("whole.safetensors"));
      for (const char* chunk : {"1", "22", "40", "100", "1000000"}) {
        for (const char* device : {"cpu", "auto"}) {
          const CliResult r = run({"stats", data_path(file), "--axis", axis, "--chunk-bytes", chunk, "--quiet", "--device", device, "--out", data_path("pieces.safetensors")});
          ASSERT_EQ(r.code, 0) << file << " --chunk-bytes " << chunk << ": " << r.err;
          auto pieces = read_stats_file(data_path("pieces.safetensors"));
          const std::string what = std::string(file) + " --axis " + axis + " --chunk-bytes " + chunk + " --device " + device;
          for (const char* exact : {"count", "min", "max", "l0"}) EXPECT_EQ(pieces[exact], whole[exact]) << exact << " " << what;
          // (float32: each piece's float32 moments merged by Chan's formula, sums from mean x count)
          for (const auto& [name, v] : whole) expect_near_all(pieces[name], v, 2e-5, name + " " + what);
        }
      }
    }
  }
  CliResult r = run({"stats", data_path("u8.idx"), "--chunk-bytes", "10", "--axis", "1"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("must reduce axis 0"), std::string::npos) << r.err;
  EXPECT_EQ(run({"stats", data_path("u8.idx"), "--chunk-bytes", "0"}).code, 2);
  // A truncated file fails at the piece that runs out, naming the file.
  write_bytes(data_ / "short.idx", idx_bytes({4, 2, 2}, {1, 2, 3}));
  r = run({"stats", data_path("short.idx"), "--chunk-bytes", "4"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("short.idx: truncated"), std::string::npos) << r.err;
}

// The main job on the real Fashion-MNIST files (installed by scripts/install-deps.sh): the published
// pooled mean and std to 4 decimals.
// "Larger than RAM": a 1 GB uint8 file under a 512 MB address-space limit. Streamed (--chunk-bytes) it gives
// the exact statistics; read whole it is a clear error (exit 1), not a crash.
#if defined(__SANITIZE_ADDRESS__)
#define NORMKIT_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NORMKIT_TEST_ASAN 1
#endif
#endif

TEST_F(CliTest, StatsOfAFileLargerThanTheMemoryLimit) {
#if defined(NORMKIT_TEST_ASAN)
  GTEST_SKIP() << "AddressSanitizer reserves terabytes of address space: no ulimit -v under it (the plain build runs this)";
#endif
  const std::int64_t rows = 1 << 20, cols = 1024;  // 1 GiB: byte k holds k mod 256
  const std::string path = data_path("big.npy");
  {
    std::string header = "{'descr': '|u1', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " + std::to_string(cols) + "), }";
    header += std::string(64 - (10 + header.size() + 1) % 64, ' ') + "\n";
    std::ofstream f(path, std::ios::binary);
    f.write("\x93NUMPY\x01\x00", 8);
    const char len[2] = {static_cast<char>(header.size() & 0xff), static_cast<char>(header.size() >> 8)};
    f.write(len, 2);
    f << header;
    std::string block(1 << 20, '\0');
    for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>(i & 0xff);
    for (std::int64_t i = 0; i < rows * cols / static_cast<std::int64_t>(block.size()); ++i) f.write(block.data(), static_cast<std::streamsize>(block.size()));
    ASSERT_TRUE(f.good());
  }
  const std::string limit = "ulimit -v 524288 && ";
  CliResult r = run({"stats", path, "--axis", "all", "--stats", "count,mean,min,max", "--device", "cpu", "--chunk-bytes", "67108864",
                     "--quiet"}, limit);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("127.5"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1073741824"), std::string::npos) << r.out;
  r = run({"stats", path, "--axis", "all", "--device", "cpu"}, limit);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("more than this process can hold in memory"), std::string::npos) << r.err;
  fs::remove(path);
}

TEST_F(CliTest, DemoOnFashionMnist) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  const CliResult r = run({"demo", "--device", "cpu"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("train uint8 [60000, 28, 28]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mean 0.2860  std 0.3530"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mean of per-image stds"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("device: host"), std::string::npos) << r.out;
}

// Without the data set: a generated batch, said so; --out writes every result (the device path too when a
// device or the emulator is there).
TEST_F(CliTest, DemoWithoutTheDataSet) {
  fs::create_directories(data_ / "out");
  const CliResult r = run({"demo", "--data", data_path("nowhere"), "--out", data_path("out")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("Fashion-MNIST not found"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("generated"), std::string::npos) << r.out;
  for (const char* split : {"train", "test"}) {
    for (const char* method : {"zscore", "pixel_zscore", "l2"}) {
      const std::string path = data_path(std::string("out/") + split + "_" + method + ".npy");
      ASSERT_TRUE(fs::exists(path)) << path;
      const std::vector<double> v = read_npy_values(path);
      ASSERT_EQ(v.size(), (split == std::string("train") ? 1200u : 200u) * 784u) << path;
      if (std::string(method) == "l2") {
        double norm = 0;
        for (int i = 0; i < 784; ++i) norm += v[i] * v[i];
        EXPECT_NEAR(norm, 1.0, 1e-5) << path;  // each image a unit vector
      }
    }
  }
  const std::vector<double> z = read_npy_values(data_path("out/train_zscore.npy"));
  double mean = 0, square = 0;
  for (double x : z) mean += x;
  mean /= static_cast<double>(z.size());
  for (double x : z) square += (x - mean) * (x - mean);
  EXPECT_NEAR(mean, 0.0, 1e-5);
  EXPECT_NEAR(std::sqrt(square / static_cast<double>(z.size())), 1.0, 1e-5);
  EXPECT_EQ(run({"demo", "--frobnicate"}).code, 2);
}

}  // namespace
}  // namespace normkit

// ---------------------------------------------------------------------------------------------------------------
// normkit image

namespace normkit {
namespace {

// x [2, 5, 6, 3] uint8 (values n*90 + i*15 + j*2 + c, as stored) and its normalized value y[n, c, i, j] for a
// crop/mirror/reversal, from the formula.
struct ImageFixture {
  static constexpr std::int64_t kN = 2, kH = 5, kW = 6, kC = 3;
  static double pixel(std::int64_t n, std::int64_t i, std::int64_t j, std::int64_t c) {
    return static_cast<double>((n * 90 + i * 15 + j * 2 + c) % 256);
  }
  static std::vector<double> values() {
    std::vector<double> v;
    for (std::int64_t n = 0; n < kN; ++n)
      for (std::int64_t i = 0; i < kH; ++i)
        for (std::int64_t j = 0; j < kW; ++j)
          for (std::int64_t c = 0; c < kC; ++c) v.push_back(pixel(n, i, j, c));
    return v;
  }
};

TEST_F(CliTest, ImageNormalizeMatchesTheFormula) {
  const std::string in = write_npy("x.npy", DType::uint8, {2, 5, 6, 3}, ImageFixture::values());
  const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
  CliResult r = run({"image", in, "--layout", "nhwc", "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225", "--units", "unit",
                     "--crop", "1,1,3,4", "--mirror", "--reverse-channels", "--out", data_path("y.npy")});
  ASSERT_EQ(r.code, 0) << r.err;
  DType dtype;
  const std::vector<double> y = read_npy_values(data_path("y.npy"), &dtype);
  EXPECT_EQ(dtype, DType::float32);
  ASSERT_EQ(y.size(), 2u * 3 * 3 * 4);
  std::size_t k = 0;
  for (std::int64_t n = 0; n < 2; ++n)
    for (std::int64_t c = 0; c < 3; ++c)
      for (std::int64_t i = 0; i < 3; ++i)
        for (std::int64_t j = 0; j < 4; ++j, ++k) {
          const double x = ImageFixture::pixel(n, 1 + i, 1 + (3 - j), 2 - c) / 255.0;
          ASSERT_NEAR(y[k], (x - mean[c]) / std[c], 2 * 0x1p-23 * std::fmax(1.0, std::fabs(y[k]))) << k;
        }
  // A window of its own per image (--crop H,W with --crop-origins, int64 [N, 2]; the second clamped to (2, 2)).
  const std::string origins = write_npy("origins.npy", DType::int64, {2, 2}, {1, 0, 9, 9});
  r = run({"image", in, "--layout", "nhwc", "--mean", "0,0,0", "--std", "1,1,1", "--units", "pixel", "--to-layout", "nhwc", "--crop", "3,4",
           "--crop-origins", origins, "--out", data_path("yo.npy")});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<double> yo = read_npy_values(data_path("yo.npy"), &dtype);
  ASSERT_EQ(yo.size(), 2u * 3 * 4 * 3);
  k = 0;
  for (std::int64_t n = 0; n < 2; ++n)
    for (std::int64_t i = 0; i < 3; ++i)
      for (std::int64_t j = 0; j < 4; ++j)
        for (std::int64_t c = 0; c < 3; ++c, ++k) ASSERT_EQ(yo[k], ImageFixture::pixel(n, (n ? 2 : 1) + i, (n ? 2 : 0) + j, c)) << k;
  EXPECT_EQ(run({"image", in, "--layout", "nhwc", "--from-batch", "--crop", "3,4", "--out", data_path("bad.npy")}).code, 2);
  EXPECT_EQ(run({"image", in, "--layout", "nhwc", "--from-batch", "--crop", "0,0,3,4", "--crop-origins", origins, "--out", data_path("bad.npy")}).code, 2);
  const std::string narrow = write_npy("narrow.npy", DType::int64, {4}, {1, 0, 9, 9});  // not [N, 2]
  r = run({"image", in, "--layout", "nhwc", "--from-batch", "--crop", "3,4", "--crop-origins", narrow, "--out", data_path("bad.npy")});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("crop_origins"), std::string::npos) << r.err;
  EXPECT_FALSE(std::ifstream(data_path("bad.npy")).good());
  // Pixel units give the same values; float16 and nhwc output; bfloat16 into .safetensors.
  r = run({"image", in, "--layout=nhwc", "--mean", "123.675,116.28,103.53", "--std", "58.395,57.12,57.375", "--units", "pixel",
           "--to-layout", "nhwc", "--dtype", "float16", "--out", data_path("y16.npy")});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<double> y16 = read_npy_values(data_path("y16.npy"), &dtype);
  EXPECT_EQ(dtype, DType::float16);
  EXPECT_NEAR(y16[5], (ImageFixture::pixel(0, 0, 1, 2) / 255.0 - mean[2]) / std[2], 4e-3);
  r = run({"image", in, "--layout", "nhwc", "--from-batch", "--dtype", "bfloat16", "--out", data_path("y.safetensors")});
  ASSERT_EQ(r.code, 0) << r.err;
  io::SafetensorsFile file;
  ASSERT_TRUE(io::read_safetensors(data_path("y.safetensors"), &file).ok());
  ASSERT_EQ(file.tensors.size(), 1u);
  EXPECT_EQ(file.tensors[0].name, "images");
  EXPECT_EQ(file.tensors[0].dtype, DType::bfloat16);
  EXPECT_EQ(file.tensors[0].shape, (std::vector<std::int64_t>{2, 3, 5, 6}));
  // --from-batch: every channel of the output has mean 0 and std 1 (to bfloat16's rounding)
  for (std::int64_t c = 0; c < 3; ++c) {
    double sum = 0, square = 0;
    for (std::int64_t n = 0; n < 2; ++n)
      for (std::int64_t p = 0; p < 30; ++p) {
        std::uint16_t b;
        std::memcpy(&b, file.tensors[0].data.data() + 2 * ((n * 3 + c) * 30 + p), 2);
        const double v = testing::decode_bfloat16(b);
        sum += v, square += v * v;
      }
    EXPECT_NEAR(sum / 60, 0.0, 0.01);
    EXPECT_NEAR(std::sqrt(square / 60), 1.0, 0.01);
  }
}

// --from-batch measures input channels; with --reverse-channels they are the output channels reversed.
TEST_F(CliTest, ImageFromBatchWithReversedChannels) {
  std::vector<double> v;
  for (int p = 0; p < 4 * 5 * 6; ++p) {
    v.push_back(0.5 + 0.01 * (p % 7));       // channel 0: near 0.5
    v.push_back(120.0 + 3.0 * (p % 11));     // channel 1: near 135
  }
  const std::string in = write_npy("two.npy", DType::float32, {4, 5, 6, 2}, v);
  const CliResult r = run({"image", in, "--layout", "nhwc", "--from-batch", "--reverse-channels", "--device", "cpu", "--out", data_path("y.npy")});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<double> y = read_npy_values(data_path("y.npy"));
  for (int c = 0; c < 2; ++c) {
    double sum = 0, square = 0;
    for (int n = 0; n < 4; ++n)
      for (int p = 0; p < 30; ++p) {
        const double value = y[(n * 2 + c) * 30 + p];
        sum += value, square += value * value;
      }
    EXPECT_NEAR(sum / 120, 0.0, 1e-5) << c;
    EXPECT_NEAR(std::sqrt(square / 120), 1.0, 1e-5) << c;
  }
}

TEST_F(CliTest, ImageUsageAndDataErrorsLeaveNoOutput) {
  const std::string in = write_npy("x.npy", DType::uint8, {2, 5, 6, 3}, ImageFixture::values());
  const std::string out = data_path("y.npy");
  const std::vector<std::vector<std::string>> usage = {
      {"image", in, "--layout", "nhwc", "--mean", "0.5,0.5,0.5", "--std", "0.2,0.2,0.2", "--out", out},  // no --units
      {"image", in, "--mean", "0.5,0.5,0.5", "--std", "0.2,0.2,0.2", "--units", "unit", "--out", out},   // 4-D without --layout
      {"image", in, "--layout", "nhwc", "--from-batch", "--dtype", "bfloat16", "--out", out},             // bfloat16 .npy
      {"image", in, "--layout", "nhwc", "--from-batch", "--units", "unit", "--out", out},                  // --from-batch and --units
      {"image", in, "--layout", "nhwc", "--from-batch", "--out", data_path("y.txt")},                      // output format
      {"image", in, "--layout", "nhwz", "--from-batch", "--out", out},
      {"image", in, "--layout", "nhwc", "--from-batch", "--crop", "1,2,3", "--out", out},
      {"image", in, "--layout", "nhwc", "--from-batch"},                                                    // no --out
  };
  for (const auto& args : usage) {
    const CliResult r = run(args);
    EXPECT_EQ(r.code, 2) << join(args) << "\n" << r.err;
  }
  const std::vector<std::vector<std::string>> bad = {
      {"image", in, "--layout", "nhwc", "--mean", "0.5,0.5", "--std", "0.2,0.2,0.2", "--units", "unit", "--out", out},  // 2 means
      {"image", in, "--layout", "nhwc", "--mean", "0.5,0.5,0.5", "--std", "0,0.2,0.2", "--units", "unit", "--out", out},  // std 0
      {"image", in, "--layout", "nhwc", "--from-batch", "--crop", "1,2,5,3", "--out", out},  // window outside
      {"image", data_path("missing.npy"), "--layout", "nhwc", "--from-batch", "--out", out},
  };
  for (const auto& args : bad) {
    const CliResult r = run(args);
    EXPECT_EQ(r.code, 1) << join(args) << "\n" << r.err;
    EXPECT_NE(r.err.find("error"), std::string::npos) << r.err;
  }
  EXPECT_EQ(data_entries(), std::vector<std::string>{"x.npy"});
}

TEST_F(CliTest, ImageOfIdxGreyImages) {
  std::vector<unsigned char> pixels(3 * 4 * 5);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<unsigned char>(i * 7);
  write_bytes(data_ / "g.idx", idx_bytes({3, 4, 5}, pixels));
  const CliResult r = run({"image", data_path("g.idx"), "--mean", "0.5", "--std", "0.25", "--units", "unit", "--out", data_path("g.npy")});
  ASSERT_EQ(r.code, 0) << r.err;
  io::NpyArray y;
  ASSERT_TRUE(io::read_npy(data_path("g.npy"), &y).ok());
  EXPECT_EQ(y.shape, (std::vector<std::int64_t>{3, 1, 4, 5}));
  const std::vector<double> v = read_npy_values(data_path("g.npy"));
  for (std::size_t i = 0; i < v.size(); ++i) ASSERT_NEAR(v[i], (pixels[i] / 255.0 - 0.5) / 0.25, 1e-6) << i;
}

TEST_F(CliTest, ImageOnDeviceMatchesHost) {
  if (!cuda_available()) {
    const char* require = std::getenv("NORMKIT_REQUIRE_DEVICE");
    if (require && std::string(require) == "1") FAIL() << "no CUDA device (required)";
    GTEST_SKIP() << "no CUDA device and no emulator";
  }
  const std::string in = write_npy("x.npy", DType::uint8, {2, 5, 6, 3}, ImageFixture::values());
  for (const char* device : {"cpu", "cuda"}) {
    const CliResult r = run({"image", in, "--layout", "nhwc", "--from-batch", "--crop", "0,1,4,5", "--mirror", "--dtype", "float16",
                             "--device", device, "--out", data_path(std::string(device) + ".npy")});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  EXPECT_EQ(read_npy_values(data_path("cpu.npy")), read_npy_values(data_path("cuda.npy")));
}

}  // namespace
}  // namespace normkit
