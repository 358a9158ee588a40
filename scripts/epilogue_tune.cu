// Tuning harness for the NCHW two-stage epilogue, y = sigmoid(s * (softmax_c(z + conv_b) + b)).
// Device only; build and run from the repository root (CUTLASS headers from the nvidia-cutlass wheel,
// as third_party/cutlass.cmake finds them; compute_80 PTX instead runs the pre-Hopper tile load):
//   inc=$(python3 -c "import cutlass_library, os; print(os.path.dirname(cutlass_library.__file__))")/source/include
//   nvcc -O3 -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a -I csrc -I csrc/include \
//        -I $inc scripts/epilogue_tune.cu -o /tmp/tune && /tmp/tune
//
// For fp32 and then bf16, by default at the reference size (N=128, C=128, HW=129*129; override with
// TUNE_N, TUNE_C, TUNE_HW_SIDE; TUNE_ONLY="a,b" keeps the candidates whose names contain a or b) it
//   - checks the shipped launch (the "baseline": launch_nchw, the staged kernel where it fits)
//     against a float64 host reference on two images,
//   - runs each candidate on a NaN-poisoned output and compares it with the baseline over the whole
//     tensor (max abs diff, computed on the device),
//   - times every candidate, a device copy of the same bytes (the bandwidth floor) and a kernel that
//     only moves the bytes in the register candidates' access pattern (unaligned 128-byte channel
//     rows, since HW is odd) in 5 interleaved rounds of 30 launches after 5 warm-ups, so that a
//     drift hits every kernel alike.
// Output: one line per kernel, "dtype name median_ms min max maxdiff verdict GB/s vs-baseline".
// Exit status 1 if a candidate is out of tolerance, 2 on a CUDA error.
//
// Candidates. The staged kernels (csrc/two_stage/staged_nchw_epilogue.cuh) at other tile shapes:
// kPix pixels per block, kTPP threads per pixel. The streaming kernel is the one launch_nchw falls
// back to. The rest are the first tuning round's attempts at the streaming layout (all slower than
// the streaming kernel itself). The streaming fp32 kernel's SASS issues ~64 instructions
// per element (first pass ~21: an online-softmax update, two exps per value; second pass ~42: two
// exps, an IEEE reciprocal with its slow-path test, three loads for z, conv_b and b), plus two exps
// per partial in the merge: ~6 MUFU ops per element. At the reference size that is ~0.55 ms of pure
// instruction issue and ~0.4 ms of MUFU throughput (16 per SM per clock) -- as much as the copy
// floor, so the kernel is issue-bound as much as memory-bound. The candidates cut MUFU work to 3-4
// ops per element (one exp per value for the softmax), fold the per-channel constants once per
// block into shared memory, and issue all of a thread's loads before the first use; the main
// register-resident candidate is ~26 instructions per element, overheads included.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "../csrc/two_stage/softmax_epilogue.cu"

using namespace fct;

