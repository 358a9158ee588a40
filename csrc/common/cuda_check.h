// Turning CUDA errors into fct::Status values instead of aborting.
#pragma once

#include <string>

#include <cuda_runtime_api.h>

#include "fused_convt_full/api.h"

namespace fct {

inline Status cuda_status(cudaError_t err, char const* what) {
  if (err == cudaSuccess) return Status::success();
  return Status::error(std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

// Launch errors (bad configuration, no kernel image for this GPU) surface here.
inline Status last_launch_status(char const* what) { return cuda_status(cudaGetLastError(), what); }

}  // namespace fct
