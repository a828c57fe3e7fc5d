// Fuzz target: the .npy reader (magic, version, header dict, dtype, shape, data size checks).
#include <cstdlib>

#include "fuzz_support.hpp"
#include "io/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto file = normkit::fuzz::open_memory(data, size);
  if (!file) return 0;
  normkit::io::NpyArray array;
  const normkit::Status s = normkit::io::read_npy(file.get(), static_cast<std::int64_t>(size), "<fuzz>", &array);
  if (s.ok()) {
    // A successful read holds exactly the bytes its shape and dtype imply.
    std::size_t numel = 1;
    for (std::int64_t e : array.shape) numel *= static_cast<std::size_t>(e);
    if (array.data.size() != numel * normkit::dtype_size(array.dtype)) std::abort();
  } else if (s.message().empty()) {
    std::abort();  // every error explains itself
  }
  return 0;
}
