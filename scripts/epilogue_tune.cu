// Tuning harness for the NCHW two-stage epilogue (device only):
//   nvcc -O3 -std=c++17 -arch=sm_90a -I csrc -I csrc/include scripts/epilogue_tune.cu -o /tmp/tune && /tmp/tune
#include <cstdio>
#include <vector>

#include "../csrc/two_stage/softmax_epilogue.cu"

using namespace fct;

template <typename F>
float time_ms(F f) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < 5; ++i) f();
  std::vector<float> t;
  for (int i = 0; i < 30; ++i) {
    cudaEventRecord(a);
    f();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

template <typename T>
void run(char const* name) {
  int64_t N = 128, C = 128, HW = 129 * 129;
  size_t n = N * C * HW;
  T *z, *y;
  float *cb, *b;
  cudaMalloc(&z, n * sizeof(T));
  cudaMalloc(&y, n * sizeof(T));
  cudaMalloc(&cb, C * 4);
  cudaMalloc(&b, C * 4);
  cudaMemset(z, 0x3c, n * sizeof(T));
  cudaMemset(cb, 0, C * 4);
  cudaMemset(b, 0, C * 4);
  auto blocks = [&](int pix) { return unsigned((N * HW + pix - 1) / pix); };
  std::printf("%s stream32 %.3f\n", name, time_ms([&] { softmax_epilogue_nchw<T, 32, AccurateMath><<<blocks(32), 256>>>(N, C, HW, z, cb, b, 2.f, y); }));
  std::printf("%s stream64 %.3f\n", name, time_ms([&] { softmax_epilogue_nchw<T, 64, AccurateMath><<<blocks(64), 256>>>(N, C, HW, z, cb, b, 2.f, y); }));
  std::printf("%s stream128 %.3f\n", name, time_ms([&] { softmax_epilogue_nchw<T, 128, AccurateMath><<<blocks(128), 256>>>(N, C, HW, z, cb, b, 2.f, y); }));
  std::printf("%s fast32 %.3f\n", name, time_ms([&] { softmax_epilogue_nchw<T, 32, MufuMath><<<blocks(32), 256>>>(N, C, HW, z, cb, b, 2.f, y); }));
  std::printf("%s fast64 %.3f\n", name, time_ms([&] { softmax_epilogue_nchw<T, 64, MufuMath><<<blocks(64), 256>>>(N, C, HW, z, cb, b, 2.f, y); }));
  std::printf("%s copy %.3f\n", name, time_ms([&] { cudaMemcpyAsync(y, z, n * sizeof(T), cudaMemcpyDeviceToDevice); }));
  std::printf("%s err %s\n", name, cudaGetErrorString(cudaGetLastError()));
  cudaFree(z);
  cudaFree(y);
}

int main() {
  run<float>("fp32");
  run<__nv_bfloat16>("bf16");
}
