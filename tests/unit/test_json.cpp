// Tests of the JSON reader under the safetensors header and the state-file metadata.
#include <gtest/gtest.h>

#include <string>

#include "io/json.hpp"

namespace {

using normkit::io::JsonValue;
using normkit::io::parse_json;

JsonValue parsed(const std::string& text) {
  JsonValue v;
  std::string error;
  EXPECT_TRUE(parse_json(text, &v, &error)) << text << ": " << error;
  return v;
}

std::string error_of(const std::string& text) {
  JsonValue v;
  std::string error;
  EXPECT_FALSE(parse_json(text, &v, &error)) << text;
  return error;
}

TEST(Json, ParsesEveryKindKeepingMemberOrder) {
  const JsonValue v = parsed(" {\"b\": [1, -2.5e3, true, null], \"a\": \"x\\u00e9\\ud83d\\ude00\", \"c\": {}} ");
  ASSERT_EQ(v.kind, JsonValue::Kind::object);
  ASSERT_EQ(v.keys.size(), 3u);
  EXPECT_EQ(v.keys[0], "b");
  EXPECT_EQ(v.keys[1], "a");
  EXPECT_EQ(v.items[0].items[1].text, "-2.5e3");
  EXPECT_TRUE(v.items[0].items[2].boolean);
  EXPECT_EQ(v.items[0].items[3].kind, JsonValue::Kind::null);
  EXPECT_EQ(v.items[1].text, "x\xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_EQ(v.items[2].kind, JsonValue::Kind::object);
}

TEST(Json, RejectsMalformedTextSayingWhere) {
  EXPECT_NE(error_of("{\"a\": 1,}").find("at byte"), std::string::npos);
  EXPECT_NE(error_of("[1 2]").find("expected ',' or ']'"), std::string::npos);
  EXPECT_NE(error_of("\"abc").find("unterminated"), std::string::npos);
  EXPECT_NE(error_of("\"\\ud800\"").find("surrogate"), std::string::npos);
  EXPECT_NE(error_of("01").find("unexpected text"), std::string::npos);
  EXPECT_NE(error_of("1.").find("invalid number"), std::string::npos);
  EXPECT_NE(error_of("\"a\tb\"").find("control character"), std::string::npos);
  EXPECT_NE(error_of("").find("end"), std::string::npos);
  EXPECT_NE(error_of(std::string(100, '[') + std::string(100, ']')).find("nesting too deep"), std::string::npos);
}

TEST(Json, ConvertsIndexesIntegersAndDoubles) {
  std::int64_t i = 0;
  EXPECT_EQ(normkit::io::json_to_index(parsed("9223372036854775807"), &i), "");
  EXPECT_EQ(i, INT64_MAX);
  EXPECT_NE(normkit::io::json_to_index(parsed("9223372036854775808"), &i).find("too large"), std::string::npos);
  EXPECT_NE(normkit::io::json_to_index(parsed("-1"), &i).find("negative"), std::string::npos);
  EXPECT_NE(normkit::io::json_to_index(parsed("1e3"), &i).find("integer"), std::string::npos);
  EXPECT_NE(normkit::io::json_to_index(parsed("\"3\""), &i).find("a string"), std::string::npos);
  EXPECT_EQ(normkit::io::json_to_integer(parsed("-9223372036854775807"), &i), "");
  EXPECT_EQ(i, -INT64_MAX);
  double d = 0;
  EXPECT_TRUE(normkit::io::json_to_double(parsed("9.9999999999999995e-08"), &d));
  EXPECT_EQ(d, 1e-7);
  EXPECT_FALSE(normkit::io::json_to_double(parsed("1e999"), &d));  // not finite
  EXPECT_FALSE(normkit::io::json_to_double(parsed("true"), &d));
}

TEST(Json, Utf8ValidationAndStringEscapes) {
  EXPECT_TRUE(normkit::io::valid_utf8("caf\xC3\xA9"));
  EXPECT_FALSE(normkit::io::valid_utf8("\xC0\xAF"));          // overlong
  EXPECT_FALSE(normkit::io::valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(normkit::io::valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  std::string out;
  normkit::io::append_json_string(&out, "q\"b\\c\x01");
  EXPECT_EQ(out, "\"q\\\"b\\\\c\\u0001\"");
  EXPECT_EQ(parsed(out).text, "q\"b\\c\x01");  // round trip
}

}  // namespace
