// Reading IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed, and picking the reader of
// an array file (.npy or IDX) from its first bytes.
//
// IDX: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E
// float64), a dimension count, the dimensions as big-endian uint32, then the elements in C order,
// big-endian. normkit reads uint8, float32 and float64 (the others are unsupported_dtype); a 3-D file of
// images is [N, H, W] (C = 1), a 1-D file of labels [N].
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/npy.hpp"

namespace normkit::io {

// The IDX file at `path` (gzip-compressed when it starts with gzip's magic; needs zlib at build time) as an
// array (little-endian element bytes). Errors, each naming the file: io_error when it cannot be opened or
// read; bad_file for a wrong magic, a dimension count outside 1..8, dimensions whose byte size overflows,
// fewer data bytes than the header declares (truncated) or more (trailing data), a corrupt gzip stream or
// one cut anywhere, its trailer included (gzip members in a row are read in turn, as gunzip does; other bytes
// after the last member are an error);
// unsupported_dtype for int8, int16 and int32 data. `*out` is changed only on success.
Status read_idx(const std::string& path, NpyArray* out);
// The same from memory (the fuzz target); `name` only names the source in messages.
Status read_idx(const unsigned char* data, std::size_t size, const std::string& name, NpyArray* out);

// True when zlib was available at build time (gzip-compressed IDX files can be read).
bool idx_gzip_supported();

// An array file by its first bytes: .npy (read_npy), IDX or gzip-compressed IDX (read_idx).
Status read_array_file(const std::string& path, NpyArray* out);

// An array file (.npy, IDX or gzip IDX, by its first bytes) read in pieces, for files larger than memory:
// the header when opened, then the data in order, then finish() checks that nothing follows. The errors are
// read_npy's and read_idx's (a truncated file fails at the read that runs out).
class ArrayStream {
 public:
  virtual ~ArrayStream() = default;
  DType dtype() const { return dtype_; }
  const std::vector<std::int64_t>& shape() const { return shape_; }
  std::size_t data_bytes() const { return data_bytes_; }
  // The next `bytes` data bytes (little-endian elements, a whole number of them).
  virtual Status read(void* out, std::size_t bytes) = 0;
  // Passes over the next `bytes` data bytes (normkit-mpi's pieces of other ranks): read and dropped, or a seek
  // where the format allows one (.npy).
  virtual Status skip(std::size_t bytes);
  // The next `bytes` data bytes mapped read-only in place of a read (the host engine then reads the page
  // cache without a copy), advancing as read() would; `*out` is left empty where the format needs a copy
  // (gzip, IDX's big-endian elements) or the mapping fails: read() them then. unmap() releases a mapping.
  struct Mapping {
    void* base = nullptr;
    std::size_t length = 0;
    const unsigned char* data = nullptr;
  };
  virtual Status map(std::size_t bytes, Mapping* out);
  static void unmap(Mapping* mapping) noexcept;
  virtual Status finish() = 0;

 protected:
  DType dtype_ = DType::uint8;
  std::vector<std::int64_t> shape_;
  std::size_t data_bytes_ = 0;
};
Status open_array_stream(const std::string& path, std::unique_ptr<ArrayStream>* out);

}  // namespace normkit::io
