// JSON reader and writer helpers (see json.hpp).
#include "io/json.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace normkit::io {

namespace {

void append_utf8(std::string* out, std::uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

class Parser {
 public:
  explicit Parser(const std::string& text) : s_(text) {}

  bool parse(JsonValue* out) {
    skip_ws();
    if (!parse_value(out, 0)) return false;
    skip_ws();
    if (pos_ != s_.size()) return fail("unexpected text after the top-level value");
    return true;
  }

  const std::string& error() const { return error_; }

 private:
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  bool at_end() const { return pos_ >= s_.size(); }
  void skip_ws() {
    while (!at_end() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  bool consume(char c) {
    if (at_end() || s_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  bool fail(const std::string& what) {
    if (error_.empty()) error_ = what + " at byte " + std::to_string(pos_);
    return false;
  }
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  bool parse_value(JsonValue* v, int depth) {
    if (depth > 64) return fail("nesting too deep");  // bounds recursion on hostile input
    const char c = peek();
    if (c == '{') return parse_object(v, depth);
    if (c == '[') return parse_array(v, depth);
    if (c == '"') {
      v->kind = JsonValue::Kind::string;
      return parse_string(&v->text);
    }
    if (c == '-' || is_digit(c)) return parse_number(v);
    for (const char* word : {"true", "false", "null"}) {
      const std::size_t n = std::strlen(word);
      if (s_.compare(pos_, n, word) == 0) {
        pos_ += n;
        v->kind = word[0] == 'n' ? JsonValue::Kind::null : JsonValue::Kind::boolean;
        v->boolean = word[0] == 't';
        return true;
      }
    }
    return fail(at_end() ? "unexpected end of header" : "unexpected character");
  }

  bool parse_object(JsonValue* v, int depth) {
    v->kind = JsonValue::Kind::object;
    ++pos_;  // '{'
    skip_ws();
    if (consume('}')) return true;
    while (true) {
      skip_ws();
      if (peek() != '"') return fail("expected a string key");
      v->keys.emplace_back();
      if (!parse_string(&v->keys.back())) return false;
      skip_ws();
      if (!consume(':')) return fail("expected ':'");
      skip_ws();
      v->items.emplace_back();
      if (!parse_value(&v->items.back(), depth + 1)) return false;
      skip_ws();
      if (consume('}')) return true;
      if (!consume(',')) return fail("expected ',' or '}'");
    }
  }

  bool parse_array(JsonValue* v, int depth) {
    v->kind = JsonValue::Kind::array;
    ++pos_;  // '['
    skip_ws();
    if (consume(']')) return true;
    while (true) {
      skip_ws();
      v->items.emplace_back();
      if (!parse_value(&v->items.back(), depth + 1)) return false;
      skip_ws();
      if (consume(']')) return true;
      if (!consume(',')) return fail("expected ',' or ']'");
    }
  }

  // JSON number grammar; the literal text is kept and converted only where an integer is expected.
  bool parse_number(JsonValue* v) {
    const std::size_t start = pos_;
    consume('-');
    if (consume('0')) {
    } else if (is_digit(peek())) {
      while (is_digit(peek())) ++pos_;
    } else {
      return fail("invalid number");
    }
    if (consume('.')) {
      if (!is_digit(peek())) return fail("invalid number");
      while (is_digit(peek())) ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!is_digit(peek())) return fail("invalid number");
      while (is_digit(peek())) ++pos_;
    }
    v->kind = JsonValue::Kind::number;
    v->text = s_.substr(start, pos_ - start);
    return true;
  }

  bool parse_hex4(std::uint32_t* out) {
    if (pos_ + 4 > s_.size()) return fail("truncated \\u escape");
    std::uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      const int digit = is_digit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
      if (digit < 0) return fail("invalid \\u escape");
      value = value * 16 + static_cast<std::uint32_t>(digit);
    }
    *out = value;
    return true;
  }

  bool parse_string(std::string* out) {
    ++pos_;  // opening quote
    while (true) {
      if (at_end()) return fail("unterminated string");
      const char c = s_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return fail("unescaped control character in string");
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (at_end()) return fail("unterminated string");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!parse_hex4(&cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return fail("unpaired surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {  // a high surrogate must be followed by a low one
            std::uint32_t low = 0;
            if (!consume('\\') || !consume('u')) return fail("unpaired surrogate in \\u escape");
            if (!parse_hex4(&low)) return false;
            if (low < 0xDC00 || low > 0xDFFF) return fail("unpaired surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: return fail("invalid escape sequence");
      }
    }
  }

  const std::string& s_;
  std::size_t pos_ = 0;
  std::string error_;
};

}  // namespace

const char* json_kind_name(JsonValue::Kind kind) noexcept {
  switch (kind) {
    case JsonValue::Kind::null: return "null";
    case JsonValue::Kind::boolean: return "a boolean";
    case JsonValue::Kind::number: return "a number";
    case JsonValue::Kind::string: return "a string";
    case JsonValue::Kind::array: return "an array";
    case JsonValue::Kind::object: return "an object";
  }
  return "?";
}

bool valid_utf8(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    std::uint32_t cp = c & (0x7F >> len);
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    const std::uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;  // overlong, surrogate
    i += len;
  }
  return true;
}

void append_json_string(std::string* out, const std::string& s) {
  out->push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(ch);
    } else if (c < 0x20) {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\u%04x", static_cast<unsigned>(c));
      out->append(escape);
    } else {
      out->push_back(ch);  // UTF-8 passes through unchanged
    }
  }
  out->push_back('"');
}


bool parse_json(const std::string& text, JsonValue* out, std::string* error) {
  JsonValue value;
  Parser parser(text);
  if (!parser.parse(&value)) {
    if (error != nullptr) *error = parser.error();
    return false;
  }
  *out = std::move(value);
  return true;
}

std::string json_to_index(const JsonValue& v, std::int64_t* out) {
  if (v.kind != JsonValue::Kind::number) return std::string("must be an integer, got ") + json_kind_name(v.kind);
  if (v.text.find_first_of(".eE") != std::string::npos) return "must be an integer, got " + v.text;
  if (v.text[0] == '-') return "must not be negative, got " + v.text;
  std::int64_t value = 0;
  for (char c : v.text) {
    const int digit = c - '0';
    if (value > (std::numeric_limits<std::int64_t>::max() - digit) / 10) return "is too large: " + v.text;
    value = value * 10 + digit;
  }
  *out = value;
  return "";
}


std::string json_to_integer(const JsonValue& v, std::int64_t* out) {
  if (v.kind == JsonValue::Kind::number && !v.text.empty() && v.text[0] == '-') {
    JsonValue magnitude = v;
    magnitude.text = v.text.substr(1);
    std::int64_t m = 0;
    const std::string why = json_to_index(magnitude, &m);
    if (!why.empty()) return why;
    *out = -m;  // -(2^63 - 1) at worst: no overflow
    return "";
  }
  return json_to_index(v, out);
}

bool json_to_double(const JsonValue& v, double* out) {
  if (v.kind != JsonValue::Kind::number) return false;
  char* end = nullptr;
  const double d = std::strtod(v.text.c_str(), &end);
  if (end == nullptr || *end != '\0' || !std::isfinite(d)) return false;
  *out = d;
  return true;
}

}  // namespace normkit::io
