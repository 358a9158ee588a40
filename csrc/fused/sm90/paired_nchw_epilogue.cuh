// PairedNchwSoftmaxEpilogue — the sm90 kernel's NCHW epilogue, storing whole
// sectors.
//
// One phase alone fills every other element of an NCHW output row: half
// sectors, which the H100 reads from DRAM before writing back (benchmarks/
// NOTES.md, v4), however close in time the sibling phase writes the other half.
// Here one tile holds both column phases of its pixels, so its values for one
// channel are runs of consecutive output columns. The tile is transposed through
// shared memory and every warp store covers one aligned 128-byte line of a run:
// only the sectors at the ends of a run are partial.
//
// Assumptions (checked where the kernel is configured, launch_sm90.h):
//   * stride_w == 2. acc0 holds column phase r_w = 0 and acc1 phase r_w = 1 of
//     the same kTileM phase pixels, which are indexed over phase 0's columns
//     (phase 1 has as many or one fewer; its extra pixel lies past the row end
//     and is not stored).
//   * CTA_N * kSplit >= Cout: the kSplit CTAs of a cluster hold every channel of
//     the tile's rows, kTileN each, and every CTA holds at least one real channel
//     (a row's partial max is finite). Padded columns enter the max as -inf and
//     the sum as 0 and are never stored. With kSplit = 2 each row's max and sum
//     are merged with the partner CTA's through distributed shared memory.
//   * WGMMA's 64xN accumulator layout (SoftmaxRegisterEpilogue): a row is spread
//     over a quad; kTileM == 64.
//   * The 128 threads of the warpgroup call apply together, once per tile, with
//     `iter` counting their tiles.
#pragma once

#include <cstdint>

#include "cute/tensor.hpp"

#include "common/epilogue_math.cuh"
#include "fused/sm90/softmax_register_epilogue.cuh"

namespace fct::sm90 {

// Threads of a consumer warpgroup that send row statistics to the partner CTA:
// one per quad (4 warps x 8 quads), each for its four rows.
constexpr int kStatsArrivals = 32;

__device__ __forceinline__ uint32_t partner_address(uint32_t local, int partner_rank) {
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(local), "r"(partner_rank));
  return remote;
}

template <typename Element, int kTileM, int kTileN, int kSplit>
struct PairedNchwSoftmaxEpilogue {
  static_assert(kTileM == 64, "one 64-row WGMMA block per phase");
  static_assert(kSplit == 1 || kSplit == 2);
  static constexpr int kColGroups = kTileN / 8;
  static constexpr int kRoundCols = 32;  // channels transposed per round
  // A staging row holds one channel of the tile, both phases interleaved
  // (2 * kTileM output columns). 2 * kPitch = 8 (mod 32) words: the float2
  // writes of a half-warp (4 columns x 4 rows) hit 32 distinct banks.
  static constexpr int kPitch = 2 * kTileM + 4;
  static constexpr int kStagingFloats = kRoundCols * kPitch;
  static constexpr int kLine = 128 / int(sizeof(Element));  // elements per 128-byte line
  static constexpr int kLinesPerRun = 2 * kTileM / kLine + 1;  // lines a run of <= 2 * kTileM elements touches
  static constexpr int kExchangeFloat2s = 2 * 2 * kTileM;   // two buffers x two phases x rows

