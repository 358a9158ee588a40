// The light-weight face of a fused-kernel variant: what the dispatcher needs,
// without pulling CUTLASS into every translation unit.
#pragma once

#include <string>

#include "fused_convt_full/api.h"

namespace fct {

struct FusedLaunchArgs {
  void const* x = nullptr;
  void const* w_packed = nullptr;
  float const* conv_b = nullptr;
  float const* b = nullptr;
  float s = 1.0f;
  void* y = nullptr;
  cudaStream_t stream = nullptr;
};

struct FusedVariant {
  DType dtype;
  int tile_n;  // the most output channels (padded) a CTA holds
  std::string (*name)();
  Status (*can_implement)(ConvTransposeProblem const&);
  Status (*launch)(ConvTransposeProblem const&, FusedLaunchArgs const&);
};

// One per file in fused/variants/.
extern FusedVariant const kFusedFp32N64, kFusedFp32N128, kFusedFp32N256;
extern FusedVariant const kFusedFp16N64, kFusedFp16N128, kFusedFp16N256;
extern FusedVariant const kFusedBf16N64, kFusedBf16N128, kFusedBf16N256;
// Hopper persistent kernels (fused/sm90/); their can_implement checks the device.
extern FusedVariant const kSm90Fp32N64, kSm90Fp32N128, kSm90Fp32N256;
extern FusedVariant const kSm90Fp16N64, kSm90Fp16N128, kSm90Fp16N256;
extern FusedVariant const kSm90Bf16N64, kSm90Bf16N128, kSm90Bf16N256;
// NCHW output with stride_w == 2: clusters of two CTAs, one per column phase,
// each storing both phases of half the channels.
extern FusedVariant const kSm90Fp32N128SiblingPair, kSm90Fp16N128SiblingPair, kSm90Bf16N128SiblingPair;

// Tuning candidates (fused/variants/experimental.cu); empty unless built with
// FCT_EXPERIMENTAL_VARIANTS.
struct VariantList {
  FusedVariant const* const* items;
  int count;
};
VariantList experimental_variants();

}  // namespace fct
