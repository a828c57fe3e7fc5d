// Non-owning tensor views.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "normkit/dtype.hpp"

// Same type as the CUDA runtime's cudaStream_t, declared here so public headers need no CUDA header.
struct CUstream_st;

namespace normkit {

using Stream = CUstream_st*;  // == cudaStream_t; nullptr is the legacy default stream

constexpr int kMaxDims = 8;

enum class MemorySpace : std::uint8_t {
  host,    // ordinary (or pinned) host memory: the host engine runs
  device,  // CUDA device memory of the current device: the CUDA kernels run on the given stream
};

// A row-major, contiguous, non-owning view: `data` points at element [0, ..., 0] and the last axis
// varies fastest. Up to kMaxDims axes; ndim == 0 is a scalar (one element). The view never frees.
struct TensorView {
  void* data = nullptr;
  DType dtype = DType::float32;
  MemorySpace space = MemorySpace::host;
  int ndim = 0;
  std::array<std::int64_t, kMaxDims> shape{};

  TensorView() = default;
  TensorView(void* data_, DType dtype_, std::initializer_list<std::int64_t> shape_,
             MemorySpace space_ = MemorySpace::host);
  TensorView(void* data_, DType dtype_, const std::int64_t* shape_, int ndim_,
             MemorySpace space_ = MemorySpace::host);

  // Product of the extents (1 for a scalar). Saturates at INT64_MAX on overflow: validate first
  // with checked_numel() when the shape comes from outside.
  std::int64_t numel() const noexcept;
  std::int64_t size_bytes() const noexcept { return numel() * static_cast<std::int64_t>(dtype_size(dtype)); }
  // "[2, 3, 4]"
  std::string shape_string() const;
};

// Element count of a shape, or false when an extent is negative or the count (or its byte size for
// `element_size`) overflows int64.
bool checked_numel(const std::int64_t* shape, int ndim, std::size_t element_size, std::int64_t* numel) noexcept;

}  // namespace normkit
