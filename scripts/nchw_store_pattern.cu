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
    float d = time_ms([&] { cudaMemsetAsync(y, 0, elems * sizeof(float)); });
    printf("threads/CTA %d, %d CTAs: nhwc %.3f ms  nchw_runs %.3f ms  nchw_half %.3f ms  memset %.3f ms\n", threads, sms,
           a, b, c, d);
  }
  cudaError_t e = cudaDeviceSynchronize();
  printf("%s\n", cudaGetErrorString(e));
  return e == cudaSuccess ? 0 : 1;
}
