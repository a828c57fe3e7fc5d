// Tests of the .npy reader and atomic writer.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "io/npy.hpp"
#include "normkit/dtype.hpp"
#include "file_test_support.hpp"
#include "normkit/status.hpp"

namespace {

namespace fs = std::filesystem;
using normkit::testing::fails_with;
using normkit::DType;
using normkit::Status;
using normkit::StatusCode;
using normkit::io::NpyArray;
using normkit::io::read_npy;
using normkit::io::write_npy_atomic;

constexpr auto read_bytes = normkit::testing::read_file_bytes;
constexpr auto write_bytes = normkit::testing::write_file_bytes;

// A .npy file with the given version, header text (used verbatim) and data bytes.
std::string npy_bytes(int major, const std::string& header, const std::string& data) {
  std::string s = "\x93NUMPY";
  s += static_cast<char>(major);
  s += '\0';
  const std::size_t length_bytes = major == 1 ? 2 : 4;
  for (std::size_t i = 0; i < length_bytes; ++i) s += static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  return s + header + data;
}

std::vector<unsigned char> pattern(std::size_t n) {
  std::vector<unsigned char> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<unsigned char>(i * 37 + 11);
  return v;
}

class NpyTest : public normkit::testing::TempDirTest {
 protected:
  // Writes `bytes` to a file and reads it back with read_npy.
  Status read_raw(const std::string& bytes, NpyArray* out = nullptr) {
    NpyArray local;
    write_bytes(path("raw.npy"), bytes);
    return read_npy(path("raw.npy"), out ? out : &local);
  }
};

TEST_F(NpyTest, RoundTripsEveryDtypeAndShape) {
  const DType dtypes[] = {DType::float32, DType::float64, DType::float16, DType::uint8, DType::int64};
  const std::vector<std::vector<std::int64_t>> shapes = {{}, {0}, {3, 0}, {5}, {2, 3}, {2, 3, 4}, {1, 1, 1, 7}};
  for (DType dtype : dtypes) {
    for (const auto& shape : shapes) {
      std::size_t numel = 1;
      for (auto e : shape) numel *= static_cast<std::size_t>(e);
      const auto data = pattern(numel * normkit::dtype_size(dtype));
      const std::string file = path("a.npy");
      ASSERT_TRUE(write_npy_atomic(file, dtype, shape, data.data()).ok());
      NpyArray array;
      Status s = read_npy(file, &array);
      ASSERT_TRUE(s.ok()) << s.message();
      EXPECT_EQ(array.dtype, dtype);
      EXPECT_EQ(array.shape, shape);
      EXPECT_EQ(array.data, data);
      // Layout: version 1.0, data 64-byte aligned, header ends with '\n'.
      const std::string bytes = read_bytes(file);
      ASSERT_GE(bytes.size(), 10u);
      EXPECT_EQ(bytes[6], 1);
      const std::size_t header_length = static_cast<unsigned char>(bytes[8]) | static_cast<unsigned char>(bytes[9]) << 8;
      EXPECT_EQ((10 + header_length) % 64, 0u);
      EXPECT_EQ(bytes[10 + header_length - 1], '\n');
      EXPECT_EQ(bytes.size(), 10 + header_length + data.size());
      EXPECT_EQ(entries(), 1u);  // no temporary left behind
    }
  }
}

TEST_F(NpyTest, WritesTheHeaderNumpyWrites) {
  const float values[6] = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(write_npy_atomic(path("b.npy"), DType::float32, {2, 3}, values).ok());
  const std::string bytes = read_bytes(path("b.npy"));
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  EXPECT_EQ(bytes.substr(0, 6), "\x93NUMPY");
  EXPECT_EQ(bytes.substr(10, dict.size()), dict);
  ASSERT_TRUE(write_npy_atomic(path("c.npy"), DType::uint8, {4}, values).ok());
  EXPECT_NE(read_bytes(path("c.npy")).find("'descr': '|u1', 'fortran_order': False, 'shape': (4,), }"), std::string::npos);
  ASSERT_TRUE(write_npy_atomic(path("d.npy"), DType::float64, {}, values).ok());
  EXPECT_NE(read_bytes(path("d.npy")).find("'shape': (), }"), std::string::npos);
}

TEST_F(NpyTest, OverwritesAnExistingFile) {
  const std::int64_t a[2] = {1, 2}, b[3] = {7, 8, 9};
  ASSERT_TRUE(write_npy_atomic(path("x.npy"), DType::int64, {2}, a).ok());
  ASSERT_TRUE(write_npy_atomic(path("x.npy"), DType::int64, {3}, b).ok());
  NpyArray array;
  ASSERT_TRUE(read_npy(path("x.npy"), &array).ok());
  EXPECT_EQ(array.shape, std::vector<std::int64_t>{3});
  EXPECT_EQ(entries(), 1u);
}

TEST_F(NpyTest, ReadsHandWrittenVersion1HeaderWithOddFormatting) {
  const std::string header = "{ 'shape' : ( 2 , 3 , ) ,'fortran_order':False,\t\"descr\":'<f8' , }     \n";
  const auto data = pattern(48);
  NpyArray array;
  Status s = read_raw(npy_bytes(1, header, std::string(data.begin(), data.end())), &array);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(array.dtype, DType::float64);
  EXPECT_EQ(array.shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(array.data, data);
}

TEST_F(NpyTest, ReadsVersion2And3Headers) {
  NpyArray array;
  Status s = read_raw(npy_bytes(2, "{'descr':'<u1','fortran_order':False,'shape':(4,)}\n", "abcd"), &array);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(array.dtype, DType::uint8);
  EXPECT_EQ(array.shape, std::vector<std::int64_t>{4});
  EXPECT_EQ(std::string(array.data.begin(), array.data.end()), "abcd");

  s = read_raw(npy_bytes(3, "{'fortran_order': False, 'descr': '=f2', 'shape': (), }\n", "xy"), &array);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(array.dtype, DType::float16);
  EXPECT_TRUE(array.shape.empty());
}

TEST_F(NpyTest, ReadsPython2LongsAndZeroSizeShapes) {
  NpyArray array;
  Status s = read_raw(npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3L, 0L), }\n", ""), &array);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(array.shape, (std::vector<std::int64_t>{3, 0}));
  EXPECT_TRUE(array.data.empty());
}

TEST_F(NpyTest, MissingFileIsIoError) {
  NpyArray array;
  Status s = read_npy(path("nope.npy"), &array);
  EXPECT_TRUE(fails_with(s, StatusCode::io_error, "cannot open"));
  EXPECT_NE(s.message().find("nope.npy"), std::string::npos);
  EXPECT_TRUE(fails_with(read_npy(dir_, &array), StatusCode::io_error, "regular file"));
  EXPECT_TRUE(fails_with(read_npy(path("a"), nullptr), StatusCode::null_pointer, "out"));
}

TEST_F(NpyTest, RejectsBadMagicVersionAndShortFiles) {
  EXPECT_TRUE(fails_with(read_raw("\x93NUM"), StatusCode::bad_file, "too short"));
  EXPECT_TRUE(fails_with(read_raw("PK\x03\x04 this is a zip file"), StatusCode::bad_file, "magic"));
  std::string v4 = npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", "abcd");
  v4[6] = 4;
  EXPECT_TRUE(fails_with(read_raw(v4), StatusCode::bad_file, "version 4.0"));
}

TEST_F(NpyTest, RejectsTruncatedHeader) {
  const std::string full = npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", "abcd");
  EXPECT_TRUE(fails_with(read_raw(full.substr(0, 30)), StatusCode::bad_file, "truncated"));
  // Version 2.0 needs four length bytes.
  EXPECT_TRUE(fails_with(read_raw(std::string("\x93NUMPY\x02\x00\x10\x00", 10)), StatusCode::bad_file, "truncated"));
  // A 4 GB header length in a tiny file must not be allocated.
  EXPECT_TRUE(fails_with(read_raw(std::string("\x93NUMPY\x02\x00\xff\xff\xff\xff{}", 14)), StatusCode::bad_file, "truncated"));
}

TEST_F(NpyTest, RejectsMalformedHeaders) {
  const char* bad_headers[] = {
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)\n",          // no closing brace
      "'descr': '<f4', 'fortran_order': False, 'shape': (2,)}\n",          // no opening brace
      "{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}\n",          // missing comma
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk\n",    // text after the dict
      "{'descr': '<f4', 'fortran_order': False}\n",                        // missing shape
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}\n",  // unknown key
      "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}\n",
      "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}\n",
      "{'descr': '<f4', 'fortran_order': False, 'shape': 2}\n",
      "{'descr': '<f4', 'fortran_order': False, 'shape': ('2',)}\n",
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2,\n",
      "{'descr: '<f4', 'fortran_order': False, 'shape': (2,)}\n",
      "",
  };
  for (const char* header : bad_headers) {
    EXPECT_TRUE(fails_with(read_raw(npy_bytes(1, header, "12345678")), StatusCode::bad_file, "malformed header")) << header;
  }
}

