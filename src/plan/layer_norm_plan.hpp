// How the LayerNorm / RMSNorm kernels and the host engine walk a row: pure host functions.
//
// The *layout* of a row (which thread of a row's group sums which elements, and in what order the groups'
// sums meet) fixes the rounding of every result, so it depends on N and the dtype alone: never on the SM
// count, the number of rows, the pointers' alignment or a test override. The host engine reproduces it.
// The *launch shape* (block and grid sizes, vector or scalar loads) may change freely.
#pragma once

#include <cstddef>
#include <cstdint>

#include "normkit/dtype.hpp"
#include "normkit/layer_norm_types.hpp"

namespace normkit::plan {

// Values a thread holds of its row (the row stays in registers: one read) in 16-byte packs: 32 in the
// forward, 16 in the backward (x and dy, converted; the dgamma/dbeta sums of its columns live in shared
// memory); w and beta are cached per block in shared memory. Rows in scalar packs (lengths not a multiple
// of a pack: a 64-bit address and a register a value): 16 in the forward (32 spilled), 8 in the backward.
// At most 512 threads a row (128 registers a thread): the forward reads rows of up to 16384 elements once
// (8192 in scalar packs), the backward rows of up to 8192 (4096). Longer rows take 512 threads and read the
// row twice. (Tried: gamma and beta in registers: 32 values a thread spilled; 1024 threads of 16 values
// spilled at their 64 registers.)
constexpr int row_norm_values_per_thread(bool backward, int vec) { return backward ? (vec == 1 ? 8 : 16) : (vec == 1 ? 16 : 32); }
// Floats of shared memory a backward thread keeps its dgamma and dbeta sums in (one-read rows): both sums of
// each value, 4 floats of padding (36 floats apart: no bank conflicts in 16-byte accesses).
constexpr int row_norm_backward_accumulator_floats(int vec) { return 2 * row_norm_values_per_thread(true, vec) + 4; }
constexpr int kRowNormMaxThreads = 512;
// Threads of a block: row groups of up to 256 threads share one (a wider group is its block).
constexpr int kRowNormBlockThreads = 256;
// Strands of the final dgamma/dbeta sum over the partials: strand s adds partials s, s + 32, ..., then the
// strands are added in order (both engines). 32 keeps each thread's chain short (8 strands: 512 partials
// of rows of 768 took 51 us modelled, latency-bound).
constexpr int kRowNormGradStrands = 32;

struct RowNormLayout {
  int vec = 1;          // elements per pack: 16 bytes of x's dtype when N is a multiple of them, else 1
  int threads = 1;      // threads per row, a power of two; thread t owns packs t, t + threads, ...
  bool one_read = true; // the row fits threads x row_norm_values_per_thread(): held in registers
  // Backward only: rows of a kLayerNormRowsPerPartial block are shared by `groups` row groups of a block,
  // group g taking rows g, g + groups, ...; each group sums its rows' dgamma/dbeta contributions in row
  // order, then the groups' sums are added in group order.
  int groups = 1;
};

// The canonical layouts (functions of N and x's dtype only).
RowNormLayout row_norm_forward_layout(std::int64_t n, DType x);
RowNormLayout row_norm_backward_layout(std::int64_t n, DType x);

struct RowNormPlan {
  RowNormLayout layout;
  bool vector_access = true;  // every row pointer aligned for whole packs (else the same layout, scalar loads)
  int block_threads = kRowNormBlockThreads;
  int groups_per_block = 1;   // rows a block works on at once (forward) / row groups (backward)
  std::int64_t grid = 1;      // blocks; each strides over rows (forward) or partial blocks (backward)
  std::size_t shared_bytes = 0;  // dynamic shared memory a block
  std::int64_t partials = 0;  // backward: ceil(rows / kLayerNormRowsPerPartial)
};

// Test-only: forces scalar loads or a smaller grid on later plans of this thread (the layout never changes).
struct RowNormOverride {
  bool force_scalar = false;
  std::int64_t max_blocks = 0;
};
void set_row_norm_override(const RowNormOverride* override_or_null) noexcept;

// `aligned`: every pointer of the call is aligned to 16 bytes (x's pack) and 16 x sizeof(param)/sizeof(x).
RowNormPlan choose_row_norm_forward_plan(std::int64_t rows, std::int64_t n, DType x, bool aligned, int sm_count);
RowNormPlan choose_row_norm_backward_plan(std::int64_t rows, std::int64_t n, DType x, bool aligned, int sm_count);

// Dynamic shared memory of the forward: one-read rows keep w and beta of the row in float32 (8 n bytes,
// 64 KB at n = 8192: above the default 48 KB, so the launcher raises the kernel's limit).
constexpr std::size_t row_norm_param_cache_bytes(const RowNormLayout& l, std::int64_t n) {
  return l.one_read ? 2 * static_cast<std::size_t>(n) * sizeof(float) : 0;
}

// Dynamic shared memory of the backward: one-read rows keep w (n floats, rounded up to 4) and every
// thread's dgamma/dbeta sums (threads x row_norm_backward_accumulator_floats).
std::size_t row_norm_backward_shared_bytes(const RowNormLayout& l, std::int64_t n, int block_threads);

// One call, validated, as both engines take it: x is [rows, n]; absent tensors are null.
struct RowNormForwardCall {
  const void* x = nullptr;
  // Fused residual add (both or neither): h = x + residual (x's dtype) is written to residual_out and
  // normalized in x's place.
  const void* residual = nullptr;
  void* residual_out = nullptr;
  const void* gamma = nullptr;
  const void* beta = nullptr;
  void* y = nullptr;
  float* mean = nullptr;
  float* rstd = nullptr;
  DType x_dtype = DType::float32, param_dtype = DType::float32;
  std::int64_t rows = 0, n = 0;
  LayerNormOptions options;
};

struct RowNormBackwardCall {
  const void* dy = nullptr;
  const void* residual_grad = nullptr;  // added to dx (the gradient arriving at the residual stream h)
  const void* x = nullptr;
  const float* mean = nullptr;  // null for RMSNorm
  const float* rstd = nullptr;
  const void* gamma = nullptr;
  void* dx = nullptr;
  void* dgamma = nullptr;
  void* dbeta = nullptr;
  DType x_dtype = DType::float32, param_dtype = DType::float32;
  std::int64_t rows = 0, n = 0;
  LayerNormOptions options;
};

// Partials of the backward (ceil(rows / kLayerNormRowsPerPartial)) and the workspace they take:
// dgamma and dbeta partials, float32 [partials, n] each.
std::int64_t row_norm_partials(std::int64_t rows);
std::size_t row_norm_backward_workspace_bytes(std::int64_t rows, std::int64_t n);

}  // namespace normkit::plan
