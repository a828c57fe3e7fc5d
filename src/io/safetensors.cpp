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
#include "io/json.hpp"

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

Status parse_tensor_entry(const std::string& path, const std::string& name, const JsonValue& v, Entry* entry) {
  auto bad = [&](const std::string& problem) {
    return file_error(StatusCode::bad_file, kRead, path, "tensor '" + name + "': " + problem);
  };
  if (v.kind != JsonValue::Kind::object) return bad(std::string("entry must be a JSON object, got ") + json_kind_name(v.kind));
  const JsonValue* dtype = nullptr;
  const JsonValue* shape = nullptr;
  const JsonValue* offsets = nullptr;
  for (std::size_t i = 0; i < v.keys.size(); ++i) {
    const JsonValue** slot = v.keys[i] == "dtype" ? &dtype : v.keys[i] == "shape" ? &shape : v.keys[i] == "data_offsets" ? &offsets : nullptr;
    if (slot == nullptr) continue;  // unknown keys are tolerated, as by the reference reader
    if (*slot != nullptr) return bad("duplicate key '" + v.keys[i] + "'");
    *slot = &v.items[i];
  }
  if (dtype == nullptr) return bad("missing 'dtype'");
  if (shape == nullptr) return bad("missing 'shape'");
  if (offsets == nullptr) return bad("missing 'data_offsets'");

  if (dtype->kind != JsonValue::Kind::string) return bad(std::string("'dtype' must be a string, got ") + json_kind_name(dtype->kind));
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

  if (shape->kind != JsonValue::Kind::array) return bad(std::string("'shape' must be an array, got ") + json_kind_name(shape->kind));
  for (const JsonValue& extent : shape->items) {
    std::int64_t value = 0;
    const std::string why = json_to_index(extent, &value);
    if (!why.empty()) return bad("shape extent " + why);
    entry->tensor.shape.push_back(value);
  }

  if (offsets->kind != JsonValue::Kind::array || offsets->items.size() != 2) {
    return bad("'data_offsets' must be an array of two integers [begin, end]");
  }
  for (int i = 0; i < 2; ++i) {
    const std::string why = json_to_index(offsets->items[i], i == 0 ? &entry->begin : &entry->end);
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

Status parse_metadata(const std::string& path, const JsonValue& v, SafetensorsFile* file) {
  if (v.kind != JsonValue::Kind::object) {
    return file_error(StatusCode::bad_file, kRead, path, std::string("__metadata__ must be a JSON object, got ") + json_kind_name(v.kind));
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < v.keys.size(); ++i) {
    if (!seen.insert(v.keys[i]).second) {
      return file_error(StatusCode::bad_file, kRead, path, "duplicate __metadata__ key '" + v.keys[i] + "'");
    }
    if (v.items[i].kind != JsonValue::Kind::string) {
      return file_error(StatusCode::bad_file, kRead, path,
                        "__metadata__ value for key '" + v.keys[i] + "' must be a string, got " + json_kind_name(v.items[i].kind));
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
  UniqueFile f;
  std::int64_t file_size = 0;
  NORMKIT_RETURN_IF_ERROR(open_for_reading(path, kRead, &f, &file_size));
  return read_safetensors(f.get(), file_size, path, out);
}

Status read_safetensors(std::FILE* f, std::int64_t file_size, const std::string& path, SafetensorsFile* out) {
  if (out == nullptr || f == nullptr) {
    return argument_error(StatusCode::null_pointer, kRead, out == nullptr ? "out" : "file", "a non-null pointer", "nullptr");
  }
  auto bad = [&](const std::string& problem) { return file_error(StatusCode::bad_file, kRead, path, problem); };
  if (file_size < 8) {
    return bad("file is too short (" + std::to_string(file_size) + " bytes) to hold the 8-byte header length");
  }
  unsigned char length_bytes[8];
  NORMKIT_RETURN_IF_ERROR(read_exact(f, length_bytes, 8, kRead, path));
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
  NORMKIT_RETURN_IF_ERROR(read_exact(f, &header[0], header.size(), kRead, path));
  if (!valid_utf8(header)) return bad("header is not valid UTF-8");

  JsonValue root;
  std::string json_error;
  if (!parse_json(header, &root, &json_error)) return bad("invalid JSON header: " + json_error + " of the header");
  if (root.kind != JsonValue::Kind::object) return bad(std::string("header must be a JSON object, got ") + json_kind_name(root.kind));

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
    NORMKIT_RETURN_IF_ERROR(read_exact(f, t.data.data(), t.data.size(), kRead, path));
  }
  result.tensors.reserve(entries.size());
  for (Entry& e : entries) result.tensors.push_back(std::move(e.tensor));
  *out = std::move(result);
  return Status();
}

}  // namespace normkit::io
