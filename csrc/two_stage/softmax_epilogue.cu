// Two-stage path, stage 2: y = sigmoid(s * (softmax_c(z + conv_b) + b)) over a
// conv output z that cuDNN already wrote. Memory-bound: one read of z from
// DRAM, one write of y. NCHW goes through a shared-memory tile where it can
// (staged_nchw_epilogue.cuh); the streaming kernels' second pass over a pixel's
// channels re-reads z from L1 (a block's footprint is a few KB), so DRAM sees
// each byte once there too.
#include <algorithm>
#include <cstdint>

#include "common/cuda_check.h"
#include "common/device_facts.h"
#include "common/dtype_dispatch.h"
#include "common/epilogue_math.cuh"
#include "fused_convt_full/api.h"
#include "two_stage/staged_nchw_epilogue.cuh"

namespace fct {
namespace {

constexpr int kBlockThreads = 256;

template <typename T, int kVec>
struct alignas(sizeof(T) * kVec) VecT {
  T v[kVec];
};

bool aligned16(void const* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

__device__ __forceinline__ float bias_or_zero(float const* p, int64_t c) { return p ? __ldg(p + c) : 0.0f; }

// channels_last: a pixel's C values are contiguous. kGroup lanes of one warp
// share a pixel and walk its channels kVec at a time, so a warp load is one
// contiguous run; the pixel's (max, sum) is reduced with kGroup-wide shuffles.
template <typename T, int kVec, int kGroup>
__global__ void __launch_bounds__(kBlockThreads)
    softmax_epilogue_nhwc(int64_t pixels, int C, T const* __restrict__ z, float const* __restrict__ conv_b,
                          float const* __restrict__ b, float s, T* y) {
  constexpr int kPixelsPerBlock = kBlockThreads / kGroup;
  int64_t pixel = int64_t(blockIdx.x) * kPixelsPerBlock + threadIdx.x / kGroup;
  int lane = threadIdx.x % kGroup;
  bool active = pixel < pixels;
  using V = VecT<T, kVec>;
  T const* zrow = z + pixel * C;
  T* yrow = y + pixel * C;

  using Math = AccurateMath;
  OnlineSoftmax<Math> acc;
  if (active) {
#pragma unroll 4
    for (int c0 = lane * kVec; c0 < C; c0 += kGroup * kVec) {
      V v = *reinterpret_cast<V const*>(zrow + c0);
#pragma unroll
      for (int i = 0; i < kVec; ++i) acc.add(Math::logit(to_float(v.v[i]), bias_or_zero(conv_b, c0 + i)));
    }
  }
#pragma unroll
  for (int offset = kGroup / 2; offset > 0; offset /= 2) {
    float m = __shfl_xor_sync(0xffffffffu, acc.max, offset);
    float sm = __shfl_xor_sync(0xffffffffu, acc.sum, offset);
    acc.merge(m, sm);
  }
  if (!active) return;
  float factor = Math::pixel_factor(acc.sum, s);
#pragma unroll 4
  for (int c0 = lane * kVec; c0 < C; c0 += kGroup * kVec) {
    V v = *reinterpret_cast<V const*>(zrow + c0);
    V out;
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      float e = Math::exp(Math::logit(to_float(v.v[i]), bias_or_zero(conv_b, c0 + i)) - acc.max);
      out.v[i] = from_float<T>(Math::output(e, factor, __ldg(b + c0 + i), s));
    }
    *reinterpret_cast<V*>(yrow + c0) = out;
  }
}

// The same, with the pixel's values held in registers between the passes (all
// C <= kGroup * kVec * kIters): one load, one ex2 for the softmax, one ex2 and
// one reciprocal for the sigmoid per value, all in the log2 domain.
template <typename T, int kVec, int kGroup, int kIters>
__global__ void __launch_bounds__(kBlockThreads)
    softmax_epilogue_nhwc_regs(int64_t pixels, int C, T const* __restrict__ z, float const* __restrict__ conv_b,
                               float const* __restrict__ b, float s, T* y) {
  constexpr int kPixelsPerBlock = kBlockThreads / kGroup;
  int64_t pixel = int64_t(blockIdx.x) * kPixelsPerBlock + threadIdx.x / kGroup;
  int lane = threadIdx.x % kGroup;
  bool active = pixel < pixels;
  using V = VecT<T, kVec>;
  T const* zrow = z + pixel * C;
  T* yrow = y + pixel * C;

  float v[kIters][kVec];
  float row_max = -3.402823466e38f;
#pragma unroll
  for (int it = 0; it < kIters; ++it) {
    int c0 = (it * kGroup + lane) * kVec;
    bool in = active && c0 < C;
    V raw;
    if (in) raw = *reinterpret_cast<V const*>(zrow + c0);
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      v[it][i] = in ? MufuMath::logit(to_float(raw.v[i]), bias_or_zero(conv_b, c0 + i)) : -INFINITY;
      row_max = fmaxf(row_max, v[it][i]);
    }
  }
#pragma unroll
  for (int offset = kGroup / 2; offset > 0; offset /= 2)
    row_max = fmaxf(row_max, __shfl_xor_sync(0xffffffffu, row_max, offset));
  float row_sum = 0.0f;
#pragma unroll
  for (int it = 0; it < kIters; ++it)
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      v[it][i] = MufuMath::exp(v[it][i] - row_max);
      row_sum += v[it][i];
    }
#pragma unroll
  for (int offset = kGroup / 2; offset > 0; offset /= 2) row_sum += __shfl_xor_sync(0xffffffffu, row_sum, offset);
  if (!active) return;
  float factor = MufuMath::pixel_factor(row_sum, s);
#pragma unroll
  for (int it = 0; it < kIters; ++it) {
    int c0 = (it * kGroup + lane) * kVec;
    if (c0 >= C) break;
    V out;
#pragma unroll
    for (int i = 0; i < kVec; ++i)
      out.v[i] = from_float<T>(MufuMath::output(v[it][i], factor, __ldg(b + c0 + i), s));
    *reinterpret_cast<V*>(yrow + c0) = out;
  }
}

