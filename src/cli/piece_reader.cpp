#include "cli/piece_reader.hpp"

#include <new>
#include <utility>

namespace normkit::cli {

PieceReader::PieceReader(std::vector<io::ArrayStream*> streams, std::vector<Piece> pieces, std::size_t capacity, bool pinned)
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
    if (pinned_) kernels::pinned_free(buffers_[s]);
  }
}

Status PieceReader::start() {
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
  Status failed = Status::success();
  int fill = 0;
  for (const Piece& piece : pieces_) {
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
