// FusedConvTransposeSoftmaxKernel — one launch computes the whole operator.
//
// Mainloop: CUTLASS's strided-dgrad implicit GEMM (StrideSupport::kStrided). A
// transposed convolution with (x, w) is dgrad with dy = x, filter = w viewed as
// KRSC = [Cin][kH][kW][Cout]; each CTA works on one output phase (start_r,
// start_s) and multiplies only that phase's valid taps (DESIGN section 2).
// Epilogue: EpilogueWithVisitor driving SoftmaxEpilogueVisitor, which needs the
// CTA to hold every output channel (grid N extent is 1).
//
// Tile order differs from CUTLASS's strided-dgrad kernel on purpose: CUTLASS runs
// every tile of phase 0 before phase 1; here consecutive CTAs are the sibling
// phases of the same pixel block, so they read the same input rows while those
// are in L2 and their interleaved output writes meet in L2.
#pragma once

#include "cutlass/conv/conv2d_problem_size.h"
#include "cutlass/cutlass.h"
#include "cutlass/fast_math.h"
#include "cutlass/gemm/gemm.h"
#include "cutlass/matrix_coord.h"

#include "fused/softmax_epilogue_visitor.h"

namespace fct {

template <typename Mma_, typename Epilogue_, typename Visitor_>
struct FusedConvTransposeSoftmaxKernel {
  using Mma = Mma_;
  using Epilogue = Epilogue_;
  using Visitor = Visitor_;
  using ThreadblockShape = typename Mma::Shape;
  static int const kThreadCount = 32 * Mma::WarpCount::kCount;

  struct Params {
    cutlass::conv::Conv2dProblemSize problem_size;
    cutlass::FastDivmod stride_h_divmod, stride_w_divmod;
    int num_phases = 1;          // stride_h * stride_w
    int tile_m_per_filter = 0;   // CTA rows per phase
    int gemm_k_iterations = 0;   // for a phase with all R*S taps
    typename Mma::IteratorA::Params iterator_A;
    typename Mma::IteratorA::Element const* ptr_A = nullptr;
    typename Mma::IteratorB::Params iterator_B;
    typename Mma::IteratorB::Element const* ptr_B = nullptr;
    typename Visitor::Params visitor;
  };

  // The epilogue (accumulator exchange + the visitor's staging) reuses the
  // mainloop's shared memory.
  struct EpilogueStorage {
    typename Epilogue::SharedStorage exchange;
    typename Visitor::SharedStorage visitor;
  };
  struct SharedStorage {
    union {
      typename Mma::SharedStorage main_loop;
      EpilogueStorage epilogue;
    };
    typename Visitor::BiasStorage bias;
  };

  static int grid_size(Params const& params) { return params.num_phases * params.tile_m_per_filter; }

  CUTLASS_DEVICE
  void operator()(Params const& params, SharedStorage& shared_storage) {
    cutlass::conv::Conv2dProblemSize const& problem = params.problem_size;
    int phase = int(blockIdx.x) % params.num_phases;
    int tile_m = int(blockIdx.x) / params.num_phases;
    int start_r, start_s;
    params.stride_w_divmod(start_r, start_s, phase);

    PhaseGeometry geometry;
    cutlass::conv::strided_dgrad_starting_coords(problem, params.stride_h_divmod, params.stride_w_divmod, start_r,
                                                 start_s, geometry.start_h, geometry.start_w);
    // A phase can own no output pixel at all (e.g. H_out < stride).
    if (geometry.start_h >= problem.H || geometry.start_w >= problem.W) return;
    geometry.P = (problem.H - geometry.start_h + problem.stride_h - 1) / problem.stride_h;
    geometry.Q = (problem.W - geometry.start_w + problem.stride_w - 1) / problem.stride_w;
    geometry.pq_divmod = cutlass::FastDivmod(geometry.P * geometry.Q);
    geometry.q_divmod = cutlass::FastDivmod(geometry.Q);

    int thread_idx = threadIdx.x;
    int warp_idx = cutlass::canonical_warp_idx_sync();
    int lane_idx = threadIdx.x % 32;
    // Row coordinates follow CUTLASS's strided-dgrad convention: phase-major blocks
    // of tile_m_per_filter CTA tiles.
    int row_offset = (phase * params.tile_m_per_filter + tile_m) * ThreadblockShape::kM;

    typename Mma::FragmentC accumulators;
    accumulators.clear();

    // A phase whose first tap lies outside the filter has no taps: its
    // accumulators stay zero and the epilogue outputs softmax(conv_b).
    if (start_r < problem.R && start_s < problem.S) {
      int gemm_k_iterations = (params.gemm_k_iterations / (problem.R * problem.S)) *
                              problem.num_gemm_k_filter_positions(start_r, start_s);
      typename Mma::IteratorA iterator_A(params.iterator_A, problem, params.ptr_A, thread_idx,
                                         params.stride_h_divmod, params.stride_w_divmod, start_r, start_s,
                                         cutlass::MatrixCoord(row_offset, 0));
      typename Mma::IteratorB iterator_B(params.iterator_B, problem, params.ptr_B, thread_idx, start_r, start_s,
                                         cutlass::MatrixCoord(0, 0));
      Mma mma(shared_storage.main_loop, thread_idx, warp_idx, lane_idx);
      mma(gemm_k_iterations, accumulators, iterator_A, iterator_B, accumulators);
    }

    Visitor visitor(params.visitor, shared_storage.epilogue.visitor, shared_storage.bias, geometry, thread_idx,
                    row_offset);
    Epilogue epilogue(shared_storage.epilogue.exchange, thread_idx, warp_idx, lane_idx);
    epilogue(visitor, accumulators);
  }
};

}  // namespace fct
