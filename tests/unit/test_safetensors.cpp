// Tests of the .safetensors reader and atomic writer.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "io/safetensors.hpp"
#include "normkit/dtype.hpp"
#include "file_test_support.hpp"
#include "normkit/status.hpp"

namespace {

namespace fs = std::filesystem;
using normkit::testing::fails_with;
using normkit::DType;
using normkit::Status;
using normkit::StatusCode;
using normkit::io::read_safetensors;
using normkit::io::SafetensorsFile;
using normkit::io::SafetensorsTensor;
using normkit::io::write_safetensors_atomic;

constexpr auto file_bytes = normkit::testing::read_file_bytes;

std::string u64_le(std::uint64_t v) {
  std::string s;
  for (int i = 0; i < 8; ++i) s += static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}

// A safetensors file: length prefix, the header used verbatim, then `data`.
std::string st_bytes(const std::string& header, const std::string& data) { return u64_le(header.size()) + header + data; }

SafetensorsTensor make_tensor(const std::string& name, DType dtype, std::vector<std::int64_t> shape) {
  SafetensorsTensor t;
  t.name = name;
  t.dtype = dtype;
  t.shape = std::move(shape);
  std::size_t n = normkit::dtype_size(dtype);
  for (auto e : t.shape) n *= static_cast<std::size_t>(e);
  for (std::size_t i = 0; i < n; ++i) t.data.push_back(static_cast<unsigned char>(i * 31 + name.size()));
  return t;
}

class SafetensorsTest : public normkit::testing::TempDirTest {
 protected:
  Status read_raw(const std::string& bytes, SafetensorsFile* out = nullptr) {
    normkit::testing::write_file_bytes(path("raw.safetensors"), bytes);
    SafetensorsFile local;
    return read_safetensors(path("raw.safetensors"), out ? out : &local);
  }
};

TEST_F(SafetensorsTest, RoundTripsEveryDtypeWithMetadata) {
  SafetensorsFile file;
  file.tensors = {make_tensor("w.f32", DType::float32, {2, 3}), make_tensor("f64", DType::float64, {}),
                  make_tensor("f16", DType::float16, {0}),      make_tensor("bf16", DType::bfloat16, {5}),
                  make_tensor("u8", DType::uint8, {3, 0}),      make_tensor("i64", DType::int64, {1, 2, 2}),
                  make_tensor("odd \"name\"\\\n\x01 \xC3\xA9", DType::uint8, {3})};
  file.metadata = {{"format", "pt"}, {"note", "quote \" backslash \\ tab \t ctl \x1f caf\xC3\xA9"}};
  const std::string p = path("m.safetensors");
  ASSERT_TRUE(write_safetensors_atomic(p, file).ok());
  EXPECT_EQ(entries(), 1u);

  SafetensorsFile back;
  Status s = read_safetensors(p, &back);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(back.metadata, file.metadata);
  ASSERT_EQ(back.tensors.size(), file.tensors.size());
  for (std::size_t i = 0; i < file.tensors.size(); ++i) {
    EXPECT_EQ(back.tensors[i].name, file.tensors[i].name);
    EXPECT_EQ(back.tensors[i].dtype, file.tensors[i].dtype);
    EXPECT_EQ(back.tensors[i].shape, file.tensors[i].shape);
    EXPECT_EQ(back.tensors[i].data, file.tensors[i].data);
  }
  ASSERT_NE(back.find("i64"), nullptr);
  EXPECT_EQ(back.find("i64")->shape, (std::vector<std::int64_t>{1, 2, 2}));
  EXPECT_EQ(back.find("absent"), nullptr);

  // Byte layout: u64 LE header length, a multiple of 8, header then the contiguous data.
  const std::string bytes = file_bytes(p);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  std::size_t data_bytes = 0;
  for (const auto& t : file.tensors) data_bytes += t.data.size();
  EXPECT_EQ(bytes.size(), 8 + n + data_bytes);
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.rfind("{\"__metadata__\":{\"format\":\"pt\",", 0), 0u) << header;
  EXPECT_NE(header.find("\"w.f32\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"), std::string::npos) << header;
  EXPECT_NE(header.find("\\u0001"), std::string::npos);
  EXPECT_NE(header.find("\\\"name\\\"\\\\\\u000a"), std::string::npos) << header;
  EXPECT_EQ(bytes.substr(8 + n, 24), std::string(file.tensors[0].data.begin(), file.tensors[0].data.end()));
}

