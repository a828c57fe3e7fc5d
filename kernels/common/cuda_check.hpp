// Turning CUDA runtime errors into normkit Status values (host code only).
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "normkit/status.hpp"

namespace normkit::cuda {

inline Status cuda_status(cudaError_t error, const std::string& operation, const std::string& what) {
  if (error == cudaSuccess) return Status::success();
  return Status(StatusCode::cuda_error, "normkit::" + operation + ": CUDA error " + cudaGetErrorName(error) + " (" +
                                            cudaGetErrorString(error) + ") in " + what);
}

// Checks the launch that was just enqueued (configuration errors, sticky errors of earlier work).
inline Status check_launch(const std::string& operation, const char* kernel) {
  return cuda_status(cudaGetLastError(), operation, std::string("launch of ") + kernel);
}

}  // namespace normkit::cuda
