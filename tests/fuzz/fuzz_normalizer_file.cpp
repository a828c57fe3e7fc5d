// Fuzz target: a whole Normalizer state file (safetensors, then the state schema: metadata and tensors).
// A file that decodes must encode again and decode to the same options and summaries.
#include <cstdlib>
#include <cstring>

#include "fuzz_support.hpp"
#include "io/normalizer_file.hpp"
#include "normkit/normalize.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace normkit;
  auto file = fuzz::open_memory(data, size);
  if (!file) return 0;
  io::SafetensorsFile st;
  if (!io::read_safetensors(file.get(), static_cast<std::int64_t>(size), "<fuzz>", &st).ok()) return 0;
  io::NormalizerFileContents contents;
  const Status s = io::decode_normalizer_file(st, "fuzz", "<fuzz>", &contents);
  if (!s.ok()) {
    if (s.message().empty()) std::abort();
    return 0;
  }
  validate_options(contents.options, "fuzz").ignore();
  contents.coefficients.assign(4 * contents.summaries.size(), 0.0);
  io::SafetensorsFile again;
  if (!io::encode_normalizer_file(contents, "fuzz", &again).ok()) std::abort();
  io::NormalizerFileContents back;
  if (!io::decode_normalizer_file(again, "fuzz", "<fuzz>", &back).ok()) std::abort();
  if (back.kept_shape != contents.kept_shape || back.summaries.size() != contents.summaries.size() ||
      back.options.method != contents.options.method || back.options.axes.all != contents.options.axes.all ||
      back.options.axes.count != contents.options.axes.count) {
    std::abort();
  }
  if (!back.summaries.empty() &&
      std::memcmp(back.summaries.data(), contents.summaries.data(), back.summaries.size() * sizeof(StatsSummary)) != 0) {
    std::abort();
  }
  return 0;
}
