// Reading and writing .safetensors files (https://github.com/huggingface/safetensors).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "normkit/dtype.hpp"
#include "normkit/status.hpp"

namespace normkit::io {

struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::float32;
  std::vector<std::int64_t> shape;  // empty for a scalar
  std::vector<unsigned char> data;  // raw little-endian element bytes, C order
};

struct SafetensorsFile {
  std::vector<SafetensorsTensor> tensors;  // in header order
  std::vector<std::pair<std::string, std::string>> metadata;  // the "__metadata__" string map

  // The tensor called `name`, or nullptr.
  const SafetensorsTensor* find(const std::string& name) const;
};

// Writes `file` with the tensors' data laid out contiguously in the given order, the header padded
// with spaces to a multiple of 8 bytes. dtypes map to F32, F64, F16, BF16, U8, I64. Errors:
// invalid_argument for a data size that does not match the shape, a duplicate or reserved
// ("__metadata__") name, or text that is not UTF-8; io_error when writing fails. Atomic: `path` is
// either the complete new file or untouched.
Status write_safetensors_atomic(const std::string& path, const SafetensorsFile& file);

// Reads and fully validates a .safetensors file: bad_file for anything malformed (truncation, bad
// JSON, bad offsets, overlaps or holes in the data buffer, ...), unsupported_dtype for valid
// safetensors dtypes normkit does not handle (e.g. I32), io_error when the file cannot be read.
// `*out` is changed only on success.
Status read_safetensors(const std::string& path, SafetensorsFile* out);
// The same from an open stream positioned at the file's first byte, holding `size` bytes; `path` only
// names the source in messages (the fuzz target reads memory through fmemopen).
Status read_safetensors(std::FILE* file, std::int64_t size, const std::string& path, SafetensorsFile* out);

}  // namespace normkit::io
