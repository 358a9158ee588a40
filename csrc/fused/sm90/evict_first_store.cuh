// Stores of NCHW output with an L2 evict-first policy. y is written once and
// never read by the kernel, while the input x is re-read from L2 by every tap of
// every phase (16 times on the reference problem). Used by the sibling-pair NCHW
// epilogue only, whose warp stores are 64-128-byte runs that neighbouring warps
// complete at once: bf16 NCHW 0.651 -> 0.643 ms on the H100. The NHWC epilogue's
// stores fill a line in 16-byte pieces over a whole loop, and evict-first made
// it slower (bf16 0.55 -> 0.655 ms); benchmarks/NOTES.md v9.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace fct::sm90 {

struct EvictFirstStore {
  uint64_t policy;

  __device__ __forceinline__ static EvictFirstStore make() {
    EvictFirstStore s;
    asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(s.policy));
    return s;
  }

  __device__ __forceinline__ void operator()(float* p, float v) const {
    asm volatile("st.global.L2::cache_hint.f32 [%0], %1, %2;" ::"l"(p), "f"(v), "l"(policy));
  }
  __device__ __forceinline__ void operator()(__half* p, __half v) const { b16(p, &v); }
  __device__ __forceinline__ void operator()(__nv_bfloat16* p, __nv_bfloat16 v) const { b16(p, &v); }

 private:
  __device__ __forceinline__ void b16(void* p, void const* v) const {
    asm volatile("st.global.L2::cache_hint.b16 [%0], %1, %2;" ::"l"(p), "h"(*static_cast<unsigned short const*>(v)),
                 "l"(policy));
  }
};

}  // namespace fct::sm90