// NCHW: consecutive threads take consecutive pixels of one channel plane (a
// warp load is 32 contiguous values); the block's other threads split a pixel's
// channels and combine their partial (max, sum) through shared memory. Kept as a
// streaming two-pass kernel: holding the values in registers measured slower.
// `Math` is chosen per dtype at launch (see launch_nchw).
constexpr int kPixelThreads = 32;  // the smallest block width, for launch-size checks

template <typename T, int kPix, typename Math>
__global__ void __launch_bounds__(kBlockThreads)
    softmax_epilogue_nchw(int64_t N, int C, int64_t HW, T const* __restrict__ z, float const* __restrict__ conv_b,
                          float const* __restrict__ b, float s, T* y) {
  constexpr int kChannelThreads = kBlockThreads / kPix;
  __shared__ float part_max[kChannelThreads][kPix];
  __shared__ float part_sum[kChannelThreads][kPix];
  int tx = threadIdx.x % kPix, ty = threadIdx.x / kPix;
  int64_t pixel = int64_t(blockIdx.x) * kPix + tx;
  bool active = pixel < N * HW;
  int64_t n = active ? pixel / HW : 0;
  int64_t base = n * C * HW + (pixel - n * HW);

  OnlineSoftmax<Math> acc;
  if (active) {
#pragma unroll 4
    for (int c = ty; c < C; c += kChannelThreads) acc.add(Math::logit(to_float(z[base + c * HW]), bias_or_zero(conv_b, c)));
  }
  part_max[ty][tx] = acc.max;
  part_sum[ty][tx] = acc.sum;
  __syncthreads();
  OnlineSoftmax<Math> total;
#pragma unroll
  for (int i = 0; i < kChannelThreads; ++i) total.merge(part_max[i][tx], part_sum[i][tx]);
  if (!active) return;
  float factor = Math::pixel_factor(total.sum, s);
#pragma unroll 4
  for (int c = ty; c < C; c += kChannelThreads) {
    float e = Math::exp(Math::logit(to_float(z[base + c * HW]), bias_or_zero(conv_b, c)) - total.max);
    y[base + c * HW] = from_float<T>(Math::output(e, factor, __ldg(b + c), s));
  }
}

