// Two-stage path, NCHW layout: the softmax epilogue through a shared-memory tile.
//
// A block takes a run of consecutive pixels of one image and copies their
// [C][pixels] slab of z into shared memory, each channel row as the aligned
// 16-byte chunks that cover it: where CuTe enables TMA (sm_90a) one bulk copy
// per row, which completes on an mbarrier, elsewhere one 16-byte cp.async per
// chunk (the bulk copies measured 1.5% faster for fp32 and 9% for bf16 on the
// H100: half the L2 requests, no per-chunk instructions). In NCHW a pixel's channels lie a
// plane apart and, with an odd H*W, every channel row starts misaligned;
// reading each row as one run of ~kPix * sizeof(T) bytes, with all of a
// block's loads in flight at once, is what brings this kernel near the
// device-copy bandwidth where the streaming kernel (a warp-wide 128-byte piece
// per row) stays at ~75% (benchmarks/NOTES.md, v11 and v12). kTPP threads per
// pixel then reduce the pixel's channels from shared memory. 32-bit data keeps
// e in place of z for the output pass, which saves one exp per element.
//
// Two ways to write y (StagedNchwStore):
//  - kDirect: each thread stores its pixel's outputs, a warp per 32 consecutive
//    pixels of a channel row.
//  - kOwnedSectors: the outputs go back into the tile and leave as the same
//    16-byte chunks, and each block writes, per channel row, exactly the 32-byte
//    sectors between its two tile boundaries rounded down to a sector. Its tile
//    reaches one sector (kHalo pixels) back into the previous block's pixels to
//    have those values. Without this, the sector where two blocks' pixels meet
//    in a misaligned row is written half by each, at different times.
//
// Assumes: z and y 16-byte aligned (chunk offsets are computed from element
// indices); the block's dynamic shared memory holds StagedNchwTile::smem_bytes(C);
// H*W and the grid fit 32-bit ints. y may be z (in place) with kDirect, whose
// blocks read every value they use before writing and write only their own
// pixels; kOwnedSectors reads its halo from the previous block's pixels, which
// that block may already have overwritten, so it needs y apart from z. The
// launcher checks all of these.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cute/arch/copy_sm80.hpp"
#include "cute/arch/copy_sm90_tma.hpp"
#include "cutlass/arch/barrier.h"

#include "common/epilogue_math.cuh"

namespace fct {

enum class StagedNchwStore { kDirect, kOwnedSectors };

template <typename T, int kPix_, int kTPP_, StagedNchwStore kStore_>
struct StagedNchwTile {
  using Element = T;
  static constexpr int kPix = kPix_;  // pixels per block, halo included
  static constexpr int kTPP = kTPP_;  // threads per pixel, each reducing C / kTPP channels
  static constexpr StagedNchwStore kStore = kStore_;
  static constexpr int kThreads = kPix * kTPP;
  static constexpr int kVec = 16 / int(sizeof(T));  // elements per 16-byte chunk
  static constexpr int kRow = kPix + kVec;          // a row's window: kPix plus its misalignment
  static constexpr int kChunks = kRow / kVec;
  static constexpr int kHalo = kStore == StagedNchwStore::kOwnedSectors ? 32 / int(sizeof(T)) : 0;
  static constexpr int kStep = kPix - kHalo;        // pixels a block owns
  static constexpr bool kKeepExp = sizeof(T) == 4;  // e fits in place of z
  static_assert(kPix % kVec == 0 && kThreads % 32 == 0 && kThreads <= 1024, "tile shape");

