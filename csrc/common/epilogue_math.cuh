// The per-pixel math every path shares, so the fused kernel, the two-stage
// epilogue and the naive contender agree bit-for-bit in their formulas:
//   e_c = exp(z_c - max_c z),  y_c = sigmoid(s * (e_c / sum_c e_c + b_c)).
// exp goes through exp2 with log2(e) folded into the operand, and each pixel
// pays one reciprocal for the softmax denominator (DESIGN section 5 budget).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace fct {

constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float softmax_exp(float z, float z_max) {
  return exp2f((z - z_max) * kLog2e);
}

// sigmoid(s * (p + b)) with p already normalised.
__device__ __forceinline__ float scaled_sigmoid(float p, float b, float s) {
  return __frcp_rn(1.0f + exp2f(-(s * (p + b)) * kLog2e));
}

// One MUFU instruction each. Relative error ~2^-22: far below the fp16/bf16
// output rounding and the TF32 operand rounding of the paths that use them.
// ex2(-inf) = +0 and NaN propagates, which is what the softmax relies on.
__device__ __forceinline__ float ex2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float rcp_approx(float x) {
  float y;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

template <typename T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Running (max, sum of exp) pair; merging two is associative, so lanes and
// warps can reduce partial results in any order.
struct OnlineSoftmax {
  float max = -3.402823466e38f;
  float sum = 0.0f;

  __device__ __forceinline__ void add(float z) {
    float m = fmaxf(max, z);
    sum = sum * softmax_exp(max, m) + softmax_exp(z, m);
    max = m;
  }
  __device__ __forceinline__ void merge(float other_max, float other_sum) {
    float m = fmaxf(max, other_max);
    sum = sum * softmax_exp(max, m) + other_sum * softmax_exp(other_max, m);
    max = m;
  }
};

}  // namespace fct