  // Max and sum of exp2(l - max) of one row over this CTA's columns.
  template <class Acc>
  __device__ __forceinline__ static void local_stats(Acc& acc, float const* cb2, int h, int quad_col, float& mx,
                                                     float& sum) {
    using cute::make_coord;
    mx = -INFINITY;
    CUTLASS_PRAGMA_UNROLL
    for (int j = 0; j < kColGroups; ++j) {
      float2 c = *reinterpret_cast<float2 const*>(cb2 + 8 * j + quad_col);
      mx = fmaxf(mx, fmaxf(MufuMath::logit_folded(acc(make_coord(0, h, j), 0, 0), c.x),
                           MufuMath::logit_folded(acc(make_coord(1, h, j), 0, 0), c.y)));
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    sum = 0.0f;
    CUTLASS_PRAGMA_UNROLL
    for (int j = 0; j < kColGroups; ++j) {
      float2 c = *reinterpret_cast<float2 const*>(cb2 + 8 * j + quad_col);
      sum += MufuMath::exp(MufuMath::logit_folded(acc(make_coord(0, h, j), 0, 0), c.x) - mx);
      sum += MufuMath::exp(MufuMath::logit_folded(acc(make_coord(1, h, j), 0, 0), c.y) - mx);
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
  }

  // kSplit = 2: send this CTA's (max, sum) of the thread's four rows to the
  // partner, wait for the partner's, merge. Buffer iter % 2 is reused every other
  // tile; the partner writes it again only after this warpgroup has signalled the
  // next tile, i.e. after it read this one (release/acquire at cluster scope).
  __device__ __forceinline__ static void merge_with_partner(float (&mx)[2][2], float (&sum)[2][2],
                                                            EpilogueContext const& ctx, int lane, int warp,
                                                            int iter) {
    int const buf = iter & 1;
    float2* local = ctx.exchange + buf * 2 * kTileM;
    if (lane % 4 == 0) {
      int partner = ctx.rank ^ 1;
      uint32_t remote = partner_address(cute::cast_smem_ptr_to_uint(local), partner);
      CUTLASS_PRAGMA_UNROLL
      for (int p = 0; p < 2; ++p)
        CUTLASS_PRAGMA_UNROLL
        for (int h = 0; h < 2; ++h) {
          int row = warp * 16 + h * 8 + lane / 4;
          asm volatile("st.shared::cluster.v2.f32 [%0], {%1, %2};\n" ::"r"(remote + (p * kTileM + row) * 8),
                       "f"(mx[p][h]), "f"(sum[p][h])
                       : "memory");
        }
      uint32_t remote_bar = partner_address(cute::cast_smem_ptr_to_uint(&ctx.exchange_bar[buf]), partner);
      asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];\n" ::"r"(remote_bar) : "memory");
    }
    uint32_t bar = cute::cast_smem_ptr_to_uint(&ctx.exchange_bar[buf]);
    uint32_t parity = (iter >> 1) & 1;
    asm volatile(
        "{\n"
        ".reg .pred done;\n"
        "WAIT:\n"
        "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 done, [%0], %1;\n"
        "@!done bra WAIT;\n"
        "}\n" ::"r"(bar),
        "r"(parity)
        : "memory");
    CUTLASS_PRAGMA_UNROLL
    for (int p = 0; p < 2; ++p)
      CUTLASS_PRAGMA_UNROLL
      for (int h = 0; h < 2; ++h) {
        float2 other = local[p * kTileM + warp * 16 + h * 8 + lane / 4];
        float m = fmaxf(mx[p][h], other.x);
        sum[p][h] = sum[p][h] * MufuMath::exp(mx[p][h] - m) + other.y * MufuMath::exp(other.x - m);
        mx[p][h] = m;
      }
  }

  template <class Acc>
  __device__ __forceinline__ static void apply(Acc& acc0, Acc& acc1, EpilogueContext const& ctx,
                                               OutputGeometry const& out, PhaseGrid const& grid, int m0,
                                               int thread_in_wg, int iter) {
    using cute::make_coord;
    int const lane = thread_in_wg % 32, warp = thread_in_wg / 32;
    int const quad_col = 2 * (lane % 4);

    float row_max[2][2], row_sum[2][2];
    CUTLASS_PRAGMA_UNROLL
    for (int h = 0; h < 2; ++h) {
      local_stats(acc0, ctx.cb2, h, quad_col, row_max[0][h], row_sum[0][h]);
      local_stats(acc1, ctx.cb2, h, quad_col, row_max[1][h], row_sum[1][h]);
    }
    if constexpr (kSplit == 2) merge_with_partner(row_max, row_sum, ctx, lane, warp, iter);
    float row_factor[2][2];
    CUTLASS_PRAGMA_UNROLL
    for (int p = 0; p < 2; ++p)
      CUTLASS_PRAGMA_UNROLL
      for (int h = 0; h < 2; ++h) row_factor[p][h] = MufuMath::pixel_factor(row_sum[p][h], ctx.s);

    Element* y = static_cast<Element*>(out.y);
    int64_t const plane = int64_t(out.H_out) * out.W_out;
    // Line alignment is a property of the absolute address.
    uint32_t const y_line_offset = uint32_t(reinterpret_cast<uintptr_t>(y) / sizeof(Element));
    int const m_stop = min(m0 + kTileM, grid.pixel_end);
    int const per_image = grid.rows * grid.cols;

    CUTLASS_PRAGMA_UNROLL
    for (int c0 = 0; c0 < kTileN; c0 += kRoundCols) {
      warpgroup_bar_sync(ctx.barrier_id);  // the previous round's reads are done
      CUTLASS_PRAGMA_UNROLL
      for (int h = 0; h < 2; ++h) {
        int row = warp * 16 + h * 8 + lane / 4;
        CUTLASS_PRAGMA_UNROLL
        for (int j = c0 / 8; j < (c0 + kRoundCols) / 8; ++j) {
          int col = 8 * j + quad_col;
          float2 c = *reinterpret_cast<float2 const*>(ctx.cb2 + col);
          float2 t = *reinterpret_cast<float2 const*>(ctx.bt + col);
          CUTLASS_PRAGMA_UNROLL
          for (int v = 0; v < 2; ++v) {
            float cv = v ? c.y : c.x, tv = v ? t.y : t.x;
            float e0 = MufuMath::exp(MufuMath::logit_folded(acc0(make_coord(v, h, j), 0, 0), cv) - row_max[0][h]);
            float e1 = MufuMath::exp(MufuMath::logit_folded(acc1(make_coord(v, h, j), 0, 0), cv) - row_max[1][h]);
            *reinterpret_cast<float2*>(ctx.stage + (col + v - c0) * kPitch + 2 * row) =
                make_float2(MufuMath::output_folded(e0, row_factor[0][h], tv),
                            MufuMath::output_folded(e1, row_factor[1][h], tv));
          }
        }
      }
      warpgroup_bar_sync(ctx.barrier_id);

      // The tile's pixels, cut where an output row ends: each piece is one run of
      // consecutive output columns per channel. A warp stores eight channels of
      // it, every line of every channel unrolled: the shared-memory loads are
      // independent, so their latency overlaps (a loop with one load and one
      // store per iteration ran at a fraction of this speed).
      for (int m = m0; m < m_stop;) {
        int n = m / per_image, rem = m - n * per_image;
        int i = rem / grid.cols, j = rem - i * grid.cols;
        int pixels = min(m_stop - m, grid.cols - j);
        int len = min(2 * pixels, out.W_out - 2 * j);
        int64_t run0 = int64_t(n) * out.Cout * plane + (int64_t(i) * out.stride_h + grid.r_h) * out.W_out + 2 * j;
        float const* src_row = ctx.stage + 2 * (m - m0);
        CUTLASS_PRAGMA_UNROLL
        for (int q = 0; q < kRoundCols / 4; ++q) {
          int cc = warp + 4 * q;
          int col = ctx.col_base + c0 + cc;
          int run_len = col < out.Cout ? len : 0;
          int64_t run = run0 + int64_t(col) * plane;
          float const* src = src_row + cc * kPitch;
          int w = -int((y_line_offset + uint32_t(run)) & (kLine - 1));  // first line of the run, relative to it
          CUTLASS_PRAGMA_UNROLL
          for (int line = 0; line < kLinesPerRun; ++line) store_line(y + run, src, w + line * kLine, run_len, lane);
        }
        m += pixels;
      }
    }
  }

  // Lane's share of one 128-byte line: elements [w, w + kLine) of a run of `len`
  // (w is line-aligned in memory; only run positions 0 .. len-1 are stored).
  __device__ __forceinline__ static void store_line(float* dst, float const* src, int w, int len, int lane) {
    int u = w + lane;
    if (u >= 0 && u < len) dst[u] = src[u];
  }
  template <typename Half>
  __device__ __forceinline__ static void store_line(Half* dst, float const* src, int w, int len, int lane) {
    int u = w + 2 * lane;
    bool ok0 = u >= 0 && u < len, ok1 = u + 1 >= 0 && u + 1 < len;
    if (ok0 && ok1) {
      SoftmaxRegisterEpilogue<Element, kTileM, kTileN>::store_pair(dst + u, src[u], src[u + 1]);
    } else {
      if (ok0) dst[u] = from_float<Half>(src[u]);
      if (ok1) dst[u + 1] = from_float<Half>(src[u + 1]);
    }
  }
};

}  // namespace fct::sm90
