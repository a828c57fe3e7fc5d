#include "cli/piece_reader.hpp"

#include <algorithm>
#include <new>
#include <utility>

namespace normkit::cli {

PieceCursor::PieceCursor(std::vector<std::int64_t> file_elements, std::int64_t chunk_elements, int ranks, int rank)
    : elements_(std::move(file_elements)), chunk_(chunk_elements), ranks_(ranks), rank_(rank) {
  for (std::int64_t e : elements_) {
    pieces_of_.push_back(e == 0 ? 1 : (e + chunk_ - 1) / chunk_);
    count_ += pieces_of_.back();
  }
}

Piece PieceCursor::next() {
  Piece p;
  p.file = file_;
  p.first = in_file_ * chunk_;
  p.count = std::min(chunk_, elements_[file_] - p.first);
  p.owned = index_ % ranks_ == rank_;
  p.last_of_file = in_file_ + 1 == pieces_of_[file_];
  ++index_;
  if (++in_file_ == pieces_of_[file_]) {
    ++file_;
    in_file_ = 0;
  }
  return p;
}

PieceReader::PieceReader(std::vector<io::ArrayStream*> streams, PieceCursor pieces, std::size_t capacity, bool pinned)
    : streams_(std::move(streams)), pieces_(std::move(pieces)), capacity_(capacity), pinned_(pinned) {}

PieceReader::~PieceReader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (int s = 0; s < 2; ++s) {
    io::ArrayStream::unmap(&mappings_[s]);
    if (slot_copy_[s]) (void)kernels::event_synchronize(slot_copy_[s], "normkit stats");  // (an upload still reading it)
    if (pinned_) kernels::pinned_free(buffers_[s]);
  }
}

Status PieceReader::start() {
  if (pinned_) NORMKIT_RETURN_IF_ERROR(kernels::current_device(&device_, "normkit stats"));
  for (int s = 0; s < 2 && pinned_; ++s) {
    void* p = nullptr;
    NORMKIT_RETURN_IF_ERROR(kernels::pinned_allocate(&p, capacity_, "normkit stats"));
    buffers_[s] = static_cast<unsigned char*>(p);
  }
  thread_ = std::thread([this] { run(); });
  return Status::success();
}

// The next `bytes` of `stream` into buffer `slot`: mapped where the host engine reads them and the format
// allows, else read.
Status PieceReader::fill_slot(io::ArrayStream& stream, std::size_t bytes, int slot, const unsigned char** data) {
  io::ArrayStream::unmap(&mappings_[slot]);
  if (!pinned_) {
    NORMKIT_RETURN_IF_ERROR(stream.map(bytes, &mappings_[slot]));
    if (mappings_[slot].data != nullptr) {
      *data = mappings_[slot].data;
      return Status::success();
    }
    if (buffers_[slot] == nullptr) {
      try {
        host_buffers_[slot].resize(capacity_);
      } catch (const std::bad_alloc&) {
        return Status(StatusCode::io_error, "normkit stats: no memory for a piece of " + std::to_string(capacity_) +
                                                     " bytes (a smaller --chunk-bytes needs less)");
      }
      buffers_[slot] = host_buffers_[slot].data();
    }
  }
  NORMKIT_RETURN_IF_ERROR(stream.read(buffers_[slot], bytes));
  *data = buffers_[slot];
  return Status::success();
}

void PieceReader::run() {
  // (a new thread's current GPU is 0: the events it waits for belong to the caller's)
  Status failed = device_ >= 0 ? kernels::set_current_device(device_, "normkit stats") : Status::success();
  int fill = 0;
  for (std::int64_t p = 0; p < pieces_.count(); ++p) {
    const Piece piece = pieces_.next();
    Item item;
    io::ArrayStream& stream = *streams_[piece.file];
    const std::size_t bytes = static_cast<std::size_t>(piece.count) * dtype_size(stream.dtype());
    if (failed.ok() && piece.owned) {
      kernels::Event copy = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stop_ || slot_free_[fill]; });
        if (stop_) return;
        slot_free_[fill] = false;
        copy = slot_copy_[fill];
      }
      if (copy) failed = kernels::event_synchronize(copy, "normkit stats");  // (the upload still reading this buffer)
      if (failed.ok()) failed = fill_slot(stream, bytes, fill, &item.data);
      item.slot = fill;
      fill ^= 1;
    } else if (failed.ok()) {
      failed = stream.skip(bytes);
    }
    if (failed.ok() && piece.last_of_file) failed = stream.finish();
    item.status = failed;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stop_) return;
      ready_.push_back(item);
    }
    changed_.notify_all();
  }
}

Status PieceReader::next(const unsigned char** data, int* slot) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return !ready_.empty(); });
  const Item item = ready_.front();
  ready_.pop_front();
  held_ = item.slot;
  *slot = item.slot;
  *data = item.data;
  return item.status;
}

void PieceReader::release(kernels::Event copied) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (held_ < 0) return;
    slot_free_[held_] = true;
    slot_copy_[held_] = copied;
    held_ = -1;
  }
  changed_.notify_all();
}

}  // namespace normkit::cli
