// NumPy .npy reader and writer. Format: magic "\x93NUMPY", version (major, minor), header length
// (u16 LE for 1.0, u32 LE for 2.0/3.0), a Python dict literal padded with spaces and '\n', then the
// raw element bytes.
#include "io/npy.hpp"

#include <cctype>
#include <cstring>
#include <new>
#include <limits>
#include <utility>

#include "io/atomic_file.hpp"

namespace normkit::io {

namespace {

const char* const kRead = "read_npy";
const char* const kWrite = "write_npy_atomic";
const unsigned char kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
constexpr std::size_t kMaxDims = 64;  // numpy's own limit; bounds work on hostile headers

// The subset of Python literals a .npy header dict can hold.
struct PyValue {
  enum class Kind { string, integer, boolean, none, sequence } kind = Kind::none;
  std::string text;             // string contents
  std::int64_t integer = 0;
  bool integer_overflow = false;  // Python ints are unbounded; int64 is not
  bool boolean = false;
  std::vector<PyValue> items;   // tuple or list elements
};

using PyDict = std::vector<std::pair<std::string, PyValue>>;

// Recursive-descent parser for the header dict; on failure error() says what and where.
class HeaderParser {
 public:
  explicit HeaderParser(const std::string& text) : s_(text) {}

  bool parse(PyDict* dict) {
    skip_ws();
    if (!consume('{')) return fail("expected '{'");
    skip_ws();
    while (!consume('}')) {
      std::string key;
      PyValue value;
      if (!parse_string(&key)) return false;
      skip_ws();
      if (!consume(':')) return fail("expected ':' after key '" + key + "'");
      skip_ws();
      if (!parse_value(&value, 0)) return false;
      dict->emplace_back(std::move(key), std::move(value));
      skip_ws();
      if (consume(',')) {
        skip_ws();  // a trailing comma before '}' is fine, as in Python
      } else if (peek() != '}') {
        return fail("expected ',' or '}'");
      }
    }
    // numpy pads with spaces and a final '\n'; tolerate NULs some writers use as padding too.
    while (pos_ < s_.size() && (is_space(s_[pos_]) || s_[pos_] == '\0')) ++pos_;
    if (pos_ != s_.size()) return fail("unexpected text after the closing '}'");
    return true;
  }

  const std::string& error() const { return error_; }

 private:
  static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void skip_ws() {
    while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
  }
  bool consume(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool fail(const std::string& what) {
    if (error_.empty()) error_ = what + " at header offset " + std::to_string(pos_);
    return false;
  }

  bool parse_string(std::string* out) {
    char quote = peek();
    if (quote != '\'' && quote != '"') return fail("expected a quoted string");
    ++pos_;
    while (pos_ < s_.size() && s_[pos_] != quote) {
      if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) ++pos_;  // descr strings never need real escapes
      out->push_back(s_[pos_++]);
    }
    if (!consume(quote)) return fail("unterminated string");
    return true;
  }

  bool parse_integer(PyValue* v) {
    bool negative = consume('-');
    if (!negative) consume('+');
    if (!std::isdigit(static_cast<unsigned char>(peek()))) return fail("expected a number");
    v->kind = PyValue::Kind::integer;
    const std::int64_t max = std::numeric_limits<std::int64_t>::max();
    while (std::isdigit(static_cast<unsigned char>(peek()))) {
      int digit = s_[pos_++] - '0';
      if (v->integer > (max - digit) / 10) v->integer_overflow = true;
      if (!v->integer_overflow) v->integer = v->integer * 10 + digit;
    }
    if (peek() == 'L' || peek() == 'l') ++pos_;  // Python 2 longs, e.g. "(3L, 4L)" in old files
    if (negative) v->integer = -v->integer;
    return true;
  }

