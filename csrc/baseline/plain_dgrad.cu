// Benchmark baseline only: the fused kernel's exact mainloop with a plain
// epilogue writing y = acc in NHWC — the same bytes as the fused kernel, none of
// the softmax. Measures what the softmax epilogue costs. On Hopper (when the
// sm90 kernel takes the problem) that is the sm90 kernel with PlainStoreEpilogue;
// elsewhere the sm80 strided-dgrad configuration (CTA_N = 128) with CUTLASS's
// stock linear-combination epilogue.
#include "fused/launch.h"
#if defined(FCT_WITH_SM90A)
#include "fused/sm90/launch_sm90.h"
#endif

#include "cutlass/conv/conv3d_problem_size.h"
#include "cutlass/conv/device/implicit_gemm_convolution.h"
#include "fused_convt_full/api.h"

namespace fct {
namespace {

#if defined(FCT_WITH_SM90A)
template <typename Element>
Status run_plain_sm90(ConvTransposeProblem const& p, void const* x, void const* w_packed, void* y,
                      cudaStream_t stream, bool* ran) {
  using Traits = sm90::Sm90Traits<Element, 128, false>;
  ConvTransposeProblem padded = p;
  padded.Cout = p.Cout_padded();
  padded.out_layout = Layout::kNHWC;
  *ran = false;
  if (!sm90::can_implement<Traits>(padded).ok) return Status::success();
  *ran = true;
  FusedLaunchArgs a;
  a.x = x;
  a.w_packed = w_packed;
  a.y = y;
  a.stream = stream;
  return sm90::launch<Traits>(padded, a);
}
#endif

template <typename Element>
Status run_plain(ConvTransposeProblem const& p, void const* x, void const* w_packed, void* y, cudaStream_t stream) {
  using Config = FusedConfig<Element, 128>;
  using Conv = cutlass::conv::device::ImplicitGemmConvolution<typename Config::DgradKernel>;
  auto problem = to_cutlass_problem(p);
  auto layout_x = cutlass::layout::TensorNHWC::packed({p.N, p.H, p.W, p.Cin_padded()});
  auto layout_w = cutlass::layout::TensorNHWC::packed({p.Cin_padded(), p.kH, p.kW, p.Cout_padded()});
  auto layout_y = cutlass::layout::TensorNHWC::packed({p.N, p.H_out(), p.W_out(), p.Cout_padded()});
  typename Conv::Arguments args(
      problem, {static_cast<Element*>(const_cast<void*>(x)), layout_x},
      {static_cast<Element*>(const_cast<void*>(w_packed)), layout_w}, {static_cast<Element*>(y), layout_y},
      {static_cast<Element*>(y), layout_y}, {1.0f, 0.0f});
  Conv op;
  if (op.can_implement(args) != cutlass::Status::kSuccess) return Status::error("plain dgrad: cannot implement");
  if (op.initialize(args, nullptr, stream) != cutlass::Status::kSuccess)
    return Status::error("plain dgrad: initialize failed");
  if (op(stream) != cutlass::Status::kSuccess) return Status::error("plain dgrad: launch failed");
  return last_launch_status("plain dgrad");
}

}  // namespace

Status plain_dgrad_forward(ConvTransposeProblem const& p, void const* x, void const* w_packed, void* y,
                           cudaStream_t stream) {
  if (p.Cout_padded() > 128) return Status::error("plain dgrad baseline is instantiated for Cout <= 128 only");
#if defined(FCT_WITH_SM90A)
  bool ran = false;
  Status st;
  switch (p.dtype) {
    case DType::kFloat32: st = run_plain_sm90<float>(p, x, w_packed, y, stream, &ran); break;
    case DType::kFloat16: st = run_plain_sm90<__half>(p, x, w_packed, y, stream, &ran); break;
    case DType::kBFloat16: st = run_plain_sm90<__nv_bfloat16>(p, x, w_packed, y, stream, &ran); break;
  }
  if (ran) return st;
#endif
  switch (p.dtype) {
    case DType::kFloat32: return run_plain<float>(p, x, w_packed, y, stream);
    case DType::kFloat16: return run_plain<cutlass::half_t>(p, x, w_packed, y, stream);
    case DType::kBFloat16: return run_plain<cutlass::bfloat16_t>(p, x, w_packed, y, stream);
  }
  return Status::error("plain dgrad: unknown dtype");
}

}  // namespace fct
