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
//     formula is MufuMath's folded form (common/epilogue_math.cuh, shared with the
//     other paths), in log2 units, three MUFU ops per element (one ex2 for the
//     softmax, one ex2 and one rcp for the sigmoid) plus one rcp per row; NCHW
//     output recomputes the softmax ex2 (four per element) to save registers.
//   * kTileM is a multiple of 32 and the 128 threads of the warpgroup call apply
//     together (NCHW uses a named barrier and the warpgroup's staging buffer).
#pragma once

#include <cstdint>

#include "cute/tensor.hpp"

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
};

// The phase grid, and the end of the CTA's pixel range (rows at or past it are
// another CTA's).
struct PhaseGrid {
  int rows, cols, pixel_end, r_h, r_w;
};

// What the epilogue reads besides the accumulators.
struct EpilogueContext {
  float const* cb2;  // [kTileN] per-column constants, see prescale_bias
  float const* bt;
  float s;
  float* stage;      // this warpgroup's NCHW staging buffer (Epilogue::kStagingFloats)
  int barrier_id;    // named barrier of this warpgroup (128 threads)
  // Sibling pairs (SiblingPairNchwEpilogue): this warpgroup's two exchange
  // buffers, their barriers, and the CTA's rank in its cluster.
  float4* exchange = nullptr;
  uint64_t* exchange_bar = nullptr;
  int rank = 0;
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
    cb2[c] = real ? (conv_b ? MufuMath::logit_offset(conv_b[c]) : 0.0f) : -INFINITY;
    bt[c] = real && b ? MufuMath::bias_term(b[c], s) : 0.0f;
  }
}

template <typename Element, int kTileM, int kTileN>
struct SoftmaxRegisterEpilogue {
  static constexpr int kMBlocks = kTileM / 64;
  static constexpr int kColGroups = kTileN / 8;
  static constexpr int kStagingFloats = kStageCols * stage_pitch<kTileM>();

  // acc: the consumer warpgroup's ((2,2,kTileN/8), kMBlocks, 1) fp32 fragment.
  // Every sm90 epilogue takes the same arguments; `iter` (the warpgroup's tile
  // count) is used only by SiblingPairNchwEpilogue.
  template <class AccTensor>
  __device__ __forceinline__ static void apply(AccTensor& acc, EpilogueContext const& ctx,
                                               OutputGeometry const& out, PhaseGrid const& grid, int m0,
                                               int thread_in_wg, int /*iter*/) {
    if (out.nchw)
      apply_nchw(acc, ctx, out, grid, m0, thread_in_wg);
    else
      apply_nhwc(acc, ctx, out, grid, m0, thread_in_wg);
  }

