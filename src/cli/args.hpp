// Small parsing helpers shared by the command-line verbs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "normkit/stats.hpp"

namespace normkit::cli {

bool parse_int64(const std::string& text, std::int64_t* value);
bool parse_double(const std::string& text, double* value);
std::vector<std::string> split_commas(const std::string& text);

// --axis values: "all" (or "None") or a comma list of integers (negative count from the end). Throws
// UsageError on anything else.
ReduceAxes parse_axis_option(const std::string& text);

// Takes the value of option `arg` (the part after '=' when given inline, else the next argument, taken
// verbatim so that negative numbers work). Throws UsageError when there is none.
std::string option_value(const std::vector<std::string>& args, std::size_t* i, const std::string& arg,
                         const std::string* inline_value);

}  // namespace normkit::cli
