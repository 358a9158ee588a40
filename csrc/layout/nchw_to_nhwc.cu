// The fused kernel's input layout from an NCHW tensor: x [N][C][HW] ->
// [N][HW][C_pad], padded channels zero. One pass through a shared-memory tile
// so that both the reads (along HW) and the writes (along C) are coalesced;
// measured faster on the H100 than PyTorch's permute-copy for this shape
// (benchmarks/NOTES.md, v5).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common/cuda_check.h"
#include "fused_convt_full/api.h"

namespace fct {
namespace {

constexpr int kTile = 32;     // pixels x channels per block
constexpr int kRowsPerPass = 8;  // blockDim = (32, 8)

template <typename T>
__global__ void __launch_bounds__(kTile * kRowsPerPass)
    nchw_to_nhwc_kernel(T const* __restrict__ x, T* __restrict__ y, int64_t N, int C, int64_t HW, int C_pad) {
  __shared__ T tile[kTile][kTile + 1];
  int64_t const p0 = int64_t(blockIdx.x) * kTile;
  int const c0 = blockIdx.y * kTile;
  for (int64_t n = blockIdx.z; n < N; n += gridDim.z) {
    T const* xn = x + n * C * HW;
    T* yn = y + n * HW * C_pad;
    // Read: a warp takes 32 consecutive pixels of one channel.
    for (int r = threadIdx.y; r < kTile; r += kRowsPerPass) {
      int c = c0 + r;
      int64_t p = p0 + threadIdx.x;
      tile[r][threadIdx.x] = (c < C && p < HW) ? xn[int64_t(c) * HW + p] : T(0.0f);
    }
    __syncthreads();
    // Write: a warp takes 32 consecutive channels of one pixel (zeros past C).
    for (int r = threadIdx.y; r < kTile; r += kRowsPerPass) {
      int64_t p = p0 + r;
      int c = c0 + threadIdx.x;
      if (p < HW && c < C_pad) yn[p * C_pad + c] = tile[threadIdx.x][r];
    }
    __syncthreads();
  }
}

// 16-bit elements: the same transpose on a 64 x 64 tile, two elements per
// thread and access, so that every warp access is 128 bytes (32 x 64-byte
// accesses left the bf16 conversion at ~3x its copy time). Needs HW and C_pad
// even and both tensors 4-byte aligned (checked in launch).
constexpr int kTile2 = 64;

template <typename T>
__global__ void __launch_bounds__(32 * kRowsPerPass)
    nchw_to_nhwc_pairs_kernel(T const* __restrict__ x, T* __restrict__ y, int64_t N, int C, int64_t HW, int C_pad) {
  using Pair = std::conditional_t<std::is_same_v<T, __half>, __half2, __nv_bfloat162>;
  // [channel][pixel]; a pitch of 66 elements (33 words) keeps the column reads
  // below at two-way bank conflicts.
  __shared__ T tile[kTile2][kTile2 + 2];
  int64_t const p0 = int64_t(blockIdx.x) * kTile2;
  int const c0 = blockIdx.y * kTile2;
  int const lane = threadIdx.x;
  for (int64_t n = blockIdx.z; n < N; n += gridDim.z) {
    T const* xn = x + n * C * HW;
    T* yn = y + n * HW * C_pad;
    // Read: a warp takes 64 consecutive pixels (32 pairs) of one channel.
    for (int r = threadIdx.y; r < kTile2; r += kRowsPerPass) {
      int c = c0 + r;
      int64_t p = p0 + 2 * lane;
      Pair v = Pair(T(0.0f), T(0.0f));
      if (c < C && p < HW) v = *reinterpret_cast<Pair const*>(xn + int64_t(c) * HW + p);  // HW even: p + 1 < HW
      *reinterpret_cast<Pair*>(&tile[r][2 * lane]) = v;
    }
    __syncthreads();
    // Write: a warp takes 64 consecutive channels (32 pairs) of one pixel.
    for (int r = threadIdx.y; r < kTile2; r += kRowsPerPass) {
      int64_t p = p0 + r;
      int c = c0 + 2 * lane;
      if (p < HW && c < C_pad) *reinterpret_cast<Pair*>(yn + p * C_pad + c) = Pair(tile[2 * lane][r], tile[2 * lane + 1][r]);
    }
    __syncthreads();
  }
}

template <typename T>
Status launch(void const* x, void* y, int64_t N, int C, int64_t HW, int C_pad, cudaStream_t stream) {
  bool const pairs = sizeof(T) == 2 && HW % 2 == 0 && C_pad % 2 == 0 && reinterpret_cast<uintptr_t>(x) % 4 == 0 &&
                     reinterpret_cast<uintptr_t>(y) % 4 == 0;
  int const tile = pairs ? kTile2 : kTile;  // both kernels run 32 x kRowsPerPass threads
  int64_t const pixel_tiles = (HW + tile - 1) / tile;
  if (pixel_tiles > 0x7fffffff) return Status::error("nchw_to_nhwc: H*W too large");
  dim3 const grid(unsigned(pixel_tiles), unsigned((C_pad + tile - 1) / tile), unsigned(std::min<int64_t>(N, 65535)));
  dim3 const block(32, kRowsPerPass);
  auto const* src = static_cast<T const*>(x);
  auto* dst = static_cast<T*>(y);
  if constexpr (sizeof(T) == 2) {
    if (pairs) {
      nchw_to_nhwc_pairs_kernel<T><<<grid, block, 0, stream>>>(src, dst, N, C, HW, C_pad);
      return last_launch_status("nchw_to_nhwc");
    }
  }
  nchw_to_nhwc_kernel<T><<<grid, block, 0, stream>>>(src, dst, N, C, HW, C_pad);
  return last_launch_status("nchw_to_nhwc");
}

}  // namespace

Status nchw_to_nhwc(DType dtype, int64_t N, int64_t C, int64_t HW, int64_t C_pad, void const* x, void* y,
                    cudaStream_t stream) {
  if (N < 0 || C < 1 || HW < 0 || C_pad < C || C_pad > (int64_t(1) << 20))
    return Status::error("nchw_to_nhwc: invalid sizes");
  if (N == 0 || HW == 0) return Status::success();
  if (!x || !y) return Status::error("nchw_to_nhwc: null pointer");
  switch (dtype) {
    case DType::kFloat32:
      return launch<float>(x, y, N, int(C), HW, int(C_pad), stream);
    case DType::kFloat16:
      return launch<__half>(x, y, N, int(C), HW, int(C_pad), stream);
    case DType::kBFloat16:
      return launch<__nv_bfloat16>(x, y, N, int(C), HW, int(C_pad), stream);
  }
  return Status::error("nchw_to_nhwc: unknown dtype");
}

}  // namespace fct
