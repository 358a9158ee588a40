// SoftmaxRegisterEpilogue — the sm90 kernel's epilogue, run straight on the
// WGMMA accumulators of one consumer warpgroup; nothing goes through shared
// memory and nothing but y reaches global memory.
//
// Assumptions (checked where the kernel is configured):
//   * CTA_N >= Cout: the accumulator tile holds every output channel of its rows,
//     so each row's softmax is complete inside the tile. Padded columns
//     (Cout <= col < CTA_N) enter the max as -inf and the sum as 0 and are never
//     stored.
//   * The accumulator fragment is WGMMA's 64xN layout: value (v0, v1, v2) of
//     M-block mi sits at row mi*64 + 16*warp + 8*v1 + lane/4 and column
//     8*v2 + 2*(lane%4) + v0. A row is therefore spread over the four lanes of a
//     quad, and its max and sum take two xor-shuffles each.
//   * conv_b and b arrive pre-scaled in shared memory (see prescale_bias): the
//     whole formula runs in log2 units, three MUFU ops per element (one ex2 for the
//     softmax, one ex2 and one rcp for the sigmoid) plus one rcp per row; NCHW
//     output recomputes the softmax ex2 (four per element) to save registers.
//   * kTileM is a multiple of 32 and the 128 threads of the warpgroup call apply
//     together (NCHW uses a named barrier and the warpgroup's staging buffer).
#pragma once

#include <cstdint>

#include "cute/tensor.hpp"
#include "cutlass/fast_math.h"

#include "common/epilogue_math.cuh"

namespace fct::sm90 {

// Where one phase-GEMM row (pixel) lands in y.
struct OutputGeometry {
  void* y;
  int Cout;
  int H_out, W_out;
  int stride_h, stride_w;
  bool nchw;
  bool pair_store;  // NHWC with even Cout and 2-element aligned y: store column pairs at once
  bool no_stores;   // profiling only: compute everything, store nothing
};

// The phase grid (divisors by H_r * W_r and W_r, multiply-shift), and the end
// of the tile's pixel range (rows at or past it belong to the next tile or CTA).
struct PhaseGrid {
  cutlass::FastDivmod image_div, col_div;
  int pixel_end, r_h, r_w;

  // Phase-GEMM row m -> output pixel (n, i, j) of the phase grid.
  __device__ __forceinline__ void decode(int m, int& n, int& i, int& j) const {
    int rem;
    image_div(n, rem, m);
    col_div(i, j, rem);
  }
};

// What the epilogue reads besides the accumulators.
struct EpilogueContext {
  float const* cb2;  // [kTileN] per-column constants, see prescale_bias
  float const* bt;
  float s;
  float* stage;      // this warpgroup's NCHW staging buffer, kStageCols x (kTileM + 4) floats
  int barrier_id;    // named barrier of this warpgroup (128 threads)
};

constexpr int kStageCols = 32;  // NCHW: columns (channels) transposed per round
template <int kTileM>
constexpr int stage_pitch() { return kTileM + 4; }  // conflict-free writes from the quad layout

__device__ __forceinline__ void warpgroup_bar_sync(int id) {
  asm volatile("bar.sync %0, 128;\n" ::"r"(id) : "memory");
}

// Per-column constants the epilogue reads: logit offset and post-softmax bias
// term, both in log2 units. Filled once per CTA.
//   cb2[c] = conv_b[c] * log2(e)        (-inf for padded columns)
//   bt[c]  = -s * log2(e) * b[c]
__device__ __forceinline__ void prescale_bias(float* cb2, float* bt, int tile_n, int Cout, float const* conv_b,
                                              float const* b, float s, int tid, int nthreads) {
  for (int c = tid; c < tile_n; c += nthreads) {
    bool real = c < Cout;
    cb2[c] = real ? (conv_b ? conv_b[c] * kLog2e : 0.0f) : -INFINITY;
    bt[c] = real && b ? -s * kLog2e * b[c] : 0.0f;
  }
}

template <typename Element, int kTileM, int kTileN>
struct SoftmaxRegisterEpilogue {
  static constexpr int kMBlocks = kTileM / 64;
  static constexpr int kColGroups = kTileN / 8;

