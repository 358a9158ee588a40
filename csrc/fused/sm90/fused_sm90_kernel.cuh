// FusedSm90Kernel — the Hopper (sm_90a) fused kernel: a persistent, warp-
// specialised implicit GEMM over the phase decomposition with the softmax
// epilogue run from registers.
//
// One CTA per SM, three warpgroups:
//   * a producer warpgroup gathers A (pixels x [tap, Cin chunk]) from NHWC x with
//     16-byte cp.async (zero-fill for taps outside the input and padded
//     channels) into a ring of 128-byte-swizzled stages;
//   * two consumer warpgroups each own every other tile, run its k-blocks on
//     WGMMA, then its epilogue, so one warpgroup's softmax and stores overlap the
//     other's tensor-core work. Their mainloops run concurrently when the ring is
//     deeper than a tile's k-blocks, else they take turns ("ping-pong").
// Each CTA serves one phase (phase_schedule.h) and keeps that phase's packed
// filter resident in shared memory, loaded once: only A streams.
// kSiblingPair (NCHW output, stride_w == 2): CTAs run in clusters of two, rank r
// serving column phase r_w = r of the same row phase and the same tiles; the
// epilogue swaps half of each tile with the sibling so that each CTA stores both
// phases (consecutive output columns) of half the channels
// (SiblingPairNchwEpilogue).
//
// K layout of a phase GEMM: k-block kb = tap * cin_blocks + cb covers one tap
// (th, tw) and kKBlock input channels [cb*kKBlock, (cb+1)*kKBlock), 128 bytes
// per row. A row of a stage is one pixel's 128 bytes; B is stored the same way,
// one [kTileN x 128 B] block per k-block.
#pragma once

#include <cstdint>

#include "cute/arch/cluster_sm90.hpp"
#include "cute/tensor.hpp"
#include "cute/atom/mma_atom.hpp"
#include "cutlass/arch/barrier.h"
#include "cutlass/arch/reg_reconfig.h"
#include "cutlass/bfloat16.h"
#include "cutlass/half.h"
#include "cutlass/tfloat32.h"

#include "fused/sm90/phase_schedule.h"
#include "fused/sm90/plain_store_epilogue.cuh"
#include "fused/sm90/sibling_pair_nchw_epilogue.cuh"
#include "fused/sm90/softmax_register_epilogue.cuh"

namespace fct::sm90 {

constexpr int kMaxStages = 16;
constexpr int kWarpgroupThreads = 128;
constexpr int kThreads = 3 * kWarpgroupThreads;
constexpr int kRowBytes = 128;  // one k-block row: the SW128 swizzle atom width

// Element: the storage type of x, w and y. MmaElement: what WGMMA reads (fp32
// data runs as TF32: the tensor cores use its top 19 bits). kSoftmax = false
// swaps in the plain store epilogue (benchmark baseline).
template <typename Element_, int kTileN_, bool kSoftmax_ = true, bool kSiblingPair_ = false>
struct Sm90Traits {
  using Element = Element_;
  using MmaElement = std::conditional_t<std::is_same_v<Element, float>, cutlass::tfloat32_t,
                                        std::conditional_t<std::is_same_v<Element, __half>, cutlass::half_t,
                                                           cutlass::bfloat16_t>>;
  static constexpr int kTileN = kTileN_;
  static constexpr bool kSoftmax = kSoftmax_;
  static constexpr bool kSiblingPair = kSiblingPair_;
  static_assert(!kSiblingPair || kSoftmax, "sibling pairs exist for the softmax epilogue only");
  static constexpr int kGroupCtas = kSiblingPair ? 2 : 1;  // CTAs per group (cluster)
  // One consumer warpgroup holds kTileM x kTileN fp32 accumulators
  // (kTileM * kTileN / 128 registers per thread). 128-row tiles (two wgmma
  // chains per warpgroup) measured slower (benchmarks/NOTES.md, v4).
  static constexpr int kTileM = 64;
  static constexpr int kKBlock = kRowBytes / int(sizeof(Element));  // elements per k-block row
  static constexpr int kVec = 16 / int(sizeof(Element));           // elements per cp.async
  static constexpr int kChunks = kRowBytes / 16;                    // cp.async per row
  static constexpr int kStageBytes = kTileM * kRowBytes;
  static constexpr int kBBlockBytes = kTileN * kRowBytes;