// The classic design the project starts from: a block per pixel, a thread per
// channel, a shared-memory tree reduction for max and sum.
template <typename T>
__global__ void softmax_epilogue_naive_kernel(int C, int64_t HW, int64_t channel_stride, int64_t pixel_stride_hw,
                                              int64_t image_stride, T const* z, float const* conv_b,
                                              float const* b, float s, T* y) {
  extern __shared__ float red[];
  int64_t pixel = blockIdx.x;
  int64_t n = pixel / HW, hw = pixel % HW;
  int64_t base = n * image_stride + hw * pixel_stride_hw;
  int t = threadIdx.x;

  float m = -3.402823466e38f;
  for (int c = t; c < C; c += blockDim.x) m = fmaxf(m, to_float(z[base + c * channel_stride]) + bias_or_zero(conv_b, c));
  red[t] = m;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (t < w) red[t] = fmaxf(red[t], red[t + w]);
    __syncthreads();
  }
  float row_max = red[0];
  __syncthreads();
  float sum = 0.0f;
  for (int c = t; c < C; c += blockDim.x)
    sum += AccurateMath::exp(to_float(z[base + c * channel_stride]) + bias_or_zero(conv_b, c) - row_max);
  red[t] = sum;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (t < w) red[t] += red[t + w];
    __syncthreads();
  }
  float inv_sum = 1.0f / red[0];
  for (int c = t; c < C; c += blockDim.x) {
    int64_t i = base + c * channel_stride;
    float e = AccurateMath::exp(to_float(z[i]) + bias_or_zero(conv_b, c) - row_max);
    y[i] = from_float<T>(AccurateMath::output(e, inv_sum, b[c], s));
  }
}

template <typename T, int kVec, int kGroup>
void launch_nhwc(int64_t pixels, int C, void const* z, float const* conv_b, float const* b, float s, void* y,
                 cudaStream_t stream) {
  constexpr int kPixelsPerBlock = kBlockThreads / kGroup;
  int64_t blocks = (pixels + kPixelsPerBlock - 1) / kPixelsPerBlock;
  softmax_epilogue_nhwc<T, kVec, kGroup><<<unsigned(blocks), kBlockThreads, 0, stream>>>(
      pixels, C, static_cast<T const*>(z), conv_b, b, s, static_cast<T*>(y));
}

template <typename T, int kVec, int kGroup, int kIters>
void launch_nhwc_regs(int64_t pixels, int C, void const* z, float const* conv_b, float const* b, float s, void* y,
                      cudaStream_t stream) {
  constexpr int kPixelsPerBlock = kBlockThreads / kGroup;
  int64_t blocks = (pixels + kPixelsPerBlock - 1) / kPixelsPerBlock;
  softmax_epilogue_nhwc_regs<T, kVec, kGroup, kIters><<<unsigned(blocks), kBlockThreads, 0, stream>>>(
      pixels, C, static_cast<T const*>(z), conv_b, b, s, static_cast<T*>(y));
}