  // acc: the consumer warpgroup's ((2,2,kTileN/8), kMBlocks, 1) fp32 fragment.
  template <class AccTensor>
  __device__ __forceinline__ static void apply(AccTensor& acc, EpilogueContext const& ctx,
                                               OutputGeometry const& out, PhaseGrid const& grid, int m0,
                                               int thread_in_wg) {
    if (out.nchw)
      apply_nchw(acc, ctx, out, grid, m0, thread_in_wg);
    else
      apply_nhwc(acc, ctx, out, grid, m0, thread_in_wg);
  }

  // Rows processed together. Two (both rows a thread holds per M-block) measured
  // slower than one on the H100 (bf16 NHWC 0.93 vs 0.75 ms): storing one row while
  // computing the next overlaps better.
  static constexpr int kRowsTogether = 1;

  // Softmax statistics of rows (mi, h0 .. h0 + kRowsTogether - 1): ev = exp2(l - max)
  // per value (l = logit in log2 units), mx = row max of l, factor = -s*log2(e)/sum.
  // Max and sum are tree-reduced so the dependent chains stay short: one epilogue
  // warp per scheduler has no other warps to hide latency behind.
  template <class AccTensor>
  __device__ __forceinline__ static void softmax_rows(AccTensor& acc, float const* cb2, int mi, int h0,
                                                      int quad_col, float neg_s_log2e,
                                                      float (&ev)[kRowsTogether][kColGroups][2],
                                                      float (&mx)[kRowsTogether], float (&factor)[kRowsTogether]) {
    using cute::make_coord;
    CUTLASS_PRAGMA_UNROLL
    for (int j = 0; j < kColGroups; ++j) {
      float2 c = *reinterpret_cast<float2 const*>(cb2 + 8 * j + quad_col);
      CUTLASS_PRAGMA_UNROLL
      for (int r = 0; r < kRowsTogether; ++r) {
        ev[r][j][0] = fmaf(acc(make_coord(0, h0 + r, j), mi, 0), kLog2e, c.x);
        ev[r][j][1] = fmaf(acc(make_coord(1, h0 + r, j), mi, 0), kLog2e, c.y);
      }
    }
    CUTLASS_PRAGMA_UNROLL
    for (int r = 0; r < kRowsTogether; ++r) {
      float t[kColGroups];
      CUTLASS_PRAGMA_UNROLL
      for (int j = 0; j < kColGroups; ++j) t[j] = fmaxf(ev[r][j][0], ev[r][j][1]);
      CUTLASS_PRAGMA_UNROLL
      for (int w = kColGroups / 2; w >= 1; w /= 2)
        CUTLASS_PRAGMA_UNROLL
        for (int j = 0; j < w; ++j) t[j] = fmaxf(t[j], t[j + w]);
      mx[r] = fmaxf(t[0], __shfl_xor_sync(0xffffffffu, t[0], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    }
    CUTLASS_PRAGMA_UNROLL
    for (int r = 0; r < kRowsTogether; ++r) {
      float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      CUTLASS_PRAGMA_UNROLL
      for (int j = 0; j < kColGroups; ++j)
        CUTLASS_PRAGMA_UNROLL
        for (int v = 0; v < 2; ++v) {
          ev[r][j][v] = ex2_approx(ev[r][j][v] - mx[r]);
          part[(2 * j + v) % 4] += ev[r][j][v];
        }
      float sum = (part[0] + part[1]) + (part[2] + part[3]);
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      factor[r] = neg_s_log2e * rcp_approx(sum);
    }
  }

  // NHWC: a pixel's channels are contiguous, so each quad stores its row
  // straight from registers (column pairs: 8 rows x 32 bytes per warp store).
  template <class AccTensor>
  __device__ __forceinline__ static void apply_nhwc(AccTensor& acc, EpilogueContext const& ctx,
                                                    OutputGeometry const& out, PhaseGrid const& grid, int m0,
                                                    int thread_in_wg) {
    using cute::make_coord;
    int lane = thread_in_wg % 32, warp = thread_in_wg / 32;
    int quad_col = 2 * (lane % 4);
    float neg_s_log2e = -ctx.s * kLog2e;
    float const* bt = ctx.bt;

    Element* y = static_cast<Element*>(out.y);
    CUTLASS_PRAGMA_UNROLL
    for (int mi = 0; mi < kMBlocks; ++mi) {
      CUTLASS_PRAGMA_UNROLL
      for (int h0 = 0; h0 < 2; h0 += kRowsTogether) {
        // The rows' values live in `ev`, not back in `acc`: writing WGMMA
        // accumulator registers from ordinary instructions makes ptxas serialise
        // the next tile's wgmma chain (C7515).
        float ev[kRowsTogether][kColGroups][2], mx[kRowsTogether], factor[kRowsTogether];
        softmax_rows(acc, ctx.cb2, mi, h0, quad_col, neg_s_log2e, ev, mx, factor);
        CUTLASS_PRAGMA_UNROLL
        for (int r = 0; r < kRowsTogether; ++r) {
          int m = m0 + mi * 64 + warp * 16 + (h0 + r) * 8 + lane / 4;
          if (m >= grid.pixel_end) continue;
          int n, i, jj;
          grid.decode(m, n, i, jj);
          int64_t oh = int64_t(i) * out.stride_h + grid.r_h;
          int64_t ow = int64_t(jj) * out.stride_w + grid.r_w;
          Element* base = y + ((int64_t(n) * out.H_out + oh) * out.W_out + ow) * out.Cout;
          CUTLASS_PRAGMA_UNROLL
          for (int j = 0; j < kColGroups; ++j) {
            int col = 8 * j + quad_col;
            float2 t = *reinterpret_cast<float2 const*>(bt + col);
            float y0 = rcp_approx(1.0f + ex2_approx(fmaf(factor[r], ev[r][j][0], t.x)));
            float y1 = rcp_approx(1.0f + ex2_approx(fmaf(factor[r], ev[r][j][1], t.y)));
            if (out.no_stores) {
              if (y0 == 1234.5f && y1 == 1234.5f) base[col] = from_float<Element>(y0);  // keeps the math alive
            } else if (out.pair_store) {
              if (col < out.Cout) store_pair(base + col, y0, y1);
            } else {
              if (col < out.Cout) base[col] = from_float<Element>(y0);
              if (col + 1 < out.Cout) base[col + 1] = from_float<Element>(y1);
            }
          }
        }
      }
    }
  }

  // NCHW: a channel's pixels are a plane apart, so the tile is transposed
  // through shared memory kStageCols channels at a time and each warp stores
  // runs of 32 consecutive phase pixels of one channel (every other element of
  // an output row; the sibling phase's CTA writes the rest, see phase_schedule.h).
  // The row statistics are kept, not the exponentials: recomputing exp2 costs one
  // MUFU op per element but no registers.
  template <class AccTensor>
  __device__ __forceinline__ static void apply_nchw(AccTensor& acc, EpilogueContext const& ctx,
                                                    OutputGeometry const& out, PhaseGrid const& grid, int m0,
                                                    int thread_in_wg) {
    using cute::make_coord;
    constexpr int kPitch = stage_pitch<kTileM>();
    constexpr int kRowsPerLane = kTileM / 32;
    int lane = thread_in_wg % 32, warp = thread_in_wg / 32;
    int quad_col = 2 * (lane % 4);
    float neg_s_log2e = -ctx.s * kLog2e;

    float row_max[kMBlocks][2], row_factor[kMBlocks][2];
    CUTLASS_PRAGMA_UNROLL
    for (int mi = 0; mi < kMBlocks; ++mi)
      CUTLASS_PRAGMA_UNROLL
      for (int h0 = 0; h0 < 2; h0 += kRowsTogether) {
        float ev[kRowsTogether][kColGroups][2], mx[kRowsTogether], factor[kRowsTogether];
        softmax_rows(acc, ctx.cb2, mi, h0, quad_col, neg_s_log2e, ev, mx, factor);
        CUTLASS_PRAGMA_UNROLL
        for (int r = 0; r < kRowsTogether; ++r) {
          row_max[mi][h0 + r] = mx[r];
          row_factor[mi][h0 + r] = factor[r];
        }
      }

    // Where this lane's store rows (lane + 32*q) land: pixel offset inside channel 0's plane.
    int64_t plane = int64_t(out.H_out) * out.W_out;
    int64_t offset[kRowsPerLane];
    CUTLASS_PRAGMA_UNROLL
    for (int q = 0; q < kRowsPerLane; ++q) {
      int m = m0 + lane + 32 * q;
      int n = 0, i = 0, j = 0;
      if (m < grid.pixel_end) grid.decode(m, n, i, j);
      offset[q] = m < grid.pixel_end ? int64_t(n) * out.Cout * plane +
                                           (int64_t(i) * out.stride_h + grid.r_h) * out.W_out +
                                           int64_t(j) * out.stride_w + grid.r_w
                                     : int64_t(-1);
    }
    Element* y = static_cast<Element*>(out.y);

    CUTLASS_PRAGMA_UNROLL
    for (int c0 = 0; c0 < kTileN; c0 += kStageCols) {
      warpgroup_bar_sync(ctx.barrier_id);  // the previous round's reads are done
      CUTLASS_PRAGMA_UNROLL
      for (int mi = 0; mi < kMBlocks; ++mi)
        CUTLASS_PRAGMA_UNROLL
        for (int h = 0; h < 2; ++h) {
          int row = mi * 64 + warp * 16 + h * 8 + lane / 4;
          CUTLASS_PRAGMA_UNROLL
          for (int j = c0 / 8; j < (c0 + kStageCols) / 8; ++j) {
            int col = 8 * j + quad_col;
            float2 c = *reinterpret_cast<float2 const*>(ctx.cb2 + col);
            float2 t = *reinterpret_cast<float2 const*>(ctx.bt + col);
            float e0 = ex2_approx(fmaf(acc(make_coord(0, h, j), mi, 0), kLog2e, c.x) - row_max[mi][h]);
            float e1 = ex2_approx(fmaf(acc(make_coord(1, h, j), mi, 0), kLog2e, c.y) - row_max[mi][h]);
            ctx.stage[(col - c0) * kPitch + row] = rcp_approx(1.0f + ex2_approx(fmaf(row_factor[mi][h], e0, t.x)));
            ctx.stage[(col + 1 - c0) * kPitch + row] =
                rcp_approx(1.0f + ex2_approx(fmaf(row_factor[mi][h], e1, t.y)));
          }
        }
      warpgroup_bar_sync(ctx.barrier_id);
      for (int cc = warp; cc < kStageCols; cc += 4) {
        int col = c0 + cc;
        if (col >= out.Cout) break;
        CUTLASS_PRAGMA_UNROLL
        for (int q = 0; q < kRowsPerLane; ++q)
          if (offset[q] >= 0) y[offset[q] + col * plane] = from_float<Element>(ctx.stage[cc * kPitch + lane + 32 * q]);
      }
    }
  }

  __device__ __forceinline__ static void store_pair(float* p, float a, float b) {
    *reinterpret_cast<float2*>(p) = make_float2(a, b);
  }
  __device__ __forceinline__ static void store_pair(__half* p, float a, float b) {
    *reinterpret_cast<__half2*>(p) = __floats2half2_rn(a, b);
  }
  __device__ __forceinline__ static void store_pair(__nv_bfloat16* p, float a, float b) {
    *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);
  }
};

}  // namespace fct::sm90
