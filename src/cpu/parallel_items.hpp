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

// Work of fewer elements than this a thread runs on fewer threads: starting and joining one (tens of
// microseconds) costs more than it saves (a LayerNorm of 16 x 8 values took 89 us on two threads).
constexpr std::int64_t kMinElementsPerThread = 1 << 16;

// The threads worth starting for `elements` of work, at most `threads` (at least 1).
inline int threads_for_elements(std::int64_t elements, int threads) {
  return static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, elements / kMinElementsPerThread)));
}

// parallel_items over items of `cost_per_item` elements each, on the threads worth starting.
template <typename F>
void parallel_range(std::int64_t count, std::int64_t cost_per_item, int threads, F&& work) {
  parallel_items(count, threads_for_elements(count * cost_per_item, threads), work);
}

}  // namespace normkit::cpu
