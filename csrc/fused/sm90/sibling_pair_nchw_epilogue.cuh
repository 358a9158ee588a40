// SiblingPairNchwEpilogue — the sm90 kernel's NCHW epilogue for stride_w == 2:
// each warp stores runs of 32 consecutive output columns of one channel.
//
// One column phase alone fills every other element of an NCHW output row. Two
// sibling CTAs of a cluster compute the two column phases (r_w = 0, 1) of the
// same pixels with the same tiling, so thread t of one holds, for the same rows
// and channels, exactly the values whose neighbours thread t of the other holds.
// Each sibling keeps half of the channels and sends the other half to its
// sibling through distributed shared memory; then every thread holds both
// phases of its rows for its half of the channels, i.e. pairs of adjacent
// output elements. A warp's 16 rows are 16 consecutive pixels, 32 consecutive
// output columns: the warp transposes its pairs through its own part of the
// exchange buffer (no other warp touches it) and stores channel by channel,
// lane = output column.
//
// Assumptions (checked where the kernel is configured, launch_sm90.h):
//   * stride_w == 2; the two CTAs of a cluster run the same tile sequence over
//     pixels indexed by phase r_w = 0's columns (r_w = 1 has as many or one
//     fewer: its extra pixel lies past the row end and is not stored).
//   * CTA_N >= Cout (each CTA's softmax is complete, as in
//     SoftmaxRegisterEpilogue, whose row_softmax this reuses); rank 0 stores
//     column groups [0, kTileN/16), rank 1 the rest. Padded columns are never
//     stored.
//   * WGMMA's 64xN accumulator layout, kTileM == 64 (warp w holds rows
//     [16 w, 16 w + 16)); the 128 threads of the warpgroup call apply together,
//     once per tile, `iter` counting their tiles.
//   * kTileN >= 128: a warp's part of one exchange buffer (4 KB at kTileN = 128)
//     holds a round of 32 fp32 channels x 32 columns, or all 64 16-bit
//     channels packed two per word (static_assert below).
#pragma once

#include <cstdint>
#include <type_traits>

#include "cute/arch/cluster_sm90.hpp"
#include "cute/tensor.hpp"
#include "cutlass/arch/barrier.h"

