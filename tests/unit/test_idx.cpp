// Tests of the IDX reader (plain and gzip) and of picking an array file's reader from its first bytes.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "file_test_support.hpp"
#include "io/idx.hpp"
#include "io/npy.hpp"

namespace {

using normkit::DType;
using normkit::Status;
using normkit::StatusCode;
using normkit::io::NpyArray;
using normkit::io::read_array_file;
using normkit::io::read_idx;
using normkit::testing::fails_with;
using normkit::testing::TempDirTest;

std::string big_endian(std::uint32_t v) {
  return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string idx(unsigned char type, const std::vector<std::uint32_t>& shape, const std::string& payload) {
  std::string s{'\0', '\0', static_cast<char>(type), static_cast<char>(shape.size())};
  for (std::uint32_t d : shape) s += big_endian(d);
  return s + payload;
}

std::string iota_bytes(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>(i);
  return s;
}

Status read_memory(const std::string& bytes, NpyArray* out) {
  return read_idx(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "mem.idx", out);
}

class IdxTest : public TempDirTest {};

TEST_F(IdxTest, ReadsUint8ImagesAndLabels) {
  const std::string file = path("images.idx");
  normkit::testing::write_file_bytes(file, idx(0x08, {2, 3, 3}, iota_bytes(18)));
  NpyArray a;
  ASSERT_TRUE(read_idx(file, &a).ok());
  EXPECT_EQ(a.dtype, DType::uint8);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{2, 3, 3}));
  ASSERT_EQ(a.data.size(), 18u);
  for (int i = 0; i < 18; ++i) EXPECT_EQ(a.data[i], i);
  ASSERT_TRUE(read_memory(idx(0x08, {5}, std::string("\x00\x09\x03\x03\x01", 5)), &a).ok());
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{5}));
  EXPECT_EQ(a.data[1], 9);
}

TEST_F(IdxTest, FloatsAreBigEndianOnDisk) {
  // 1.0f = 3f800000, -2.5 = c0200000 (big-endian bytes).
  NpyArray a;
  ASSERT_TRUE(read_memory(idx(0x0D, {2}, std::string("\x3f\x80\x00\x00\xc0\x20\x00\x00", 8)), &a).ok());
  ASSERT_EQ(a.dtype, DType::float32);
  float v[2];
  std::memcpy(v, a.data.data(), 8);
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], -2.5f);
  ASSERT_TRUE(read_memory(idx(0x0E, {1}, std::string("\x40\x08\x00\x00\x00\x00\x00\x00", 8)), &a).ok());  // 3.0
  double d;
  std::memcpy(&d, a.data.data(), 8);
  EXPECT_EQ(a.dtype, DType::float64);
  EXPECT_EQ(d, 3.0);
}

TEST_F(IdxTest, GzipFiles) {
  if (!normkit::io::idx_gzip_supported()) GTEST_SKIP() << "built without zlib";
  NpyArray a;
  const std::string fixtures = NORMKIT_FIXTURES_DIR "/idx/";
  ASSERT_TRUE(read_idx(fixtures + "u8_2x3x3.idx.gz", &a).ok());
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{2, 3, 3}));
  EXPECT_EQ(a.data[17], 17);
  ASSERT_TRUE(read_idx(fixtures + "f32_4.idx.gz", &a).ok());
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{4}));
  // The same bytes from memory (the fuzz target's path).
  const std::string gz = normkit::testing::read_file_bytes(fixtures + "u8_2x3x3.idx.gz");
  ASSERT_TRUE(read_memory(gz, &a).ok());
  EXPECT_EQ(a.data.size(), 18u);
  // Truncated inside the compressed stream, and a complete stream of a truncated file.
  NpyArray untouched;
  EXPECT_TRUE(fails_with(read_memory(gz.substr(0, gz.size() / 2), &untouched), StatusCode::bad_file, "gzip"));
  EXPECT_TRUE(fails_with(read_idx(fixtures + "u8_truncated.idx.gz", &untouched), StatusCode::bad_file, "holds 10 of the 18"));
  EXPECT_TRUE(untouched.data.empty());
  // Cut inside the 8-byte trailer (CRC and size): an error from memory and from a file alike.
  const std::string no_trailer = gz.substr(0, gz.size() - 4);
  EXPECT_TRUE(fails_with(read_memory(no_trailer, &untouched), StatusCode::bad_file, "truncated gzip stream"));
  normkit::testing::write_file_bytes(path("cut.idx.gz"), no_trailer);
  EXPECT_TRUE(fails_with(read_idx(path("cut.idx.gz"), &untouched), StatusCode::bad_file, "truncated gzip stream"));
  // Bytes after the stream that are not a gzip member, and two members in a row (read as gunzip does).
  normkit::testing::write_file_bytes(path("junk.idx.gz"), gz + "junk");
  EXPECT_TRUE(fails_with(read_idx(path("junk.idx.gz"), &untouched), StatusCode::bad_file, "bytes after the gzip stream"));
  EXPECT_TRUE(fails_with(read_memory(gz + "j", &untouched), StatusCode::bad_file, "bytes after the gzip stream"));
  NpyArray twice;
  EXPECT_TRUE(fails_with(read_memory(gz + gz, &twice), StatusCode::bad_file, "data continues past"));  // (18 bytes more than declared)
}

