// PlainStoreEpilogue — benchmark baseline for the sm90 kernel: the same mainloop
// and the same output bytes (NHWC, column pairs) as SoftmaxRegisterEpilogue, but
// y = acc with no softmax, bias, scale or sigmoid. The time difference between
// the two is what the softmax epilogue costs (issue 3's 15% budget).
// Same fragment assumptions as SoftmaxRegisterEpilogue; NHWC only.
#pragma once

#include "fused/sm90/softmax_register_epilogue.cuh"

namespace fct::sm90 {

template <typename Element, int kTileM, int kTileN>
struct PlainStoreEpilogue {
  static constexpr int kStagingFloats = 0;
  template <class AccTensor>
  __device__ __forceinline__ static void apply(AccTensor& acc, EpilogueContext const&, OutputGeometry const& out,
                                               PhaseGrid const& grid, int m0, int thread_in_wg, int /*iter*/) {
    using cute::make_coord;
    int lane = thread_in_wg % 32, warp = thread_in_wg / 32;
    CUTLASS_PRAGMA_UNROLL
    for (int mi = 0; mi < kTileM / 64; ++mi)
      CUTLASS_PRAGMA_UNROLL
      for (int h = 0; h < 2; ++h) {
        int m = m0 + mi * 64 + warp * 16 + h * 8 + lane / 4;
        if (m >= grid.pixel_end) continue;
        int per_image = grid.rows * grid.cols;
        int n = m / per_image, rem = m - n * per_image;
        int i = rem / grid.cols, j = rem - i * grid.cols;
        int64_t oh = int64_t(i) * out.stride_h + grid.r_h, ow = int64_t(j) * out.stride_w + grid.r_w;
        Element* base = static_cast<Element*>(out.y) + ((int64_t(n) * out.H_out + oh) * out.W_out + ow) * out.Cout;
        CUTLASS_PRAGMA_UNROLL
        for (int g = 0; g < kTileN / 8; ++g) {
          int col = 8 * g + 2 * (lane % 4);
          if (col < out.Cout)
            SoftmaxRegisterEpilogue<Element, kTileM, kTileN>::store_pair(base + col, acc(make_coord(0, h, g), mi, 0),
                                                                         acc(make_coord(1, h, g), mi, 0));
        }
      }
  }
};

}  // namespace fct::sm90