#include "common/epilogue_math.cuh"
#include "fused/sm90/evict_first_store.cuh"
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
  // One buffer: [warp][vec][lane] (conflict-free, and each warp's part is
  // contiguous: after the warp has read it, it is the warp's transpose stage).
  static constexpr int kExchangeFloat4s = kSendVecs * 128;
  static constexpr int kStagingFloats = 0;
  // The warp-local transpose: kRoundChannels channels x 32 output columns per round.
  static constexpr int kRoundGroups = 4;
  static constexpr int kRoundChannels = 8 * kRoundGroups;
  static_assert(kHalfGroups % kRoundGroups == 0, "whole rounds");
  static_assert(kRoundChannels * 32 <= 4 * kSendVecs * 32, "a round's stage fits in the warp's exchange part");

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
      uint32_t remote = cute::set_block_rank(
          cute::cast_smem_ptr_to_uint(ctx.exchange + buf * kExchangeFloat4s + warp * kSendVecs * 32 + lane), sibling);
      uint32_t remote_bar = cute::set_block_rank(cute::cast_smem_ptr_to_uint(&ctx.exchange_bar[buf]), sibling);
      CUTLASS_PRAGMA_UNROLL
      for (int k = 0; k < kSendVecs; ++k)
        asm volatile(
            "st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.f32 [%0], {%1, %2, %3, %4}, [%5];\n" ::"r"(
                remote + k * 32 * 16),
            "f"(send[k].x), "f"(send[k].y), "f"(send[k].z), "f"(send[k].w), "r"(remote_bar)
            : "memory");
    }

    // Where lane L's output column of the warp's 32 lands: pixel m0 + 16 warp +
    // L / 2 (16 consecutive pixels, both phases), phase L % 2. Meanwhile.
    int64_t const plane = int64_t(out.H_out) * out.W_out;
    int64_t column;
    bool column_ok;
    {
      int m = m0 + warp * 16 + lane / 2;
      int per_image = grid.rows * grid.cols;
      int n = m / per_image, rem = m - n * per_image;
      int i = rem / grid.cols, j = rem - i * grid.cols;
      int ow = 2 * j + lane % 2;
      column_ok = m < grid.pixel_end && ow < out.W_out;
      column = (int64_t(n) * out.Cout + ctx.rank * (kTileN / 2)) * plane +
               (int64_t(i) * out.stride_h + grid.r_h) * out.W_out + ow;
    }

    // The sibling's values for this CTA's half. Buffer `buf` is rewritten only
    // after the sibling has received this thread's next tile, which this thread
    // sends after its last use of the buffer below.
    cutlass::arch::ClusterBarrier::wait(&ctx.exchange_bar[buf], (iter >> 1) & 1);
    float* stage = reinterpret_cast<float*>(ctx.exchange + buf * kExchangeFloat4s + warp * kSendVecs * 32);
    float4 recv[kSendVecs];
    CUTLASS_PRAGMA_UNROLL
    for (int k = 0; k < kSendVecs; ++k) recv[k] = reinterpret_cast<float4 const*>(stage)[k * 32 + lane];
    float const* other = reinterpret_cast<float const*>(recv);

    // Warp-local transpose through the warp's part of the buffer: the pairs
    // (phase 0, phase 1) go in as [channel][column], then every warp store is
    // one channel's 32 consecutive output columns, instead of four planes'
    // stride-2 halves (2.0 -> 1.1 ms for the stores alone,
    // scripts/nchw_store_pattern.cu). 16-bit output packs two channels per
    // 32-bit word, so that one round, half the shared loads and half the
    // conversions cover all of the CTA's channels.
    Element* y = static_cast<Element*>(out.y) + column;
    int const kept_channels = out.Cout - ctx.rank * (kTileN / 2);  // this CTA's real channels (may exceed kTileN/2)
    if constexpr (sizeof(Element) == 4) {
      CUTLASS_PRAGMA_UNROLL
      for (int round = 0; round < kHalfGroups / kRoundGroups; ++round) {
        __syncwarp();  // the buffer's previous contents (received values, last round) are read
        CUTLASS_PRAGMA_UNROLL
        for (int h = 0; h < 2; ++h) {
          float* row = stage + pair_offset(lane, h);
          CUTLASS_PRAGMA_UNROLL
          for (int gr = 0; gr < kRoundGroups; ++gr)
            CUTLASS_PRAGMA_UNROLL
            for (int v = 0; v < 2; ++v) {
              int g = round * kRoundGroups + gr;
              // (this CTA's phase, the sibling's): the reader swaps them back for rank 1.
              *reinterpret_cast<float2*>(row + (8 * gr + v) * 32) =
                  make_float2(kept[h][g][v], other[(h * kHalfGroups + g) * 2 + v]);
            }
        }
        __syncwarp();
        store_channels<kRoundChannels>(column_ok, kept_channels - round * kRoundChannels,
                                       y + int64_t(round * kRoundChannels) * plane, plane,
                                       [&](int c) { return stage[c * 32 + (lane ^ ctx.rank ^ swizzle(c))]; });
      }
    } else {
      using Pair = std::conditional_t<std::is_same_v<Element, __half>, __half2, __nv_bfloat162>;
      uint32_t* words = reinterpret_cast<uint32_t*>(stage);  // [channel pair][column]
      __syncwarp();  // the received values are read
      CUTLASS_PRAGMA_UNROLL
      for (int h = 0; h < 2; ++h) {
        uint32_t* row = words + pair_offset(lane, h);
        CUTLASS_PRAGMA_UNROLL
        for (int g = 0; g < kHalfGroups; ++g) {
          float const* theirs = other + (h * kHalfGroups + g) * 2;
          Pair a = to_pair<Pair>(kept[h][g][0], kept[h][g][1]), b = to_pair<Pair>(theirs[0], theirs[1]);
          *reinterpret_cast<uint2*>(row + 4 * g * 32) =
              make_uint2(*reinterpret_cast<uint32_t*>(&a), *reinterpret_cast<uint32_t*>(&b));
        }
      }
      __syncwarp();
      store_channels<kTileN / 2>(column_ok, kept_channels, y, plane, [&](int c) {
        uint32_t w = words[(c / 2) * 32 + (lane ^ ctx.rank ^ swizzle(c))];
        Pair pr = *reinterpret_cast<Pair*>(&w);
        return c % 2 ? pr.y : pr.x;
      });
    }
  }

  // Column swizzle of stage row `channel` (fp32) or channel pair `channel / 2`
  // (16-bit): the pair writes of a half-warp (4 rows x 4 channel pairs) and a
  // warp's row read each hit 32 distinct banks.
  __device__ __forceinline__ static int swizzle(int channel) { return 8 * ((channel >> 1) & 3); }

  // Where a thread writes its (phase 0, phase 1) pair of row half h, channel
  // quad_col (+ 8 per group, + 1 for v; for 16-bit both in one word): the
  // swizzle of those channels is 8 * (lane % 4) whatever the group, so every
  // write is one base plus a compile-time offset.
  __device__ __forceinline__ static int pair_offset(int lane, int h) {
    int col = 2 * (h * 8 + lane / 4);
    return (lane % 4) * (sizeof(Element) == 4 ? 64 : 32) + (col ^ (8 * (lane % 4)));
  }

  template <typename Pair>
  __device__ __forceinline__ static Pair to_pair(float lo, float hi) {
    if constexpr (std::is_same_v<Pair, __half2>)
      return __floats2half2_rn(lo, hi);
    else
      return __floats2bfloat162_rn(lo, hi);
  }

  // Stores value(c), an Element, to channel c's plane for c < min(kChannels,
  // channels): one branch for the lane (past the tile or row end) around
  // unpredicated stores, and a warp-uniform choice between the unrolled loop
  // over every channel (Cout fills the tile half) and a rolled one. Per-store
  // predicates and bounds checks had cost ~5 instructions per store, 64 stores
  // per thread and tile (removing them: bf16 NCHW 0.69 -> 0.65 ms, NOTES v9); a
  // branch per store costs instruction-fetch stalls (NOTES v5).
  template <int kChannels, class Value>
  __device__ __forceinline__ static void store_channels(bool lane_ok, int channels, Element* dst, int64_t plane,
                                                        Value const& value) {
    if (!lane_ok) return;
    auto const store = EvictFirstStore::make();
    if (channels >= kChannels) {
      CUTLASS_PRAGMA_UNROLL
      for (int c = 0; c < kChannels; ++c) store(dst + c * plane, value(c));
    } else {
#pragma unroll 1
      for (int c = 0; c < channels; ++c) store(dst + c * plane, value(c));
    }
  }
};

}  // namespace fct::sm90
