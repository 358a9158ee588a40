// SoftmaxEpilogueVisitor — the fused kernel's epilogue, in the shape of CUTLASS's
// 2.x epilogue visitors (driven by cutlass::epilogue::threadblock::EpilogueWithVisitor).
//
// For each output pixel (a GEMM row) of the tile it computes
//   z_c = acc_c + conv_b_c
//   y_c = sigmoid(s * (exp(z_c - max z) / sum exp(z - max z) + b_c))
// and stores y straight to global memory, NHWC or NCHW, at the pixel the
// transposed-convolution phase maps the row to. Nothing else is written.
//
// Assumptions (checked by static_asserts where the compiler can):
//  * CTA_N >= Cout: the threadblock tile holds every output channel of its rows,
//    so a row's softmax is complete inside the tile. Columns >= Cout are padding:
//    they enter the max and the sum as exp(-inf) = 0 and are never stored.
//  * The output thread map gives each row to kThreadsPerRow consecutive lanes of
//    one warp (power of two), each holding kColumnIterations x kElementsPerAccess
//    columns, so a row reduces with log2(kThreadsPerRow) xor-shuffles; a thread's
//    kRowsPerThread rows of one step are reduced together in end_step.
//  * One step of the epilogue covers ThreadMap::Shape::kRow consecutive row
//    blocks and steps advance by that much (Count::kGroup == Count::kCluster == 1).
//  * NCHW output goes through shared memory: rows are staged channel-major and
//    written after the last step with one thread per pixel, so a warp stores 32
//    pixels of one channel plane (a run of stride-phase positions) instead of 32
//    channels of one pixel (32 different planes).
//  * GEMM row m of phase (start_h, start_w) is pixel
//      npq = m mod tiled_rows_per_filter,  n = npq / (P*Q),  oh = start_h + p*stride_h,
//      ow = start_w + q*stride_w  with (p, q) = divmod(npq mod P*Q, Q)
//    — the same order CUTLASS's strided-dgrad iterators use for A.
#pragma once

#include <cstdint>

#include "cutlass/array.h"
#include "cutlass/cutlass.h"
#include "cutlass/fast_math.h"
#include "cutlass/matrix_coord.h"
#include "cutlass/numeric_conversion.h"

#include "common/epilogue_math.cuh"

namespace fct {

// Where a phase's GEMM rows land in the output tensor.
struct PhaseGeometry {
  int start_h = 0, start_w = 0;  // first output row/column of the phase
  int P = 0, Q = 0;              // output rows/columns that belong to the phase
  cutlass::FastDivmod pq_divmod, q_divmod;
};

template <typename ThreadMap_, typename ElementOutput_, typename ElementAccumulator_, int kElementsPerAccess_,
          int kTileM_, int kTileN_, int kThreadCount_>
class SoftmaxEpilogueVisitor {
 public:
  using ThreadMap = ThreadMap_;
  using ElementOutput = ElementOutput_;
  using ElementAccumulator = ElementAccumulator_;

  static int const kElementsPerAccess = kElementsPerAccess_;
  static int const kIterations = ThreadMap::Count::kTile;
  static int const kThreadsPerRow = ThreadMap::Detail::kAccessWidth;
  static int const kColumnIterations = ThreadMap::Iterations::kColumn;
  static int const kRowsPerThread =
      ThreadMap::Iterations::kRow * ThreadMap::Iterations::kGroup * ThreadMap::Iterations::kCluster;
  static int const kRowValues = kColumnIterations * kElementsPerAccess;

  static_assert(ThreadMap::Count::kGroup == 1 && ThreadMap::Count::kCluster == 1,
                "steps must advance by ThreadMap::Shape::kRow rows");
  static_assert((kThreadsPerRow & (kThreadsPerRow - 1)) == 0 && kThreadsPerRow <= 32,
                "a row must live in a power-of-two group of lanes of one warp");
  static_assert(kThreadsPerRow * kRowValues == kTileN_, "the lanes of a row must cover the whole tile N");

  static int const kTileM = kTileM_;
  static int const kThreadCount = kThreadCount_;
  static_assert(kThreadCount % kTileM == 0, "NCHW stores give each pixel row to one thread");

  using AccumulatorFragment = cutlass::Array<ElementAccumulator, kElementsPerAccess>;
  using OutputVector = cutlass::AlignedArray<ElementOutput, kElementsPerAccess>;
  using BiasVector = cutlass::AlignedArray<float, kElementsPerAccess>;

  struct Params {
    ElementOutput* y = nullptr;
    float const* conv_b = nullptr;  // nullable
    float const* b = nullptr;
    float s = 1.0f;
    int N = 0, Cout = 0, H_out = 0, W_out = 0;
    int stride_h = 1, stride_w = 1;
    // Row -> pixel divisions, precomputed (a hardware divide per row costs more
    // than the softmax itself).
    cutlass::FastDivmod rows_per_filter_divmod;
    bool nchw = true;
    bool vector_store = false;  // NHWC with Cout % kElementsPerAccess == 0
  };

