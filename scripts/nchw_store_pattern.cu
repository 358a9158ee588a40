// What does the output layout alone cost? Writes the reference problem's output
// (N=128, C=128, 129x129, fp32: 1.09 GB) with no computation, from a persistent
// grid that deals output rows (n, oh) round-robin over its CTAs, as the fused
// kernel deals its tiles, in three patterns:
//   nhwc       a row's C x 129 values as one contiguous block (16-byte stores)
//   nchw_runs  per channel, the row's 129 consecutive elements (a warp per
//              channel, 128-byte warp stores; the run is misaligned by the odd
//              row pitch)
//   nchw_half  the same bytes as two stride-2 passes (even columns, then odd):
//              what one column phase per CTA stores
// and then in the fused kernel's own tiling (TileWalk), as the NHWC epilogue,
// the shipped sibling-pair register epilogue and a staged epilogue (aligned
// 16-byte chunks of each channel's run) would store it, with tiles dealt
// round-robin (as shipped) or in one contiguous range per CTA pair, and the
// register pattern with 8-byte stores for the pairs that are 8-byte aligned,
// and warp runs (a warp-local transpose: 32 columns of one channel per store). Every
// pattern is first checked to write each element.
// Build and run on the GPU machine:
//   nvcc -O3 -arch=sm_90a scripts/nchw_store_pattern.cu -o /tmp/nsp && /tmp/nsp
#include <cstdio>
#include <vector>
#include <algorithm>
#include <cuda_runtime.h>

constexpr int N = 128, C = 128, HO = 129, WO = 129;

__global__ void nhwc(float* y, int rows, float v) {
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    float4* dst = reinterpret_cast<float4*>(y + size_t(r) * WO * C);
    for (int k = threadIdx.x; k < WO * C / 4; k += blockDim.x) dst[k] = make_float4(v, v, v, v);
  }
}

__global__ void nchw_runs(float* y, int rows, float v) {
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    int n = r / HO, oh = r % HO;
    for (int c = warp; c < C; c += warps) {
      float* dst = y + (size_t(n) * C + c) * HO * WO + size_t(oh) * WO;
      for (int w = lane; w < WO; w += 32) dst[w] = v;
    }
  }
}

__global__ void nchw_half(float* y, int rows, float v) {
  int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  for (int r = blockIdx.x; r < rows; r += gridDim.x) {
    int n = r / HO, oh = r % HO;
    for (int phase = 0; phase < 2; ++phase)
      for (int c = warp; c < C; c += warps) {
        float* dst = y + (size_t(n) * C + c) * HO * WO + size_t(oh) * WO;
        for (int w = 2 * lane + phase; w < WO; w += 64) dst[w] = v;
      }
  }
}

// The fused kernel's own tiling (stride 2, sibling pairs): row phase r_h has
// 65 (r_h = 0) or 64 rows of 65 phase-0 columns; a tile is 64 consecutive
// phase-0 pixels, i.e. 128 output columns over one or two output rows; CTA pair
// p serves row phase p / (pairs / 2) and deals its tiles round-robin; rank r
// stores channels [64 r, 64 r + 64); warpgroup g takes every other tile.
// kContiguous: each pair takes one contiguous range of tiles instead.
template <bool kContiguous = false>
struct TileWalk {
  int rh, local, pairs_rh, rank, tiles, per_image, pixel_end, first, step, end;
  __device__ TileWalk() {
    int pairs = gridDim.x / 2, p = blockIdx.x / 2;
    pairs_rh = pairs / 2;
    rh = p < pairs_rh ? 0 : 1;
    local = p - rh * pairs_rh;
    rank = blockIdx.x % 2;
    per_image = (rh == 0 ? 65 : 64) * 65;
    pixel_end = N * per_image;
    tiles = (pixel_end + 63) / 64;
    int per = (tiles + pairs_rh - 1) / max(pairs_rh, 1);
    first = kContiguous ? local * per : local;
    step = kContiguous ? 1 : pairs_rh;
    end = kContiguous ? min(tiles, first + per) : tiles;
  }
  // Calls body(tile) for each tile of the calling thread's warpgroup (every other one of the pair's).
  template <class Body>
  __device__ void for_each_tile(Body body) const {
    if (pairs_rh == 0) return;
    int const wg = threadIdx.x / 128;
    for (int tile = first + wg * step; tile < end; tile += 2 * step) body(tile);
  }
  // Phase pixel m as (image, phase row, phase-0 column).
  __device__ void pixel(int m, int& n, int& i, int& j) const {
    n = m / per_image;
    int rem = m - n * per_image;
    i = rem / 65;
    j = rem - i * 65;
  }
};

constexpr int kPlane = HO * WO;

