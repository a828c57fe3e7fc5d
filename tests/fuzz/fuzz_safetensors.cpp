// Fuzz target: the safetensors reader (header length, JSON header, dtypes, shapes, offsets tiling the
// data buffer, metadata) and the JSON parser under it.
#include <cstdlib>

#include "fuzz_support.hpp"
#include "io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto file = normkit::fuzz::open_memory(data, size);
  if (!file) return 0;
  normkit::io::SafetensorsFile st;
  const normkit::Status s = normkit::io::read_safetensors(file.get(), static_cast<std::int64_t>(size), "<fuzz>", &st);
  if (s.ok()) {
    // The tensors tile the data buffer: their bytes add up to at most the input size.
    std::size_t bytes = 0;
    for (const auto& t : st.tensors) bytes += t.data.size();
    if (bytes > size) std::abort();
  } else if (s.message().empty()) {
    std::abort();
  }
  return 0;
}
