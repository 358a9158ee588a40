// Facts about the current CUDA device, queried once per device: the
// dispatchers ask for them on every call.
#pragma once

#include <mutex>

#include <cuda_runtime_api.h>

#include "common/cuda_check.h"

namespace fct {

struct DeviceFacts {
  int index = 0, cc_major = 0, cc_minor = 0, sms = 0, smem_optin = 0;
};

inline Status current_device_facts(DeviceFacts& out) {
  static std::mutex mu;
  static DeviceFacts cache[64];
  static bool known[64] = {};
  int dev = 0;
  Status st = cuda_status(cudaGetDevice(&dev), "cudaGetDevice");
  if (!st.ok) {
    cudaGetLastError();  // no device (CPU-only machine): leave no stale error for later calls
    return st;
  }
  std::lock_guard<std::mutex> lock(mu);
  if (dev < 0 || dev >= 64) return Status::error("device index out of range");
  if (!known[dev]) {
    DeviceFacts f;
    f.index = dev;
    cudaDeviceGetAttribute(&f.cc_major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&f.cc_minor, cudaDevAttrComputeCapabilityMinor, dev);
    cudaDeviceGetAttribute(&f.sms, cudaDevAttrMultiProcessorCount, dev);
    cudaDeviceGetAttribute(&f.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    st = last_launch_status("cudaDeviceGetAttribute");
    if (!st.ok) return st;
    cache[dev] = f;
    known[dev] = true;
  }
  out = cache[dev];
  return Status::success();
}

}  // namespace fct
