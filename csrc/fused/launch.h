// Host side of one fused-kernel variant: problem mapping, feasibility, launch.
// Defined here, explicitly instantiated once per variant in fused/variants/*.cu.
#pragma once

#include <string>

#include "cutlass/conv/convolution.h"
#include "cutlass/device_kernel.h"
#include "cutlass/layout/tensor.h"

#include "common/cuda_check.h"
#include "fused/kernel_config.h"
#include "fused/variant.h"
#include "fused_convt_full/api.h"

namespace fct {


// The transposed conv as CUTLASS dgrad: dx = y (C = Cout_padded), dy = x
// (K = Cin_padded), filter KRSC = packed w. P, Q are given explicitly: they are
// the input's H, W (output_padding only adds rows CUTLASS never asks dy for).
inline cutlass::conv::Conv2dProblemSize to_cutlass_problem(ConvTransposeProblem const& p) {
  return cutlass::conv::Conv2dProblemSize(p.N, p.H_out(), p.W_out(), p.Cout_padded(), p.Cin_padded(), p.kH, p.kW,
                                          p.H, p.W, p.pad_h, p.pad_w, p.stride_h, p.stride_w, 1, 1,
                                          cutlass::conv::Mode::kCrossCorrelation, 1, 1);
}

template <typename Config>
Status can_implement_fused(ConvTransposeProblem const& p) {
  using Mma = typename Config::Mma;
  auto problem = to_cutlass_problem(p);
  if (Mma::IteratorA::can_implement(problem) != cutlass::Status::kSuccess)
    return Status::error("CUTLASS strided-dgrad input iterator cannot take this shape (alignment or kernel > 32)");
  if (Mma::IteratorB::can_implement(problem) != cutlass::Status::kSuccess)
    return Status::error("CUTLASS strided-dgrad filter iterator cannot take this shape");
  return Status::success();
}

template <typename Config>
Status launch_fused(ConvTransposeProblem const& p, FusedLaunchArgs const& a) {
  using Kernel = typename Config::Kernel;
  using Mma = typename Config::Mma;
  using Element = typename Config::Element;
  using Visitor = typename Config::Visitor;
  using ThreadblockShape = typename Mma::Shape;

  typename Kernel::Params params;
  params.problem_size = to_cutlass_problem(p);
  auto const& problem = params.problem_size;
  params.stride_h_divmod = cutlass::FastDivmod(p.stride_h);
  params.stride_w_divmod = cutlass::FastDivmod(p.stride_w);
  params.num_phases = p.stride_h * p.stride_w;
  params.tile_m_per_filter = cutlass::conv::strided_dgrad_tile_m_per_filter(problem, ThreadblockShape::kM);
  params.gemm_k_iterations =
      cutlass::conv::implicit_gemm_k_iterations(cutlass::conv::Operator::kDgrad, ThreadblockShape::kK, problem);

  auto layout_x = cutlass::layout::TensorNHWC::packed({p.N, p.H, p.W, p.Cin_padded()});
  auto layout_w = cutlass::layout::TensorNHWC::packed({p.Cin_padded(), p.kH, p.kW, p.Cout_padded()});
  params.iterator_A = Mma::IteratorA::getParams(problem, layout_x);
  params.ptr_A = static_cast<Element const*>(a.x);
  params.iterator_B = typename Mma::IteratorB::Params(problem, layout_w);
  params.ptr_B = static_cast<Element const*>(a.w_packed);

  typename Visitor::Params& v = params.visitor;
  v.y = static_cast<Element*>(a.y);
  v.conv_b = a.conv_b;
  v.b = a.b;
  v.s = a.s;
  v.N = p.N;
  v.Cout = p.Cout;
  v.H_out = p.H_out();
  v.W_out = p.W_out();
  v.stride_h = p.stride_h;
  v.stride_w = p.stride_w;
  v.rows_per_filter_divmod = cutlass::FastDivmod(params.tile_m_per_filter * ThreadblockShape::kM);
  v.nchw = p.out_layout == Layout::kNCHW;
  v.vector_store = !v.nchw && p.Cout % Visitor::kElementsPerAccess == 0 &&
                   reinterpret_cast<uintptr_t>(a.y) % (sizeof(Element) * Visitor::kElementsPerAccess) == 0;

  int smem = int(sizeof(typename Kernel::SharedStorage));
  auto kernel = cutlass::Kernel<Kernel>;
  if (smem >= (48 << 10)) {
    Status st = cuda_status(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
                            "fused kernel: cudaFuncSetAttribute");
    if (!st.ok) return st;
  }
  int grid = Kernel::grid_size(params);
  kernel<<<grid, Kernel::kThreadCount, smem, a.stream>>>(params);
  return last_launch_status("fused kernel launch");
}

template <typename Config>
std::string variant_name() {
  using TB = typename Config::Tiles::Threadblock;
  using WS = typename Config::Tiles::Warp;
  char const* math = cutlass::platform::is_same<typename Config::Element, float>::value              ? "tf32"
                     : cutlass::platform::is_same<typename Config::Element, cutlass::half_t>::value ? "f16"
                                                                                                    : "bf16";
  return std::string("sm80_strided_dgrad_") + math + "_" + std::to_string(TB::kM) + "x" + std::to_string(TB::kN) +
         "x" + std::to_string(TB::kK) + "_warp" + std::to_string(WS::kM) + "x" + std::to_string(WS::kN) + "_" +
         std::to_string(Config::Tiles::kStages) + "stage_softmax_visitor";
}

template <typename Config>
FusedVariant make_variant(DType dtype) {
  return FusedVariant{dtype, Config::kTileN, &variant_name<Config>, &can_implement_fused<Config>,
                      &launch_fused<Config>};
}

}  // namespace fct
