// File helpers shared by the .npy and .safetensors readers and writers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "normkit/status.hpp"

namespace normkit::io {

// Builds "normkit: <operation> '<path>': <problem>", so every file error names the call and the file.
Status file_error(StatusCode code, const std::string& operation, const std::string& path,
                  const std::string& problem);

struct FileCloser {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};
using UniqueFile = std::unique_ptr<std::FILE, FileCloser>;

// Opens a regular file for binary reading and reports its size in bytes. Readers compare sizes
// implied by a header with this before allocating anything.
Status open_for_reading(const std::string& path, const std::string& operation, UniqueFile* file,
                        std::int64_t* size);

// Reads exactly `n` bytes from `file` into `dst`; on failure returns bad_file ("truncated") at end
// of file or io_error otherwise.
Status read_exact(std::FILE* file, void* dst, std::size_t n, const std::string& operation,
                  const std::string& path);

// Byte size of a C-order array: false when an extent is negative or the element count or the byte
// size does not fit in int64.
bool checked_byte_size(const std::vector<std::int64_t>& shape, std::size_t element_size,
                       std::int64_t* bytes) noexcept;

// Writes `path` all-or-nothing: `write_body` fills a fresh temporary file next to `path`
// (path + ".tmp.<pid>.<counter>") which is then flushed, closed and renamed over `path`. On any
// failure the temporary is removed, `path` is left as it was and io_error is returned.
// `write_body` returns false when a write fails (errno then says why).
Status write_file_atomic(const std::string& path, const std::string& operation,
                         const std::function<bool(std::FILE*)>& write_body);

}  // namespace normkit::io
