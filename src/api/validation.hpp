// Argument checks shared by the public entry points.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "normkit/distributed.hpp"
#include "normkit/normalize_types.hpp"
#include "normkit/stats.hpp"

namespace normkit::api {

const char* space_name(MemorySpace space);

// accumulate_stats (stats.hpp) overwriting `summaries`, for callers that need count, mean, M2 and the
// non-finite counts only (BatchNorm, GroupNorm): the moments-only kernels run, and the summaries' min, max,
// Σ|x| and non-zero count are written neutral (+Inf, -Inf, 0, 0). Errors named after `op`.
Status accumulate_moment_summaries(const TensorView& input, const StatsOptions& options, StatsSummary* summaries, std::int64_t num_summaries,
                                   void* workspace, std::size_t workspace_bytes, Stream stream, const std::string& op);

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

// A float32 parameter or statistics tensor of a layer (gamma, saved mean, sums...): `count` elements (any
// shape) in `space`; `what` says what they are ("one per channel").
Status validate_float_array(const TensorView& t, std::int64_t count, const std::string& what, MemorySpace space, const std::string& op,
                            const std::string& name);
// The same for each present (data != nullptr) tensor of a list.
Status validate_float_arrays(std::initializer_list<std::pair<const TensorView*, const char*>> tensors, std::int64_t count,
                             const std::string& what, MemorySpace space, const std::string& op);
// A required tensor: data != nullptr.
Status require(const TensorView& t, const char* name, const char* what, const std::string& op);

// all_merge_summaries / all_sum_in_rank_order with the caller's own status before the exchange (`prior`)
// agreed on in the same collective as their argument checks: one agreement where two were (SyncBatchNorm's
// phases), errors named after `operation` (distributed.cpp).
Status all_merge_summaries_after(Communicator& comm, const Status& prior, const char* operation, StatsSummary* summaries, std::int64_t n,
                                 MemorySpace space, void* workspace, std::size_t workspace_bytes, Stream stream);
Status all_sum_in_rank_order_after(Communicator& comm, const Status& prior, const char* operation, float* sums, std::int64_t n, MemorySpace space,
                                   void* workspace, std::size_t workspace_bytes, Stream stream);
inline Buffer buffer(const char* name, const TensorView& t) { return Buffer{name, t.data, bytes_of(t)}; }
// The fused apply's center, scale and offset arrays of `count` elements each: three 256-byte aligned
// regions at `base` (device workspace), or in `host` (resized) when base is null.
AffineCoefficients affine_arrays(void* base, std::int64_t count, std::vector<double>* host);
// Outputs apart from the inputs and each other; on the device also `needed` bytes of workspace (asked of
// `size_query`) apart from all.
Status check_call_buffers(const std::vector<Buffer>& outputs, const std::vector<Buffer>& inputs, MemorySpace space, void* workspace,
                          std::size_t bytes, std::size_t needed, const char* size_query, const std::string& op);

}  // namespace normkit::api
