// normkit::NcclCommunicator: the Communicator of distributed.hpp over an NCCL communicator the caller owns
// (target normkit::nccl; NCCL ships with the CUDA toolkit). Device memory only: the all-gather is one
// ncclAllGather on the caller's stream, so all_merge_summaries on device summaries gathers and merges on the
// device with no host round trip and no synchronization (it can be captured in a CUDA graph). Host memory
// is an error (NCCL moves device memory; use MpiCommunicator for host summaries).
//
// Errors are per rank (all_agree cannot gather host memory through NCCL): an argument error returns before
// any NCCL call on the rank that made it, while the other ranks wait in theirs (NCCL has no way to abort a
// collective the others entered). Check arguments identically on every rank, or use ncclCommAbort on error.
#pragma once

#include <nccl.h>

#include "normkit/distributed.hpp"

namespace normkit {

class NcclCommunicator final : public Communicator {
 public:
  // `comm` must outlive this object; rank and size are read from it once.
  explicit NcclCommunicator(ncclComm_t comm);
  int rank() const override;
  int size() const override;
  // `space` must be MemorySpace::device; send and recv device pointers, the gather enqueued on `stream`.
  Status all_gather(const void* send, void* recv, std::size_t bytes, MemorySpace space, Stream stream) override;
  bool gathers_host_memory() const override { return false; }
  // An error reading rank or size in the constructor (ncclCommUserRank / ncclCommCount), else success; after
  // one, size() is 0, which every collective of distributed.hpp refuses.
  const Status& status() const { return status_; }

 private:
  ncclComm_t comm_;
  int rank_ = 0, size_ = 1;
  Status status_;
};

}  // namespace normkit
