// Argument checks shared by the public entry points.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <vector>

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

// A tensor that must have x's shape, dtype and memory space (y, dy, dx of a layer); its pointer is checked
// unless the call has nothing to do (`empty`).
Status validate_like(const TensorView& t, const TensorView& x, bool empty, const std::string& op, const std::string& name);

// A double as text that reads back to the same value ("%.17g"), for error messages.
std::string number(double v);
// The activation dtypes of the layers: float32, float16, bfloat16.
bool is_layer_dtype(DType d);

// A named byte range of a call, for the overlap checks (data == nullptr or bytes == 0: absent).
struct Buffer {
  const char* name;
  const void* data;
  std::size_t bytes;
};
std::size_t bytes_of(const TensorView& t);
// Each output apart from every input and every other output; the error names the first clash.
Status check_apart(const std::vector<Buffer>& outputs, const std::vector<Buffer>& inputs, const std::string& op);
// True when every non-null pointer is 16-byte aligned (vector accesses).
bool aligned16(std::initializer_list<const void*> pointers);

}  // namespace normkit::api