  // Channel-major staging of the whole tile for NCHW stores; the row pitch is
  // padded by 4 bytes so a row's lanes (different channels) spread over banks.
  static int const kStagePitch = kTileM + 4 / int(sizeof(ElementOutput));
  struct SharedStorage {
    ElementOutput stage[kTileN_ * kStagePitch];
  };
  // Per-column constants, kept in shared memory rather than registers (the
  // accumulators already fill the register file). Must not alias the mainloop's
  // buffers: begin_epilogue writes it while other warps may still be multiplying.
  struct BiasStorage {
    alignas(16) float conv_b2[kTileN_];  // conv_b * log2(e); -inf in padded columns
    alignas(16) float kb[kTileN_];       // -s * log2(e) * b
  };

 private:
  Params const& params_;
  SharedStorage& shared_;
  BiasStorage& bias_;
  PhaseGeometry phase_;
  int thread_idx_;
  int cta_row_;        // first GEMM row of the CTA
  int thread_row_;     // first tile row of this thread, including the CTA offset
  int thread_column_;  // first column of this thread
  // Everything runs in the log2 domain so each exp is one ex2 (MufuMath of
  // common/epilogue_math.cuh, with its per-column terms precomputed):
  //   z2 = (acc + conv_b) * log2(e),  e = 2^(z2 - max z2),
  //   y  = 1 / (1 + 2^(k_row * e + kb_c)),  k_row = -s*log2(e)/sum,  kb_c = -s*log2(e)*b_c.
  float z_[kRowsPerThread][kRowValues];  // the step's rows: z2, then e
  int step_row_ = 0;

 public:
  CUTLASS_DEVICE
  SoftmaxEpilogueVisitor(Params const& params, SharedStorage& shared, BiasStorage& bias, PhaseGeometry phase,
                         int thread_idx, int threadblock_row_offset)
      : params_(params), shared_(shared), bias_(bias), phase_(phase), thread_idx_(thread_idx), cta_row_(threadblock_row_offset) {
    cutlass::MatrixCoord offset = ThreadMap::initial_offset(thread_idx);
    thread_row_ = offset.row();
    thread_column_ = offset.column();
  }

  // The same columns recur in every row: fold the biases into their log2-domain
  // constants once per tile. EpilogueWithVisitor's first barrier orders these
  // writes before any read.
  CUTLASS_DEVICE
  void begin_epilogue() {
    for (int c = thread_idx_; c < kTileN_; c += kThreadCount) {
      bool valid = c < params_.Cout;
      bias_.conv_b2[c] = valid ? (params_.conv_b ? MufuMath::logit_offset(__ldg(params_.conv_b + c)) : 0.0f)
                               : -cutlass::platform::numeric_limits<float>::infinity();
      bias_.kb[c] = valid ? MufuMath::bias_term(__ldg(params_.b + c), params_.s) : 0.0f;
    }
  }

  CUTLASS_DEVICE
  void begin_step(int step_idx) { step_row_ = step_idx * ThreadMap::Shape::kRow; }

  CUTLASS_DEVICE
  void begin_row(int) {}

  CUTLASS_DEVICE
  void visit(int, int row_idx, int column_idx, int, AccumulatorFragment const& accum) {
    BiasVector cb = *reinterpret_cast<BiasVector const*>(bias_.conv_b2 + column_of(column_idx, 0));
    CUTLASS_PRAGMA_UNROLL
    for (int e = 0; e < kElementsPerAccess; ++e)
      z_[row_idx][column_idx * kElementsPerAccess + e] = MufuMath::logit_folded(float(accum[e]), cb[e]);
  }

  CUTLASS_DEVICE
  void end_row(int) {}