TEST_F(IdxTest, CorruptFilesAreClearErrors) {
  NpyArray a;
  a.shape = {7};  // (changed only on success)
  EXPECT_TRUE(fails_with(read_memory("", &a), StatusCode::bad_file, "shorter than the 4-byte IDX magic"));
  EXPECT_TRUE(fails_with(read_memory(std::string("\x01\x00\x08\x01", 4) + big_endian(1) + "x", &a), StatusCode::bad_file, "not an IDX file"));
  EXPECT_TRUE(fails_with(read_memory(idx(0x07, {1}, "x"), &a), StatusCode::bad_file, "unknown IDX type byte 0x07"));
  EXPECT_TRUE(fails_with(read_memory(idx(0x0C, {1}, "abcd"), &a), StatusCode::unsupported_dtype, "int32"));
  EXPECT_TRUE(fails_with(read_memory(std::string("\x00\x00\x08\x00", 4), &a), StatusCode::bad_file, "dimension count 0"));
  EXPECT_TRUE(fails_with(read_memory(std::string("\x00\x00\x08\x09", 4), &a), StatusCode::bad_file, "dimension count 9"));
  EXPECT_TRUE(fails_with(read_memory(std::string("\x00\x00\x08\x03", 4) + big_endian(2), &a), StatusCode::bad_file, "ends before them"));
  EXPECT_TRUE(fails_with(read_memory(idx(0x08, {2, 3, 3}, iota_bytes(10)), &a), StatusCode::bad_file, "truncated: holds 10 of the 18"));
  EXPECT_TRUE(fails_with(read_memory(idx(0x08, {2}, iota_bytes(4)), &a), StatusCode::bad_file, "data continues past the 2 bytes"));
  EXPECT_TRUE(fails_with(read_memory(idx(0x0E, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, ""), &a), StatusCode::bad_file, "overflow"));
  // A header claiming 4 GB of data with none behind it fails without allocating it.
  EXPECT_TRUE(fails_with(read_memory(idx(0x08, {65536, 65536}, "abc"), &a), StatusCode::bad_file, "holds 3 of the 4294967296"));
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{7}));
  // Errors name the file.
  const std::string file = path("bad.idx");
  normkit::testing::write_file_bytes(file, idx(0x08, {3}, "ab"));
  EXPECT_TRUE(fails_with(read_idx(file, &a), StatusCode::bad_file, file));
  EXPECT_TRUE(fails_with(read_idx(path("missing.idx"), &a), StatusCode::io_error, "missing.idx"));
}

TEST_F(IdxTest, ArrayFilesByTheirFirstBytes) {
  const std::string i = path("a.idx"), n = path("a.npy"), other = path("a.txt");
  normkit::testing::write_file_bytes(i, idx(0x08, {2, 2}, iota_bytes(4)));
  ASSERT_TRUE(normkit::io::write_npy_atomic(n, DType::uint8, {2, 2}, iota_bytes(4).data()).ok());
  normkit::testing::write_file_bytes(other, "hello");
  NpyArray a, b;
  ASSERT_TRUE(read_array_file(i, &a).ok());
  ASSERT_TRUE(read_array_file(n, &b).ok());
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_EQ(a.data, b.data);
  EXPECT_TRUE(fails_with(read_array_file(other, &a), StatusCode::bad_file, "neither a .npy file nor an IDX file"));
}

// The real Fashion-MNIST files when the Debian package is installed (scripts/install-deps.sh installs it).
TEST_F(IdxTest, FashionMnistWhenInstalled) {
  const std::string file = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  if (!normkit::io::idx_gzip_supported() || normkit::testing::read_file_bytes(file).empty()) GTEST_SKIP() << file << " not installed";
  NpyArray a;
  ASSERT_TRUE(read_idx(file, &a).ok());
  EXPECT_EQ(a.dtype, DType::uint8);
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{10000, 28, 28}));
}

}  // namespace