// Lanes per pixel: enough to cover the row in one sweep, at most a warp; rows
// of up to four sweeps stay in registers, longer ones take the streaming kernel.
template <typename T, int kVec>
void launch_nhwc_group(int64_t pixels, int C, void const* z, float const* conv_b, float const* b, float s, void* y,
                       cudaStream_t stream) {
  int accesses = (C + kVec - 1) / kVec;
  if (accesses <= 4) return launch_nhwc_regs<T, kVec, 4, 1>(pixels, C, z, conv_b, b, s, y, stream);
  if (accesses <= 8) return launch_nhwc_regs<T, kVec, 8, 1>(pixels, C, z, conv_b, b, s, y, stream);
  if (accesses <= 16) return launch_nhwc_regs<T, kVec, 16, 1>(pixels, C, z, conv_b, b, s, y, stream);
  if (accesses <= 32) return launch_nhwc_regs<T, kVec, 32, 1>(pixels, C, z, conv_b, b, s, y, stream);
  if (accesses <= 64) return launch_nhwc_regs<T, kVec, 32, 2>(pixels, C, z, conv_b, b, s, y, stream);
  if (accesses <= 128) return launch_nhwc_regs<T, kVec, 32, 4>(pixels, C, z, conv_b, b, s, y, stream);
  return launch_nhwc<T, kVec, 32>(pixels, C, z, conv_b, b, s, y, stream);
}

// The streaming NCHW kernel, measured on an H200 (scripts/epilogue_tune.cu,
// benchmarks/NOTES.md): fp32 is fastest with 32 pixels per block (one 128-byte
// line per channel row) and the accurate math; 16-bit data with 64 pixels per
// block and the MUFU math (0.49 ms vs 0.67 ms bf16), where the accurate math
// measured 10% slower for fp32.
template <typename T>
void launch_nchw_streaming(int64_t N, int C, int64_t HW, void const* z, float const* conv_b, float const* b,
                           float s, void* y, cudaStream_t stream) {
  if constexpr (sizeof(T) == 4) {
    int64_t blocks = (N * HW + 31) / 32;
    softmax_epilogue_nchw<T, 32, AccurateMath><<<unsigned(blocks), kBlockThreads, 0, stream>>>(
        N, C, HW, static_cast<T const*>(z), conv_b, b, s, static_cast<T*>(y));
  } else {
    int64_t blocks = (N * HW + 63) / 64;
    softmax_epilogue_nchw<T, 64, MufuMath><<<unsigned(blocks), kBlockThreads, 0, stream>>>(
        N, C, HW, static_cast<T const*>(z), conv_b, b, s, static_cast<T*>(y));
  }
}

// The staged NCHW tiles, measured on an H100 (scripts/epilogue_tune.cu;
// benchmarks/NOTES.md, "Two-stage epilogue"): 192 pixels x 2 threads for every
// dtype (two ~100 KB fp32 tiles per SM). fp32 rows that do not start on a
// 32-byte sector write owned sectors (0.80 -> 0.76 ms at the reference size);
// 16-bit data stores directly, where the extra store pass measured 15-20% slower.
template <typename T>
using NchwTileDirect = StagedNchwTile<T, 192, 2, StagedNchwStore::kDirect>;
template <typename T>
using NchwTileOwned = StagedNchwTile<T, 192, 2, StagedNchwStore::kOwnedSectors>;
// At least two blocks per SM, so one block's loads overlap another's math and stores.
constexpr size_t kMaxStagedSmem = 113 << 10;

// Whether a staged kernel takes this problem; otherwise the streaming kernel does.
// Images much smaller than a tile would leave most of each block idle.
template <typename Tile>
bool staged_nchw_fits(int64_t N, int64_t C, int64_t HW, void const* z, void const* y) {
  if (!aligned16(z) || !aligned16(y) || HW < Tile::kPix / 2 || HW > INT32_MAX) return false;
  size_t smem = Tile::smem_bytes(int(C));
  DeviceFacts dev;
  if (!current_device_facts(dev).ok || smem > kMaxStagedSmem || smem > size_t(dev.smem_optin)) return false;
  return N * Tile::tiles_per_image(HW) <= INT32_MAX;
}

template <typename Tile>
Status launch_nchw_staged(int64_t N, int C, int64_t HW, void const* z, float const* conv_b, float const* b,
                          float s, void* y, cudaStream_t stream) {
  using T = typename Tile::Element;
  auto kernel = softmax_epilogue_nchw_staged<Tile>;
  int smem = int(Tile::smem_bytes(C));
  Status st = cuda_status(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem),
                          "softmax_epilogue: cudaFuncSetAttribute");
  if (!st.ok) return st;
  int tiles = int(Tile::tiles_per_image(HW));
  kernel<<<unsigned(N * tiles), Tile::kThreads, smem, stream>>>(C, int(HW), tiles, N * C * HW,
                                                               static_cast<T const*>(z), conv_b, b, s,
                                                               static_cast<T*>(y));
  return Status::success();
}