  // One row's softmax statistics: returns the row max of the logits (log2
  // units) and sets `factor` = -s*log2(e) / sum; `ev` holds exp2(l - max).
  template <class AccTensor>
  __device__ __forceinline__ static float row_softmax(AccTensor& acc, float const* cb2, int mi, int h, int quad_col,
                                                      float s, float (&ev)[kColGroups][2],
                                                      float& factor) {
    using cute::make_coord;
    float mx = -INFINITY;
    CUTLASS_PRAGMA_UNROLL
    for (int j = 0; j < kColGroups; ++j) {
      float2 c = *reinterpret_cast<float2 const*>(cb2 + 8 * j + quad_col);
      ev[j][0] = MufuMath::logit_folded(acc(make_coord(0, h, j), mi, 0), c.x);
      ev[j][1] = MufuMath::logit_folded(acc(make_coord(1, h, j), mi, 0), c.y);
      mx = fmaxf(mx, fmaxf(ev[j][0], ev[j][1]));
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    float sum = 0.0f;
    CUTLASS_PRAGMA_UNROLL
    for (int j = 0; j < kColGroups; ++j)
      CUTLASS_PRAGMA_UNROLL
      for (int v = 0; v < 2; ++v) {
        ev[j][v] = MufuMath::exp(ev[j][v] - mx);
        sum += ev[j][v];
      }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    factor = MufuMath::pixel_factor(sum, s);
    return mx;
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
    float const* bt = ctx.bt;

    CUTLASS_PRAGMA_UNROLL
    for (int mi = 0; mi < kMBlocks; ++mi) {
      CUTLASS_PRAGMA_UNROLL
      for (int h = 0; h < 2; ++h) {
        int row = mi * 64 + warp * 16 + h * 8 + lane / 4;
        // The row's values live in `ev`, not back in `acc`: writing WGMMA
        // accumulator registers from ordinary instructions makes ptxas serialise
        // the next tile's wgmma chain (C7515).
        float ev[kColGroups][2];
        float factor;
        row_softmax(acc, ctx.cb2, mi, h, quad_col, ctx.s, ev, factor);
        int m = m0 + row;
        if (m >= grid.pixel_end) continue;
        int per_image = grid.rows * grid.cols;
        int n = m / per_image;
        int rem = m - n * per_image;
        int i = rem / grid.cols;
        int jj = rem - i * grid.cols;
        int64_t oh = int64_t(i) * out.stride_h + grid.r_h;
        int64_t ow = int64_t(jj) * out.stride_w + grid.r_w;
        Element* y = static_cast<Element*>(out.y);
        {
          Element* base = y + ((int64_t(n) * out.H_out + oh) * out.W_out + ow) * out.Cout;
          // One branch per row, not per store: the common path (pairs) is then
          // one contiguous run of code (instruction-fetch misses showed up in
          // Nsight when the rare path was interleaved; benchmarks/NOTES.md v5).
          if (out.pair_store) {
            CUTLASS_PRAGMA_UNROLL
            for (int j = 0; j < kColGroups; ++j) {
              int col = 8 * j + quad_col;
              float2 t = *reinterpret_cast<float2 const*>(bt + col);
              float y0 = MufuMath::output_folded(ev[j][0], factor, t.x);
              float y1 = MufuMath::output_folded(ev[j][1], factor, t.y);
              if (col < out.Cout) store_pair(base + col, y0, y1);
            }
          } else {
            CUTLASS_PRAGMA_UNROLL
            for (int j = 0; j < kColGroups; ++j) {
              int col = 8 * j + quad_col;
              float2 t = *reinterpret_cast<float2 const*>(bt + col);
              if (col < out.Cout) base[col] = from_float<Element>(MufuMath::output_folded(ev[j][0], factor, t.x));
              if (col + 1 < out.Cout)
                base[col + 1] = from_float<Element>(MufuMath::output_folded(ev[j][1], factor, t.y));
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

    float row_max[kMBlocks][2], row_factor[kMBlocks][2];
    CUTLASS_PRAGMA_UNROLL
    for (int mi = 0; mi < kMBlocks; ++mi)
      CUTLASS_PRAGMA_UNROLL
      for (int h = 0; h < 2; ++h) {
        float ev[kColGroups][2];
        row_max[mi][h] = row_softmax(acc, ctx.cb2, mi, h, quad_col, ctx.s, ev, row_factor[mi][h]);
      }

    // Where this lane's store rows (lane + 32*q) land: pixel offset inside channel 0's plane.
    int64_t plane = int64_t(out.H_out) * out.W_out;
    int64_t offset[kRowsPerLane];
    CUTLASS_PRAGMA_UNROLL
    for (int q = 0; q < kRowsPerLane; ++q) {
      int m = m0 + lane + 32 * q;
      int per_image = grid.rows * grid.cols;
      int n = m / per_image, rem = m - n * per_image;
      int i = rem / grid.cols, j = rem - i * grid.cols;
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
            float e0 = MufuMath::exp(MufuMath::logit_folded(acc(make_coord(0, h, j), mi, 0), c.x) - row_max[mi][h]);
            float e1 = MufuMath::exp(MufuMath::logit_folded(acc(make_coord(1, h, j), mi, 0), c.y) - row_max[mi][h]);
            ctx.stage[(col - c0) * kPitch + row] = MufuMath::output_folded(e0, row_factor[mi][h], t.x);
            ctx.stage[(col + 1 - c0) * kPitch + row] = MufuMath::output_folded(e1, row_factor[mi][h], t.y);
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
