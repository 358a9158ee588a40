// fused_convt_full — native C++ API.
//
//   y = sigmoid(s * (softmax_over_channels(conv_transpose2d(x, w, conv_b)) + b))
//
// Framework-agnostic: callers pass a problem description, device pointers and a
// stream. Nothing here aborts the process; every entry point returns a Status.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

namespace fct {

enum class DType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };
enum class Layout : int { kNCHW = 0, kNHWC = 1 };
// Only meaningful for kFloat32: TF32 tensor cores, or full-fp32 accuracy.
enum class Math : int { kTF32 = 0, kFP32Strict = 1 };

// Cin and Cout are padded to a multiple of this for the fused kernel's 128-bit loads.
constexpr int kChannelAlignment = 8;

inline int round_up(int v, int m) { return (v + m - 1) / m * m; }

// A transposed convolution as PyTorch defines it: x is [N, Cin, H, W],
// w is [Cin, Cout, kH, kW], y is [N, Cout, H_out, W_out].
struct ConvTransposeProblem {
  int N = 0, H = 0, W = 0, Cin = 0, Cout = 0, kH = 0, kW = 0;
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;
  int out_pad_h = 0, out_pad_w = 0;
  int dil_h = 1, dil_w = 1;
  DType dtype = DType::kFloat32;
  Layout out_layout = Layout::kNCHW;
  Math math = Math::kTF32;

  int H_out() const { return (H - 1) * stride_h - 2 * pad_h + dil_h * (kH - 1) + out_pad_h + 1; }
  int W_out() const { return (W - 1) * stride_w - 2 * pad_w + dil_w * (kW - 1) + out_pad_w + 1; }
  int Cin_padded() const { return round_up(Cin, kChannelAlignment); }
  int Cout_padded() const { return round_up(Cout, kChannelAlignment); }
};

struct Status {
  bool ok = true;
  std::string message;
  static Status success() { return {}; }
  static Status error(std::string m) { return {false, std::move(m)}; }
};

// Whether the fused kernel covers `p`; on refusal `reason` says why.
// `kernel_name` names the variant the dispatcher would launch.
struct FusedSupport {
  bool ok = false;
  std::string reason;
  std::string kernel_name;
};
FusedSupport fused_support(ConvTransposeProblem const& p);

// The fused kernel.
//   x        [N][H][W][Cin_padded]        NHWC, p.dtype, padded channels zero
//   w_packed [Cin_padded][kH][kW][Cout_padded], p.dtype, padding zero (see pack layout in README)
//   conv_b   float32 [Cout] or nullptr;  b float32 [Cout]
//   y        [N, Cout, H_out, W_out] in p.out_layout, p.dtype; written exactly once
Status fused_forward(ConvTransposeProblem const& p, void const* x, void const* w_packed,
                     float const* conv_b, float const* b, float s, void* y, cudaStream_t stream);

// Tuning hooks: every compiled variant by name, and a launch of a named one
// ("" = the dispatcher's choice).
std::vector<std::string> fused_variant_names();
Status fused_forward_variant(std::string const& variant, ConvTransposeProblem const& p, void const* x,
                             void const* w_packed, float const* conv_b, float const* b, float s, void* y,
                             cudaStream_t stream);

// Two-stage epilogue over an already computed z = conv_transpose2d(x, w) (no bias).
//   z, y  [N, C, HW] (kNCHW) or [N, HW, C] (kNHWC), dtype; y may be z (in place),
//   other overlaps are not supported.
Status softmax_epilogue(DType dtype, Layout layout, int64_t N, int64_t C, int64_t HW, void const* z,
                        float const* conv_b, float const* b, float s, void* y, cudaStream_t stream);

// The classic design (one block per pixel, a thread per channel, shared-memory tree
// reduction); kept only as the `two_stage_naive` benchmark contender.
Status softmax_epilogue_naive(DType dtype, Layout layout, int64_t N, int64_t C, int64_t HW,
                              void const* z, float const* conv_b, float const* b, float s, void* y,
                              cudaStream_t stream);

// The fused kernel's input layout from an NCHW tensor (the conversion pass for
// NCHW inputs): x [N][C][HW] -> y [N][HW][C_pad], channels C .. C_pad-1 zero.
Status nchw_to_nhwc(DType dtype, int64_t N, int64_t C, int64_t HW, int64_t C_pad, void const* x, void* y,
                    cudaStream_t stream);

// Benchmark baseline: the fused kernel's mainloop (Cout <= 128 configuration)
// with a plain epilogue — on Hopper the sm90 kernel with a plain store epilogue,
// elsewhere the sm80 kernel with CUTLASS's stock linear-combination epilogue.
// Writes the raw conv output (no bias) to y as NHWC [N][H_out][W_out][Cout_padded].
Status plain_dgrad_forward(ConvTransposeProblem const& p, void const* x, void const* w_packed, void* y,
                           cudaStream_t stream);

}  // namespace fct
