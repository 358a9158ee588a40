// SiblingPairNchwEpilogue — the sm90 kernel's NCHW epilogue for stride_w == 2,
// storing consecutive output columns straight from registers.
//
// One column phase alone fills every other element of an NCHW output row. Two
// sibling CTAs of a cluster compute the two column phases (r_w = 0, 1) of the
// same pixels with the same tiling, so thread t of one holds, for the same rows
// and channels, exactly the values whose neighbours thread t of the other holds.
// Each sibling keeps half of the channels and sends the other half to its
// sibling through distributed shared memory; then every thread holds both
// phases of its rows for its half of the channels, i.e. pairs of adjacent
// output elements; the two stores of a warp's pairs together cover 16
// consecutive output columns of four channels, with no transpose.
//
// Assumptions (checked where the kernel is configured, launch_sm90.h):
//   * stride_w == 2; the two CTAs of a cluster run the same tile sequence over
//     pixels indexed by phase r_w = 0's columns (r_w = 1 has as many or one
//     fewer: its extra pixel lies past the row end and is not stored).
//   * CTA_N >= Cout (each CTA's softmax is complete, as in
//     SoftmaxRegisterEpilogue, whose row_softmax this reuses); rank 0 stores
//     column groups [0, kTileN/16), rank 1 the rest. Padded columns are never
//     stored.
//   * WGMMA's 64xN accumulator layout, kTileM == 64; the 128 threads of the
//     warpgroup call apply together, once per tile, `iter` counting their tiles.
#pragma once

#include <cstdint>

#include "cute/arch/cluster_sm90.hpp"
#include "cute/tensor.hpp"
#include "cutlass/arch/barrier.h"

#include "common/epilogue_math.cuh"
#include "fused/sm90/softmax_register_epilogue.cuh"

namespace fct::sm90 {

template <typename Element, int kTileM, int kTileN>
struct SiblingPairNchwEpilogue {
  static_assert(kTileM == 64, "one 64-row WGMMA block per tile");
  static_assert(kTileN % 16 == 0, "the channel groups split evenly between the siblings");
  using RowSoftmax = SoftmaxRegisterEpilogue<Element, kTileM, kTileN>;
  static constexpr int kColGroups = kTileN / 8;
  static constexpr int kHalfGroups = kColGroups / 2;    // 8-channel groups each sibling stores
  static constexpr int kSendFloats = 2 * kHalfGroups * 2;  // per thread: 2 rows x groups x 2 columns
  static constexpr int kSendVecs = kSendFloats / 4;
  static constexpr int kExchangeFloat4s = kSendVecs * 128;  // one buffer: [vec][thread], conflict-free
  static constexpr int kStagingFloats = 0;