// Staged design: per segment (part of one output row) and channel, aligned
// 16-byte chunks (lane k: chunk k + 1, lanes 0-3: the partial head).
template <bool kContiguous>
__global__ void tile_staged(float* y, float v) {
  TileWalk<kContiguous> tw;
  int warp = threadIdx.x / 32 % 4, lane = threadIdx.x % 32;
  tw.for_each_tile([&](int tile) {
    int m0 = tile * 64, m_stop = min(m0 + 64, tw.pixel_end);
    for (int m = m0; m < m_stop;) {
      int n, i, j;
      tw.pixel(m, n, i, j);
      int npx = min(m_stop - m, 65 - j);
      int len = min(2 * npx, WO - 2 * j);
      size_t start = (size_t(n) * C + 64 * tw.rank) * kPlane + size_t(2 * i + tw.rh) * WO + 2 * j;
      for (int c = 0; c < 16; ++c) {
        int lc = warp + 4 * c;
        size_t run = start + size_t(lc) * kPlane;
        int e = int(run & 3);
        float* dst = y + run - e;
        int first = 4 * (lane + 1) - e;
        if (first + 4 <= len)
          *reinterpret_cast<float4*>(dst + 4 * (lane + 1)) = make_float4(v, v, v, v);
        else if (first < len)
          for (int q = 0; q < len - first; ++q) dst[4 * (lane + 1) + q] = v;
        if (lane < 4 && lane >= e && lane - e < len) dst[lane] = v;
      }
      m += npx;
    }
  });
}

// Register design (the shipped sibling epilogue): per thread two rows (pixels)
// x 8 groups x 2 channels, each a pair of adjacent output columns stored as two
// single stores.
template <bool kContiguous, bool kAlignedPairs = false>
__global__ void tile_register(float* y, float v) {
  TileWalk<kContiguous> tw;
  int warp = threadIdx.x / 32 % 4, lane = threadIdx.x % 32, q = lane % 4;
  tw.for_each_tile([&](int tile) {
    for (int h = 0; h < 2; ++h) {
      int m = tile * 64 + warp * 16 + h * 8 + lane / 4;
      if (m >= tw.pixel_end) continue;
      int n, i, j;
      tw.pixel(m, n, i, j);
      size_t base = size_t(n) * C * kPlane + size_t(2 * i + tw.rh) * WO + 2 * j;
      bool second = 2 * j + 1 < WO;
#pragma unroll
      for (int g = 0; g < 8; ++g)
#pragma unroll
        for (int u = 0; u < 2; ++u) {
          size_t at = base + size_t(64 * tw.rank + 8 * g + 2 * q + u) * kPlane;
          // kAlignedPairs: one 8-byte store where the pair is 8-byte aligned
          // (half of them: planes and rows are odd-sized), predicated, no branch.
          bool pair = kAlignedPairs && second && (at % 2 == 0);
          if (pair) asm volatile("st.global.v2.f32 [%0], {%1, %1};" ::"l"(y + at), "f"(v) : "memory");
          if (!pair) {
            y[at] = v;
            if (second) y[at + 1] = v;
          }
        }
    }
  });
}

// Warp runs: warp w of a warpgroup owns the tile's pixels [16 w, 16 w + 16),
// i.e. 32 consecutive output columns (both phases) when they lie in one row;
// it stores them channel by channel, lane = column: one 128-byte run of one
// plane per warp store (a warp-local transpose of the register pairs).
template <bool kContiguous>
__global__ void tile_warp_runs(float* y, float v) {
  TileWalk<kContiguous> tw;
  int warp = threadIdx.x / 32 % 4, lane = threadIdx.x % 32;
  tw.for_each_tile([&](int tile) {
    int m = tile * 64 + warp * 16 + lane / 2;
    int n, i, j;
    tw.pixel(m, n, i, j);
    int ow = 2 * j + lane % 2;
    bool ok = m < tw.pixel_end && ow < WO;
    float* dst = y + (size_t(n) * C + 64 * tw.rank) * kPlane + size_t(2 * i + tw.rh) * WO + ow;
#pragma unroll 8
    for (int c = 0; c < 64; ++c)
      if (ok) dst[size_t(c) * kPlane] = v;
  });
}

// NHWC output of the same tiles: a tile's pixels are 64 x 512 bytes, each
// CTA of the pair storing half of every pixel's channels.
template <bool kContiguous>
__global__ void tile_nhwc(float* y, float v) {
  TileWalk<kContiguous> tw;
  int t = threadIdx.x % 128;
  tw.for_each_tile([&](int tile) {
    for (int k = t; k < 64 * 2 * 16; k += 128) {  // 64 pixels x 2 phases x 16 float4 (64 channels)
      int px = k / 32, ph = k / 16 % 2, c4 = k % 16;
      int m = tile * 64 + px;
      if (m >= tw.pixel_end) continue;
      int n, i, j;
      tw.pixel(m, n, i, j);
      int ow = 2 * j + ph;
      if (ow >= WO) continue;
      size_t at = ((size_t(n) * HO + 2 * i + tw.rh) * WO + ow) * C + 64 * tw.rank + 4 * c4;
      *reinterpret_cast<float4*>(y + at) = make_float4(v, v, v, v);
    }
  });
}

