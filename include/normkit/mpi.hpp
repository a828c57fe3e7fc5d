// normkit::MpiCommunicator: the Communicator of distributed.hpp over an MPI communicator the caller owns
// (target normkit::mpi; needs MPI: Debian's libopenmpi-dev). Device memory is staged through the host (the
// stream is synchronized): CUDA-aware MPI is not assumed.
#pragma once

#include <mpi.h>

#include "normkit/distributed.hpp"

namespace normkit {

class MpiCommunicator final : public Communicator {
 public:
  // `comm` must outlive this object; MPI must be initialized.
  explicit MpiCommunicator(MPI_Comm comm);
  int rank() const override;
  int size() const override;
  Status all_gather(const void* send, void* recv, std::size_t bytes, MemorySpace space, Stream stream) override;

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

}  // namespace normkit
