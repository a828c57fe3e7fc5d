// NcclCommunicator: one ncclAllGather of bytes (ncclUint8) on the caller's stream.
#include "normkit/nccl.hpp"

#include <cuda_runtime.h>

#include <string>

namespace normkit {
namespace {

Status nccl_error(ncclResult_t code, const char* call) {
  return Status(StatusCode::io_error, std::string("normkit::NcclCommunicator: ") + call + " failed: " + ncclGetErrorString(code));
}

}  // namespace

NcclCommunicator::NcclCommunicator(ncclComm_t comm) : comm_(comm) {
  ncclResult_t rc = ncclCommUserRank(comm_, &rank_);
  if (rc == ncclSuccess) {
    rc = ncclCommCount(comm_, &size_);
    if (rc != ncclSuccess) status_ = nccl_error(rc, "ncclCommCount");
  } else {
    status_ = nccl_error(rc, "ncclCommUserRank");
  }
  // (a communicator that could not be read has no ranks: every collective refuses it, none takes it for
  // a world of one)
  if (!status_.ok()) rank_ = 0, size_ = 0;
}

int NcclCommunicator::rank() const { return rank_; }
int NcclCommunicator::size() const { return size_; }

Status NcclCommunicator::all_gather(const void* send, void* recv, std::size_t bytes, MemorySpace space, Stream stream) {
  if (!status_.ok()) return status_;
  if (space != MemorySpace::device) {
    return Status(StatusCode::invalid_argument,
                  "normkit::NcclCommunicator::all_gather: argument 'space': expected device (NCCL moves device memory), got host");
  }
  if (bytes == 0) return Status::success();
  if (send == nullptr || recv == nullptr) {
    return Status(StatusCode::invalid_argument, std::string("normkit::NcclCommunicator::all_gather: argument '") + (send ? "recv" : "send") +
                                                    "': expected a device pointer, got null");
  }
  const ncclResult_t rc = ncclAllGather(send, recv, bytes, ncclUint8, comm_, static_cast<cudaStream_t>(stream));
  if (rc != ncclSuccess) return nccl_error(rc, "ncclAllGather");
  return Status::success();
}

}  // namespace normkit