TEST_F(SafetensorsTest, OmitsEmptyMetadataAndHandlesEmptyFile) {
  SafetensorsFile file;
  ASSERT_TRUE(write_safetensors_atomic(path("e.safetensors"), file).ok());
  EXPECT_EQ(file_bytes(path("e.safetensors")), u64_le(8) + "{}      ");
  file.tensors = {make_tensor("x", DType::float32, {1})};
  ASSERT_TRUE(write_safetensors_atomic(path("e.safetensors"), file).ok());
  EXPECT_EQ(file_bytes(path("e.safetensors")).find("__metadata__"), std::string::npos);
  SafetensorsFile back;
  ASSERT_TRUE(read_safetensors(path("e.safetensors"), &back).ok());
  EXPECT_TRUE(back.metadata.empty());
  EXPECT_EQ(entries(), 1u);
}

TEST_F(SafetensorsTest, ReadsHandWrittenHeaderWithEscapesAndAnyOrder) {
  // Header order differs from buffer order; names use \u escapes incl. a surrogate pair.
  const std::string header =
      " { \"b\\u00e9\" : {\"shape\": [2], \"dtype\": \"U8\", \"data_offsets\": [4, 6], \"extra\": null},\n"
      "   \"\\ud83d\\ude00\": {\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
      "   \"__metadata__\": {\"k\\\"\": \"v\\n\"} } ";
  SafetensorsFile file;
  Status s = read_raw(st_bytes(header, "ABCDEF"), &file);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(file.tensors.size(), 2u);
  EXPECT_EQ(file.tensors[0].name, "b\xC3\xA9");
  EXPECT_EQ(std::string(file.tensors[0].data.begin(), file.tensors[0].data.end()), "EF");
  EXPECT_EQ(file.tensors[1].name, "\xF0\x9F\x98\x80");
  EXPECT_EQ(std::string(file.tensors[1].data.begin(), file.tensors[1].data.end()), "ABCD");
  ASSERT_EQ(file.metadata.size(), 1u);
  EXPECT_EQ(file.metadata[0].first, "k\"");
  EXPECT_EQ(file.metadata[0].second, "v\n");
}

TEST_F(SafetensorsTest, MissingFileIsIoError) {
  SafetensorsFile file;
  Status s = read_safetensors(path("none.safetensors"), &file);
  EXPECT_TRUE(fails_with(s, StatusCode::io_error, "cannot open"));
  EXPECT_NE(s.message().find("none.safetensors"), std::string::npos);
  EXPECT_TRUE(fails_with(read_safetensors(path("x"), nullptr), StatusCode::null_pointer, "out"));
}

TEST_F(SafetensorsTest, RejectsTruncatedFilesAndBadHeaderLengths) {
  EXPECT_TRUE(fails_with(read_raw("\x10\x00\x00"), StatusCode::bad_file, "too short"));
  EXPECT_TRUE(fails_with(read_raw(u64_le(64) + "{}"), StatusCode::bad_file, "truncated"));
  EXPECT_TRUE(fails_with(read_raw(u64_le(~0ull) + "{}"), StatusCode::bad_file, "exceeds"));
  EXPECT_TRUE(fails_with(read_raw(u64_le(200'000'000) + "{}"), StatusCode::bad_file, "exceeds"));
  // Data cut short: the last tensor now ends past the buffer.
  const std::string good = st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "12345678");
  ASSERT_TRUE(read_raw(good).ok());
  EXPECT_TRUE(fails_with(read_raw(good.substr(0, good.size() - 3)), StatusCode::bad_file, "past the end"));
}

