// all_merge_summaries: gather every rank's summaries, merge them in rank order (rank 0, 1, ...) on every rank.
#include "normkit/distributed.hpp"

#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "api/validation.hpp"
#include "kernels/common/device_runtime.hpp"
#include "normkit/stats.hpp"

namespace normkit {
namespace {

// Gathers every rank's n values (summaries, or float sums) and folds them in rank order into rank 0's slot
// with merge(into, from), then copies that back: the same operations on every rank.
// `prior`: the caller's own status before the exchange, agreed on with these checks in one collective
// (`agreement` names the caller in the agreed error).
template <typename Summary, typename Merge>
Status all_merge(const char* kOp, const char* argument, Communicator& comm, Summary* summaries, std::int64_t n, MemorySpace space, void* workspace,
                 std::size_t workspace_bytes, Stream stream, Merge&& merge, const Status& prior = Status::success(),
                 const char* agreement = nullptr) {
  const int size = comm.size();
  if (size < 1) return argument_error(StatusCode::invalid_argument, kOp, "comm.size()", ">= 1", std::to_string(size));
  const std::size_t bytes = n > 0 ? static_cast<std::size_t>(n) * sizeof(Summary) : 0;
  // This rank's checks, then every rank's verdict (all_agree) before any data moves.
  auto check = [&]() -> Status {
    if (!prior.ok()) return prior;
    if (n < 0) return argument_error(StatusCode::invalid_argument, kOp, "n", ">= 0", std::to_string(n));
    if (n == 0 || size == 1) return Status::success();
    NORMKIT_RETURN_IF_ERROR(api::validate_pointer(summaries, space, alignof(Summary), kOp, argument));
    if (space == MemorySpace::host && workspace == nullptr) return Status::success();
    if (workspace_bytes < bytes * size) {
      return argument_error(StatusCode::workspace_too_small, kOp, "workspace_bytes",
                            "at least " + std::to_string(bytes * size) + " (" +
                                (std::is_same_v<Summary, float> ? "all_sum_workspace_size" : "all_merge_workspace_size") + ")",
                            std::to_string(workspace_bytes));
    }
    return api::validate_pointer(workspace, space, alignof(Summary), kOp, "workspace");
  };
  NORMKIT_RETURN_IF_ERROR(all_agree(comm, check(), n, agreement ? agreement : kOp));
  if (n == 0 || size == 1) return prior;
  std::vector<Summary> host;
  Summary* gathered = nullptr;
  if (space == MemorySpace::host && workspace == nullptr) {
    host.resize(static_cast<std::size_t>(n) * size);
    gathered = host.data();
  } else {
    gathered = static_cast<Summary*>(workspace);
  }
  NORMKIT_RETURN_IF_ERROR(comm.all_gather(summaries, gathered, bytes, space, stream));
  // In rank order into rank 0's slot, then back into `summaries`: the same operations on every rank.
  for (int r = 1; r < size; ++r) NORMKIT_RETURN_IF_ERROR(merge(gathered, gathered + static_cast<std::size_t>(n) * r));
  if (space == MemorySpace::host) {
    std::copy(gathered, gathered + n, summaries);
    return Status::success();
  }
  return kernels::copy_on_device(summaries, gathered, bytes, stream, kOp);
}

// into[k] += from[k] (float32, each sum rounded once), on the device or the host.
Status add_sums(float* into, const float* from, std::int64_t n, MemorySpace space, Stream stream) {
  if (space == MemorySpace::device) return kernels::add_on_device(into, from, n, stream, "all_sum_in_rank_order");
  for (std::int64_t k = 0; k < n; ++k) into[k] += from[k];
  return Status::success();
}

}  // namespace

Status all_agree(Communicator& comm, const Status& local, std::int64_t value, const char* operation) {
  const int size = comm.size();
  if (size <= 1 || !comm.gathers_host_memory()) return local;
  const std::int64_t mine[2] = {static_cast<std::int64_t>(local.code()), value};
  std::vector<std::int64_t> all(2 * static_cast<std::size_t>(size));
  NORMKIT_RETURN_IF_ERROR(comm.all_gather(mine, all.data(), sizeof(mine), MemorySpace::host, nullptr));
  const std::string op = std::string("normkit::") + operation + ": ";
  for (int r = 0; r < size; ++r) {
    const auto code = static_cast<StatusCode>(all[2 * static_cast<std::size_t>(r)]);
    if (code == StatusCode::ok) continue;
    // (every rank saw the failure: a second gather, of every rank's message, reached by all of them)
    constexpr std::size_t kMessageBytes = 512;
    std::vector<char> text(kMessageBytes, '\0'), texts(kMessageBytes * static_cast<std::size_t>(size));
    local.message().copy(text.data(), kMessageBytes - 1);
    NORMKIT_RETURN_IF_ERROR(comm.all_gather(text.data(), texts.data(), kMessageBytes, MemorySpace::host, nullptr));
    const char* failed = texts.data() + kMessageBytes * static_cast<std::size_t>(r);
    const std::string message(failed, strnlen(failed, kMessageBytes));
    if (message.rfind(op + "rank ", 0) == 0) return Status(code, message);  // (an agreed error agreed again: as it is)
    return Status(code, op + "rank " + std::to_string(r) + " of " + std::to_string(size) + " failed (" + status_code_name(code) +
                            "); every rank returns this error: " + message);
  }
  for (int r = 1; r < size; ++r) {
    if (all[2 * static_cast<std::size_t>(r) + 1] != all[1]) {
      return Status(StatusCode::invalid_argument, op + "ranks disagree on the count of values: rank 0 passes " + std::to_string(all[1]) + ", rank " +
                                                      std::to_string(r) + " passes " + std::to_string(all[2 * static_cast<std::size_t>(r) + 1]));
    }
  }
  return Status::success();
}

std::size_t all_merge_workspace_size(const Communicator& comm, std::int64_t n, bool integer) {
  const std::size_t each = integer ? sizeof(IntegerSummary) : sizeof(StatsSummary);
  return n > 0 && comm.size() > 0 ? static_cast<std::size_t>(n) * each * static_cast<std::size_t>(comm.size()) : 0;
}

Status all_merge_summaries(Communicator& comm, StatsSummary* summaries, std::int64_t n, MemorySpace space, void* workspace,
                           std::size_t workspace_bytes, Stream stream) {
  return all_merge("all_merge_summaries", "summaries", comm, summaries, n, space, workspace, workspace_bytes, stream,
                   [&](StatsSummary* into, const StatsSummary* from) { return merge_summaries(into, from, n, space, stream); });
}

Status all_merge_integer_summaries(Communicator& comm, IntegerSummary* summaries, std::int64_t n, MemorySpace space, void* workspace,
                                   std::size_t workspace_bytes, Stream stream) {
  return all_merge("all_merge_integer_summaries", "summaries", comm, summaries, n, space, workspace, workspace_bytes, stream,
                   [&](IntegerSummary* into, const IntegerSummary* from) { return merge_integer_summaries(into, from, n, space, stream); });
}

namespace api {
Status all_merge_summaries_after(Communicator& comm, const Status& prior, const char* operation, StatsSummary* summaries, std::int64_t n,
                                 MemorySpace space, void* workspace, std::size_t workspace_bytes, Stream stream) {
  return all_merge("all_merge_summaries", "summaries", comm, summaries, n, space, workspace, workspace_bytes, stream,
                   [&](StatsSummary* into, const StatsSummary* from) { return merge_summaries(into, from, n, space, stream); }, prior, operation);
}
Status all_sum_in_rank_order_after(Communicator& comm, const Status& prior, const char* operation, float* sums, std::int64_t n, MemorySpace space,
                                   void* workspace, std::size_t workspace_bytes, Stream stream) {
  return all_merge("all_sum_in_rank_order", "sums", comm, sums, n, space, workspace, workspace_bytes, stream,
                   [&](float* into, const float* from) { return add_sums(into, from, n, space, stream); }, prior, operation);
}
}  // namespace api

std::size_t all_sum_workspace_size(const Communicator& comm, std::int64_t n) {
  return n > 0 && comm.size() > 0 ? static_cast<std::size_t>(n) * sizeof(float) * static_cast<std::size_t>(comm.size()) : 0;
}

Status all_sum_in_rank_order(Communicator& comm, float* sums, std::int64_t n, MemorySpace space, void* workspace, std::size_t workspace_bytes,
                             Stream stream) {
  return all_merge("all_sum_in_rank_order", "sums", comm, sums, n, space, workspace, workspace_bytes, stream,
                   [&](float* into, const float* from) { return add_sums(into, from, n, space, stream); });
}

}  // namespace normkit
