// Argument checks shared by the public entry points.
#pragma once

#include <string>

#include "normkit/stats.hpp"

namespace normkit::api {

const char* space_name(MemorySpace space);

// A tensor statistics or transforms read: rank, dtype, shape overflow, null data, alignment to its element
// size, device reachability.
Status validate_input(const TensorView& input, const std::string& op);

// A buffer argument (output, workspace, coefficients, summaries): aligned to `alignment` bytes and in
// `space` (device memory for device calls; never device-only memory for host calls).
Status validate_pointer(const void* p, MemorySpace space, std::size_t alignment, const std::string& op,
                        const std::string& argument);

// True when the byte ranges [a, a + a_bytes) and [b, b + b_bytes) share a byte.
bool overlaps(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes);

}  // namespace normkit::api