  using MmaOp = decltype(cute::SM90::GMMA::ss_op_selector<MmaElement, MmaElement, float,
                                                          cute::Shape<cute::Int<kTileM>, cute::Int<kTileN>,
                                                                      cute::Int<kKBlock>>>());
  using TiledMma = decltype(cute::make_tiled_mma(MmaOp{}));
  using SmemLayoutA = decltype(cute::tile_to_shape(cute::GMMA::Layout_K_SW128_Atom<MmaElement>{},
                                                   cute::Shape<cute::Int<kTileM>, cute::Int<kKBlock>>{}));
  using SmemLayoutB = decltype(cute::tile_to_shape(cute::GMMA::Layout_K_SW128_Atom<MmaElement>{},
                                                   cute::Shape<cute::Int<kTileN>, cute::Int<kKBlock>>{}));
  using Epilogue = std::conditional_t<
      kSiblingPair, SiblingPairNchwEpilogue<Element, kTileM, kTileN>,
      std::conditional_t<kSoftmax, SoftmaxRegisterEpilogue<Element, kTileM, kTileN>,
                         PlainStoreEpilogue<Element, kTileM, kTileN>>>;
  static_assert(cute::cosize_v<SmemLayoutA> * sizeof(Element) == kStageBytes);
  static_assert(cute::cosize_v<SmemLayoutB> * sizeof(Element) == kBBlockBytes);
};

struct Sm90Params {
  PhaseSchedule sched;
  void const* x;         // [N][H][W][Cin_pad]
  void const* w_packed;  // [Cin_pad][kH][kW][Cout_pad]
  OutputGeometry out;
  float const* conv_b;   // may be null
  float const* b;
  float s;
  int N, H, W, Cin_pad, kH, kW, Cout_pad, stride_h, stride_w;
  int cin_blocks;        // ceil(Cin_pad / kKBlock)
  int stages;            // A ring depth, <= kMaxStages
  int b_offset;          // shared-memory byte offsets (from the 1024-aligned base)
  int bias_offset;
  int staging_offset;
  int ordered;           // consumers take turns (required when stages <= kblocks)
  int debug;             // tuning only (FCT_SM90_DEBUG): 1 no epilogue, 2 no A loads
  int barrier_offset;
  int exchange_offset;   // kSiblingPair: tile halves received from the sibling CTA
};

// Byte offset of (row, 16-byte chunk) inside a 128-byte-swizzled block: the same
// Swizzle<3,4,3> that GMMA's K-major SW128 layout applies to the address bits.
__device__ __forceinline__ uint32_t swizzle_128b(int row, int chunk) {
  return uint32_t(row * kRowBytes + ((chunk ^ (row & 7)) << 4));
}

__device__ __forceinline__ void cp_async_16(uint32_t dst, void const* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}

__device__ __forceinline__ float round_tf32(float v) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(v));
  return __uint_as_float(r);
}
template <typename T>
__device__ __forceinline__ T mma_operand(T v) {
  return v;
}
template <>
__device__ __forceinline__ float mma_operand<float>(float v) {
  return round_tf32(v);
}