  bool parse_value(PyValue* v, int depth) {
    if (depth > 32) return fail("nesting too deep");
    char c = peek();
    if (c == '\'' || c == '"') {
      v->kind = PyValue::Kind::string;
      return parse_string(&v->text);
    }
    if (c == '(' || c == '[') {
      char close = c == '(' ? ')' : ']';
      ++pos_;
      v->kind = PyValue::Kind::sequence;
      skip_ws();
      while (!consume(close)) {
        v->items.emplace_back();
        if (!parse_value(&v->items.back(), depth + 1)) return false;
        skip_ws();
        if (consume(',')) {
          skip_ws();
        } else if (peek() != close) {
          return fail(std::string("expected ',' or '") + close + "'");
        }
      }
      return true;
    }
    for (const char* word : {"True", "False", "None"}) {
      std::size_t n = std::strlen(word);
      if (s_.compare(pos_, n, word) == 0) {
        pos_ += n;
        v->kind = word[0] == 'N' ? PyValue::Kind::none : PyValue::Kind::boolean;
        v->boolean = word[0] == 'T';
        return true;
      }
    }
    return parse_integer(v);
  }

  const std::string& s_;
  std::size_t pos_ = 0;
  std::string error_;
};

// Maps a descr string to a DType. This library assumes a little-endian host, so '=' (native) is
// taken as little-endian; for one-byte types the byte order is irrelevant.
Status dtype_from_descr(const std::string& descr, const std::string& path, DType* dtype) {
  char order = '=';
  std::string code = descr;
  if (!descr.empty() && std::strchr("<>=|", descr[0]) != nullptr) {
    order = descr[0];
    code = descr.substr(1);
  }
  const std::pair<const char*, DType> table[] = {{"f4", DType::float32}, {"f8", DType::float64},
                                                 {"f2", DType::float16}, {"u1", DType::uint8},
                                                 {"i8", DType::int64}};
  for (const auto& entry : table) {
    if (code != entry.first) continue;
    bool single_byte = entry.second == DType::uint8;
    if (order == '>' && !single_byte) {
      return file_error(StatusCode::unsupported_dtype, kRead, path,
                        "big-endian data ('" + descr + "') is not supported; convert it with arr.astype('<" +
                            code + "') before saving");
    }
    if (order == '|' && !single_byte) break;  // '|' means "no byte order": invalid for multi-byte types
    *dtype = entry.second;
    return Status();
  }
  return file_error(StatusCode::unsupported_dtype, kRead, path,
                    "unsupported dtype '" + descr + "' (supported: '<f4', '<f8', '<f2', '|u1', '<i8')");
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");  // Python spells a 1-tuple "(5,)"
}

// Checks the parsed dict and extracts dtype, shape and fortran_order.
Status interpret_header(const PyDict& dict, const std::string& path, NpyArray* array) {
  const PyValue* descr = nullptr;
  const PyValue* fortran = nullptr;
  const PyValue* shape = nullptr;
  for (const auto& [key, value] : dict) {
    const PyValue** slot = key == "descr" ? &descr : key == "fortran_order" ? &fortran : key == "shape" ? &shape : nullptr;
    if (slot == nullptr) return file_error(StatusCode::bad_file, kRead, path, "malformed header: unexpected key '" + key + "'");
    if (*slot != nullptr) return file_error(StatusCode::bad_file, kRead, path, "malformed header: duplicate key '" + key + "'");
    *slot = &value;
  }
  const char* missing = descr == nullptr ? "descr" : fortran == nullptr ? "fortran_order" : shape == nullptr ? "shape" : nullptr;
  if (missing != nullptr) {
    return file_error(StatusCode::bad_file, kRead, path, std::string("malformed header: missing key '") + missing + "'");
  }

  if (descr->kind == PyValue::Kind::sequence) {
    return file_error(StatusCode::unsupported_dtype, kRead, path, "structured (record) dtypes are not supported");
  }
  if (descr->kind != PyValue::Kind::string) {
    return file_error(StatusCode::bad_file, kRead, path, "malformed header: 'descr' must be a string");
  }
  NORMKIT_RETURN_IF_ERROR(dtype_from_descr(descr->text, path, &array->dtype));

  if (fortran->kind != PyValue::Kind::boolean) {
    return file_error(StatusCode::bad_file, kRead, path, "malformed header: 'fortran_order' must be True or False");
  }
  if (fortran->boolean) {
    return file_error(StatusCode::bad_file, kRead, path,
                      "Fortran-order arrays are not supported; save np.ascontiguousarray(arr) instead");
  }

  if (shape->kind != PyValue::Kind::sequence) {
    return file_error(StatusCode::bad_file, kRead, path, "malformed header: 'shape' must be a tuple");
  }
  if (shape->items.size() > kMaxDims) {
    return file_error(StatusCode::bad_file, kRead, path,
                      "shape has " + std::to_string(shape->items.size()) + " dimensions (at most 64 allowed)");
  }
  array->shape.clear();
  for (const PyValue& extent : shape->items) {
    if (extent.kind != PyValue::Kind::integer) {
      return file_error(StatusCode::bad_file, kRead, path, "malformed header: 'shape' must hold integers");
    }
    if (extent.integer < 0) {
      return file_error(StatusCode::bad_file, kRead, path, "shape has a negative extent " + std::to_string(extent.integer));
    }
    if (extent.integer_overflow) {
      return file_error(StatusCode::bad_file, kRead, path, "shape has an extent that overflows int64");
    }
    array->shape.push_back(extent.integer);
  }
  return Status();
}

const char* npy_descr(DType dtype) {
  switch (dtype) {
    case DType::float32: return "<f4";
    case DType::float64: return "<f8";
    case DType::float16: return "<f2";
    case DType::uint8: return "|u1";
    case DType::int64: return "<i8";
    case DType::bfloat16: return nullptr;
  }
  return nullptr;
}

}  // namespace

Status read_npy(const std::string& path, NpyArray* out) {
  if (out == nullptr) return argument_error(StatusCode::null_pointer, kRead, "out", "a non-null pointer", "nullptr");
  UniqueFile file;
  std::int64_t file_size = 0;
  NORMKIT_RETURN_IF_ERROR(open_for_reading(path, kRead, &file, &file_size));
  return read_npy(file.get(), file_size, path, out);
}

Status read_npy(std::FILE* file, std::int64_t file_size, const std::string& path, NpyArray* out) {
  if (out == nullptr || file == nullptr) {
    return argument_error(StatusCode::null_pointer, kRead, out == nullptr ? "out" : "file", "a non-null pointer", "nullptr");
  }
  NpyArray array;
  std::int64_t data_bytes = 0;
  NORMKIT_RETURN_IF_ERROR(read_npy_header(file, file_size, path, &array, &data_bytes));
  try {
    array.data.resize(static_cast<std::size_t>(data_bytes));
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::io_error, std::string("normkit::") + kRead + ": '" + path + "' holds " + std::to_string(data_bytes) +
                                            " bytes of data, more than this process can hold in memory");
  }
  NORMKIT_RETURN_IF_ERROR(read_exact(file, array.data.data(), array.data.size(), kRead, path));
  *out = std::move(array);
  return Status();
}

