// Argument checks shared by the public entry points.
#pragma once

#include <string>

#include "normkit/stats.hpp"

namespace normkit::api {

const char* space_name(MemorySpace space);

// A tensor statistics or transforms read: rank, dtype, shape overflow, null data, device reachability.
Status validate_input(const TensorView& input, const std::string& op);

}  // namespace normkit::api
