// SyncBatchNorm: BatchNorm's phases with the rank-ordered merges of distributed.hpp between them.
#include "normkit/sync_batch_norm.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "api/validation.hpp"

namespace normkit {
namespace {

std::size_t round_up(std::size_t bytes) { return (bytes + 255) / 256 * 256; }

// The workspace's regions: C summaries (or 2 C floats), their gather, then BatchNorm's own.
struct SyncWorkspace {
  std::size_t local = 0, gathered = 0, batch_norm = 0, total = 0;
};

Status sync_workspace(const Communicator& comm, const TensorView& x, const BatchNormOptions& options, SyncWorkspace* w) {
  *w = SyncWorkspace{};
  if (x.space == MemorySpace::host) return Status::success();
  std::int64_t channels = 0;
  NORMKIT_RETURN_IF_ERROR(batch_norm_channels(x, options, &channels));
  NORMKIT_RETURN_IF_ERROR(batch_norm_workspace_size(x, options, &w->batch_norm));
  const std::size_t local = std::max(static_cast<std::size_t>(channels) * sizeof(StatsSummary), 2 * static_cast<std::size_t>(channels) * sizeof(float));
  w->local = round_up(local);
  w->gathered = round_up(std::max(all_merge_workspace_size(comm, channels), all_sum_workspace_size(comm, 2 * channels)));
  w->total = w->local + w->gathered + w->batch_norm;
  return Status::success();
}

unsigned char* at(void* base, std::size_t offset) { return static_cast<unsigned char*>(base) + offset; }

Status check_workspace(const SyncWorkspace& w, void* workspace, std::size_t workspace_bytes, const char* op) {
  if (w.total == 0) return Status::success();
  if (workspace_bytes < w.total) {
    return argument_error(StatusCode::workspace_too_small, op, "workspace_bytes",
                          "at least " + std::to_string(w.total) + " (sync_batch_norm_workspace_size)", std::to_string(workspace_bytes));
  }
  return api::validate_pointer(workspace, MemorySpace::device, 16, op, "workspace");
}

Status require_saved(const TensorView& saved_mean, const TensorView& saved_rstd, const char* op) {
  if (saved_mean.data == nullptr) return argument_error(StatusCode::invalid_argument, op, "saved_mean", "C floats (required)", "none");
  if (saved_rstd.data == nullptr) return argument_error(StatusCode::invalid_argument, op, "saved_rstd", "C floats (required)", "none");
  return Status::success();
}

}  // namespace

Status sync_batch_norm_workspace_size(const Communicator& comm, const TensorView& x, const BatchNormOptions& options, std::size_t* bytes) {
  SyncWorkspace w;
  NORMKIT_RETURN_IF_ERROR(sync_workspace(comm, x, options, &w));
  *bytes = w.total;
  return Status::success();
}

Status sync_batch_norm_forward(Communicator& comm, const TensorView& x, const TensorView& gamma, const TensorView& beta, const TensorView& y,
                               const TensorView& running_mean, const TensorView& running_var, const TensorView& saved_mean,
                               const TensorView& saved_rstd, const BatchNormOptions& options, void* workspace, std::size_t workspace_bytes,
                               Stream stream) {
  constexpr const char* kOp = "sync_batch_norm_forward";
  // This rank's checks and statistics, then every rank's verdict before the exchange.
  std::int64_t channels = 0;
  SyncWorkspace w;
  Status s = require_saved(saved_mean, saved_rstd, kOp);
  if (s.ok()) s = batch_norm_channels(x, options, &channels);
  if (s.ok()) s = sync_workspace(comm, x, options, &w);
  if (s.ok()) s = check_workspace(w, workspace, workspace_bytes, kOp);
  std::vector<StatsSummary> host(s.ok() && x.space == MemorySpace::host ? static_cast<std::size_t>(channels) : 0);
  StatsSummary* summaries = x.space == MemorySpace::host ? host.data() : reinterpret_cast<StatsSummary*>(workspace);
  void* gathered = x.space == MemorySpace::host ? nullptr : at(workspace, w.local);
  void* own = x.space == MemorySpace::host ? nullptr : at(workspace, w.local + w.gathered);
  if (s.ok()) s = batch_norm_statistics(x, options, summaries, channels, own, w.batch_norm, stream);
  // (this rank's verdict agreed on with the exchange's own checks, in one collective)
  NORMKIT_RETURN_IF_ERROR(api::all_merge_summaries_after(comm, s, kOp, summaries, channels, x.space, gathered, w.gathered, stream));
  s = batch_norm_finalize(summaries, channels, x.space, running_mean, running_var, saved_mean, saved_rstd, options, stream);
  if (s.ok()) s = batch_norm_normalize(x, saved_mean, saved_rstd, gamma, beta, y, options, own, w.batch_norm, stream);
  // (the phases after the exchange check the rest of the arguments: every rank learns of one rank's failure,
  // so that none goes on to a backward the others skip)
  return all_agree(comm, s, channels, kOp);
}

Status sync_batch_norm_backward(Communicator& comm, const TensorView& dy, const TensorView& x, const TensorView& saved_mean,
                                const TensorView& saved_rstd, const TensorView& gamma, std::int64_t global_count, const TensorView& dx,
                                const TensorView& dgamma, const TensorView& dbeta, const BatchNormOptions& options, void* workspace,
                                std::size_t workspace_bytes, Stream stream) {
  constexpr const char* kOp = "sync_batch_norm_backward";
  // This rank's checks and sums, then every rank's verdict before the exchange.
  std::int64_t channels = 0;
  SyncWorkspace w;
  Status s = require_saved(saved_mean, saved_rstd, kOp);
  if (s.ok() && global_count < 1) {
    s = argument_error(StatusCode::invalid_argument, kOp, "global_count", ">= 1 (the whole batch's values per channel)", std::to_string(global_count));
  }
  if (s.ok()) s = batch_norm_channels(x, options, &channels);
  if (s.ok()) s = sync_workspace(comm, x, options, &w);
  if (s.ok()) s = check_workspace(w, workspace, workspace_bytes, kOp);
  std::vector<float> host(s.ok() && x.space == MemorySpace::host ? 2 * static_cast<std::size_t>(channels) : 0);
  float* sums = x.space == MemorySpace::host ? host.data() : reinterpret_cast<float*>(workspace);
  void* gathered = x.space == MemorySpace::host ? nullptr : at(workspace, w.local);
  void* own = x.space == MemorySpace::host ? nullptr : at(workspace, w.local + w.gathered);
  const TensorView sum_dy(sums, DType::float32, {channels}, x.space), sum_dy_xmu(sums + channels, DType::float32, {channels}, x.space);
  if (s.ok()) s = batch_norm_backward_reduce(dy, x, saved_mean, sum_dy, sum_dy_xmu, options, own, w.batch_norm, stream);
  NORMKIT_RETURN_IF_ERROR(api::all_sum_in_rank_order_after(comm, s, kOp, sums, 2 * channels, x.space, gathered, w.gathered, stream));
  s = batch_norm_backward_apply(dy, x, saved_mean, saved_rstd, gamma, sum_dy, sum_dy_xmu, global_count, dx, dgamma, dbeta, options, own,
                                w.batch_norm, stream);
  return all_agree(comm, s, channels, kOp);
}

}  // namespace normkit