TEST_F(NpyTest, RejectsTruncatedAndTrailingData) {
  const std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000,), }\n";
  Status s = read_raw(npy_bytes(1, header, std::string(1000, 'x')));
  EXPECT_TRUE(fails_with(s, StatusCode::bad_file, "file is truncated: expected 4000 data bytes, got 1000"));
  EXPECT_NE(s.message().find("raw.npy"), std::string::npos);
  EXPECT_TRUE(fails_with(read_raw(npy_bytes(1, header, std::string(4001, 'x'))), StatusCode::bad_file, "trailing"));
  // A huge but representable shape is caught by the size check, not by a giant allocation.
  EXPECT_TRUE(fails_with(read_raw(npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }\n", "x")),
                         StatusCode::bad_file, "truncated"));
}

TEST_F(NpyTest, RejectsOverflowingAndNegativeShapes) {
  const std::string prefix = "{'descr': '<f4', 'fortran_order': False, 'shape': ";
  // 2**62 * 8 elements overflow int64.
  EXPECT_TRUE(fails_with(read_raw(npy_bytes(1, prefix + "(4611686018427387904, 8), }\n", "")), StatusCode::bad_file, "overflow"));
  // 2**62 elements fit, their 2**64 bytes do not.
  EXPECT_TRUE(fails_with(read_raw(npy_bytes(1, prefix + "(4611686018427387904,), }\n", "")), StatusCode::bad_file, "overflow"));
  EXPECT_TRUE(fails_with(read_raw(npy_bytes(1, prefix + "(99999999999999999999999,), }\n", "")), StatusCode::bad_file, "overflow"));
  EXPECT_TRUE(fails_with(read_raw(npy_bytes(1, prefix + "(-3, 2), }\n", "")), StatusCode::bad_file, "negative"));
}

