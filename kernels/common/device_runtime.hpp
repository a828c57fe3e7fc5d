// Device runtime services the API layer and the command line need besides kernel launches: device
// queries, pointer checks, stream-ordered allocation, copies and synchronization. Plain C++ (no CUDA
// header); implemented in device_runtime.cu, and by failing stubs in a build without CUDA
// (src/api/cuda_unavailable.cpp). CUDA errors become Status values with the text of cuda_check.hpp.
#pragma once

#include <cstddef>
#include <string>

#include "normkit/status.hpp"
#include "normkit/tensor.hpp"
#include "plan/stats_plan.hpp"

struct CUevent_st;

namespace normkit::kernels {

// True when a CUDA device is usable.
bool device_present() noexcept;
// SM count of the current device (cached per device).
Status current_device_info(plan::DeviceInfo* info);
// Fails unless p is device-accessible memory (device or managed allocation).
Status check_device_pointer(const void* p, const char* operation, const char* argument);
// True when p is device-only memory (cudaMalloc), which host code must not touch.
bool is_device_only_memory(const void* p) noexcept;

// Stream-ordered device memory (cudaMallocAsync / cudaFreeAsync) and copies, for state the library owns
// (Normalizer). `operation` names the caller in error messages.
Status device_allocate(void** ptr, std::size_t bytes, Stream stream, const char* operation = "Normalizer");
void device_free(void* ptr, Stream stream) noexcept;
Status copy_to_device(void* dst, const void* src, std::size_t bytes, Stream stream, const char* operation = "Normalizer");
// Device to device, enqueued on the stream.
Status copy_on_device(void* dst, const void* src, std::size_t bytes, Stream stream, const char* operation);
// into[k] += from[k] for k < n (float32, each element rounded once), enqueued on `stream`.
Status add_on_device(float* into, const float* from, std::int64_t n, Stream stream, const char* operation);
// Copies and waits for the stream (the data is needed on the host).
Status copy_to_host_sync(void* dst, const void* src, std::size_t bytes, Stream stream, const char* operation = "Normalizer");
// Waits for the work queued on a stream.
Status synchronize_stream(Stream stream, const char* operation = "Normalizer");

// Streams, events and pinned host memory of the command line's pipelined uploads (a file streamed in
// pieces: the next piece read into one pinned buffer while the last is copied and reduced).
using Event = CUevent_st*;  // == cudaEvent_t
Status stream_create(Stream* stream, const char* operation);  // ordered with the legacy default stream, as cudaStreamCreate
void stream_destroy(Stream stream) noexcept;
Status event_create(Event* event, const char* operation);  // without timing
void event_destroy(Event event) noexcept;
Status event_record(Event event, Stream stream, const char* operation);
Status stream_wait_event(Stream stream, Event event, const char* operation);
Status event_synchronize(Event event, const char* operation);
Status pinned_allocate(void** ptr, std::size_t bytes, const char* operation);
void pinned_free(void* ptr) noexcept;

// The calling thread's current GPU, and setting it (a thread the command line starts begins on GPU 0).
Status current_device(int* index, const char* operation);
Status set_current_device(int index, const char* operation);

// Whole-device services of the command line: make GPU `index` current (and report its name), wait for
// all of its work.
Status select_device(int index, const char* operation, std::string* name);
// The number of CUDA devices.
Status device_count(int* count, const char* operation);
Status synchronize_device(const char* operation);

}  // namespace normkit::kernels
