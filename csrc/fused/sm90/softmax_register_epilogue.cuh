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
//     softmax, one ex2 and one rcp for the sigmoid) plus one rcp per row.
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

struct PhaseGrid {
  int rows, cols, pixels, r_h, r_w;
};

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
  __device__ __forceinline__ static void apply(AccTensor& acc, float const* cb2, float const* bt, float s,
                                               OutputGeometry const& out, PhaseGrid const& grid, int m0,
                                               int thread_in_wg) {
    using cute::make_coord;
    int lane = thread_in_wg % 32, warp = thread_in_wg / 32;
    int quad_col = 2 * (lane % 4);
    float neg_s_log2e = -s * kLog2e;

    CUTLASS_PRAGMA_UNROLL
    for (int mi = 0; mi < kMBlocks; ++mi) {
      CUTLASS_PRAGMA_UNROLL
      for (int h = 0; h < 2; ++h) {
        int row = mi * 64 + warp * 16 + h * 8 + lane / 4;
        // The row's values live in `ev`, not back in `acc`: writing WGMMA
        // accumulator registers from ordinary instructions makes ptxas serialise
        // the next tile's wgmma chain (C7515).
        float ev[kColGroups][2];
        float mx = -INFINITY;
        CUTLASS_PRAGMA_UNROLL
        for (int j = 0; j < kColGroups; ++j) {
          float2 c = *reinterpret_cast<float2 const*>(cb2 + 8 * j + quad_col);
          ev[j][0] = fmaf(acc(make_coord(0, h, j), mi, 0), kLog2e, c.x);
          ev[j][1] = fmaf(acc(make_coord(1, h, j), mi, 0), kLog2e, c.y);
          mx = fmaxf(mx, fmaxf(ev[j][0], ev[j][1]));
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        float sum = 0.0f;
        CUTLASS_PRAGMA_UNROLL
        for (int j = 0; j < kColGroups; ++j)
          CUTLASS_PRAGMA_UNROLL
          for (int v = 0; v < 2; ++v) {
            ev[j][v] = ex2_approx(ev[j][v] - mx);
            sum += ev[j][v];
          }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        float factor = neg_s_log2e * rcp_approx(sum);

        int m = m0 + row;
        if (m >= grid.pixels) continue;
        int per_image = grid.rows * grid.cols;
        int n = m / per_image;
        int rem = m - n * per_image;
        int i = rem / grid.cols;
        int jj = rem - i * grid.cols;
        int64_t oh = int64_t(i) * out.stride_h + grid.r_h;
        int64_t ow = int64_t(jj) * out.stride_w + grid.r_w;
        Element* y = static_cast<Element*>(out.y);
        int64_t plane = int64_t(out.H_out) * out.W_out;
        if (out.nchw) {
          Element* base = y + int64_t(n) * out.Cout * plane + oh * out.W_out + ow;
          CUTLASS_PRAGMA_UNROLL
          for (int j = 0; j < kColGroups; ++j)
            CUTLASS_PRAGMA_UNROLL
            for (int v = 0; v < 2; ++v) {
              int col = 8 * j + quad_col + v;
              float yv = rcp_approx(1.0f + ex2_approx(fmaf(factor, ev[j][v], bt[col])));
              if (col < out.Cout) base[int64_t(col) * plane] = from_float<Element>(yv);
            }
        } else {
          Element* base = y + ((int64_t(n) * out.H_out + oh) * out.W_out + ow) * out.Cout;
          CUTLASS_PRAGMA_UNROLL
          for (int j = 0; j < kColGroups; ++j) {
            int col = 8 * j + quad_col;
            float2 t = *reinterpret_cast<float2 const*>(bt + col);
            float y0 = rcp_approx(1.0f + ex2_approx(fmaf(factor, ev[j][0], t.x)));
            float y1 = rcp_approx(1.0f + ex2_approx(fmaf(factor, ev[j][1], t.y)));
            if (out.pair_store) {
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
