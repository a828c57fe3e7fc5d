// SyncBatchNorm: BatchNorm training over a batch split across the ranks of a Communicator (distributed.hpp),
// as PyTorch's torch.nn.SyncBatchNorm: each rank passes its part of the batch (any sizes, an empty part
// included), every rank normalizes its part with the whole batch's statistics and gets the whole batch's
// dgamma and dbeta. Formulas, options, dtypes and edge cases are batch_norm.hpp's, with n the whole batch's
// values per channel.
//
//   forward   batch_norm_statistics (this rank's part) -> all_merge_summaries (gathered, merged in rank
//             order) -> batch_norm_finalize (saved mean and rstd; the running statistics, PyTorch's unbiased
//             factor from the merged count) -> batch_norm_normalize
//   backward  batch_norm_backward_reduce -> all_sum_in_rank_order of Σdy and Σdy·(x - mean) -> batch_norm_
//             backward_apply with the whole batch's count
//
// Every rank ends with bitwise the same saved statistics, running statistics, dgamma and dbeta, and they
// are bitwise the same whatever rank computes them, for a given split of the batch. Against one process
// normalizing the concatenated batch (or PyTorch's SyncBatchNorm, which gathers mean, inverse std and count
// a rank) they agree to float32 rounding, not bitwise: the statistics merge per-rank summaries.
//
// Exchanged a step and rank: forward C StatsSummary (80 bytes each), backward 2 C floats (PyTorch: 2 C + 1
// floats forward, 2 C backward).
//
// saved_mean and saved_rstd are required (the normalize and the backward read them). `global_count` (the
// backward): the whole batch's values per channel, Σ over ranks of numel(x) / C (with equal parts,
// comm.size() * numel(x) / C; the forward's merged summaries hold it as their count). Device calls only
// enqueue work (the transport's all-gather included, for NcclCommunicator) and take a workspace of
// sync_batch_norm_workspace_size() bytes; host calls may pass none.
#pragma once

#include <cstddef>
#include <cstdint>

#include "normkit/batch_norm.hpp"
#include "normkit/distributed.hpp"

namespace normkit {

// Bytes of device scratch either direction needs for this rank's x (0 on the host): the per-channel
// summaries or sums, their gather (comm.size() copies) and batch_norm_workspace_size's.
Status sync_batch_norm_workspace_size(const Communicator& comm, const TensorView& x, const BatchNormOptions& options, std::size_t* bytes);

Status sync_batch_norm_forward(Communicator& comm, const TensorView& x, const TensorView& gamma, const TensorView& beta,
                               const TensorView& y, const TensorView& running_mean, const TensorView& running_var,
                               const TensorView& saved_mean, const TensorView& saved_rstd, const BatchNormOptions& options,
                               void* workspace = nullptr, std::size_t workspace_bytes = 0, Stream stream = nullptr);

Status sync_batch_norm_backward(Communicator& comm, const TensorView& dy, const TensorView& x, const TensorView& saved_mean,
                                const TensorView& saved_rstd, const TensorView& gamma, std::int64_t global_count, const TensorView& dx,
                                const TensorView& dgamma, const TensorView& dbeta, const BatchNormOptions& options,
                                void* workspace = nullptr, std::size_t workspace_bytes = 0, Stream stream = nullptr);

}  // namespace normkit
