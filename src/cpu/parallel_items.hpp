// The host engine's one way to use threads: contiguous ranges of independent work items.
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace normkit::cpu {

// Runs work(begin, end) over items [0, count) on up to `threads` threads, each taking one contiguous
// range (the ranges depend only on count and the thread count, so results merged per item in a fixed
// order are reproducible).
template <typename F>
void parallel_items(std::int64_t count, int threads, F&& work) {
  threads = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, count)));
  if (threads == 1) {
    work(std::int64_t{0}, count);
    return;
  }
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    const std::int64_t begin = count * t / threads, end = count * (t + 1) / threads;
    pool.emplace_back([&work, begin, end] { work(begin, end); });
  }
  for (auto& th : pool) th.join();
}

}  // namespace normkit::cpu
