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

// Two evaluations of the per-pixel formula. Each maps (z, conv_b) to a logit l,
// takes e = exp(l - max l), and finishes with y = output(e, factor(sum e), b, s).
// AccurateMath: IEEE-rounded exp2f and reciprocal, natural-log units.
struct AccurateMath {
  __device__ __forceinline__ static float logit(float z, float conv_b) { return z + conv_b; }
  __device__ __forceinline__ static float exp(float d) { return exp2f(d * kLog2e); }
  __device__ __forceinline__ static float pixel_factor(float sum, float) { return __frcp_rn(sum); }
  __device__ __forceinline__ static float output(float e, float factor, float b, float s) {
    return __frcp_rn(1.0f + exp2f(-(s * (e * factor + b)) * kLog2e));
  }
};

// MufuMath: log2 units, so each exp is one ex2.approx and the sigmoid one more ex2
// and one rcp.approx; the scale and the bias fold into one FMA. The fused kernels
// fold the per-channel constants once per CTA (logit_offset, bias_term) and use
// the *_folded forms per element.
struct MufuMath {
  __device__ __forceinline__ static float logit_offset(float conv_b) { return conv_b * kLog2e; }
  __device__ __forceinline__ static float bias_term(float b, float s) { return -s * kLog2e * b; }
  __device__ __forceinline__ static float logit_folded(float z, float offset) { return fmaf(z, kLog2e, offset); }
  __device__ __forceinline__ static float output_folded(float e, float factor, float bias_term) {
    return rcp_approx(1.0f + ex2_approx(fmaf(factor, e, bias_term)));
  }

  __device__ __forceinline__ static float logit(float z, float conv_b) { return logit_folded(z, logit_offset(conv_b)); }
  __device__ __forceinline__ static float exp(float d) { return ex2_approx(d); }
  __device__ __forceinline__ static float pixel_factor(float sum, float s) { return -s * kLog2e * rcp_approx(sum); }
  __device__ __forceinline__ static float output(float e, float factor, float b, float s) {
    return output_folded(e, factor, bias_term(b, s));
  }
};

// Running (max, sum of exp) pair over logits; merging two is associative, so
// lanes and warps can reduce partial results in any order.
template <typename Math>
struct OnlineSoftmax {
  float max = -3.402823466e38f;
  float sum = 0.0f;

  __device__ __forceinline__ void add(float l) {
    float m = fmaxf(max, l);
    sum = sum * Math::exp(max - m) + Math::exp(l - m);
    max = m;
  }
  __device__ __forceinline__ void merge(float other_max, float other_sum) {
    float m = fmaxf(max, other_max);
    sum = sum * Math::exp(max - m) + other_sum * Math::exp(other_max - m);
    max = m;
  }
};

}  // namespace fct
