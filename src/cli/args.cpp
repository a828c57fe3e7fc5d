#include "cli/args.hpp"

#include <cerrno>
#include <cstdlib>

#include "cli/cli_common.hpp"

namespace normkit::cli {

bool parse_int64(const std::string& text, std::int64_t* value) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *value = v;
  return true;
}

bool parse_double(const std::string& text, double* value) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (errno != 0 || *end != '\0') return false;
  *value = v;
  return true;
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    parts.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return parts;
}

ReduceAxes parse_axis_option(const std::string& text) {
  if (text == "all" || text == "None") return ReduceAxes::every();
  std::vector<int> axes;
  for (const std::string& part : split_commas(text)) {
    std::int64_t axis = 0;
    if (!parse_int64(part, &axis) || axis < -kMaxDims || axis >= kMaxDims || axes.size() >= static_cast<std::size_t>(kMaxDims)) {
      throw UsageError{"--axis expects 'all' or comma-separated integers, got '" + text + "'"};
    }
    axes.push_back(static_cast<int>(axis));
  }
  return ReduceAxes::of(axes.data(), static_cast<int>(axes.size()));
}

std::string option_value(const std::vector<std::string>& args, std::size_t* i, const std::string& arg,
                         const std::string* inline_value) {
  if (inline_value) return *inline_value;
  if (*i + 1 >= args.size()) throw UsageError{"option " + arg + " needs a value"};
  return args[++*i];
}

}  // namespace normkit::cli