  template <class AccTensor>
  __device__ __forceinline__ static void apply(AccTensor& acc, EpilogueContext const& ctx, OutputGeometry const& out,
                                               PhaseGrid const& grid, int m0, int thread_in_wg, int iter) {
    int const lane = thread_in_wg % 32, warp = thread_in_wg / 32;
    int const quad_col = 2 * (lane % 4);
    int const keep0 = ctx.rank * kHalfGroups;        // first column group this CTA stores
    int const send0 = (ctx.rank ^ 1) * kHalfGroups;  // first group the sibling stores
    int const buf = iter & 1;
    // This thread's share of the bytes the sibling will deliver into buffer buf.
    cutlass::arch::ClusterTransactionBarrier::arrive_and_expect_tx(&ctx.exchange_bar[buf], kSendVecs * 16);

    // Softmax of both rows; the sibling's half is sent at once, this CTA's half kept.
    float kept[2][kHalfGroups][2];
    float4 send[kSendVecs];
    CUTLASS_PRAGMA_UNROLL
    for (int h = 0; h < 2; ++h) {
      float ev[kColGroups][2];
      float factor;
      RowSoftmax::row_softmax(acc, ctx.cb2, 0, h, quad_col, ctx.s, ev, factor);
      CUTLASS_PRAGMA_UNROLL
      for (int g = 0; g < kHalfGroups; ++g)
        CUTLASS_PRAGMA_UNROLL
        for (int v = 0; v < 2; ++v) {
          // Group indices are compile-time on both branches (rank only picks which).
          int col_keep = 8 * (keep0 + g) + quad_col + v, col_send = 8 * (send0 + g) + quad_col + v;
          float e_keep = ctx.rank ? ev[kHalfGroups + g][v] : ev[g][v];
          float e_send = ctx.rank ? ev[g][v] : ev[kHalfGroups + g][v];
          kept[h][g][v] = MufuMath::output_folded(e_keep, factor, ctx.bt[col_keep]);
          reinterpret_cast<float*>(send)[(h * kHalfGroups + g) * 2 + v] =
              MufuMath::output_folded(e_send, factor, ctx.bt[col_send]);
        }
    }
    {
      // st.async signals the sibling's barrier with the bytes it delivers (as a TMA
      // load does), so no fence is needed: a release at cluster scope compiled to
      // MEMBAR.ALL.GPU, which waited for this thread's global stores.
      int const sibling = ctx.rank ^ 1;
      uint32_t remote = cute::set_block_rank(cute::cast_smem_ptr_to_uint(ctx.exchange + buf * kExchangeFloat4s), sibling);
      uint32_t remote_bar = cute::set_block_rank(cute::cast_smem_ptr_to_uint(&ctx.exchange_bar[buf]), sibling);
      CUTLASS_PRAGMA_UNROLL
      for (int k = 0; k < kSendVecs; ++k)
        asm volatile(
            "st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.f32 [%0], {%1, %2, %3, %4}, [%5];\n" ::"r"(
                remote + (k * 128 + thread_in_wg) * 16),
            "f"(send[k].x), "f"(send[k].y), "f"(send[k].z), "f"(send[k].w), "r"(remote_bar)
            : "memory");
    }

    // Where this thread's two rows land (phase-0 column of the pair), meanwhile.
    int64_t const plane = int64_t(out.H_out) * out.W_out;
    int64_t base[2];
    bool row_ok[2], second_ok[2];
    CUTLASS_PRAGMA_UNROLL
    for (int h = 0; h < 2; ++h) {
      int m = m0 + warp * 16 + h * 8 + lane / 4;
      int per_image = grid.rows * grid.cols;
      int n = m / per_image, rem = m - n * per_image;
      int i = rem / grid.cols, j = rem - i * grid.cols;
      row_ok[h] = m < grid.pixel_end;
      second_ok[h] = 2 * j + 1 < out.W_out;
      base[h] = int64_t(n) * out.Cout * plane + (int64_t(i) * out.stride_h + grid.r_h) * out.W_out + 2 * j;
    }

    // The sibling's values for this CTA's half. Buffer `buf` is rewritten only
    // after the sibling has received this thread's next tile, which this thread
    // sends after these reads.
    cutlass::arch::ClusterBarrier::wait(&ctx.exchange_bar[buf], (iter >> 1) & 1);
    float4 recv[kSendVecs];
    CUTLASS_PRAGMA_UNROLL
    for (int k = 0; k < kSendVecs; ++k) recv[k] = ctx.exchange[buf * kExchangeFloat4s + k * 128 + thread_in_wg];
    float const* other = reinterpret_cast<float const*>(recv);

    Element* y = static_cast<Element*>(out.y);
    CUTLASS_PRAGMA_UNROLL
    for (int h = 0; h < 2; ++h) {
      if (!row_ok[h]) continue;
      CUTLASS_PRAGMA_UNROLL
      for (int g = 0; g < kHalfGroups; ++g)
        CUTLASS_PRAGMA_UNROLL
        for (int v = 0; v < 2; ++v) {
          int col = 8 * (keep0 + g) + quad_col + v;
          if (col >= out.Cout) continue;
          float mine = kept[h][g][v], theirs = other[(h * kHalfGroups + g) * 2 + v];
          float first = ctx.rank ? theirs : mine, second = ctx.rank ? mine : theirs;
          // Two single stores, one code path: 2-element stores where a pair is
          // aligned (half of them, as the row pitch is odd) measured 9% slower
          // for fp32, the branch per pair costing more in instruction fetch than
          // the stores it saved (benchmarks/NOTES.md v5).
          int64_t at = base[h] + col * plane;
          y[at] = from_float<Element>(first);
          if (second_ok[h]) y[at + 1] = from_float<Element>(second);
        }
    }
  }
};

}  // namespace fct::sm90