Status read_npy_header(std::FILE* file, std::int64_t file_size, const std::string& path, NpyArray* out, std::int64_t* data_bytes_out) {

  unsigned char prefix[12];
  if (file_size < 10) {
    return file_error(StatusCode::bad_file, kRead, path,
                      "file is too short (" + std::to_string(file_size) + " bytes) to be a .npy file");
  }
  NORMKIT_RETURN_IF_ERROR(read_exact(file, prefix, 8, kRead, path));
  if (std::memcmp(prefix, kMagic, sizeof kMagic) != 0) {
    return file_error(StatusCode::bad_file, kRead, path, "not a .npy file (bad magic bytes)");
  }
  const int major = prefix[6], minor = prefix[7];
  if (major < 1 || major > 3 || minor != 0) {
    return file_error(StatusCode::bad_file, kRead, path,
                      "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                          " (expected 1.0, 2.0 or 3.0)");
  }
  const std::int64_t length_bytes = major == 1 ? 2 : 4;
  if (file_size < 8 + length_bytes) {
    return file_error(StatusCode::bad_file, kRead, path, "file is truncated: header length is incomplete");
  }
  NORMKIT_RETURN_IF_ERROR(read_exact(file, prefix + 8, static_cast<std::size_t>(length_bytes), kRead, path));
  std::int64_t header_length = 0;
  for (std::int64_t i = length_bytes - 1; i >= 0; --i) header_length = header_length * 256 + prefix[8 + i];

  // Compare with the real file size before allocating: the length field may be garbage.
  const std::int64_t header_start = 8 + length_bytes;
  if (header_length > file_size - header_start) {
    return file_error(StatusCode::bad_file, kRead, path,
                      "file is truncated: header needs " + std::to_string(header_length) + " bytes, only " +
                          std::to_string(file_size - header_start) + " remain");
  }
  std::string header(static_cast<std::size_t>(header_length), '\0');
  NORMKIT_RETURN_IF_ERROR(read_exact(file, &header[0], header.size(), kRead, path));

  PyDict dict;
  HeaderParser parser(header);
  if (!parser.parse(&dict)) {
    return file_error(StatusCode::bad_file, kRead, path, "malformed header: " + parser.error());
  }
  NpyArray array;
  NORMKIT_RETURN_IF_ERROR(interpret_header(dict, path, &array));

  std::int64_t data_bytes = 0;
  if (!checked_byte_size(array.shape, dtype_size(array.dtype), &data_bytes)) {
    return file_error(StatusCode::bad_file, kRead, path,
                      "shape " + shape_text(array.shape) + " overflows: its byte size does not fit in int64");
  }
  const std::int64_t available = file_size - header_start - header_length;
  if (available < data_bytes) {
    return file_error(StatusCode::bad_file, kRead, path,
                      "file is truncated: expected " + std::to_string(data_bytes) + " data bytes, got " +
                          std::to_string(available));
  }
  if (available > data_bytes) {
    return file_error(StatusCode::bad_file, kRead, path,
                      "file has " + std::to_string(available - data_bytes) + " trailing bytes after the " +
                          std::to_string(data_bytes) + " data bytes of shape " + shape_text(array.shape));
  }
  *data_bytes_out = data_bytes;
  *out = std::move(array);
  return Status();
}

Status write_npy_atomic(const std::string& path, DType dtype, const std::vector<std::int64_t>& shape,
                        const void* data) {
  const char* descr = npy_descr(dtype);
  if (descr == nullptr) {
    return file_error(StatusCode::unsupported_dtype, kWrite, path,
                      std::string("dtype ") + dtype_name(dtype) + " has no .npy equivalent; convert to float32 first");
  }
  for (std::int64_t extent : shape) {
    if (extent < 0) {
      return file_error(StatusCode::invalid_argument, kWrite, path, "shape " + shape_text(shape) + " has a negative extent");
    }
  }
  std::int64_t data_bytes = 0;
  if (!checked_byte_size(shape, dtype_size(dtype), &data_bytes)) {
    return file_error(StatusCode::overflow, kWrite, path, "byte size of shape " + shape_text(shape) + " overflows int64");
  }
  if (data_bytes > 0 && data == nullptr) {
    return file_error(StatusCode::null_pointer, kWrite, path, "data is null for a non-empty array");
  }

  // Same layout numpy writes: dict, space padding, '\n', data aligned to 64 bytes.
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape_text(shape) + ", }";
  std::size_t length_bytes = 2;
  auto padded = [&](std::size_t prefix) { return (prefix + header.size() + 1 + 63) / 64 * 64 - prefix; };
  std::size_t header_length = padded(10);
  if (header_length > 0xFFFF) {  // only absurdly many dimensions need version 2.0
    length_bytes = 4;
    header_length = padded(12);
  }
  if (header_length > 0xFFFFFFFFu) {
    return file_error(StatusCode::invalid_argument, kWrite, path, "header is too long for the .npy format");
  }
  header.append(header_length - header.size() - 1, ' ');
  header.push_back('\n');

  std::string prefix(reinterpret_cast<const char*>(kMagic), sizeof kMagic);
  prefix.push_back(static_cast<char>(length_bytes == 2 ? 1 : 2));
  prefix.push_back(0);
  for (std::size_t i = 0; i < length_bytes; ++i) prefix.push_back(static_cast<char>((header_length >> (8 * i)) & 0xFF));

  return write_file_atomic(path, kWrite, [&](std::FILE* f) {
    const std::size_t n = static_cast<std::size_t>(data_bytes);
    return std::fwrite(prefix.data(), 1, prefix.size(), f) == prefix.size() &&
           std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
           (n == 0 || std::fwrite(data, 1, n, f) == n);
  });
}

}  // namespace normkit::io
