// Statistics across processes and GPUs: exact, deterministic merges of per-part summaries.
//
// Each rank accumulates its own part (accumulate_stats / accumulate_integer_stats, any sizes, zero elements
// included), then all_merge_summaries() gathers every rank's summaries and merges them in rank order on every
// rank: every rank ends with bitwise the same summaries, equal to merging the same per-rank summaries in one
// process (rank 0's, then rank 1's, ...), whatever the world size or the part sizes. An all-reduce would not
// do: NCCL has no user-defined reduction and its results depend on the algorithm and message size, and an MPI
// user-defined reduction over 4+ ranks merges in an order of its own. finalize_stats as in one process.
// integer summaries (uint8) merge by integer addition: exact in any order.
//
// The transport is a Communicator: an all-gather of bytes, rank and size. normkit::MpiCommunicator (target
// normkit::mpi, include/normkit/mpi.hpp) wraps an MPI_Comm; tests use an in-process group of threads.
#pragma once

#include <cstddef>
#include <cstdint>

#include "normkit/stats_types.hpp"
#include "normkit/status.hpp"
#include "normkit/tensor.hpp"

namespace normkit {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Every rank passes `bytes` bytes at `send`; `recv` (size() * bytes) receives rank r's at offset r * bytes, on
  // every rank. `space`: where send and recv live (device memory: on `stream`; a transport that cannot read
  // device memory stages it through the host and synchronizes the stream).
  virtual Status all_gather(const void* send, void* recv, std::size_t bytes, MemorySpace space, Stream stream) = 0;
  // Whether all_gather takes host memory (all_agree needs it; NcclCommunicator: false).
  virtual bool gathers_host_memory() const { return true; }
};

// Every rank's `local` status and `value` gathered (a host all-gather of 16 bytes a rank): success on every
// rank when every rank succeeded with the same value, else the same error on every rank: the first failing
// rank's code and message ("rank r of P failed (code); every rank returns this error: <its message, up to 511
// bytes>", gathered by a second all-gather of 512 bytes a rank when one failed), or invalid_argument when the values
// differ (e.g. a summary count n). So a rank that fails its checks makes every rank return an error rather
// than leave them waiting in a collective it never enters. A transport that cannot gather host memory
// (NcclCommunicator) skips it: `local` is returned as it is, and errors are per rank. The collective
// functions here call it before they exchange data; callers composing their own steps can too.
Status all_agree(Communicator& comm, const Status& local, std::int64_t value, const char* operation);

// Workspace of all_merge_summaries / all_merge_integer_summaries: size() * n summaries (in `space`; host calls
// may pass none: they allocate their own).
std::size_t all_merge_workspace_size(const Communicator& comm, std::int64_t n, bool integer = false);

// summaries[k] (n of them, this rank's, in `space`) <- the rank-ordered merge of every rank's summaries[k].
// Every rank must call it with the same n (checked by all_agree, as every argument: a failure on one rank is
// an error on every rank). Errors: n < 0 or differing across ranks, null pointers, a workspace too small
// (device), the transport's errors. Device calls gather into the workspace and merge there (size() - 1 merges in rank order).
Status all_merge_summaries(Communicator& comm, StatsSummary* summaries, std::int64_t n, MemorySpace space, void* workspace = nullptr,
                           std::size_t workspace_bytes = 0, Stream stream = nullptr);
Status all_merge_integer_summaries(Communicator& comm, IntegerSummary* summaries, std::int64_t n, MemorySpace space,
                                   void* workspace = nullptr, std::size_t workspace_bytes = 0, Stream stream = nullptr);

// sums[k] (n float32 values, this rank's, in `space`) <- rank 0's sums[k] + rank 1's + ... added in rank order,
// each addition rounded to float32: every rank ends with the same bits. SyncBatchNorm's backward sums
// (batch_norm_backward_reduce on each rank, then this; sync_batch_norm.hpp does both). Workspace: size() * n
// floats (all_sum_workspace_size; host calls may pass none). Errors as all_merge_summaries.
std::size_t all_sum_workspace_size(const Communicator& comm, std::int64_t n);
Status all_sum_in_rank_order(Communicator& comm, float* sums, std::int64_t n, MemorySpace space, void* workspace = nullptr,
                             std::size_t workspace_bytes = 0, Stream stream = nullptr);

}  // namespace normkit