template <typename T>
Status launch_nchw(int64_t N, int C, int64_t HW, void const* z, float const* conv_b, float const* b, float s,
                   void* y, cudaStream_t stream) {
  if constexpr (sizeof(T) == 4) {
    bool sector_aligned_rows = (HW * int64_t(sizeof(T))) % 32 == 0;
    bool in_place = z == y;  // the owned-sector tile reads a halo the previous block may have written
    if (!sector_aligned_rows && !in_place && staged_nchw_fits<NchwTileOwned<T>>(N, C, HW, z, y))
      return launch_nchw_staged<NchwTileOwned<T>>(N, C, HW, z, conv_b, b, s, y, stream);
  }
  if (staged_nchw_fits<NchwTileDirect<T>>(N, C, HW, z, y))
    return launch_nchw_staged<NchwTileDirect<T>>(N, C, HW, z, conv_b, b, s, y, stream);
  launch_nchw_streaming<T>(N, C, HW, z, conv_b, b, s, y, stream);
  return Status::success();
}

Status check_args(int64_t N, int64_t C, int64_t HW, void const* z, float const* b, void* y) {
  if (N < 0 || C < 1 || HW < 0) return Status::error("softmax_epilogue: need N >= 0, C >= 1, HW >= 0");
  if (C > (int64_t(1) << 30)) return Status::error("softmax_epilogue: C too large");
  if (N * HW == 0) return Status::success();
  if (!z || !y || !b) return Status::error("softmax_epilogue: z, b and y must be non-null");
  if ((N * HW + kPixelThreads - 1) / kPixelThreads > int64_t(INT32_MAX))
    return Status::error("softmax_epilogue: too many pixels for one launch");
  return Status::success();
}

}  // namespace

Status softmax_epilogue(DType dtype, Layout layout, int64_t N, int64_t C, int64_t HW, void const* z,
                        float const* conv_b, float const* b, float s, void* y, cudaStream_t stream) {
  Status st = check_args(N, C, HW, z, b, y);
  if (!st.ok || N * HW == 0) return st;
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    int64_t pixels = N * HW;
    if (layout == Layout::kNCHW) {
      st = launch_nchw<T>(N, int(C), HW, z, conv_b, b, s, y, stream);
    } else {
      constexpr int kVec16 = 16 / sizeof(T);
      if (C % kVec16 == 0 && aligned16(z) && aligned16(y))
        launch_nhwc_group<T, kVec16>(pixels, int(C), z, conv_b, b, s, y, stream);
      else
        launch_nhwc_group<T, 1>(pixels, int(C), z, conv_b, b, s, y, stream);
    }
  });
  if (!st.ok) return st;
  return last_launch_status("softmax_epilogue");
}

Status softmax_epilogue_naive(DType dtype, Layout layout, int64_t N, int64_t C, int64_t HW, void const* z,
                              float const* conv_b, float const* b, float s, void* y, cudaStream_t stream) {
  Status st = check_args(N, C, HW, z, b, y);
  if (!st.ok || N * HW == 0) return st;
  int threads = 1;
  while (threads < C && threads < 1024) threads *= 2;
  int64_t channel_stride = layout == Layout::kNCHW ? HW : 1;
  int64_t pixel_stride = layout == Layout::kNCHW ? 1 : C;
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    softmax_epilogue_naive_kernel<T><<<unsigned(N * HW), threads, threads * sizeof(float), stream>>>(
        int(C), HW, channel_stride, pixel_stride, C * HW, static_cast<T const*>(z), conv_b, b, s,
        static_cast<T*>(y));
  });
  return last_launch_status("softmax_epilogue_naive");
}

}  // namespace fct
