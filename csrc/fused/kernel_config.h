// Every fused-kernel variant is described here, in one traits struct; the
// dispatch table (fused/dispatch.cu) lists the ones that are instantiated.
#pragma once

#include "cutlass/bfloat16.h"
#include "cutlass/conv/conv2d_problem_size.h"
#include "cutlass/conv/kernel/default_conv2d_dgrad.h"
#include "cutlass/epilogue/thread/linear_combination.h"
#include "cutlass/epilogue/threadblock/epilogue_with_visitor.h"
#include "cutlass/gemm/gemm.h"
#include "cutlass/half.h"

#include "fused/fused_kernel.h"
#include "fused/softmax_epilogue_visitor.h"

namespace fct {

// Tile shapes per element type and CTA_N (= Cout rounded up to 64, 128 or 256).
// M = 128 rows (pixels) per CTA; K per stage and warp layout chosen so that the
// accumulators of a 64x64 warp tile fit with the epilogue's row buffer.
template <typename Element, int kTileN>
struct TileTraits;

// fp32 operands run on TF32 tensor cores (mma.sync m16n8k8).
template <>
struct TileTraits<float, 64> {
  using Threadblock = cutlass::gemm::GemmShape<128, 64, 32>;
  using Warp = cutlass::gemm::GemmShape<64, 32, 32>;
  using Instruction = cutlass::gemm::GemmShape<16, 8, 8>;
  static int const kStages = 4;
};
template <>
struct TileTraits<float, 128> {
  using Threadblock = cutlass::gemm::GemmShape<128, 128, 32>;
  using Warp = cutlass::gemm::GemmShape<64, 64, 32>;
  using Instruction = cutlass::gemm::GemmShape<16, 8, 8>;
  static int const kStages = 3;
};
template <>
struct TileTraits<float, 256> {
  using Threadblock = cutlass::gemm::GemmShape<128, 256, 16>;
  using Warp = cutlass::gemm::GemmShape<64, 64, 16>;
  using Instruction = cutlass::gemm::GemmShape<16, 8, 8>;
  static int const kStages = 4;
};

// 16-bit operands (mma.sync m16n8k16); same tiling for fp16 and bf16.
template <int kTileN>
struct TileTraits16;
template <>
struct TileTraits16<64> {
  using Threadblock = cutlass::gemm::GemmShape<128, 64, 32>;
  using Warp = cutlass::gemm::GemmShape<64, 32, 32>;
  using Instruction = cutlass::gemm::GemmShape<16, 8, 16>;
  static int const kStages = 4;
};
template <>
struct TileTraits16<128> {
  using Threadblock = cutlass::gemm::GemmShape<128, 128, 32>;
  using Warp = cutlass::gemm::GemmShape<64, 64, 32>;
  using Instruction = cutlass::gemm::GemmShape<16, 8, 16>;
  static int const kStages = 3;
};
template <>
struct TileTraits16<256> {
  using Threadblock = cutlass::gemm::GemmShape<128, 256, 32>;
  using Warp = cutlass::gemm::GemmShape<64, 64, 32>;
  using Instruction = cutlass::gemm::GemmShape<16, 8, 16>;
  static int const kStages = 3;
};
template <int kTileN>
struct TileTraits<cutlass::half_t, kTileN> : TileTraits16<kTileN> {};
template <int kTileN>
struct TileTraits<cutlass::bfloat16_t, kTileN> : TileTraits16<kTileN> {};

// Alternative tilings, for tuning runs (built with -DFCT_EXPERIMENTAL_VARIANTS=ON).
template <int M, int N, int K, int WM, int WN, int kStages_, int kInstK>
struct CustomTiles {
  using Threadblock = cutlass::gemm::GemmShape<M, N, K>;
  using Warp = cutlass::gemm::GemmShape<WM, WN, K>;
  using Instruction = cutlass::gemm::GemmShape<16, 8, kInstK>;
  static int const kStages = kStages_;
};

template <typename Element_, int kTileN_, typename Tiles_ = TileTraits<Element_, kTileN_>>
struct FusedConfig {
  using Element = Element_;
  static int const kTileN = kTileN_;
  using Tiles = Tiles_;
  using ElementAccumulator = float;
  static int const kAlignment = 128 / cutlass::sizeof_bits<Element>::value;

  // Only used to derive the mainloop and the epilogue's accumulator staging;
  // its output op never runs.
  using PlainEpilogueOp =
      cutlass::epilogue::thread::LinearCombination<Element, kAlignment, ElementAccumulator, ElementAccumulator>;

  using DgradKernel = typename cutlass::conv::kernel::DefaultConv2dDgrad<
      Element, cutlass::layout::TensorNHWC, Element, cutlass::layout::TensorNHWC, Element,
      cutlass::layout::TensorNHWC, ElementAccumulator, cutlass::arch::OpClassTensorOp, cutlass::arch::Sm80,
      typename Tiles::Threadblock, typename Tiles::Warp, typename Tiles::Instruction, PlainEpilogueOp,
      cutlass::conv::threadblock::StridedDgradIdentityThreadblockSwizzle<1>, Tiles::kStages,
      cutlass::arch::OpMultiplyAdd, cutlass::conv::IteratorAlgorithm::kOptimized,
      cutlass::conv::StrideSupport::kStrided, kAlignment, kAlignment>::Kernel;

  using Mma = typename DgradKernel::Mma;
  using PlainEpilogue = typename DgradKernel::Epilogue;
  using ThreadMap = typename PlainEpilogue::OutputTileIterator::ThreadMap;

  using Visitor = SoftmaxEpilogueVisitor<ThreadMap, Element, ElementAccumulator,
                                         PlainEpilogue::OutputTileIterator::kElementsPerAccess,
                                         Tiles::Threadblock::kM, kTileN, 32 * Mma::WarpCount::kCount>;
  using Epilogue =
      typename cutlass::epilogue::threadblock::EpilogueWithVisitorFromExistingEpilogue<Visitor, PlainEpilogue>::Epilogue;
  using Kernel = FusedConvTransposeSoftmaxKernel<Mma, Epilogue, Visitor>;

  static_assert(Tiles::Threadblock::kN == kTileN, "CTA_N must equal the variant's channel capacity");
};

}  // namespace fct