TEST_F(SafetensorsTest, RejectsBadJson) {
  const char* bad[] = {
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}",   // unclosed
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0],}}",  // trailing comma
      "{'a':{}}",                                                          // single quotes
      "{\"a\":{\"dtype\":\"F32\" \"shape\":[0]}}",                          // missing comma
      "{\"a\" {}}",                                                         // missing colon
      "{\"a\":tru}",                                                        // bad literal
      "{\"a\":01}",                                                         // leading zero
      "{\"a\":1.}",                                                         // bad fraction
      "{\"a\":\"\\x\"}",                                                    // bad escape
      "{\"a\":\"\\ud800\"}",                                                // lone surrogate
      "{\"a\":\"\\u12G4\"}",                                                // bad hex
      "{\"a\":\"tab\there\"}",                                              // raw control char
      "{} {}",                                                              // two values
      "",                                                                   // nothing
  };
  for (const char* header : bad) {
    EXPECT_TRUE(fails_with(read_raw(st_bytes(header, "")), StatusCode::bad_file, "JSON")) << header;
  }
  EXPECT_TRUE(fails_with(read_raw(st_bytes("[1, 2]", "")), StatusCode::bad_file, "JSON object"));
  EXPECT_TRUE(fails_with(read_raw(st_bytes("{\"\xC3\x28\":1}", "")), StatusCode::bad_file, "UTF-8"));
  // Deep nesting must be rejected, not overflow the stack.
  EXPECT_TRUE(fails_with(read_raw(st_bytes("{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}", "")),
                         StatusCode::bad_file, "nesting"));
}

TEST_F(SafetensorsTest, RejectsMalformedTensorEntries) {
  struct Case {
    const char* entry;
    StatusCode code;
    const char* word;
  };
  const Case cases[] = {
      {"[1]", StatusCode::bad_file, "JSON object"},
      {"{\"shape\":[2],\"data_offsets\":[0,8]}", StatusCode::bad_file, "missing 'dtype'"},
      {"{\"dtype\":\"F32\",\"data_offsets\":[0,8]}", StatusCode::bad_file, "missing 'shape'"},
      {"{\"dtype\":\"F32\",\"shape\":[2]}", StatusCode::bad_file, "missing 'data_offsets'"},
      {"{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}", StatusCode::bad_file, "'dtype' must be a string"},
      {"{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}", StatusCode::bad_file, "'shape' must be an array"},
      {"{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}", StatusCode::bad_file, "integer"},
      {"{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}", StatusCode::bad_file, "integer"},
      {"{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}", StatusCode::bad_file, "negative"},
      {"{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}", StatusCode::bad_file, "too large"},
      {"{\"dtype\":\"F32\",\"shape\":[4611686018427387904,8],\"data_offsets\":[0,8]}", StatusCode::bad_file, "overflow"},
      {"{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}", StatusCode::bad_file, "unknown dtype 'F33'"},
      {"{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}", StatusCode::unsupported_dtype, "I32"},
      {"{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}", StatusCode::bad_file, "data_offsets"},
      {"{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}", StatusCode::bad_file, "after end"},
      {"{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}", StatusCode::bad_file, "past the end"},
      {"{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}", StatusCode::bad_file, "needs 12"},
      {"{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", StatusCode::bad_file, "duplicate"},
  };
  for (const Case& c : cases) {
    Status s = read_raw(st_bytes(std::string("{\"t\":") + c.entry + "}", "12345678"));
    EXPECT_TRUE(fails_with(s, c.code, c.word)) << c.entry;
    EXPECT_NE(s.message().find("raw.safetensors"), std::string::npos);
  }
}

TEST_F(SafetensorsTest, RejectsOverlapsHolesAndUncoveredBytes) {
  auto entry = [](const char* name, int begin, int end) {
    return std::string("\"") + name + "\":{\"dtype\":\"U8\",\"shape\":[" + std::to_string(end - begin) +
           "],\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(end) + "]}";
  };
  EXPECT_TRUE(fails_with(read_raw(st_bytes("{" + entry("a", 0, 6) + "," + entry("b", 4, 8) + "}", "12345678")),
                         StatusCode::bad_file, "overlap"));
  EXPECT_TRUE(fails_with(read_raw(st_bytes("{" + entry("a", 0, 4) + "," + entry("b", 0, 4) + "}", "1234")),
                         StatusCode::bad_file, "overlap"));
  EXPECT_TRUE(fails_with(read_raw(st_bytes("{" + entry("a", 0, 2) + "," + entry("b", 4, 8) + "}", "12345678")),
                         StatusCode::bad_file, "hole"));
  EXPECT_TRUE(fails_with(read_raw(st_bytes("{" + entry("a", 0, 4) + "}", "12345678")), StatusCode::bad_file, "trailing"));
  // Zero-size tensors may sit anywhere on a boundary.
  EXPECT_TRUE(read_raw(st_bytes("{" + entry("a", 0, 4) + "," + entry("z", 4, 4) + "," + entry("b", 4, 8) + "}", "12345678")).ok());
}