TEST_F(NpyTest, RejectsFortranOrder) {
  Status s = read_raw(npy_bytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n", std::string(16, 'x')));
  EXPECT_TRUE(fails_with(s, StatusCode::bad_file, "Fortran"));
  EXPECT_NE(s.message().find("ascontiguousarray"), std::string::npos);
}

TEST_F(NpyTest, RejectsUnsupportedDtypes) {
  auto with_descr = [](const std::string& descr) {
    return npy_bytes(1, "{'descr': " + descr + ", 'fortran_order': False, 'shape': (2,), }\n", std::string(8, 'x'));
  };
  Status s = read_raw(with_descr("'>f4'"));
  EXPECT_TRUE(fails_with(s, StatusCode::unsupported_dtype, "big-endian"));
  EXPECT_NE(s.message().find("astype('<f4')"), std::string::npos);
  EXPECT_TRUE(fails_with(read_raw(with_descr("'<i4'")), StatusCode::unsupported_dtype, "'<i4'"));
  EXPECT_TRUE(fails_with(read_raw(with_descr("'<c8'")), StatusCode::unsupported_dtype, "'<c8'"));
  EXPECT_TRUE(fails_with(read_raw(with_descr("'|b1'")), StatusCode::unsupported_dtype, "'|b1'"));
  EXPECT_TRUE(fails_with(read_raw(with_descr("'|O'")), StatusCode::unsupported_dtype, "'|O'"));
  EXPECT_TRUE(fails_with(read_raw(with_descr("'|f4'")), StatusCode::unsupported_dtype, "'|f4'"));
  EXPECT_TRUE(fails_with(read_raw(with_descr("[('a', '<f4')]")), StatusCode::unsupported_dtype, "structured"));
  // Byte order does not matter for single bytes.
  EXPECT_TRUE(read_raw(npy_bytes(1, "{'descr': '>u1', 'fortran_order': False, 'shape': (2,), }\n", "ab")).ok());
}

TEST_F(NpyTest, FailedReadLeavesOutputUntouched) {
  NpyArray array;
  array.shape = {42};
  EXPECT_FALSE(read_raw("garbage garbage", &array).ok());
  EXPECT_EQ(array.shape, std::vector<std::int64_t>{42});
}

TEST_F(NpyTest, WriteRejectsBadArguments) {
  const std::uint16_t h[4] = {};
  EXPECT_TRUE(fails_with(write_npy_atomic(path("bf.npy"), DType::bfloat16, {4}, h), StatusCode::unsupported_dtype, "bfloat16"));
  EXPECT_TRUE(fails_with(write_npy_atomic(path("n.npy"), DType::float16, {-1}, h), StatusCode::invalid_argument, "negative"));
  EXPECT_TRUE(fails_with(write_npy_atomic(path("o.npy"), DType::float64, {std::int64_t(1) << 62, 4}, h), StatusCode::overflow, "overflow"));
  EXPECT_TRUE(fails_with(write_npy_atomic(path("p.npy"), DType::float16, {4}, nullptr), StatusCode::null_pointer, "null"));
  EXPECT_TRUE(write_npy_atomic(path("e.npy"), DType::float16, {0}, nullptr).ok());  // nothing to read
  EXPECT_EQ(entries(), 1u);
}

TEST_F(NpyTest, FailedAtomicWriteLeavesNothingBehind) {
  const float v[2] = {1, 2};
  Status s = write_npy_atomic(path("missing_dir/out.npy"), DType::float32, {2}, v);
  EXPECT_TRUE(fails_with(s, StatusCode::io_error, "missing_dir/out.npy"));
  EXPECT_EQ(entries(), 0u);
  // The rename fails when the target is a directory: the temporary must be removed.
  fs::create_directory(path("target.npy"));
  EXPECT_TRUE(fails_with(write_npy_atomic(path("target.npy"), DType::float32, {2}, v), StatusCode::io_error, "rename"));
  EXPECT_EQ(entries(), 1u);
  EXPECT_TRUE(fs::is_directory(path("target.npy")));
}

}  // namespace
