// Links normkit::mpi from the installed package: MpiCommunicator's symbols resolve.
#include <normkit/mpi.hpp>

int main() {
  int (normkit::MpiCommunicator::*rank)() const = &normkit::MpiCommunicator::rank;
  return rank != nullptr ? 0 : 1;
}