  // Tile, folded conv_b and b, per-pixel partial max and sum.
  static size_t smem_bytes(int C) {
    return size_t(C) * kRow * sizeof(T) + (2 * size_t(C) + 2 * size_t(kTPP) * kPix) * sizeof(float);
  }
  static int64_t tiles_per_image(int64_t HW) { return (HW + kStep - 1) / kStep; }
};

template <typename Tile, typename T = typename Tile::Element>
__global__ void __launch_bounds__(Tile::kThreads)
    softmax_epilogue_nchw_staged(int C, int HW, int tiles_per_image, int64_t total, T const* z,
                                 float const* __restrict__ conv_b, float const* __restrict__ b, float s, T* y) {
  constexpr int kPix = Tile::kPix, kTPP = Tile::kTPP;
  constexpr int kVec = Tile::kVec, kRow = Tile::kRow, kChunks = Tile::kChunks;
  constexpr bool kOwned = Tile::kStore == StagedNchwStore::kOwnedSectors;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* tile = reinterpret_cast<T*>(smem_raw);  // [C][kRow]
  float* cb_s = reinterpret_cast<float*>(tile + size_t(C) * kRow);
  float* b_s = cb_s + C;
  float* red_max = b_s + C;  // [kTPP][kPix]
  float* red_sum = red_max + kTPP * kPix;

  // The block owns pixels [q0, q1) of image n and holds [p0, q1), the halo included.
  int n = blockIdx.x / tiles_per_image;
  int q0 = (blockIdx.x - n * tiles_per_image) * Tile::kStep;
  int q1 = min(q0 + Tile::kStep, HW);
  int p0 = max(q0 - Tile::kHalo, 0);
  int npix = q1 - p0;
  int64_t img0 = int64_t(n) * C * HW;
  int64_t first0 = img0 + p0;  // element index of (n, channel 0, p0)

  // Row c's window starts at the aligned chunk holding (n, c, p0); chunks past the row's pixels are
  // not read, and the tensor's last, partial chunk is read element by element.
#if defined(CUTE_ARCH_TMA_SM90_ENABLED)
  __shared__ uint64_t rows_landed;  // one arrival and the bytes of every row
  if (threadIdx.x == 0) {
    cutlass::arch::ClusterBarrier::init(&rows_landed, C);
    cutlass::arch::fence_barrier_init();
  }
  __syncthreads();
  for (int c = threadIdx.x; c < C; c += Tile::kThreads) {
    int64_t first = first0 + int64_t(c) * HW;
    int64_t a = first - (first & (kVec - 1));
    int64_t chunks = min((first - a + npix + kVec - 1) / kVec, (total - a) / kVec);
    T* dst = tile + c * kRow;
    cutlass::arch::ClusterTransactionBarrier::arrive_and_expect_tx(&rows_landed, uint32_t(chunks * 16));
    if (chunks > 0) cute::SM90_BULK_COPY_G2S::copy(z + a, &rows_landed, dst, int32_t(chunks * 16));
    for (int64_t e = a + chunks * kVec; e < total && e < first + npix; ++e) dst[e - a] = z[e];
  }
#else
  for (int i = threadIdx.x; i < C * kChunks; i += Tile::kThreads) {
    int c = i / kChunks, j = i - c * kChunks;
    int64_t first = first0 + int64_t(c) * HW;
    int sh = int(first & (kVec - 1));
    if (j * kVec < sh + npix) {
      int64_t a = first - sh + int64_t(j) * kVec;
      T* dst = tile + c * kRow + j * kVec;
      if (total - a >= kVec)
        cute::SM80_CP_ASYNC_CACHEGLOBAL<cute::uint128_t>::copy(*reinterpret_cast<cute::uint128_t const*>(z + a),
                                                                *reinterpret_cast<cute::uint128_t*>(dst));
      else
        for (int e = 0; a + e < total; ++e) dst[e] = z[a + e];
    }
  }
  cute::cp_async_fence();
#endif
  for (int c = threadIdx.x; c < C; c += Tile::kThreads) {
    cb_s[c] = MufuMath::logit_offset(conv_b ? __ldg(conv_b + c) : 0.0f);
    b_s[c] = MufuMath::bias_term(__ldg(b + c), s);
  }
#if defined(CUTE_ARCH_TMA_SM90_ENABLED)
  cutlass::arch::ClusterBarrier::wait(&rows_landed, 0);
#else
  cute::cp_async_wait<0>();
#endif
  __syncthreads();

  int p = threadIdx.x % kPix, part = threadIdx.x / kPix;
  bool active = p < npix;  // the others only take part in the barriers
  int sh0 = int(first0 & (kVec - 1)), hw_mod = HW & (kVec - 1);
  auto at = [&](int c) { return c * kRow + p + ((sh0 + c * hw_mod) & (kVec - 1)); };

  float m = -INFINITY;
  if (active) {
#pragma unroll 8
    for (int c = part; c < C; c += kTPP) m = fmaxf(m, MufuMath::logit_folded(to_float(tile[at(c)]), cb_s[c]));
  }
  if constexpr (kTPP > 1) {
    red_max[part * kPix + p] = m;
    __syncthreads();
    m = red_max[p];
#pragma unroll
    for (int i = 1; i < kTPP; ++i) m = fmaxf(m, red_max[i * kPix + p]);
  }
  float sum = 0.0f;
  if (active) {
#pragma unroll 8
    for (int c = part; c < C; c += kTPP) {
      int k = at(c);
      float e = MufuMath::exp(MufuMath::logit_folded(to_float(tile[k]), cb_s[c]) - m);
      if constexpr (Tile::kKeepExp) tile[k] = e;
      sum += e;
    }
  }
  if constexpr (kTPP > 1) {
    red_sum[part * kPix + p] = sum;
    __syncthreads();
    sum = 0.0f;
#pragma unroll
    for (int i = 0; i < kTPP; ++i) sum += red_sum[i * kPix + p];
  }
  float factor = MufuMath::pixel_factor(sum, s);
  if (active) {
    T* yp = y + first0 + p;
#pragma unroll 8
    for (int c = part; c < C; c += kTPP) {
      int k = at(c);
      float e;
      if constexpr (Tile::kKeepExp)
        e = to_float(tile[k]);
      else
        e = MufuMath::exp(MufuMath::logit_folded(to_float(tile[k]), cb_s[c]) - m);
      T out = from_float<T>(MufuMath::output_folded(e, factor, b_s[c]));
      if constexpr (kOwned)
        tile[k] = out;
      else
        yp[int64_t(c) * HW] = out;
    }
  }
  if constexpr (kOwned) {
    __syncthreads();
    constexpr int64_t kSectorMask = ~int64_t(Tile::kHalo - 1);
    for (int i = threadIdx.x; i < C * kChunks; i += Tile::kThreads) {
      int c = i / kChunks, j = i - c * kChunks;
      int64_t row0 = img0 + int64_t(c) * HW;
      int64_t first = row0 + p0;
      int64_t a = first - (first & (kVec - 1)) + int64_t(j) * kVec;
      // The row's owned elements: tile boundaries rounded down to a sector, except at the
      // row's ends, which the first and last block of the image own as they are.
      int64_t lo = q0 == 0 ? row0 : (row0 + q0) & kSectorMask;
      int64_t hi = q1 == HW ? row0 + HW : (row0 + q1) & kSectorMask;
      if (a >= hi || a + kVec <= lo) continue;
      T const* src = tile + c * kRow + j * kVec;
      if (a >= lo && a + kVec <= hi) {
        *reinterpret_cast<uint4*>(y + a) = *reinterpret_cast<uint4 const*>(src);
      } else {
#pragma unroll
        for (int e = 0; e < kVec; ++e)
          if (a + e >= lo && a + e < hi) y[a + e] = src[e];
      }
    }
  }
}

}  // namespace fct
