// Fuzz target: the Normalizer state file's metadata alone. The input is the JSON object a state file
// keeps under "__metadata__"; it is attached to a valid state of kept shape [3] and decoded, so every
// mutation reaches the metadata parsers (bools, numbers, axis and shape lists, feature range).
#include <cstdlib>
#include <string>

#include "io/json.hpp"
#include "io/normalizer_file.hpp"

namespace {

normkit::io::SafetensorsFile valid_state() {
  using namespace normkit;
  io::NormalizerFileContents c;
  c.kept_shape = {3};
  c.summaries.assign(3, StatsSummary{4, 0, 0, 0, 4, 1.5, 2.0, -1.0, 3.0, 6.0});
  c.coefficients.assign(12, 1.0);
  io::SafetensorsFile file;
  if (!io::encode_normalizer_file(c, "fuzz", &file).ok()) std::abort();
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace normkit;
  static const io::SafetensorsFile base = valid_state();
  io::JsonValue metadata;
  std::string error;
  if (!io::parse_json(std::string(reinterpret_cast<const char*>(data), size), &metadata, &error)) return 0;
  if (metadata.kind != io::JsonValue::Kind::object) return 0;
  io::SafetensorsFile file = base;
  file.metadata.clear();
  for (std::size_t i = 0; i < metadata.keys.size(); ++i) {
    if (metadata.items[i].kind != io::JsonValue::Kind::string) return 0;  // the safetensors reader's rule
    file.metadata.emplace_back(metadata.keys[i], metadata.items[i].text);
  }
  io::NormalizerFileContents contents;
  const Status s = io::decode_normalizer_file(file, "fuzz", "<fuzz>", &contents);
  if (!s.ok() && s.message().empty()) std::abort();
  if (s.ok() && contents.summaries.size() != 3) std::abort();
  return 0;
}
