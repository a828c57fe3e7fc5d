// libFuzzer helpers: the fuzz input as a read-only FILE* (fmemopen), so the targets run the same
// readers files go through.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>

namespace normkit::fuzz {

struct FileCloser {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};
using MemoryFile = std::unique_ptr<std::FILE, FileCloser>;

// A stream over data[0, size). fmemopen rejects size 0, so an empty input reads from a 1-byte buffer
// that the readers never reach (they are told the size is 0).
inline MemoryFile open_memory(const std::uint8_t* data, std::size_t size) {
  static unsigned char empty[1] = {0};
  void* buffer = size == 0 ? static_cast<void*>(empty) : const_cast<std::uint8_t*>(data);
  return MemoryFile(fmemopen(buffer, size == 0 ? 1 : size, "rb"));
}

}  // namespace normkit::fuzz
