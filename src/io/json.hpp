// A small JSON (RFC 8259) reader and writer helpers: enough for safetensors headers and the metadata of
// normkit's state files, and strict enough to reject anything else. Inputs are untrusted: nesting is
// bounded, numbers are kept as their literal text and converted only where a caller expects one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace normkit::io {

struct JsonValue {
  enum class Kind { null, boolean, number, string, array, object } kind = Kind::null;
  bool boolean = false;
  std::string text;               // a string's value, or a number's literal text
  std::vector<JsonValue> items;   // array elements, or object member values
  std::vector<std::string> keys;  // object member names, parallel to items (file order kept)
};

// "null", "a boolean", "a number", "a string", "an array", "an object" (for messages).
const char* json_kind_name(JsonValue::Kind kind) noexcept;

// Parses one JSON document that must span all of `text` (surrounding whitespace allowed). On failure
// returns false and sets *error to what went wrong and at which byte. Nesting deeper than 64 fails.
bool parse_json(const std::string& text, JsonValue* out, std::string* error);

// A non-negative integer without fraction or exponent that fits in int64: returns "" and sets *out,
// or says why the value is not one ("must be an integer, got a string", "is too large: ...").
std::string json_to_index(const JsonValue& value, std::int64_t* out);
// Any integer in int64 (negative allowed), same contract.
std::string json_to_integer(const JsonValue& value, std::int64_t* out);
// A finite JSON number as a double; false for anything else.
bool json_to_double(const JsonValue& value, double* out);

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates or code points above U+10FFFF).
bool valid_utf8(const std::string& s);

// Appends `s` as a JSON string literal (quotes, escapes for '"', '\\' and control characters).
void append_json_string(std::string* out, const std::string& s);

}  // namespace normkit::io