  // All rows of the step reduce together: their shuffle chains are
  // independent, so they overlap instead of serialising row by row.
  CUTLASS_DEVICE
  void end_step(int) {
    float row_max[kRowsPerThread], row_sum[kRowsPerThread];
    CUTLASS_PRAGMA_UNROLL
    for (int r = 0; r < kRowsPerThread; ++r) {
      row_max[r] = -cutlass::platform::numeric_limits<float>::infinity();
      CUTLASS_PRAGMA_UNROLL
      for (int i = 0; i < kRowValues; ++i) row_max[r] = fmaxf(row_max[r], z_[r][i]);
    }
    CUTLASS_PRAGMA_UNROLL
    for (int offset = kThreadsPerRow / 2; offset > 0; offset /= 2)
      CUTLASS_PRAGMA_UNROLL
      for (int r = 0; r < kRowsPerThread; ++r)
        row_max[r] = fmaxf(row_max[r], __shfl_xor_sync(0xffffffffu, row_max[r], offset));
    CUTLASS_PRAGMA_UNROLL
    for (int r = 0; r < kRowsPerThread; ++r) {
      row_sum[r] = 0.0f;
      CUTLASS_PRAGMA_UNROLL
      for (int i = 0; i < kRowValues; ++i) {
        z_[r][i] = MufuMath::exp(z_[r][i] - row_max[r]);
        row_sum[r] += z_[r][i];
      }
    }
    CUTLASS_PRAGMA_UNROLL
    for (int offset = kThreadsPerRow / 2; offset > 0; offset /= 2)
      CUTLASS_PRAGMA_UNROLL
      for (int r = 0; r < kRowsPerThread; ++r) row_sum[r] += __shfl_xor_sync(0xffffffffu, row_sum[r], offset);
    CUTLASS_PRAGMA_UNROLL
    for (int r = 0; r < kRowsPerThread; ++r) {
      float k_row = MufuMath::pixel_factor(row_sum[r], params_.s);
      int tile_row = thread_row_ + step_row_ + ThreadMap::iteration_offset(r * kColumnIterations).row();
      if (params_.nchw) {
        stage_row(r, tile_row, k_row);
      } else {
        int64_t pixel_offset;
        if (map_row(cta_row_ + tile_row, pixel_offset)) store_row_nhwc(r, pixel_offset, k_row);
      }
    }
  }

  // NCHW: every row is staged; one thread per pixel walks the channel planes.
  CUTLASS_DEVICE
  void end_epilogue() {
    if (!params_.nchw) return;
    __syncthreads();
    int tile_row = thread_idx_ % kTileM;
    int64_t pixel_offset;
    if (!map_row(cta_row_ + tile_row, pixel_offset)) return;
    int64_t plane = int64_t(params_.H_out) * params_.W_out;
    int const kChannelGroups = kThreadCount / kTileM;
    for (int c = thread_idx_ / kTileM; c < params_.Cout; c += kChannelGroups)
      params_.y[pixel_offset + c * plane] = shared_.stage[c * kStagePitch + tile_row];
  }

 private:
  CUTLASS_DEVICE
  int column_of(int ci, int e) const { return thread_column_ + ci * ThreadMap::Delta::kColumn + e; }

  // Output offset of the row's pixel, in units of elements of one channel plane
  // (NCHW: n*Cout*HW + oh*W_out + ow;  NHWC: (n*HW + oh*W_out + ow) * Cout).
  CUTLASS_DEVICE
  bool map_row(int m, int64_t& offset) const {
    int filter_tile, npq, n, rem, p, q;
    params_.rows_per_filter_divmod(filter_tile, npq, m);
    phase_.pq_divmod(n, rem, npq);
    if (n >= params_.N) return false;
    phase_.q_divmod(p, q, rem);
    int oh = phase_.start_h + p * params_.stride_h;
    int ow = phase_.start_w + q * params_.stride_w;
    int64_t hw = int64_t(params_.H_out) * params_.W_out;
    int64_t pix = int64_t(oh) * params_.W_out + ow;
    offset = params_.nchw ? int64_t(n) * params_.Cout * hw + pix : (int64_t(n) * hw + pix) * params_.Cout;
    return true;
  }

  CUTLASS_DEVICE
  OutputVector row_values(int r, int ci, float k_row) const {
    BiasVector kb = *reinterpret_cast<BiasVector const*>(bias_.kb + column_of(ci, 0));
    OutputVector out;
    CUTLASS_PRAGMA_UNROLL
    for (int e = 0; e < kElementsPerAccess; ++e) {
      int i = ci * kElementsPerAccess + e;
      out[e] = ElementOutput(MufuMath::output_folded(z_[r][i], k_row, kb[e]));
    }
    return out;
  }

  CUTLASS_DEVICE
  void store_row_nhwc(int r, int64_t pixel_offset, float k_row) {
    CUTLASS_PRAGMA_UNROLL
    for (int ci = 0; ci < kColumnIterations; ++ci) {
      OutputVector out = row_values(r, ci, k_row);
      int c0 = column_of(ci, 0);
      if (params_.vector_store) {
        if (c0 < params_.Cout) *reinterpret_cast<OutputVector*>(params_.y + pixel_offset + c0) = out;
      } else {
        CUTLASS_PRAGMA_UNROLL
        for (int e = 0; e < kElementsPerAccess; ++e)
          if (c0 + e < params_.Cout) params_.y[pixel_offset + c0 + e] = out[e];
      }
    }
  }

  CUTLASS_DEVICE
  void stage_row(int r, int tile_row, float k_row) {
    CUTLASS_PRAGMA_UNROLL
    for (int ci = 0; ci < kColumnIterations; ++ci) {
      OutputVector out = row_values(r, ci, k_row);
      CUTLASS_PRAGMA_UNROLL
      for (int e = 0; e < kElementsPerAccess; ++e) shared_.stage[column_of(ci, e) * kStagePitch + tile_row] = out[e];
    }
  }
};

}  // namespace fct
