// MpiCommunicator: MPI_Allgather of bytes (in pieces below 2^31 bytes, MPI's int counts), device memory staged
// through the host.
#include "normkit/mpi.hpp"

#include <algorithm>
#include <climits>
#include <string>
#include <vector>

#include "kernels/common/device_runtime.hpp"

namespace normkit {
namespace {

Status mpi_error(int code, const char* call) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return Status(StatusCode::io_error, std::string("normkit::MpiCommunicator: ") + call + " failed: " + std::string(text, static_cast<std::size_t>(length)));
}

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm) : comm_(comm) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

int MpiCommunicator::rank() const { return rank_; }
int MpiCommunicator::size() const { return size_; }

Status MpiCommunicator::all_gather(const void* send, void* recv, std::size_t bytes, MemorySpace space, Stream stream) {
  const std::size_t total = bytes * static_cast<std::size_t>(size_);
  std::vector<unsigned char> host_send, host_recv;
  const unsigned char* from = static_cast<const unsigned char*>(send);
  unsigned char* to = static_cast<unsigned char*>(recv);
  if (space == MemorySpace::device) {
    host_send.resize(bytes);
    host_recv.resize(total);
    NORMKIT_RETURN_IF_ERROR(kernels::copy_to_host_sync(host_send.data(), send, bytes, stream, "MpiCommunicator::all_gather"));
    from = host_send.data();
    to = host_recv.data();
  }
  // Pieces of at most INT_MAX bytes a rank (MPI counts are ints): piece p of every rank lands at r * bytes + offset.
  const std::size_t piece = static_cast<std::size_t>(INT_MAX) / static_cast<std::size_t>(std::max(size_, 1));
  std::vector<unsigned char> staged;
  for (std::size_t offset = 0; offset < bytes; offset += piece) {
    const std::size_t n = std::min(piece, bytes - offset);
    staged.resize(n * static_cast<std::size_t>(size_));
    const int rc = MPI_Allgather(from + offset, static_cast<int>(n), MPI_BYTE, staged.data(), static_cast<int>(n), MPI_BYTE, comm_);
    if (rc != MPI_SUCCESS) return mpi_error(rc, "MPI_Allgather");
    for (int r = 0; r < size_; ++r) std::copy_n(staged.data() + n * r, n, to + bytes * r + offset);
  }
  if (space == MemorySpace::device) {
    NORMKIT_RETURN_IF_ERROR(kernels::copy_to_device(recv, host_recv.data(), total, stream, "MpiCommunicator::all_gather"));
    NORMKIT_RETURN_IF_ERROR(kernels::synchronize_stream(stream, "MpiCommunicator::all_gather"));  // (host_recv goes away)
  }
  return Status::success();
}

}  // namespace normkit