namespace tune {

// ---------------------------------------------------------------------------------------------
// Error handling: every runtime call and every launch is checked; a CUDA error ends the run.

void check(cudaError_t err, char const* what, char const* file, int line) {
  if (err == cudaSuccess) return;
  std::fprintf(stderr, "CUDA error %s (%s) at %s:%d: %s\n", cudaGetErrorName(err), cudaGetErrorString(err), file,
               line, what);
  std::exit(2);
}
#define CK(x) ::tune::check((x), #x, __FILE__, __LINE__)
#define CK_LAUNCH(what) ::tune::check(cudaGetLastError(), what, __FILE__, __LINE__)
#define CK_STATUS(x)                                                                   \
  do {                                                                                 \
    ::fct::Status st_ = (x);                                                           \
    if (!st_.ok) {                                                                     \
      std::fprintf(stderr, "%s failed at %s:%d: %s\n", #x, __FILE__, __LINE__, st_.message.c_str()); \
      std::exit(2);                                                                    \
    }                                                                                  \
  } while (0)

// ---------------------------------------------------------------------------------------------
// Data: a counter-based hash, so every run sees the same fresh values without a host round trip.

__host__ __device__ inline uint32_t hash32(uint32_t x) {  // "lowbias32" (Wellons)
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}
__host__ __device__ inline float hash_uniform(uint64_t i, uint32_t seed, float lo, float hi) {
  uint32_t h = hash32(uint32_t(i) ^ hash32(uint32_t(i >> 32) + seed * 0x9e3779b9u));
  return lo + (hi - lo) * float(h >> 8) * (1.0f / 16777216.0f);
}

template <typename T>
__global__ void init_uniform(T* p, size_t n, uint32_t seed, float lo, float hi) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = from_float<T>(hash_uniform(i, seed, lo, hi));
}

// Max |a - b| over the tensor. NaN or inf (e.g. an element the candidate never wrote over the NaN
// poison) counts as +inf, so a partial write cannot pass.
template <typename T>
__global__ void max_abs_diff(T const* a, T const* b, size_t n, unsigned* out_bits) {
  float m = 0.0f;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    float d = fabsf(to_float(a[i]) - to_float(b[i]));
    if (!(d <= FLT_MAX)) d = INFINITY;
    m = fmaxf(m, d);
  }
  for (int o = 16; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  // Non-negative floats order like their bit patterns, so an integer atomicMax is a float max.
  if (threadIdx.x % 32 == 0) atomicMax(out_bits, __float_as_uint(m));
}

// ---------------------------------------------------------------------------------------------
// Math policies with the per-channel terms folded once per block (kept in shared memory) instead of
// once per element. Each reproduces its fct policy's formula operation for operation, so a candidate
// differs from the baseline only in the order of the softmax sum.

struct FoldedMufu {  // fct::MufuMath: log2 domain, one MUFU op per exp / reciprocal
  static constexpr bool kAccurate = false;
  __device__ __forceinline__ static float fold_conv_b(float cb) { return cb * kLog2e; }
  __device__ __forceinline__ static float fold_b(float b, float s) { return -s * kLog2e * b; }
  __device__ __forceinline__ static float logit(float z, float cb_f) { return fmaf(z, kLog2e, cb_f); }
  __device__ __forceinline__ static float exp(float d) { return MufuMath::exp(d); }
  __device__ __forceinline__ static float pixel_factor(float sum, float s) { return MufuMath::pixel_factor(sum, s); }
  __device__ __forceinline__ static float output(float e, float factor, float b_f, float) {
    return rcp_approx(1.0f + ex2_approx(fmaf(factor, e, b_f)));
  }
};

struct FoldedAccurate {  // fct::AccurateMath: IEEE-rounded exp2f / reciprocal; nothing to fold
  static constexpr bool kAccurate = true;
  __device__ __forceinline__ static float fold_conv_b(float cb) { return cb; }
  __device__ __forceinline__ static float fold_b(float b, float) { return b; }
  __device__ __forceinline__ static float logit(float z, float cb_f) { return AccurateMath::logit(z, cb_f); }
  __device__ __forceinline__ static float exp(float d) { return AccurateMath::exp(d); }
  __device__ __forceinline__ static float pixel_factor(float sum, float s) { return AccurateMath::pixel_factor(sum, s); }
  __device__ __forceinline__ static float output(float e, float factor, float b_f, float s) {
    return AccurateMath::output(e, factor, b_f, s);
  }
};

// ---------------------------------------------------------------------------------------------
// Memory policies for the z read and the y write. Only the register-resident kernels take them: the
// streaming kernels need z to stay in L1 between their passes.

struct MemDefault {  // z is const __restrict__: ld.global.nc; plain stores
  template <typename T>
  __device__ __forceinline__ static T load(T const* p) { return *p; }
  template <typename T>
  __device__ __forceinline__ static void store(T* p, T v) { *p = v; }
};

// ld.global.cs / st.global.cs: evict-first in L1 and L2. z is read once (twice at a row's partial
// sectors, by the neighbouring block) and y never again, so neither should push out useful lines.
struct MemStreaming {
  template <typename T>
  __device__ __forceinline__ static T load(T const* p) { return __ldcs(p); }
  template <typename T>
  __device__ __forceinline__ static void store(T* p, T v) { __stcs(p, v); }
};

// ld.global.nc.L1::no_allocate: the register-resident kernels never re-read z, so L1 allocation only
// costs tag churn. Not volatile: the loads are pure, the compiler may hoist and batch them.
struct MemNoAllocate {
  template <typename T>
  __device__ __forceinline__ static T load(T const* p);
  template <typename T>
  __device__ __forceinline__ static void store(T* p, T v) { *p = v; }
};
template <>
__device__ __forceinline__ float MemNoAllocate::load<float>(float const* p) {
  float v;
  asm("ld.global.nc.L1::no_allocate.f32 %0, [%1];" : "=f"(v) : "l"(p));
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 MemNoAllocate::load<__nv_bfloat16>(__nv_bfloat16 const* p) {
  unsigned short bits;
  asm("ld.global.nc.L1::no_allocate.b16 %0, [%1];" : "=h"(bits) : "l"(p));
  __nv_bfloat16_raw raw;
  raw.x = bits;
  return __nv_bfloat16(raw);
}

// ---------------------------------------------------------------------------------------------
// Candidates. All use the baseline's thread layout: the 32 lanes of a warp take 32 consecutive pixels
// of one channel plane (one 128-byte fp32 row per warp load), and a block's warps split the
// channels, combining per-pixel partials through shared memory. Pixels past the end are clamped to
// the last pixel for loads (valid memory, no predicate per load) and skipped for stores. Offsets
// inside an image are 32-bit (the host checks C * HW < 2^31); the image base is 64-bit.

// Per-block copy of the folded per-channel constants, padded to `slots` with neutral values.
template <typename Math>
__device__ __forceinline__ void stage_constants(int slots, int C, float const* conv_b, float const* b, float s,
                                                float* cb_s, float* b_s) {
  for (int c = threadIdx.x; c < slots; c += blockDim.x) {
    bool in = c < C;
    cb_s[c] = Math::fold_conv_b(in && conv_b ? __ldg(conv_b + c) : 0.0f);
    b_s[c] = Math::fold_b(in ? __ldg(b + c) : 0.0f, s);
  }
}

// Pixel index -> offset of (n, channel 0, hw). One 32-bit division per thread and pixel.
__device__ __forceinline__ int64_t pixel_base(int pixel, int P, int C, int HW, bool& active) {
  active = pixel < P;
  unsigned p = unsigned(min(pixel, P - 1));
  unsigned n = p / unsigned(HW);
  return int64_t(n) * C * HW + (p - n * unsigned(HW));
}

// (a) Three-pass streaming: max only, then sum of exp, then output. Compared with the baseline's
// online softmax the first pass has no exp at all (FFMA + FMNMX per value), the merge none either,
// so MUFU work drops from ~6 to 4 per element; passes 2 and 3 re-read z from L1. The risk is L1
// capacity: unaligned rows make a block's footprint 128 rows x 2 lines = 32 KB.
template <typename T, int kWarps, typename Math>
__global__ void __launch_bounds__(32 * kWarps)
    stream3(int P, int C, int HW, T const* __restrict__ z, float const* __restrict__ conv_b,
            float const* __restrict__ b, float s, T* __restrict__ y) {
  extern __shared__ float consts[];  // [0, C): folded conv_b, [C, 2C): folded b
  __shared__ float red_max[kWarps][32];
  __shared__ float red_sum[kWarps][32];
  float* cb_s = consts;
  float* b_s = consts + C;
  int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  bool active;
  int64_t base = pixel_base(blockIdx.x * 32 + lane, P, C, HW, active);
  T const* zp = z + base;
  T* yp = y + base;
  stage_constants<Math>(C, C, conv_b, b, s, cb_s, b_s);
  __syncthreads();

  float m = -INFINITY;
#pragma unroll 8
  for (int c = w; c < C; c += kWarps) m = fmaxf(m, Math::logit(to_float(zp[c * HW]), cb_s[c]));
  red_max[w][lane] = m;
  __syncthreads();
  float row_max = red_max[0][lane];
#pragma unroll
  for (int i = 1; i < kWarps; ++i) row_max = fmaxf(row_max, red_max[i][lane]);

  float sum = 0.0f;
#pragma unroll 8
  for (int c = w; c < C; c += kWarps) sum += Math::exp(Math::logit(to_float(zp[c * HW]), cb_s[c]) - row_max);
  red_sum[w][lane] = sum;
  __syncthreads();
  float row_sum = 0.0f;
#pragma unroll
  for (int i = 0; i < kWarps; ++i) row_sum += red_sum[i][lane];
  if (!active) return;
  float factor = Math::pixel_factor(row_sum, s);
#pragma unroll 8
  for (int c = w; c < C; c += kWarps) {
    float e = Math::exp(Math::logit(to_float(zp[c * HW]), cb_s[c]) - row_max);
    yp[c * HW] = from_float<T>(Math::output(e, factor, b_s[c], s));
  }
}

// Loads `kN` channels [c0, c0 + kN) of one pixel, all issued before any is used. Slots past C read
// as -inf, which the max ignores and whose exp is 0 (ex2(-inf) = +0, exp2f(-inf) = 0).
template <bool kFull, int kN, typename Mem, typename T>
__device__ __forceinline__ void load_channels(float (&v)[kN], T const* zp, int c0, int C, int HW) {
#pragma unroll
  for (int i = 0; i < kN; ++i) v[i] = (kFull || c0 + i < C) ? to_float(Mem::load(zp + (c0 + i) * HW)) : -INFINITY;
}

// (b') Two-pass, exact per-chunk statistics: each thread loads kChunk channels at once, takes their
// exact max, then one exp per value for their sum; chunks (one per thread at C = 128 and kChunk = 16)
// and warps merge with one exp per partial. MUFU: 1 + 3 per element instead of the baseline's
// 2 + 3 (+1 merge). The second pass re-reads z from L1 like the baseline; only kChunk values are
// live, and there is one barrier for the partials (plus the one after staging the constants). A
// ragged last chunk (C not a multiple of kChunk) takes a plain per-channel loop, so that its
// predicated loads do not raise the register count of the full-chunk code.
template <typename T, int kWarps, int kChunk, int kMinBlocks, typename Math>
__global__ void __launch_bounds__(32 * kWarps, kMinBlocks)
    chunk2(int P, int C, int HW, T const* __restrict__ z, float const* __restrict__ conv_b,
           float const* __restrict__ b, float s, T* __restrict__ y) {
  extern __shared__ float consts[];  // [0, C): folded conv_b, [C, 2C): folded b
  __shared__ float red_max[kWarps][32];
  __shared__ float red_sum[kWarps][32];
  float* cb_s = consts;
  float* b_s = consts + C;
  int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  bool active;
  int64_t base = pixel_base(blockIdx.x * 32 + lane, P, C, HW, active);
  T const* zp = z + base;
  T* yp = y + base;
  stage_constants<Math>(C, C, conv_b, b, s, cb_s, b_s);
  __syncthreads();

  auto logit_at = [&](int c) { return Math::logit(to_float(zp[c * HW]), cb_s[c]); };
  float run_max = -INFINITY, run_sum = 0.0f;
  for (int c0 = w * kChunk; c0 < C; c0 += kWarps * kChunk) {
    float m = -INFINITY, sum = 0.0f;
    if (c0 + kChunk <= C) {
      float v[kChunk];
      load_channels<true, kChunk, MemDefault>(v, zp, c0, C, HW);
#pragma unroll
      for (int i = 0; i < kChunk; ++i) {
        v[i] = Math::logit(v[i], cb_s[c0 + i]);
        m = fmaxf(m, v[i]);
      }
#pragma unroll
      for (int i = 0; i < kChunk; ++i) sum += Math::exp(v[i] - m);
    } else {
#pragma unroll 1
      for (int c = c0; c < C; ++c) m = fmaxf(m, logit_at(c));
#pragma unroll 1
      for (int c = c0; c < C; ++c) sum += Math::exp(logit_at(c) - m);
    }
    float new_max = fmaxf(run_max, m);  // m is finite: a chunk holds at least one channel < C
    run_sum = run_sum * Math::exp(run_max - new_max) + sum * Math::exp(m - new_max);
    run_max = new_max;
  }
  red_max[w][lane] = run_max;
  red_sum[w][lane] = run_sum;
  __syncthreads();
  float row_max = red_max[0][lane];
#pragma unroll
  for (int i = 1; i < kWarps; ++i) row_max = fmaxf(row_max, red_max[i][lane]);
  float row_sum = 0.0f;
  // A warp with no channels (run_max = -inf, run_sum = 0) adds 0 * exp(-inf) = 0.
#pragma unroll
  for (int i = 0; i < kWarps; ++i) row_sum += red_sum[i][lane] * Math::exp(red_max[i][lane] - row_max);
  if (!active) return;
  float factor = Math::pixel_factor(row_sum, s);

  auto out_at = [&](int c, float l) {
    yp[c * HW] = from_float<T>(Math::output(Math::exp(l - row_max), factor, b_s[c], s));
  };
  for (int c0 = w * kChunk; c0 < C; c0 += kWarps * kChunk) {
    if (c0 + kChunk <= C) {
      float v[kChunk];
      load_channels<true, kChunk, MemDefault>(v, zp, c0, C, HW);
#pragma unroll
      for (int i = 0; i < kChunk; ++i) out_at(c0 + i, Math::logit(v[i], cb_s[c0 + i]));
    } else {
#pragma unroll 1
      for (int c = c0; c < C; ++c) out_at(c, logit_at(c));
    }
  }
}

// (b) Register-resident: each thread owns kCPT consecutive channels of kPPT pixels (pixels lane and
// lane + 32, ..., so every warp load is still one contiguous row), loads all kPPT * kCPT values
// up front, and keeps them in registers through the exact max, the in-place exp and the output.
// One DRAM read, no L1 dependence, 3 MUFU ops per element; three barriers per block (constants, max,
// sum), the first one while the loads are in flight. C is bounded by
// kWarps * kCPT at compile time; a full block (C equal to the bound) runs without per-channel
// predicates. kMinBlocks > 1 caps registers for occupancy.
template <bool kFull, typename T, int kWarps, int kCPT, int kPPT, typename Math, typename Mem>
__device__ __forceinline__ void register_resident_body(int P, int C, int HW, T const* z, float const* conv_b,
                                                       float const* b, float s, T* y, float* cb_s, float* b_s,
                                                       float (*red_max)[32 * kPPT], float (*red_sum)[32 * kPPT]) {
  constexpr int kSlots = kWarps * kCPT;
  int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  int c0 = w * kCPT;
  int64_t base[kPPT];
  bool active[kPPT];
#pragma unroll
  for (int p = 0; p < kPPT; ++p) base[p] = pixel_base(blockIdx.x * (32 * kPPT) + p * 32 + lane, P, C, HW, active[p]);

  float v[kPPT][kCPT];
#pragma unroll
  for (int p = 0; p < kPPT; ++p) load_channels<kFull, kCPT, Mem>(v[p], z + base[p], c0, C, HW);
  // The constants and the barrier go after the loads are issued, so DRAM latency overlaps them.
  stage_constants<Math>(kSlots, C, conv_b, b, s, cb_s, b_s);
  __syncthreads();

  // Four partial maxima / sums per pixel break the dependency chains.
  float m[kPPT][4];
#pragma unroll
  for (int p = 0; p < kPPT; ++p)
#pragma unroll
    for (int j = 0; j < 4; ++j) m[p][j] = -INFINITY;
#pragma unroll
  for (int i = 0; i < kCPT; i += 4) {
    float4 cb4 = *reinterpret_cast<float4 const*>(cb_s + c0 + i);
    float cb[4] = {cb4.x, cb4.y, cb4.z, cb4.w};
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int p = 0; p < kPPT; ++p) {
        v[p][i + j] = Math::logit(v[p][i + j], cb[j]);
        m[p][j] = fmaxf(m[p][j], v[p][i + j]);
      }
  }
#pragma unroll
  for (int p = 0; p < kPPT; ++p) red_max[w][p * 32 + lane] = fmaxf(fmaxf(m[p][0], m[p][1]), fmaxf(m[p][2], m[p][3]));
  __syncthreads();

  float row_max[kPPT], sum[kPPT][4];
#pragma unroll
  for (int p = 0; p < kPPT; ++p) {
    row_max[p] = red_max[0][p * 32 + lane];
#pragma unroll
    for (int k = 1; k < kWarps; ++k) row_max[p] = fmaxf(row_max[p], red_max[k][p * 32 + lane]);
#pragma unroll
    for (int j = 0; j < 4; ++j) sum[p][j] = 0.0f;
  }
#pragma unroll
  for (int i = 0; i < kCPT; ++i)
#pragma unroll
    for (int p = 0; p < kPPT; ++p) {
      v[p][i] = Math::exp(v[p][i] - row_max[p]);
      sum[p][i % 4] += v[p][i];
    }
#pragma unroll
  for (int p = 0; p < kPPT; ++p) red_sum[w][p * 32 + lane] = (sum[p][0] + sum[p][1]) + (sum[p][2] + sum[p][3]);
  __syncthreads();

  float factor[kPPT];
#pragma unroll
  for (int p = 0; p < kPPT; ++p) {
    float row_sum = 0.0f;
#pragma unroll
    for (int k = 0; k < kWarps; ++k) row_sum += red_sum[k][p * 32 + lane];
    factor[p] = Math::pixel_factor(row_sum, s);
  }
#pragma unroll
  for (int i = 0; i < kCPT; i += 4) {
    float4 b4 = *reinterpret_cast<float4 const*>(b_s + c0 + i);
    float bf[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (!kFull && c0 + i + j >= C) continue;
#pragma unroll
      for (int p = 0; p < kPPT; ++p)
        if (active[p])
          Mem::store(y + base[p] + (c0 + i + j) * HW, from_float<T>(Math::output(v[p][i + j], factor[p], bf[j], s)));
    }
  }
}

// kFull is a kernel parameter rather than a branch inside one kernel, so the predicated variant's
// per-load address registers do not raise the register count (and cut the occupancy) of the full one.
template <typename T, int kWarps, int kCPT, int kPPT, int kMinBlocks, typename Math, typename Mem, bool kFull>
__global__ void __launch_bounds__(32 * kWarps, kMinBlocks)
    register_resident(int P, int C, int HW, T const* __restrict__ z, float const* __restrict__ conv_b,
                      float const* __restrict__ b, float s, T* __restrict__ y) {
  static_assert(kCPT % 4 == 0, "constants are read from shared memory as float4");
  __shared__ __align__(16) float cb_s[kWarps * kCPT];
  __shared__ __align__(16) float b_s[kWarps * kCPT];
  __shared__ float red_max[kWarps][32 * kPPT];
  __shared__ float red_sum[kWarps][32 * kPPT];
  register_resident_body<kFull, T, kWarps, kCPT, kPPT, Math, Mem>(P, C, HW, z, conv_b, b, s, y, cb_s, b_s, red_max,
                                                                  red_sum);
}

// Diagnostic, not a candidate: the register-resident kernel's loads and stores with no math (y = z).
// Its time is the floor for this access pattern; the gap to the device copy is the cost of the
// unaligned, plane-strided rows themselves. Needs C == kWarps * kCPT exactly.
template <typename T, int kWarps, int kCPT>
__global__ void __launch_bounds__(32 * kWarps)
    pattern_copy(int P, int C, int HW, T const* __restrict__ z, T* __restrict__ y) {
  int lane = threadIdx.x % 32, c0 = (threadIdx.x / 32) * kCPT;
  bool active;
  int64_t base = pixel_base(blockIdx.x * 32 + lane, P, C, HW, active);
  T v[kCPT];
#pragma unroll
  for (int i = 0; i < kCPT; ++i) v[i] = z[base + (c0 + i) * HW];
  if (!active) return;
#pragma unroll
  for (int i = 0; i < kCPT; ++i) y[base + (c0 + i) * HW] = v[i];
}

// ---------------------------------------------------------------------------------------------
// Host side.

unsigned ceil_div(int64_t a, int64_t b) { return unsigned((a + b - 1) / b); }

template <typename T>
struct Problem {
  int N, C, HW, P;
  size_t elems;
  T* z;
  float* conv_b;
  float* b;
  float s;
};

template <typename T>
struct Candidate {
  std::string name;
  bool accurate;  // tolerance class for fp32
  // Launches into `out`; returns false (nothing launched) when the problem does not fit.
  std::function<bool(Problem<T> const&, T*)> launch;
};

template <typename T, int kPix, typename Math>
bool launch_streaming(Problem<T> const& p, T* out) {
  softmax_epilogue_nchw<T, kPix, Math><<<ceil_div(p.P, kPix), kBlockThreads>>>(p.N, p.C, p.HW, p.z, p.conv_b, p.b,
                                                                              p.s, out);
  return true;
}

template <typename T, int kWarps, typename Math>
bool launch_stream3(Problem<T> const& p, T* out) {
  stream3<T, kWarps, Math><<<ceil_div(p.P, 32), 32 * kWarps, 2 * p.C * sizeof(float)>>>(p.P, p.C, p.HW, p.z,
                                                                                        p.conv_b, p.b, p.s, out);
  return true;
}

template <typename T, int kWarps, int kChunk, int kMinBlocks, typename Math>
bool launch_chunk2(Problem<T> const& p, T* out) {
  chunk2<T, kWarps, kChunk, kMinBlocks, Math><<<ceil_div(p.P, 32), 32 * kWarps, 2 * p.C * sizeof(float)>>>(
      p.P, p.C, p.HW, p.z, p.conv_b, p.b, p.s, out);
  return true;
}

template <typename T, int kWarps, int kCPT, int kPPT, int kMinBlocks, typename Math, typename Mem = MemDefault>
bool launch_register_resident(Problem<T> const& p, T* out) {
  if (p.C > kWarps * kCPT) return false;
  dim3 grid(ceil_div(p.P, 32 * kPPT)), block(32 * kWarps);
  if (p.C == kWarps * kCPT)
    register_resident<T, kWarps, kCPT, kPPT, kMinBlocks, Math, Mem, true>
        <<<grid, block>>>(p.P, p.C, p.HW, p.z, p.conv_b, p.b, p.s, out);
  else
    register_resident<T, kWarps, kCPT, kPPT, kMinBlocks, Math, Mem, false>
        <<<grid, block>>>(p.P, p.C, p.HW, p.z, p.conv_b, p.b, p.s, out);
  return true;
}

template <typename T>
bool launch_shipped(Problem<T> const& p, T* out) {
  CK_STATUS(launch_nchw<T>(p.N, p.C, p.HW, p.z, p.conv_b, p.b, p.s, out, nullptr));
  return true;
}

template <typename T, int kPix, int kTPP, StagedNchwStore kStore = StagedNchwStore::kDirect>
bool launch_staged(Problem<T> const& p, T* out) {
  using Tile = StagedNchwTile<T, kPix, kTPP, kStore>;
  if (Tile::smem_bytes(p.C) > 227 * 1024) return false;
  CK_STATUS(launch_nchw_staged<Tile>(p.N, p.C, p.HW, p.z, p.conv_b, p.b, p.s, out, nullptr));
  return true;
}

// In place (y = z, the API allows it): the harness fills `out` with a copy of z before the checked
// launch, and the timed launches rewrite it.
template <typename T>
bool launch_shipped_inplace(Problem<T> const& p, T* out) {
  CK_STATUS(launch_nchw<T>(p.N, p.C, p.HW, out, p.conv_b, p.b, p.s, out, nullptr));
  return true;
}

template <typename T>
std::vector<Candidate<T>> candidates() {
  // The baseline is what launch_nchw ships for this dtype (the staged kernel where it fits); every
  // other output is compared with it. The streaming kernel is the fallback launch_nchw keeps.
  constexpr bool kF32 = sizeof(T) == 4;
  using Base = std::conditional_t<kF32, AccurateMath, MufuMath>;
  constexpr int kBasePix = kF32 ? 32 : 64;
  return {
      {"shipped_launch_nchw", false, launch_shipped<T>},
      {kF32 ? "stream_nchw32_acc" : "stream_nchw64_mufu", kF32, launch_streaming<T, kBasePix, Base>},
      {"staged_p128_t2", false, launch_staged<T, 128, 2>},
      {"staged_p160_t2", false, launch_staged<T, 160, 2>},
      {"staged_p192_t1", false, launch_staged<T, 192, 1>},
      {"staged_p192_t2", false, launch_staged<T, 192, 2>},
      {"staged_p256_t2", false, launch_staged<T, 256, 2>},
      {"staged_p64_t4", false, launch_staged<T, 64, 4>},
      {"inplace_shipped", false, launch_shipped_inplace<T>},
      {"staged_p160_t2_owned", false, launch_staged<T, 160, 2, StagedNchwStore::kOwnedSectors>},
      {"staged_p192_t2_owned", false, launch_staged<T, 192, 2, StagedNchwStore::kOwnedSectors>},
      {"staged_p256_t2_owned", false, launch_staged<T, 256, 2, StagedNchwStore::kOwnedSectors>},
      {"stream3_mufu", false, launch_stream3<T, 8, FoldedMufu>},
      // kMinBlocks = 6: 40 registers, no spills (56 without the cap -> 4 blocks per SM).
      {"chunk2_c16_mufu", false, launch_chunk2<T, 8, 16, 6, FoldedMufu>},
      // Register-resident, 256 threads, 16 channels per thread. kMinBlocks = 6 caps registers at 40
      // (6 blocks, 48 warps per SM; without the cap ptxas takes 48 -> 5 blocks), no spills.
      {"reg_w8_c16_mufu", false, launch_register_resident<T, 8, 16, 1, 6, FoldedMufu>},
      {"reg_w8_c16_acc", true, launch_register_resident<T, 8, 16, 1, 6, FoldedAccurate>},
      // Occupancy probe: 32 registers, full 64 warps per SM, at the price of a 4-byte spill.
      {"reg_w8_c16_mufu_lb8", false, launch_register_resident<T, 8, 16, 1, 8, FoldedMufu>},
      // Two pixels per thread: 32 loads in flight per thread, 64 registers, 4 blocks (32 warps) per SM.
      {"reg_w8_c16_px2_mufu", false, launch_register_resident<T, 8, 16, 2, 4, FoldedMufu>},
      // 128-thread blocks: 32 channels per thread, 64 registers, 8 blocks (32 warps) per SM; finer
      // block granularity and half the warps per barrier.
      {"reg_w4_c32_mufu", false, launch_register_resident<T, 4, 32, 1, 8, FoldedMufu>},
      {"reg_w8_c16_mufu_cs", false, launch_register_resident<T, 8, 16, 1, 6, FoldedMufu, MemStreaming>},
      {"reg_w8_c16_mufu_na", false, launch_register_resident<T, 8, 16, 1, 6, FoldedMufu, MemNoAllocate>},
  };
}

char const* dtype_name(float) { return "fp32"; }
char const* dtype_name(__nv_bfloat16) { return "bf16"; }

float host_float(float v) { return v; }
float host_float(__nv_bfloat16 v) {  // bit-level, so it does not depend on host support in cuda_bf16.h
  uint16_t bits;
  std::memcpy(&bits, &v, 2);
  uint32_t f = uint32_t(bits) << 16;
  float out;
  std::memcpy(&out, &f, 4);
  return out;
}

// Median of 30 timed launches after 5 warm-ups; each launch is timed on its own.
template <typename F>
float median_ms(F&& launch, char const* what) {
  cudaEvent_t start, stop;
  CK(cudaEventCreate(&start));
  CK(cudaEventCreate(&stop));
  for (int i = 0; i < 5; ++i) {
    launch();
    CK_LAUNCH(what);
  }
  std::vector<float> t;
  for (int i = 0; i < 30; ++i) {
    CK(cudaEventRecord(start));
    launch();
    CK_LAUNCH(what);
    CK(cudaEventRecord(stop));
    CK(cudaEventSynchronize(stop));
    float ms;
    CK(cudaEventElapsedTime(&ms, start, stop));
    t.push_back(ms);
  }
  CK(cudaEventDestroy(start));
  CK(cudaEventDestroy(stop));
  std::sort(t.begin(), t.end());
  return 0.5f * (t[14] + t[15]);
}

template <typename T>
float device_max_abs_diff(T const* a, T const* b, size_t n, unsigned* d_bits) {
  CK(cudaMemset(d_bits, 0, sizeof(unsigned)));
  max_abs_diff<<<1024, 256>>>(a, b, n, d_bits);
  CK_LAUNCH("max_abs_diff");
  unsigned bits;
  CK(cudaMemcpy(&bits, d_bits, sizeof(unsigned), cudaMemcpyDeviceToHost));
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

// The baseline itself against a float64 evaluation of the formula, on the first and last image
// (every pixel of both, so the partial last block is covered).
template <typename T>
double baseline_vs_host(Problem<T> const& p, T const* y_ref) {
  size_t img = size_t(p.C) * p.HW;
  std::vector<T> zh(img), yh(img);
  std::vector<float> cb(p.C), bh(p.C);
  CK(cudaMemcpy(cb.data(), p.conv_b, p.C * sizeof(float), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(bh.data(), p.b, p.C * sizeof(float), cudaMemcpyDeviceToHost));
  double worst = 0.0;
  std::vector<double> l(p.C);
  for (int n : {0, p.N - 1}) {
    CK(cudaMemcpy(zh.data(), p.z + n * img, img * sizeof(T), cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(yh.data(), y_ref + n * img, img * sizeof(T), cudaMemcpyDeviceToHost));
    for (int hw = 0; hw < p.HW; ++hw) {
      double mx = -HUGE_VAL, sum = 0.0;
      for (int c = 0; c < p.C; ++c) mx = std::max(mx, l[c] = double(host_float(zh[size_t(c) * p.HW + hw])) + cb[c]);
      for (int c = 0; c < p.C; ++c) sum += std::exp(l[c] - mx);
      for (int c = 0; c < p.C; ++c) {
        double ref = 1.0 / (1.0 + std::exp(-double(p.s) * (std::exp(l[c] - mx) / sum + bh[c])));
        double d = std::fabs(double(host_float(yh[size_t(c) * p.HW + hw])) - ref);
        worst = std::max(worst, std::isnan(d) ? HUGE_VAL : d);
      }
    }
  }
  return worst;
}

int env_int(char const* name, int fallback) {
  char const* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

// TUNE_ONLY="a,b": run only candidates whose name contains one of the substrings (the baseline always).
bool selected(std::string const& name) {
  char const* only = std::getenv("TUNE_ONLY");
  if (!only || !*only) return true;
  std::string list = only;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t end = list.find(',', pos);
    if (end == std::string::npos) end = list.size();
    std::string part = list.substr(pos, end - pos);
    if (!part.empty() && name.find(part) != std::string::npos) return true;
    pos = end + 1;
  }
  return false;
}

template <typename T>
bool run_dtype(uint32_t seed) {
  constexpr bool kF32 = sizeof(T) == 4;
  char const* dt = dtype_name(T{});
  Problem<T> p{};
  p.N = env_int("TUNE_N", 128);
  p.C = env_int("TUNE_C", 128);
  int side = env_int("TUNE_HW_SIDE", 129);
  p.HW = side * side;
  p.P = p.N * p.HW;
  p.elems = size_t(p.N) * p.C * p.HW;
  p.s = 1.7f;
  if (int64_t(p.C) * p.HW >= (int64_t(1) << 31) || int64_t(p.N) * p.HW >= (int64_t(1) << 31)) {
    std::fprintf(stderr, "problem too large for the candidates' 32-bit in-image offsets\n");
    std::exit(2);
  }
  size_t bytes = p.elems * sizeof(T);
  T *y_ref, *y;
  unsigned* d_bits;
  CK(cudaMalloc(&p.z, bytes));
  CK(cudaMalloc(&y_ref, bytes));
  CK(cudaMalloc(&y, bytes));
  CK(cudaMalloc(&p.conv_b, p.C * sizeof(float)));
  CK(cudaMalloc(&p.b, p.C * sizeof(float)));
  CK(cudaMalloc(&d_bits, sizeof(unsigned)));
  init_uniform<<<4096, 256>>>(p.z, p.elems, seed, -4.0f, 4.0f);
  CK_LAUNCH("init z");
  init_uniform<<<1, 128>>>(p.conv_b, size_t(p.C), seed + 1, -1.0f, 1.0f);
  CK_LAUNCH("init conv_b");
  init_uniform<<<1, 128>>>(p.b, size_t(p.C), seed + 2, -1.0f, 1.0f);
  CK_LAUNCH("init b");
  CK(cudaDeviceSynchronize());

  // Tolerances against the baseline. fp32: 1e-5 for the accurate policy, 2e-5 for MUFU (its ex2/rcp
  // approximations are ~2^-22 relative). bf16: below 2^-7, i.e. at most one bf16 ulp in [0.5, 1) --
  // a rounding flip between the two math policies.
  auto tolerance = [&](bool accurate) { return kF32 ? (accurate ? 1e-5f : 2e-5f) : 0.0078125f; };
  double gb = 2.0 * bytes / 1e9;
  bool ok = true;

  std::vector<Candidate<T>> cands = candidates<T>();
  CK(cudaMemset(y_ref, 0xff, bytes));
  cands[0].launch(p, y_ref);
  CK_LAUNCH(cands[0].name.c_str());
  CK(cudaDeviceSynchronize());
  double host_err = baseline_vs_host(p, y_ref);
  float host_tol = kF32 ? 1e-5f : 4e-3f;
  std::printf("%s %s vs float64 host reference (images 0 and N-1): max abs diff %.3g (%s)\n", dt,
              cands[0].name.c_str(), host_err, host_err < host_tol ? "ok" : "FAIL");
  ok &= host_err < host_tol;

  // Correctness first, every selected candidate once on a NaN-poisoned output.
  std::vector<std::pair<std::string, std::function<void()>>> timed;
  std::vector<std::string> verdicts;
  timed.push_back({"copy_floor", [&] { CK(cudaMemcpyAsync(y, p.z, bytes, cudaMemcpyDeviceToDevice)); }});
  verdicts.push_back("-");
  if (p.C == 8 * 16) {  // pattern_copy has no channel predicates
    timed.push_back({"pattern_copy_floor", [&] { pattern_copy<T, 8, 16><<<ceil_div(p.P, 32), 256>>>(p.P, p.C, p.HW, p.z, y); }});
    verdicts.push_back("-");
  }
  for (Candidate<T> const& c : cands) {
    if (&c != &cands[0] && !selected(c.name)) continue;
    if (c.name.rfind("inplace", 0) == 0)  // in place: y starts as a copy of z
      CK(cudaMemcpy(y, p.z, bytes, cudaMemcpyDeviceToDevice));
    else
      CK(cudaMemset(y, 0xff, bytes));  // NaN poison: an element left unwritten fails the comparison
    if (!c.launch(p, y)) {
      std::printf("%-5s %-26s skipped (does not fit)\n", dt, c.name.c_str());
      continue;
    }
    CK_LAUNCH(c.name.c_str());
    CK(cudaDeviceSynchronize());
    float diff = device_max_abs_diff(y, y_ref, p.elems, d_bits);
    bool pass = diff < tolerance(c.accurate);
    ok &= pass;
    char verdict[64];
    std::snprintf(verdict, sizeof verdict, "%10.3g %-7s", diff, pass ? "ok" : "FAIL");
    timed.push_back({c.name, [&p, &c, y] { c.launch(p, y); }});
    verdicts.push_back(verdict);
  }
  // Then kRounds interleaved rounds (each a median of 30 launches), so a drift in clocks or memory
  // state hits every kernel alike; reported: the median round and the spread.
  constexpr int kRounds = 5;
  std::vector<std::vector<float>> rounds(timed.size());
  for (int r = 0; r < kRounds; ++r)
    for (size_t i = 0; i < timed.size(); ++i) rounds[i].push_back(median_ms(timed[i].second, timed[i].first.c_str()));
  std::printf("%-5s %-26s %9s %8s %8s %10s %-7s %8s %7s\n", "dtype", "name", "median_ms", "min", "max", "maxdiff",
              "verdict", "GB/s", "vs_base");
  float base_ms = 0.0f;
  for (size_t i = 0; i < timed.size(); ++i) {
    std::vector<float> t = rounds[i];
    std::sort(t.begin(), t.end());
    float ms = t[kRounds / 2];
    if (timed[i].first == cands[0].name) base_ms = ms;
    std::printf("%-5s %-26s %9.4f %8.4f %8.4f %s %8.0f", dt, timed[i].first.c_str(), ms, t.front(), t.back(),
                verdicts[i].c_str(), gb / (ms * 1e-3));
    if (base_ms > 0.0f) std::printf(" %6.2fx", base_ms / ms);
    std::printf("\n");
  }
  std::fflush(stdout);

  CK(cudaFree(p.z));
  CK(cudaFree(y_ref));
  CK(cudaFree(y));
  CK(cudaFree(p.conv_b));
  CK(cudaFree(p.b));
  CK(cudaFree(d_bits));
  return ok;
}

}  // namespace tune

int main() {
  int dev;
  cudaDeviceProp prop;
  CK(cudaGetDevice(&dev));
  CK(cudaGetDeviceProperties(&prop, dev));
  std::printf("device: %s, %d SMs, L2 %d MB; N=%d C=%d HW=%d^2, s=1.7, z ~ U[-4,4]\n", prop.name,
              prop.multiProcessorCount, prop.l2CacheSize >> 20, tune::env_int("TUNE_N", 128),
              tune::env_int("TUNE_C", 128), tune::env_int("TUNE_HW_SIDE", 129));
  bool ok = tune::run_dtype<float>(12345u);
  ok &= tune::run_dtype<__nv_bfloat16>(67890u);
  std::printf("%s\n", ok ? "all candidates within tolerance" : "SOME CHECKS FAILED");
  return ok ? 0 : 1;
}
