// An in-process Communicator for tests: `size` threads, one a rank, exchanging bytes through shared slots
// (host memory, or device memory through cudaMemcpy when the test is built with the CUDA runtime).
#pragma once

#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "normkit/distributed.hpp"

#if defined(NORMKIT_TEST_DEVICE_COMMUNICATOR)
#include <cuda_runtime_api.h>
#endif

namespace normkit::testing {

class ThreadGroup {
 public:
  explicit ThreadGroup(int size) : size_(size), slots_(static_cast<std::size_t>(size)) {}
  int size() const { return size_; }
  std::vector<unsigned char>& slot(int rank) { return slots_[static_cast<std::size_t>(rank)]; }
  void barrier() {
    std::unique_lock<std::mutex> lock(mutex_);
    const int generation = generation_;
    if (++arrived_ == size_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation != generation_; });
    }
  }

 private:
  int size_;
  std::vector<std::vector<unsigned char>> slots_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int arrived_ = 0, generation_ = 0;
};

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(ThreadGroup& group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return group_.size(); }
  Status all_gather(const void* send, void* recv, std::size_t bytes, MemorySpace space, Stream stream) override {
    std::vector<unsigned char>& mine = group_.slot(rank_);
    mine.resize(bytes);
    copy(mine.data(), send, bytes, space, stream, true);
    group_.barrier();  // every rank's bytes are in
    for (int r = 0; r < size(); ++r) copy(static_cast<unsigned char*>(recv) + bytes * r, group_.slot(r).data(), bytes, space, stream, false);
    group_.barrier();  // nobody overwrites a slot still being read
    return Status::success();
  }

 private:
  static void copy(void* dst, const void* src, std::size_t bytes, MemorySpace space, Stream stream, bool to_host) {
    if (space == MemorySpace::host) {
      std::memcpy(dst, src, bytes);
      return;
    }
#if defined(NORMKIT_TEST_DEVICE_COMMUNICATOR)
    cudaMemcpyAsync(dst, src, bytes, to_host ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice, reinterpret_cast<cudaStream_t>(stream));
    cudaStreamSynchronize(reinterpret_cast<cudaStream_t>(stream));
#else
    (void)dst, (void)src, (void)bytes, (void)stream, (void)to_host;
#endif
  }
  ThreadGroup& group_;
  int rank_;
};

// Runs body(comm) on `size` threads, one a rank.
inline void run_ranks(int size, const std::function<void(Communicator&)>& body) {
  ThreadGroup group(size);
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&group, r, &body] {
      ThreadCommunicator comm(group, r);
      body(comm);
    });
  }
  for (auto& t : threads) t.join();
}

}  // namespace normkit::testing
