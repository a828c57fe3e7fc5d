#include "plan/layer_norm_plan.hpp"

#include <algorithm>

namespace normkit::plan {
namespace {

thread_local const RowNormOverride* g_row_norm_override = nullptr;

int power_of_two_at_least(std::int64_t v) {
  int p = 1;
  while (p < v) p *= 2;
  return p;
}

RowNormLayout layout_for(std::int64_t n, DType x, bool backward) {
  RowNormLayout l;
  const int full = static_cast<int>(16 / dtype_size(x));
  l.vec = n % full == 0 ? full : 1;
  const std::int64_t packs = n / l.vec;
  const int packs_per_thread = row_norm_values_per_thread(backward, l.vec) / l.vec;
  const std::int64_t needed = (packs + packs_per_thread - 1) / packs_per_thread;
  l.one_read = needed <= kRowNormMaxThreads;
  l.threads = l.one_read ? power_of_two_at_least(needed) : kRowNormMaxThreads;
  return l;
}

// Blocks that keep every SM busy for a few waves; blocks then stride.
std::int64_t grid_cap(int block_threads, int sm_count) {
  const std::int64_t resident = std::max(1, 2048 / block_threads);
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::max(1, sm_count)) * resident * 2);
}

void apply_override(RowNormPlan* p) {
  const RowNormOverride* force = g_row_norm_override;
  if (force == nullptr) return;
  if (force->force_scalar) p->vector_access = false;
  if (force->max_blocks > 0) p->grid = std::min(p->grid, force->max_blocks);
}

}  // namespace

void set_row_norm_override(const RowNormOverride* override_or_null) noexcept { g_row_norm_override = override_or_null; }

RowNormLayout row_norm_forward_layout(std::int64_t n, DType x) {
  return layout_for(n, x, false);
}

RowNormLayout row_norm_backward_layout(std::int64_t n, DType x) {
  RowNormLayout l = layout_for(n, x, true);
  l.groups = static_cast<int>(std::clamp<std::int64_t>(kRowNormBlockThreads / l.threads, 1, kLayerNormRowsPerPartial));
  return l;
}

RowNormPlan choose_row_norm_forward_plan(std::int64_t rows, std::int64_t n, DType x, bool aligned, int sm_count) {
  RowNormPlan p;
  p.layout = row_norm_forward_layout(n, x);
  p.vector_access = aligned;
  // (long rows: a block a row, as many as two resident blocks an SM hold)
  p.block_threads = p.layout.one_read ? std::max(p.layout.threads, kRowNormBlockThreads) : p.layout.threads;
  p.groups_per_block = p.block_threads / p.layout.threads;
  // One wave of blocks at most, at the 16 resident warps an SM that the kernel's ~120 registers allow:
  // every block fills its parameter cache once, then strides over rows (2112 blocks of 256 threads gave rows
  // of 4096 bfloat16 4 rows a block: the fill was half the traffic).
  p.grid = std::clamp<std::int64_t>((rows + p.groups_per_block - 1) / p.groups_per_block, 1,
                                    static_cast<std::int64_t>(std::max(1, sm_count)) * std::max(1, 512 / p.block_threads));
  p.shared_bytes = row_norm_param_cache_bytes(p.layout, n);
  apply_override(&p);
  return p;
}

std::size_t row_norm_backward_shared_bytes(const RowNormLayout& l, std::int64_t n, int block_threads) {
  if (!l.one_read) return 0;
  return (static_cast<std::size_t>((n + 3) / 4 * 4) + static_cast<std::size_t>(block_threads) * row_norm_backward_accumulator_floats(l.vec)) *
         sizeof(float);
}

std::int64_t row_norm_partials(std::int64_t rows) { return (rows + kLayerNormRowsPerPartial - 1) / kLayerNormRowsPerPartial; }

std::size_t row_norm_backward_workspace_bytes(std::int64_t rows, std::int64_t n) {
  return 2 * static_cast<std::size_t>(row_norm_partials(rows)) * static_cast<std::size_t>(n) * sizeof(float);
}

RowNormPlan choose_row_norm_backward_plan(std::int64_t rows, std::int64_t n, DType x, bool aligned, int sm_count) {
  RowNormPlan p;
  p.layout = row_norm_backward_layout(n, x);
  p.vector_access = aligned;
  p.groups_per_block = p.layout.groups;
  p.block_threads = p.layout.threads * p.layout.groups;
  p.partials = row_norm_partials(rows);
  p.shared_bytes = row_norm_backward_shared_bytes(p.layout, n, p.block_threads);
  p.grid = std::clamp<std::int64_t>(p.partials, 1, grid_cap(p.block_threads, sm_count));
  apply_override(&p);
  return p;
}

}  // namespace normkit::plan
