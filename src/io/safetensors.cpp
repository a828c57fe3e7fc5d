// .safetensors reader and writer. Layout: u64 LE header length N, N bytes of UTF-8 JSON mapping
// tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (plus an optional "__metadata__"
// string map), then the data buffer the offsets point into.
#include "io/safetensors.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>

#include "io/atomic_file.hpp"

namespace normkit::io {

namespace {

const char* const kRead = "read_safetensors";
const char* const kWrite = "write_safetensors_atomic";
const char* const kMetadataKey = "__metadata__";
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;  // same limit as the reference implementation

const std::pair<const char*, DType> kDtypeNames[] = {{"F32", DType::float32}, {"F64", DType::float64},
                                                     {"F16", DType::float16}, {"BF16", DType::bfloat16},
                                                     {"U8", DType::uint8},    {"I64", DType::int64}};

// Valid safetensors dtypes normkit does not handle: reported as unsupported_dtype, not bad_file.
const char* const kOtherSafetensorsDtypes[] = {"BOOL", "I8",   "I16",     "U16",     "I32",     "U32",    "U64",
                                               "F4",   "F6_E2M3", "F6_E3M2", "F8_E5M2", "F8_E4M3", "F8_E8M0", "C64"};

const char* safetensors_dtype(DType dtype) {
  for (const auto& entry : kDtypeNames) {
    if (entry.second == dtype) return entry.first;
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

// ---- A small JSON parser: enough to read a safetensors header and reject anything else. ----

struct Json {
  enum class Kind { null, boolean, number, string, array, object } kind = Kind::null;
  bool boolean = false;
  std::string text;               // string value, or a number's literal text
  std::vector<Json> items;        // array elements, or object member values
  std::vector<std::string> keys;  // object member names, parallel to items (order kept)
};

const char* kind_name(Json::Kind kind) {
  switch (kind) {
    case Json::Kind::null: return "null";
    case Json::Kind::boolean: return "a boolean";
    case Json::Kind::number: return "a number";
    case Json::Kind::string: return "a string";
    case Json::Kind::array: return "an array";
    case Json::Kind::object: return "an object";
  }
  return "?";
}

class JsonParser {
 public:
  explicit JsonParser(const std::string& text) : s_(text) {}

  bool parse(Json* out) {
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
    if (error_.empty()) error_ = what + " at byte " + std::to_string(pos_) + " of the header";
    return false;
  }
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  bool parse_value(Json* v, int depth) {
    if (depth > 64) return fail("nesting too deep");  // bounds recursion on hostile input
    const char c = peek();
    if (c == '{') return parse_object(v, depth);
    if (c == '[') return parse_array(v, depth);
    if (c == '"') {
      v->kind = Json::Kind::string;
      return parse_string(&v->text);
    }
    if (c == '-' || is_digit(c)) return parse_number(v);
    for (const char* word : {"true", "false", "null"}) {
      const std::size_t n = std::strlen(word);
      if (s_.compare(pos_, n, word) == 0) {
        pos_ += n;
        v->kind = word[0] == 'n' ? Json::Kind::null : Json::Kind::boolean;
        v->boolean = word[0] == 't';
        return true;
      }
    }
    return fail(at_end() ? "unexpected end of header" : "unexpected character");
  }

  bool parse_object(Json* v, int depth) {
    v->kind = Json::Kind::object;
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

  bool parse_array(Json* v, int depth) {
    v->kind = Json::Kind::array;
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
  bool parse_number(Json* v) {
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
    v->kind = Json::Kind::number;
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

// Reads a non-negative JSON integer; returns "" on success, else why it is not one.
std::string to_index(const Json& v, std::int64_t* out) {
  if (v.kind != Json::Kind::number) return std::string("must be an integer, got ") + kind_name(v.kind);
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

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A tensor entry as read from the header, before its data is loaded.
struct Entry {
  SafetensorsTensor tensor;
  std::int64_t begin = 0, end = 0;
};

Status parse_tensor_entry(const std::string& path, const std::string& name, const Json& v, Entry* entry) {
  auto bad = [&](const std::string& problem) {
    return file_error(StatusCode::bad_file, kRead, path, "tensor '" + name + "': " + problem);
  };
  if (v.kind != Json::Kind::object) return bad(std::string("entry must be a JSON object, got ") + kind_name(v.kind));
  const Json* dtype = nullptr;
  const Json* shape = nullptr;
  const Json* offsets = nullptr;
  for (std::size_t i = 0; i < v.keys.size(); ++i) {
    const Json** slot = v.keys[i] == "dtype" ? &dtype : v.keys[i] == "shape" ? &shape : v.keys[i] == "data_offsets" ? &offsets : nullptr;
    if (slot == nullptr) continue;  // unknown keys are tolerated, as by the reference reader
    if (*slot != nullptr) return bad("duplicate key '" + v.keys[i] + "'");
    *slot = &v.items[i];
  }
  if (dtype == nullptr) return bad("missing 'dtype'");
  if (shape == nullptr) return bad("missing 'shape'");
  if (offsets == nullptr) return bad("missing 'data_offsets'");

  if (dtype->kind != Json::Kind::string) return bad(std::string("'dtype' must be a string, got ") + kind_name(dtype->kind));
  bool known = false;
  for (const auto& d : kDtypeNames) {
    if (dtype->text == d.first) {
      entry->tensor.dtype = d.second;
      known = true;
    }
  }
  if (!known) {
    for (const char* other : kOtherSafetensorsDtypes) {
      if (dtype->text == other) {
        return file_error(StatusCode::unsupported_dtype, kRead, path,
                          "tensor '" + name + "': dtype " + dtype->text + " is not supported (supported: F32, F64, F16, BF16, U8, I64)");
      }
    }
    return bad("unknown dtype '" + dtype->text + "'");
  }

  if (shape->kind != Json::Kind::array) return bad(std::string("'shape' must be an array, got ") + kind_name(shape->kind));
  for (const Json& extent : shape->items) {
    std::int64_t value = 0;
    const std::string why = to_index(extent, &value);
    if (!why.empty()) return bad("shape extent " + why);
    entry->tensor.shape.push_back(value);
  }

  if (offsets->kind != Json::Kind::array || offsets->items.size() != 2) {
    return bad("'data_offsets' must be an array of two integers [begin, end]");
  }
  for (int i = 0; i < 2; ++i) {
    const std::string why = to_index(offsets->items[i], i == 0 ? &entry->begin : &entry->end);
    if (!why.empty()) return bad(std::string("data_offsets ") + (i == 0 ? "begin " : "end ") + why);
  }
  if (entry->begin > entry->end) {
    return bad("data_offsets begin " + std::to_string(entry->begin) + " is after end " + std::to_string(entry->end));
  }
  std::int64_t bytes = 0;
  if (!checked_byte_size(entry->tensor.shape, dtype_size(entry->tensor.dtype), &bytes)) {
    return bad("shape " + shape_text(entry->tensor.shape) + " overflows: its byte size does not fit in int64");
  }
  if (bytes != entry->end - entry->begin) {
    return bad("data_offsets cover " + std::to_string(entry->end - entry->begin) + " bytes but shape " +
               shape_text(entry->tensor.shape) + " of " + dtype->text + " needs " + std::to_string(bytes));
  }
  entry->tensor.name = name;
  return Status();
}

Status parse_metadata(const std::string& path, const Json& v, SafetensorsFile* file) {
  if (v.kind != Json::Kind::object) {
    return file_error(StatusCode::bad_file, kRead, path, std::string("__metadata__ must be a JSON object, got ") + kind_name(v.kind));
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < v.keys.size(); ++i) {
    if (!seen.insert(v.keys[i]).second) {
      return file_error(StatusCode::bad_file, kRead, path, "duplicate __metadata__ key '" + v.keys[i] + "'");
    }
    if (v.items[i].kind != Json::Kind::string) {
      return file_error(StatusCode::bad_file, kRead, path,
                        "__metadata__ value for key '" + v.keys[i] + "' must be a string, got " + kind_name(v.items[i].kind));
    }
    file->metadata.emplace_back(v.keys[i], v.items[i].text);
  }
  return Status();
}

}  // namespace

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  for (const SafetensorsTensor& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

Status write_safetensors_atomic(const std::string& path, const SafetensorsFile& file) {
  auto invalid = [&](const std::string& problem) { return file_error(StatusCode::invalid_argument, kWrite, path, problem); };
  std::set<std::string> seen;
  for (const auto& [key, value] : file.metadata) {
    if (!seen.insert(key).second) return invalid("duplicate metadata key '" + key + "'");
    if (!valid_utf8(key) || !valid_utf8(value)) return invalid("metadata entry '" + key + "' is not valid UTF-8");
  }
  seen.clear();
  std::string header = "{";
  if (!file.metadata.empty()) {
    append_json_string(&header, kMetadataKey);
    header += ":{";
    for (std::size_t i = 0; i < file.metadata.size(); ++i) {
      if (i) header += ',';
      append_json_string(&header, file.metadata[i].first);
      header += ':';
      append_json_string(&header, file.metadata[i].second);
    }
    header += '}';
  }
  std::int64_t offset = 0;
  for (const SafetensorsTensor& t : file.tensors) {
    if (t.name == kMetadataKey) return invalid("'__metadata__' is reserved and cannot name a tensor");
    if (!seen.insert(t.name).second) return invalid("duplicate tensor name '" + t.name + "'");
    if (!valid_utf8(t.name)) return invalid("tensor name '" + t.name + "' is not valid UTF-8");
    for (std::int64_t extent : t.shape) {
      if (extent < 0) return invalid("tensor '" + t.name + "': shape " + shape_text(t.shape) + " has a negative extent");
    }
    std::int64_t bytes = 0;
    if (!checked_byte_size(t.shape, dtype_size(t.dtype), &bytes)) {
      return file_error(StatusCode::overflow, kWrite, path, "tensor '" + t.name + "': byte size of shape " + shape_text(t.shape) + " overflows int64");
    }
    if (static_cast<std::uint64_t>(bytes) != t.data.size()) {
      return invalid("tensor '" + t.name + "': data has " + std::to_string(t.data.size()) + " bytes but shape " +
                     shape_text(t.shape) + " of " + dtype_name(t.dtype) + " needs " + std::to_string(bytes));
    }
    if (offset > std::numeric_limits<std::int64_t>::max() - bytes) return file_error(StatusCode::overflow, kWrite, path, "total data size overflows int64");
    if (header.size() > 1) header += ',';
    append_json_string(&header, t.name);
    header += std::string(":{\"dtype\":\"") + safetensors_dtype(t.dtype) + "\",\"shape\":[";
    for (std::size_t i = 0; i < t.shape.size(); ++i) header += (i ? "," : "") + std::to_string(t.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
    offset += bytes;
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');  // keeps the data buffer 8-byte aligned

  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>((static_cast<std::uint64_t>(header.size()) >> (8 * i)) & 0xFF);
  return write_file_atomic(path, kWrite, [&](std::FILE* f) {
    if (std::fwrite(length, 1, 8, f) != 8 || std::fwrite(header.data(), 1, header.size(), f) != header.size()) return false;
    for (const SafetensorsTensor& t : file.tensors) {
      if (!t.data.empty() && std::fwrite(t.data.data(), 1, t.data.size(), f) != t.data.size()) return false;
    }
    return true;
  });
}

Status read_safetensors(const std::string& path, SafetensorsFile* out) {
  if (out == nullptr) return argument_error(StatusCode::null_pointer, kRead, "out", "a non-null pointer", "nullptr");
  auto bad = [&](const std::string& problem) { return file_error(StatusCode::bad_file, kRead, path, problem); };
  UniqueFile f;
  std::int64_t file_size = 0;
  NORMKIT_RETURN_IF_ERROR(open_for_reading(path, kRead, &f, &file_size));
  if (file_size < 8) {
    return bad("file is too short (" + std::to_string(file_size) + " bytes) to hold the 8-byte header length");
  }
  unsigned char length_bytes[8];
  NORMKIT_RETURN_IF_ERROR(read_exact(f.get(), length_bytes, 8, kRead, path));
  std::uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | length_bytes[i];

  // Both checks come before allocating, so a corrupt length cannot trigger a huge allocation.
  if (header_length > kMaxHeaderBytes) {
    return bad("header length " + std::to_string(header_length) + " exceeds the limit of " + std::to_string(kMaxHeaderBytes) + " bytes");
  }
  const std::int64_t rest = file_size - 8;
  if (static_cast<std::int64_t>(header_length) > rest) {
    return bad("file is truncated: header length " + std::to_string(header_length) + " is larger than the " +
               std::to_string(rest) + " bytes after it");
  }
  std::string header(static_cast<std::size_t>(header_length), '\0');
  NORMKIT_RETURN_IF_ERROR(read_exact(f.get(), &header[0], header.size(), kRead, path));
  if (!valid_utf8(header)) return bad("header is not valid UTF-8");

  Json root;
  JsonParser parser(header);
  if (!parser.parse(&root)) return bad("invalid JSON header: " + parser.error());
  if (root.kind != Json::Kind::object) return bad(std::string("header must be a JSON object, got ") + kind_name(root.kind));

  SafetensorsFile result;
  std::vector<Entry> entries;
  std::set<std::string> seen;
  const std::int64_t buffer_size = rest - static_cast<std::int64_t>(header_length);
  for (std::size_t i = 0; i < root.keys.size(); ++i) {
    const std::string& name = root.keys[i];
    if (!seen.insert(name).second) return bad("duplicate tensor name '" + name + "'");
    if (name == kMetadataKey) {
      NORMKIT_RETURN_IF_ERROR(parse_metadata(path, root.items[i], &result));
      continue;
    }
    entries.emplace_back();
    NORMKIT_RETURN_IF_ERROR(parse_tensor_entry(path, name, root.items[i], &entries.back()));
    if (entries.back().end > buffer_size) {
      return bad("tensor '" + name + "': data_offsets end " + std::to_string(entries.back().end) +
                 " is past the end of the " + std::to_string(buffer_size) + "-byte data buffer (file truncated?)");
    }
  }

  // The tensors must tile the buffer exactly: sorted by offset, each starts where the previous ended.
  std::vector<std::size_t> order(entries.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return std::make_pair(entries[a].begin, entries[a].end) < std::make_pair(entries[b].begin, entries[b].end);
  });
  std::int64_t covered = 0;
  const std::string* previous = nullptr;
  for (std::size_t index : order) {
    const Entry& e = entries[index];
    if (e.begin < covered) {
      return bad("tensors '" + *previous + "' and '" + e.tensor.name + "' overlap in the data buffer");
    }
    if (e.begin > covered) {
      return bad("data buffer has a hole of " + std::to_string(e.begin - covered) + " bytes before tensor '" +
                 e.tensor.name + "' (tensors must cover it exactly)");
    }
    covered = e.end;
    previous = &e.tensor.name;
  }
  if (covered != buffer_size) {
    return bad("data buffer has " + std::to_string(buffer_size - covered) +
               " trailing bytes not covered by any tensor (tensors must cover it exactly)");
  }

  // The file position is at the buffer start, and the tensors are contiguous: read them in offset order.
  for (std::size_t index : order) {
    SafetensorsTensor& t = entries[index].tensor;
    t.data.resize(static_cast<std::size_t>(entries[index].end - entries[index].begin));
    NORMKIT_RETURN_IF_ERROR(read_exact(f.get(), t.data.data(), t.data.size(), kRead, path));
  }
  result.tensors.reserve(entries.size());
  for (Entry& e : entries) result.tensors.push_back(std::move(e.tensor));
  *out = std::move(result);
  return Status();
}

}  // namespace normkit::io