TEST_F(SafetensorsTest, RejectsBadMetadataAndDuplicateNames) {
  const std::string t = "\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}";
  EXPECT_TRUE(fails_with(read_raw(st_bytes("{\"__metadata__\":{\"x\":1}," + t + "}", "z")), StatusCode::bad_file,
                         "__metadata__ value for key 'x' must be a string"));
  EXPECT_TRUE(fails_with(read_raw(st_bytes("{\"__metadata__\":[\"x\"]," + t + "}", "z")), StatusCode::bad_file,
                         "__metadata__ must be a JSON object"));
  EXPECT_TRUE(fails_with(read_raw(st_bytes("{\"__metadata__\":{\"x\":\"1\",\"x\":\"2\"}," + t + "}", "z")),
                         StatusCode::bad_file, "duplicate"));
  EXPECT_TRUE(fails_with(read_raw(st_bytes("{" + t + "," + t + "}", "z")), StatusCode::bad_file, "duplicate tensor name 't'"));
}

TEST_F(SafetensorsTest, FailedReadLeavesOutputUntouched) {
  SafetensorsFile file;
  file.metadata = {{"keep", "me"}};
  EXPECT_FALSE(read_raw(st_bytes("{\"a\":1}", ""), &file).ok());
  ASSERT_EQ(file.metadata.size(), 1u);
}

TEST_F(SafetensorsTest, WriteValidatesArguments) {
  SafetensorsFile file;
  file.tensors = {make_tensor("a", DType::float32, {2, 2})};
  file.tensors[0].data.pop_back();
  EXPECT_TRUE(fails_with(write_safetensors_atomic(path("w.safetensors"), file), StatusCode::invalid_argument, "needs 16"));
  file.tensors = {make_tensor("a", DType::uint8, {1}), make_tensor("a", DType::uint8, {1})};
  EXPECT_TRUE(fails_with(write_safetensors_atomic(path("w.safetensors"), file), StatusCode::invalid_argument, "duplicate"));
  file.tensors = {make_tensor("__metadata__", DType::uint8, {1})};
  EXPECT_TRUE(fails_with(write_safetensors_atomic(path("w.safetensors"), file), StatusCode::invalid_argument, "reserved"));
  file.tensors = {make_tensor("bad \xff", DType::uint8, {1})};
  EXPECT_TRUE(fails_with(write_safetensors_atomic(path("w.safetensors"), file), StatusCode::invalid_argument, "UTF-8"));
  file.tensors = {make_tensor("neg", DType::uint8, {})};
  file.tensors[0].shape = {-1};
  EXPECT_TRUE(fails_with(write_safetensors_atomic(path("w.safetensors"), file), StatusCode::invalid_argument, "negative"));
  EXPECT_EQ(entries(), 0u);
}

TEST_F(SafetensorsTest, FailedAtomicWriteLeavesNothingBehind) {
  SafetensorsFile file;
  file.tensors = {make_tensor("a", DType::float32, {3})};
  EXPECT_TRUE(fails_with(write_safetensors_atomic(path("no_dir/x.safetensors"), file), StatusCode::io_error, "no_dir/x.safetensors"));
  EXPECT_EQ(entries(), 0u);
  fs::create_directory(path("dir.safetensors"));
  EXPECT_TRUE(fails_with(write_safetensors_atomic(path("dir.safetensors"), file), StatusCode::io_error, "rename"));
  EXPECT_EQ(entries(), 1u);
}

}  // namespace