__global__ void count_unwritten(float const* y, size_t elems, unsigned long long* bad) {
  unsigned long long local = 0;
  for (size_t k = blockIdx.x * size_t(blockDim.x) + threadIdx.x; k < elems; k += size_t(gridDim.x) * blockDim.x)
    local += y[k] != 0.5f;
  atomicAdd(bad, local);
}

template <class F>
float time_ms(F launch) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < 5; ++i) launch();
  std::vector<float> t;
  for (int i = 0; i < 20; ++i) {
    cudaEventRecord(a);
    launch();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int main() {
  size_t elems = size_t(N) * C * HO * WO;
  float* y;
  if (cudaMalloc(&y, elems * sizeof(float)) != cudaSuccess) return 1;
  int sms;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  int rows = N * HO;
  for (int threads : {256, 512}) {
    float a = time_ms([&] { nhwc<<<sms, threads>>>(y, rows, 0.5f); });
    float b = time_ms([&] { nchw_runs<<<sms, threads>>>(y, rows, 0.5f); });
    float c = time_ms([&] { nchw_half<<<sms, threads>>>(y, rows, 0.5f); });
    printf("rows dealt round-robin, %d threads/CTA, %d CTAs: nhwc %.3f ms  nchw_runs %.3f ms  nchw_half %.3f ms\n",
           threads, sms, a, b, c);
  }
  printf("memset %.3f ms\n", time_ms([&] { cudaMemsetAsync(y, 0, elems * sizeof(float)); }));
  int grid = sms / 4 * 4;  // pairs split evenly over the two row phases
  unsigned long long* bad;
  cudaMalloc(&bad, sizeof(*bad));
  auto check = [&](char const* name, auto launch) {  // every element written once the pattern ran
    cudaMemset(y, 0xff, elems * sizeof(float));
    cudaMemset(bad, 0, sizeof(*bad));
    launch();
    count_unwritten<<<sms * 4, 256>>>(y, elems, bad);
    unsigned long long h = 0;
    cudaMemcpy(&h, bad, sizeof(h), cudaMemcpyDeviceToHost);
    printf("%s: %llu elements not written\n", name, h);
  };
  check("tile_nhwc", [&] { tile_nhwc<false><<<grid, 256>>>(y, 0.5f); });
  check("tile_staged", [&] { tile_staged<false><<<grid, 256>>>(y, 0.5f); });
  check("tile_register", [&] { tile_register<false><<<grid, 256>>>(y, 0.5f); });
  check("tile_staged contiguous", [&] { tile_staged<true><<<grid, 256>>>(y, 0.5f); });
  check("nchw_runs", [&] { nchw_runs<<<sms, 256>>>(y, rows, 0.5f); });
  check("tile_warp_runs", [&] { tile_warp_runs<false><<<grid, 256>>>(y, 0.5f); });
  printf("fused-kernel tiling, warp runs (32 columns x one channel per warp store): %.3f ms\n",
         time_ms([&] { tile_warp_runs<false><<<grid, 256>>>(y, 0.5f); }));
  check("tile_register aligned pairs", [&] { tile_register<false, true><<<grid, 256>>>(y, 0.5f); });
  printf("fused-kernel tiling, register pairs with 8-byte stores where aligned: %.3f ms\n",
         time_ms([&] { tile_register<false, true><<<grid, 256>>>(y, 0.5f); }));
  for (int contiguous = 0; contiguous < 2; ++contiguous) {
    float tn = time_ms([&] { contiguous ? tile_nhwc<true><<<grid, 256>>>(y, 0.5f) : tile_nhwc<false><<<grid, 256>>>(y, 0.5f); });
    float ts = time_ms([&] { contiguous ? tile_staged<true><<<grid, 256>>>(y, 0.5f) : tile_staged<false><<<grid, 256>>>(y, 0.5f); });
    float tr = time_ms([&] { contiguous ? tile_register<true><<<grid, 256>>>(y, 0.5f) : tile_register<false><<<grid, 256>>>(y, 0.5f); });
    printf("fused-kernel tiling (%s), %d CTAs x 256 threads: nhwc %.3f ms  nchw staged lines %.3f ms  nchw register pairs %.3f ms\n",
           contiguous ? "contiguous tile range per pair" : "tiles round-robin", grid, tn, ts, tr);
  }
  cudaError_t e = cudaDeviceSynchronize();
  printf("%s\n", cudaGetErrorString(e));
  return e == cudaSuccess ? 0 : 1;
}
