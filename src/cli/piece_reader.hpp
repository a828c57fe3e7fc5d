// Reads a streamed run's pieces ahead of their reduction: a thread fills one of two buffers with the next
// piece (or passes over a piece another rank summarises) while the caller reduces the last one, so reading
// the files overlaps the statistics instead of alternating with them. For the host engine a .npy file's
// pieces are mapped instead (read from the page cache without a copy); for the device the buffers are
// pinned host memory, so that their uploads are asynchronous copies that overlap too.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "io/idx.hpp"
#include "kernels/common/device_runtime.hpp"
#include "normkit/status.hpp"

namespace normkit::cli {

// One piece: elements [first, first + count) of a file's tensor, read by this process or passed over.
struct Piece {
  std::size_t file = 0;
  std::int64_t first = 0;
  std::int64_t count = 0;
  bool owned = true;
  bool last_of_file = false;  // the file's stream is finished after it (its trailing checks)
};

// The pieces of a streamed run in order, made as they are needed (a list of them all would take 32 bytes a
// piece: gigabytes for a large file in tiny pieces): each file's elements in pieces of `chunk_elements`, an
// empty file one empty piece (its stream is finished all the same); piece p belongs to rank p % ranks.
class PieceCursor {
 public:
  PieceCursor(std::vector<std::int64_t> file_elements, std::int64_t chunk_elements, int ranks, int rank);
  std::int64_t count() const { return count_; }
  Piece next();  // count() times

 private:
  std::vector<std::int64_t> elements_, pieces_of_;
  std::int64_t chunk_, count_ = 0, index_ = 0, in_file_ = 0;
  std::size_t file_ = 0;
  int ranks_, rank_;
};

class PieceReader {
 public:
  // `streams[f]` is read (from where it stands) by the pieces of file f, in order; at most `capacity` bytes
  // a piece.
  PieceReader(std::vector<io::ArrayStream*> streams, PieceCursor pieces, std::size_t capacity, bool pinned);
  PieceReader(const PieceReader&) = delete;
  PieceReader& operator=(const PieceReader&) = delete;
  ~PieceReader();  // stops reading and joins the thread

  Status start();  // allocates the pinned buffers and starts reading (on the calling thread's GPU)
  // The next piece, in order: its bytes and the buffer holding them, 0 or 1 (null and -1 for a piece passed
  // over), and the status of reading it (and of finishing its file after a file's last piece). After a
  // failure every later piece reports it too.
  Status next(const unsigned char** data, int* slot);
  // Hands the last piece's buffer back for the piece after next; with `copied`, only once that event (the
  // asynchronous upload reading the buffer) has completed. Once per piece; later calls do nothing.
  void release(kernels::Event copied = nullptr);

 private:
  struct Item {
    Status status;
    int slot = -1;
    const unsigned char* data = nullptr;
  };
  Status fill_slot(io::ArrayStream& stream, std::size_t bytes, int slot, const unsigned char** data);
  void run();

  std::vector<io::ArrayStream*> streams_;
  PieceCursor pieces_;
  int device_ = -1;  // the reader thread's GPU (events are waited for on it)
  std::size_t capacity_;
  bool pinned_;
  unsigned char* buffers_[2] = {nullptr, nullptr};
  std::vector<unsigned char> host_buffers_[2];  // (allocated at the first piece that cannot be mapped)
  io::ArrayStream::Mapping mappings_[2];
  bool slot_free_[2] = {true, true};
  kernels::Event slot_copy_[2] = {nullptr, nullptr};
  int held_ = -1;  // the slot the caller holds
  std::deque<Item> ready_;
  bool stop_ = false;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::thread thread_;
};

}  // namespace normkit::cli