template <class Traits>
__global__ void __launch_bounds__(kThreads, 1) fused_sm90_kernel(Sm90Params const __grid_constant__ params) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using namespace cute;
  using Element = typename Traits::Element;
  using MmaElement = typename Traits::MmaElement;
  constexpr int kTileM = Traits::kTileM, kTileN = Traits::kTileN, kKBlock = Traits::kKBlock;
  constexpr int kVec = Traits::kVec, kChunks = Traits::kChunks;

  extern __shared__ char smem_raw[];
  // SW128 needs 1024-byte-aligned blocks; the launch adds 1 KB of slack. The
  // offset is added to the array itself, not through an integer round trip, so
  // that the compiler still knows every pointer below is shared memory (through
  // uintptr_t its loads and stores were generic LD/ST with 64-bit addresses).
  char* smem = smem_raw + ((1024 - (cute::cast_smem_ptr_to_uint(smem_raw) & 1023)) & 1023);
  char* smem_a = smem;
  char* smem_b = smem + params.b_offset;
  float* cb2 = reinterpret_cast<float*>(smem + params.bias_offset);
  float* bt = cb2 + kTileN;
  float* stage_buf = reinterpret_cast<float*>(smem + params.staging_offset);
  uint64_t* full_bar = reinterpret_cast<uint64_t*>(smem + params.barrier_offset);
  uint64_t* empty_bar = full_bar + kMaxStages;
  // turn_bar[c]: consumer c has passed every full-barrier wait of one more tile.
  uint64_t* turn_bar = empty_bar + kMaxStages;
  // exchange_bar[2c + buf]: the sibling has written consumer c's exchange buffer
  // buf (kSiblingPair only).
  uint64_t* exchange_bar = turn_bar + 2;

  int const tid = threadIdx.x;
  int const stages = params.stages;

  // This CTA's phase and tiles. Sibling pairs (clusters of two) share the
  // tiles of their row phase and take column phase r_w = rank; pixels
  // are indexed over the wider column phase (r_w = 0), so both siblings' tiles
  // cover the same output pixels (r_w = 1 masks the column past the row end).
  int const group = int(blockIdx.x) / Traits::kGroupCtas;
  int const rank = int(blockIdx.x) % Traits::kGroupCtas;
  int phase_idx = 0;
  while (phase_idx + Traits::kGroupCtas < params.sched.count &&
         group >= params.sched.phase[phase_idx].cta_begin + params.sched.phase[phase_idx].ctas)
    phase_idx += Traits::kGroupCtas;
  PhaseInfo const& grid_ph = params.sched.phase[phase_idx];
  PhaseInfo const& ph = params.sched.phase[phase_idx + rank];
  // Tiles are dealt round-robin over the phase's CTAs (groups): at any time the
  // CTAs of a phase work on neighbouring tiles and read overlapping input rows.
  // (Predicted to help NCHW stores fill DRAM pages together; measured neutral.)
  int const local = group - grid_ph.cta_begin;
  int const pixel_end = params.N * grid_ph.rows * grid_ph.cols;  // < 2^31, checked on the host
  int const phase_tiles = (pixel_end + kTileM - 1) / kTileM;
  int const num_tiles = local < phase_tiles ? (phase_tiles - local + grid_ph.ctas - 1) / grid_ph.ctas : 0;
  int const tile_stride = grid_ph.ctas * kTileM;  // pixels from one of this CTA's tiles to its next
  int const pixel_begin = local * kTileM;
  int taps_w = ph.taps_w;
  // A phase with no taps (e.g. k < s) still runs one k-block, of zeros, so that
  // every tile takes the same wgmma path and the accumulators are only ever
  // defined by wgmma (ordinary writes to them serialise the wgmma chain, C7515).
  bool const no_taps = ph.taps_h * taps_w == 0;
  int kblocks = no_taps ? 1 : ph.taps_h * taps_w * params.cin_blocks;

  if (tid == 0) {
    for (int st = 0; st < stages; ++st) {
      cutlass::arch::ClusterBarrier::init(&full_bar[st], kWarpgroupThreads);  // every producer thread's cp.async
      cutlass::arch::ClusterBarrier::init(&empty_bar[st], 4);  // one arrive per warp of the consuming warpgroup
    }
    for (int c = 0; c < 2; ++c) cutlass::arch::ClusterBarrier::init(&turn_bar[c], kWarpgroupThreads);
    if constexpr (Traits::kSiblingPair)
      for (int c = 0; c < 4; ++c) cutlass::arch::ClusterBarrier::init(&exchange_bar[c], kWarpgroupThreads);
    cutlass::arch::fence_barrier_init();
  }
  prescale_bias(cb2, bt, kTileN, params.out.Cout, params.conv_b, params.b, params.s, tid, kThreads);

  // The phase's filter, once: B[n][kb-row] = w_packed[cin][q_h + s_h*th][q_w + s_w*tw][n],
  // read as 16-byte vectors along n (Cout_pad is a multiple of 8) and written
  // transposed into the swizzled blocks.
  {
    using Vec = uint4;
    Element const* w = static_cast<Element const*>(params.w_packed);
    constexpr int kNVecs = kTileN / kVec;
    int total = kblocks * kKBlock * kNVecs;
#pragma unroll 4
    for (int idx = tid; idx < total; idx += kThreads) {
      int n0 = (idx % kNVecs) * kVec;
      int rest = idx / kNVecs;
      int kk = rest % kKBlock;
      int kb = rest / kKBlock;
      int tap = kb / params.cin_blocks, cb = kb - tap * params.cin_blocks;
      int th = tap / taps_w, tw = tap - th * taps_w;
      int cin = cb * kKBlock + kk;
      int r = ph.q_h + params.stride_h * th, c = ph.q_w + params.stride_w * tw;
      Vec v = make_uint4(0, 0, 0, 0);
      if (!no_taps && n0 < params.Cout_pad && cin < params.Cin_pad)
        v = *reinterpret_cast<Vec const*>(w + ((int64_t(cin) * params.kH + r) * params.kW + c) * params.Cout_pad + n0);
      Element const* e = reinterpret_cast<Element const*>(&v);
      char* dst = smem_b + kb * Traits::kBBlockBytes + (kk % kVec) * sizeof(Element);
      CUTLASS_PRAGMA_UNROLL
      for (int u = 0; u < kVec; ++u)
        *reinterpret_cast<Element*>(dst + swizzle_128b(n0 + u, kk / kVec)) = mma_operand(e[u]);
    }
  }
  // Plain stores feed the tensor cores next: make them visible to the async proxy.
  cutlass::arch::fence_view_async_shared();
  __syncthreads();
  // The sibling's barriers must be initialised before anyone signals them.
  if constexpr (Traits::kSiblingPair) cute::cluster_sync();

  int const wg = tid / kWarpgroupThreads;
  int const t = tid % kWarpgroupThreads;

  if (wg == 0) {
    // ---------------------------------------------------------------- producer
    // Register budget: the CTA was launched with 384 x 168 = 64512 registers and
    // setmaxnreg only moves them between warpgroups: 128 x 40 + 256 x 232 = 64512.
    // Asking for more (a 48-register producer was tried) makes the consumers'
    // increase wait forever.
    cutlass::arch::warpgroup_reg_dealloc<40>();
    constexpr int kRowsPerPass = kWarpgroupThreads / kChunks;  // 16 rows, 8 threads per 128-byte row
    constexpr int kPasses = kTileM / kRowsPerPass;
    int const chunk = t % kChunks;
    int const row0 = t / kChunks;
    Element const* x = static_cast<Element const*>(params.x);
    int const per_image = grid_ph.rows * grid_ph.cols;
    int const H = params.H, W = params.W, Cin_pad = params.Cin_pad;
    // This thread's rows are row0 + 16*ps: all share (row & 7), so their
    // swizzled destinations are one offset apart.
    uint32_t const dst0 = cute::cast_smem_ptr_to_uint(smem_a) + swizzle_128b(row0, chunk);
    constexpr uint32_t kPassBytes = kRowsPerPass * kRowBytes;
    // The producer is on the critical path of every k-block: keep its loop free
    // of divisions (ring position and tap/channel-block advance incrementally).
    int stage = 0;
    uint32_t phase = 0;
    for (int tile = 0; tile < num_tiles; ++tile) {
      int m0 = pixel_begin + tile * tile_stride;
      // Per row: the input pixel that tap (0, 0) reads, and a pointer to it.
      int ih0[kPasses], iw0[kPasses];
      Element const* row_ptr[kPasses];
      CUTLASS_PRAGMA_UNROLL
      for (int ps = 0; ps < kPasses; ++ps) {
        int m = m0 + row0 + ps * kRowsPerPass;
        int n = m / per_image, rem = m - n * per_image;
        int i = rem / grid_ph.cols, j = rem - i * grid_ph.cols;
        bool row_ok = m < pixel_end && j < ph.cols;
        ih0[ps] = row_ok ? i + ph.d_h : -(1 << 29);  // an invalid row fails every bounds check
        iw0[ps] = j + ph.d_w;
        row_ptr[ps] = row_ok ? x + ((int64_t(n) * H + ih0[ps]) * W + iw0[ps]) * Cin_pad + chunk * kVec : x;
      }
      int th = 0, tw = 0, cb = 0;
      int64_t tap_offset = 0;  // -(th * W + tw) * Cin_pad + cb * kKBlock
      for (int kb = 0; kb < kblocks; ++kb) {
        bool cin_ok = !no_taps && cb * kKBlock + chunk * kVec < Cin_pad;
        cutlass::arch::ClusterBarrier::wait(&empty_bar[stage], phase ^ 1);
        uint32_t dst = dst0 + stage * Traits::kStageBytes;
        CUTLASS_PRAGMA_UNROLL
        for (int ps = 0; ps < kPasses; ++ps) {
          int ih = ih0[ps] - th, iw = iw0[ps] - tw;
          bool ok = cin_ok && unsigned(ih) < unsigned(H) && unsigned(iw) < unsigned(W);
          Element const* src = ok ? row_ptr[ps] + tap_offset : x;
          if (!(params.debug & 2)) cp_async_16(dst + ps * kPassBytes, src, ok);
        }
        cutlass::arch::cpasync_barrier_arrive_noinc(&full_bar[stage]);
        if (++stage == stages) {
          stage = 0;
          phase ^= 1;
        }
        if (++cb == params.cin_blocks) {
          cb = 0;
          if (++tw == taps_w) {
            tw = 0;
            ++th;
          }
        }
        tap_offset = -(int64_t(th) * W + tw) * Cin_pad + cb * kKBlock;
      }
    }
    // Drain: the CTA must not exit with copies in flight.
    asm volatile("cp.async.wait_all;\n" ::: "memory");
  } else {
    // ---------------------------------------------------------------- consumers
    cutlass::arch::warpgroup_reg_alloc<232>();
    int const consumer = wg - 1;
    typename Traits::TiledMma tiled_mma;
    auto thr_mma = tiled_mma.get_thread_slice(t);
    auto* a_base = reinterpret_cast<MmaElement*>(smem_a);
    auto* b_base = reinterpret_cast<MmaElement*>(smem_b);
    constexpr int kAElems = kTileM * kKBlock, kBElems = kTileN * kKBlock;

    PhaseGrid grid{grid_ph.rows, grid_ph.cols, pixel_end, ph.r_h, ph.r_w};
    EpilogueContext ctx{cb2, bt, params.s, stage_buf + consumer * Traits::Epilogue::kStagingFloats, 1 + consumer};
    if constexpr (Traits::kSiblingPair) {
      ctx.exchange = reinterpret_cast<float4*>(smem + params.exchange_offset) +
                     consumer * 2 * Traits::Epilogue::kExchangeFloat4s;
      ctx.exchange_bar = exchange_bar + 2 * consumer;
      ctx.rank = rank;
    }
    int lane = t % 32;

    for (int k = consumer; k < num_tiles; k += 2) {
      // Parity waits are exact only while a waiter is at most one phase ahead of
      // the barrier: a consumer waiting for slot s needs slot s - stages already
      // filled. With stages > kblocks that follows from the consumer's own
      // previous waits, and the two warpgroups run their mainloops concurrently
      // (two independent wgmma chains). With a shallower ring they take turns:
      // a tile's mainloop starts once the other consumer has seen all of tile
      // k-1's stages filled.
      if (params.ordered && k > 0) cutlass::arch::ClusterBarrier::wait(&turn_bar[consumer ^ 1], ((k - 1) / 2) & 1);
      // Declared per tile (as CUTLASS's persistent kernels do): no value flows
      // from one tile's epilogue into the next tile's wgmma chain.
      Tensor accum = partition_fragment_C(tiled_mma, Shape<Int<kTileM>, Int<kTileN>>{});
      int const slot0 = k * kblocks;
      int stage = slot0 % stages, prev_stage = 0;
      uint32_t phase = (slot0 / stages) & 1;
      warpgroup_fence_operand(accum);
      for (int kb = 0; kb < kblocks; ++kb) {
        cutlass::arch::ClusterBarrier::wait(&full_bar[stage], phase);
        Tensor sA = make_tensor(make_smem_ptr(a_base + stage * kAElems), typename Traits::SmemLayoutA{});
        Tensor sB = make_tensor(make_smem_ptr(b_base + kb * kBElems), typename Traits::SmemLayoutB{});
        Tensor tCrA = thr_mma.make_fragment_A(thr_mma.partition_A(sA));
        Tensor tCrB = thr_mma.make_fragment_B(thr_mma.partition_B(sB));
        warpgroup_fence_operand(accum);
        warpgroup_arrive();
        CUTLASS_PRAGMA_UNROLL
        for (int ks = 0; ks < size<2>(tCrA); ++ks) {
          tiled_mma.accumulate_ = (kb == 0 && ks == 0) ? GMMA::ScaleOut::Zero : GMMA::ScaleOut::One;
          cute::gemm(tiled_mma, tCrA(_, _, ks), tCrB(_, _, ks), accum);
        }
        warpgroup_commit_batch();
        // The previous k-block's MMAs are done reading their stage: hand it back.
        warpgroup_wait<1>();
        warpgroup_fence_operand(accum);
        if (kb > 0 && lane == 0) cutlass::arch::ClusterBarrier::arrive(&empty_bar[prev_stage]);
        prev_stage = stage;
        if (++stage == stages) {
          stage = 0;
          phase ^= 1;
        }
      }
      cutlass::arch::ClusterBarrier::arrive(&turn_bar[consumer]);
      warpgroup_wait<0>();
      warpgroup_fence_operand(accum);
      if (lane == 0) cutlass::arch::ClusterBarrier::arrive(&empty_bar[prev_stage]);
      if (!(params.debug & 1))
        Traits::Epilogue::apply(accum, ctx, params.out, grid, pixel_begin + k * tile_stride, t, k / 2);
    }
  }
  // The sibling writes this CTA's exchange buffers and signals its barriers until
  // its last tile: stay resident until it is done.
  if constexpr (Traits::kSiblingPair) cute::cluster_sync();
#endif
}

}  // namespace fct::sm90
