// Reading and writing NumPy .npy files.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "normkit/dtype.hpp"
#include "normkit/status.hpp"

namespace normkit::io {

// One array of a .npy file.
struct NpyArray {
  DType dtype = DType::float32;
  std::vector<std::int64_t> shape;  // empty for a 0-d (scalar) array
  std::vector<unsigned char> data;  // raw little-endian element bytes, C order
};

// Reads a .npy file of format version 1.0, 2.0 or 3.0 holding C-order little-endian float32 ('<f4'),
// float64 ('<f8'), float16 ('<f2'), uint8 ('|u1') or int64 ('<i8') data. Errors: io_error when the
// file cannot be read, unsupported_dtype for other dtypes (big-endian included), bad_file for a
// corrupt, truncated or Fortran-order file. `*out` is changed only on success.
Status read_npy(const std::string& path, NpyArray* out);
// The same from an open stream positioned at the file's first byte, holding `size` bytes; `path` only
// names the source in messages (the fuzz target reads memory through fmemopen).
Status read_npy(std::FILE* file, std::int64_t size, const std::string& path, NpyArray* out);

// The header alone (`out` gets dtype and shape, no data): the stream is left at the first data byte, and
// `data_bytes` is what follows (checked against `size`: a truncated or over-long file is an error here).
Status read_npy_header(std::FILE* file, std::int64_t size, const std::string& path, NpyArray* out, std::int64_t* data_bytes);

// Writes `data` (numel * dtype_size bytes, C order) as a .npy file whose data starts at a multiple
// of 64 bytes. Atomic: a temporary file is renamed over `path`, so `path` is either the complete new
// file or untouched. bfloat16 has no .npy dtype and yields unsupported_dtype.
Status write_npy_atomic(const std::string& path, DType dtype, const std::vector<std::int64_t>& shape,
                        const void* data);

}  // namespace normkit::io
