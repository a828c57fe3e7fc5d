// Links normkit::nccl from the installed package: NcclCommunicator's symbols resolve.
#include <normkit/nccl.hpp>

int main() {
  int (normkit::NcclCommunicator::*rank)() const = &normkit::NcclCommunicator::rank;
  return rank != nullptr ? 0 : 1;
}
