// The fused path's dispatcher: which variant serves a problem, or why none does.
#include <cstdint>
#include <string>
#include <vector>

#include "fused/variant.h"
#include "fused_convt_full/api.h"

namespace fct {
namespace {

// Every instantiated variant in order of preference: the Hopper persistent
// kernels first (they refuse on other GPUs and when the phase filter does not
// fit in shared memory; builds without sm_90a leave them out), the sibling pairs
// for NCHW output ahead of the rest, then the sm80 kernels that
// run everywhere; smallest CTA_N first within each. The first variant whose tile
// holds all output channels and that can take the problem wins.
FusedVariant const* const kVariants[] = {
#if defined(FCT_WITH_SM90A)  // built only when sm_90a is compiled (CMakeLists.txt)
    &kSm90Fp32N128SiblingPair, &kSm90Fp16N128SiblingPair, &kSm90Bf16N128SiblingPair,
    &kSm90Fp32N64,  &kSm90Fp32N128,  &kSm90Fp32N256,  &kSm90Fp16N64,  &kSm90Fp16N128,  &kSm90Fp16N256,
    &kSm90Bf16N64,  &kSm90Bf16N128,  &kSm90Bf16N256,
#endif
    &kFusedFp32N64, &kFusedFp32N128, &kFusedFp32N256, &kFusedFp16N64, &kFusedFp16N128, &kFusedFp16N256,
    &kFusedBf16N64, &kFusedBf16N128, &kFusedBf16N256,
};
constexpr int kMaxTileN = 256;
constexpr int kMaxFilter = 32;  // CUTLASS's strided-dgrad iterators index R, S <= 32

// The chosen variant, or null with `why` holding the last refusal.
FusedVariant const* select_variant(ConvTransposeProblem const& p, std::string* why = nullptr) {
  for (FusedVariant const* v : kVariants) {
    if (v->dtype != p.dtype || p.Cout_padded() > v->tile_n) continue;
    Status st = v->can_implement(p);
    if (st.ok) return v;
    if (why) *why = st.message;
  }
  return nullptr;
}

// Reasons a problem goes elsewhere, in the order a user would want to hear them.
std::string refusal(ConvTransposeProblem const& p) {
  if (p.N < 1 || p.H < 1 || p.W < 1 || p.Cin < 1 || p.Cout < 1 || p.kH < 1 || p.kW < 1)
    return "empty or invalid problem dimensions";
  if (p.stride_h < 1 || p.stride_w < 1 || p.pad_h < 0 || p.pad_w < 0 || p.H_out() < 1 || p.W_out() < 1)
    return "invalid stride/padding for this input size";
  if (p.dil_h != 1 || p.dil_w != 1)
    return "dilation > 1: CUTLASS's strided dgrad has no dilated form, so the two-stage path runs it";
  if (p.dtype == DType::kFloat32 && p.math == Math::kFP32Strict)
    return "float32 with TF32 disabled (torch.backends.cudnn.allow_tf32 = False): the fused kernel is TF32-only, "
           "so the two-stage path computes in full fp32";
  if (p.Cout_padded() > kMaxTileN)
    return "Cout = " + std::to_string(p.Cout) + " > " + std::to_string(kMaxTileN) +
           ": the softmax needs all channels of a pixel in one CTA tile";
  if (p.kH > kMaxFilter || p.kW > kMaxFilter) return "kernel size > 32 is outside CUTLASS's dgrad iterators";
  int64_t x_bytes = int64_t(p.N) * p.H * p.W * p.Cin_padded() * (p.dtype == DType::kFloat32 ? 4 : 2);
  int64_t rows = int64_t(p.N) * ((p.H_out() + p.stride_h - 1) / p.stride_h) * ((p.W_out() + p.stride_w - 1) / p.stride_w);
  if (x_bytes >= (int64_t(1) << 31) || rows * p.stride_h * p.stride_w >= (int64_t(1) << 31))
    return "tensor too large for the 32-bit offsets of CUTLASS's conv iterators";
  return {};
}

// Refusal checks, then the first variant that takes the problem: done once per
// call (a variant's can_implement may query the device and plan its launch).
FusedVariant const* choose_variant(ConvTransposeProblem const& p, std::string* reason) {
  *reason = refusal(p);
  if (!reason->empty()) return nullptr;
  *reason = "no fused variant instantiated for this dtype";
  return select_variant(p, reason);
}

}  // namespace

FusedSupport fused_support(ConvTransposeProblem const& p) {
  FusedSupport out;
  FusedVariant const* v = choose_variant(p, &out.reason);
  if (!v) return out;
  out.ok = true;
  out.kernel_name = v->name();
  out.reason = "Cout " + std::to_string(p.Cout) + " fits a CTA_N = " + std::to_string(v->tile_n) +
               " tile; stride " + std::to_string(p.stride_h) + "x" + std::to_string(p.stride_w) + " -> " +
               std::to_string(p.stride_h * p.stride_w) + " phase GEMMs in one launch";
  return out;
}

std::vector<std::string> fused_variant_names() {
  std::vector<std::string> names;
  for (FusedVariant const* v : kVariants) names.push_back(v->name());
  VariantList extra = experimental_variants();
  for (int i = 0; i < extra.count; ++i) names.push_back(extra.items[i]->name());
  return names;
}

Status fused_forward(ConvTransposeProblem const& p, void const* x, void const* w_packed, float const* conv_b,
                     float const* b, float s, void* y, cudaStream_t stream) {
  return fused_forward_variant("", p, x, w_packed, conv_b, b, s, y, stream);
}

Status fused_forward_variant(std::string const& variant, ConvTransposeProblem const& p, void const* x,
                             void const* w_packed, float const* conv_b, float const* b, float s, void* y,
                             cudaStream_t stream) {
  std::string reason;
  FusedVariant const* chosen = nullptr;
  if (variant.empty()) {
    chosen = choose_variant(p, &reason);
    if (!chosen) return Status::error("fused kernel does not cover this problem: " + reason);
  } else {
    reason = refusal(p);
    if (!reason.empty()) return Status::error("fused kernel does not cover this problem: " + reason);
    for (FusedVariant const* v : kVariants)
      if (v->name() == variant) chosen = v;
    VariantList extra = experimental_variants();
    for (int i = 0; i < extra.count; ++i)
      if (extra.items[i]->name() == variant) chosen = extra.items[i];
    if (!chosen) return Status::error("unknown fused variant '" + variant + "'");
    if (chosen->dtype != p.dtype || p.Cout_padded() > chosen->tile_n)
      return Status::error("variant '" + variant + "' does not fit this problem's dtype or Cout");
    Status st = chosen->can_implement(p);
    if (!st.ok) return st;
  }
  if (!x || !w_packed || !b || !y) return Status::error("fused_forward: x, w_packed, b and y must be non-null");
  // The mainloop loads 16-byte vectors of x and w; y gets vector stores when aligned.
  if (reinterpret_cast<uintptr_t>(x) % 16 || reinterpret_cast<uintptr_t>(w_packed) % 16)
    return Status::error("fused_forward: x and w_packed must be 16-byte aligned");
  FusedLaunchArgs args;
  args.x = x;
  args.w_packed = w_packed;
  args.conv_b = conv_b;
  args.b = b;
  args.s = s;
  args.y = y;
  args.stream = stream;
  return chosen->launch(p, args);
}

}  // namespace fct
