// Fuzz target: the IDX reader, plain and gzip-compressed (magic, type, dimension count, sizes, truncation,
// trailing data, corrupt gzip streams).
#include <cstdint>
#include <cstdlib>

#include "io/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  normkit::io::NpyArray array;
  const normkit::Status s = normkit::io::read_idx(data, size, "<fuzz>", &array);
  if (s.ok()) {
    // A successful read holds exactly the bytes its shape and dtype imply.
    std::size_t numel = 1;
    for (std::int64_t e : array.shape) numel *= static_cast<std::size_t>(e);
    if (array.shape.empty() || array.data.size() != numel * normkit::dtype_size(array.dtype)) std::abort();
  } else if (s.message().empty()) {
    std::abort();  // every error explains itself
  }
  return 0;
}
