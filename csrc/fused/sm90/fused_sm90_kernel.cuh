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

#include "fused/sm90/paired_nchw_epilogue.cuh"
#include "fused/sm90/phase_schedule.h"
#include "fused/sm90/plain_store_epilogue.cuh"
#include "fused/sm90/softmax_register_epilogue.cuh"

namespace fct::sm90 {

constexpr int kMaxStages = 16;
constexpr int kWarpgroupThreads = 128;
constexpr int kThreads = 3 * kWarpgroupThreads;
constexpr int kRowBytes = 128;  // one k-block row: the SW128 swizzle atom width

// Element: the storage type of x, w and y. MmaElement: what WGMMA reads (fp32
// data runs as TF32: the tensor cores use its top 19 bits). kSoftmax = false
// swaps in the plain store epilogue (benchmark baseline).
// kPhasesPerTile = 2 (NCHW output, stride_w == 2): a tile computes both column
// phases of its pixels and stores whole sectors (PairedNchwSoftmaxEpilogue); with
// kSplit = 2 a cluster of two CTAs shares each tile, one half of the channels each.
template <typename Element_, int kTileN_, bool kSoftmax_ = true, int kPhasesPerTile_ = 1, int kSplit_ = 1>
struct Sm90Traits {
  using Element = Element_;
  using MmaElement = std::conditional_t<std::is_same_v<Element, float>, cutlass::tfloat32_t,
                                        std::conditional_t<std::is_same_v<Element, __half>, cutlass::half_t,
                                                           cutlass::bfloat16_t>>;
  static constexpr int kTileN = kTileN_;  // channels per CTA
  static constexpr bool kSoftmax = kSoftmax_;
  static constexpr int kPhasesPerTile = kPhasesPerTile_;
  static constexpr int kSplit = kSplit_;
  static_assert(kPhasesPerTile == 1 || (kPhasesPerTile == 2 && kSoftmax), "paired tiles exist for the softmax only");
  static_assert(kSplit == 1 || kPhasesPerTile == 2, "channel split exists for paired tiles only");
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
      kPhasesPerTile == 2, PairedNchwSoftmaxEpilogue<Element, kTileM, kTileN, kSplit>,
      std::conditional_t<kSoftmax_, SoftmaxRegisterEpilogue<Element, kTileM, kTileN>,
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
  int phase_kblocks;     // filter blocks reserved per phase (paired tiles keep two phases)
  int stages;            // A ring depth, <= kMaxStages
  int b_offset;          // shared-memory byte offsets (from the 1024-aligned base)
  int bias_offset;
  int staging_offset;
  int ordered;           // consumers take turns (required when stages <= kblocks)
  int debug;             // tuning only (FCT_SM90_DEBUG): 1 no epilogue, 2 no A loads
  int barrier_offset;
  int exchange_offset;   // kSplit = 2: row statistics from the partner CTA
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

// arr[p] for a run-time p without indexing a register array (which would put it
// in local memory).
template <typename T, int n>
__device__ __forceinline__ T pick(T const (&arr)[n], int p) {
  return p == 0 ? arr[0] : arr[n - 1];
}

template <class Traits>
__global__ void __launch_bounds__(kThreads, 1) fused_sm90_kernel(Sm90Params const __grid_constant__ params) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using namespace cute;
  using Element = typename Traits::Element;
  using MmaElement = typename Traits::MmaElement;
  constexpr int kTileM = Traits::kTileM, kTileN = Traits::kTileN, kKBlock = Traits::kKBlock;
  constexpr int kVec = Traits::kVec, kChunks = Traits::kChunks;
  constexpr int kPhases = Traits::kPhasesPerTile, kSplit = Traits::kSplit;

  extern __shared__ char smem_raw[];
  // SW128 needs 1024-byte-aligned blocks; the launch adds 1 KB of slack.
  char* smem = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  char* smem_a = smem;
  char* smem_b = smem + params.b_offset;
  float* cb2 = reinterpret_cast<float*>(smem + params.bias_offset);
  float* bt = cb2 + kTileN;
  float* stage_buf = reinterpret_cast<float*>(smem + params.staging_offset);
  uint64_t* full_bar = reinterpret_cast<uint64_t*>(smem + params.barrier_offset);
  uint64_t* empty_bar = full_bar + kMaxStages;
  // turn_bar[c]: consumer c has passed every full-barrier wait of one more tile.
  uint64_t* turn_bar = empty_bar + kMaxStages;
  // stats_bar[2c + buf]: the partner CTA's row statistics for consumer c are in
  // exchange buffer buf (kSplit = 2 only).
  uint64_t* stats_bar = turn_bar + 2;

  int const tid = threadIdx.x;
  int const stages = params.stages;

  // This CTA's phase(s) and contiguous tile range. The kSplit CTAs of a group
  // (a cluster) share both; `rank` picks the group's channel slice.
  int const group = int(blockIdx.x) / kSplit;
  int const rank = int(blockIdx.x) % kSplit;
  int phase_idx = 0;
  while (phase_idx + kPhases < params.sched.count &&
         group >= params.sched.phase[phase_idx].cta_begin + params.sched.phase[phase_idx].ctas)
    phase_idx += kPhases;
  // Paired tiles index pixels over the first (widest) column phase.
  PhaseInfo const& ph = params.sched.phase[phase_idx];
  int local = group - ph.cta_begin;
  int64_t const phase_rows = int64_t(params.N) * ph.rows;
  int const pixel_begin = int(local * phase_rows / ph.ctas) * ph.cols;
  int const pixel_end = int((local + 1) * phase_rows / ph.ctas) * ph.cols;
  int const num_tiles = (pixel_end - pixel_begin + kTileM - 1) / kTileM;
  // Per column phase of a tile. A phase with no taps (e.g. k < s) still runs one
  // k-block, of zeros, so that every tile takes the same wgmma path and the
  // accumulators are only ever defined by wgmma (ordinary writes to them
  // serialise the wgmma chain, C7515).
  int taps_w[kPhases], kblocks[kPhases], cols[kPhases], d_w[kPhases];
  bool no_taps[kPhases];
  int tile_kblocks = 0;
  CUTLASS_PRAGMA_UNROLL
  for (int p = 0; p < kPhases; ++p) {
    PhaseInfo const& php = params.sched.phase[phase_idx + p];
    taps_w[p] = php.taps_w;
    cols[p] = php.cols;
    d_w[p] = php.d_w;
    no_taps[p] = php.taps_h * php.taps_w == 0;
    kblocks[p] = no_taps[p] ? 1 : php.taps_h * php.taps_w * params.cin_blocks;
    tile_kblocks += kblocks[p];
  }

  if (tid == 0) {
    for (int st = 0; st < stages; ++st) {
      cutlass::arch::ClusterBarrier::init(&full_bar[st], kWarpgroupThreads);  // every producer thread's cp.async
      cutlass::arch::ClusterBarrier::init(&empty_bar[st], 4);  // one arrive per warp of the consuming warpgroup
    }
    for (int c = 0; c < 2; ++c) cutlass::arch::ClusterBarrier::init(&turn_bar[c], kWarpgroupThreads);
    if constexpr (kSplit > 1)
      for (int c = 0; c < 4; ++c) cutlass::arch::ClusterBarrier::init(&stats_bar[c], kStatsArrivals);
    cutlass::arch::fence_barrier_init();
  }
  prescale_bias(cb2, bt, kTileN, params.out.Cout - rank * kTileN, params.conv_b ? params.conv_b + rank * kTileN : nullptr,
                params.b ? params.b + rank * kTileN : nullptr, params.s, tid, kThreads);

  // The phases' filters, once: B[n][kb-row] = w_packed[cin][q_h + s_h*th][q_w + s_w*tw][n],
  // read as 16-byte vectors along n (Cout_pad is a multiple of 8) and written
  // transposed into the swizzled blocks; phase p's blocks start at block
  // p * phase_kblocks, and this CTA takes channels [rank * kTileN, +kTileN).
  CUTLASS_PRAGMA_UNROLL
  for (int p = 0; p < kPhases; ++p) {
    using Vec = uint4;
    PhaseInfo const& php = params.sched.phase[phase_idx + p];
    Element const* w = static_cast<Element const*>(params.w_packed);
    constexpr int kNVecs = kTileN / kVec;
    int total = kblocks[p] * kKBlock * kNVecs;
    char* phase_b = smem_b + p * params.phase_kblocks * Traits::kBBlockBytes;
#pragma unroll 4
    for (int idx = tid; idx < total; idx += kThreads) {
      int n0 = (idx % kNVecs) * kVec;
      int rest = idx / kNVecs;
      int kk = rest % kKBlock;
      int kb = rest / kKBlock;
      int tap = kb / params.cin_blocks, cb = kb - tap * params.cin_blocks;
      int th = tap / taps_w[p], tw = tap - th * taps_w[p];
      int cin = cb * kKBlock + kk;
      int r = php.q_h + params.stride_h * th, c = php.q_w + params.stride_w * tw;
      int n_global = rank * kTileN + n0;
      Vec v = make_uint4(0, 0, 0, 0);
      if (!no_taps[p] && n_global < params.Cout_pad && cin < params.Cin_pad)
        v = *reinterpret_cast<Vec const*>(w + ((int64_t(cin) * params.kH + r) * params.kW + c) * params.Cout_pad +
                                          n_global);
      Element const* e = reinterpret_cast<Element const*>(&v);
      char* dst = phase_b + kb * Traits::kBBlockBytes + (kk % kVec) * sizeof(Element);
      CUTLASS_PRAGMA_UNROLL
      for (int u = 0; u < kVec; ++u)
        *reinterpret_cast<Element*>(dst + swizzle_128b(n0 + u, kk / kVec)) = mma_operand(e[u]);
    }
  }
  // Plain stores feed the tensor cores next: make them visible to the async proxy.
  cutlass::arch::fence_view_async_shared();
  __syncthreads();
  // The partner's barriers must be initialised before anyone signals them.
  if constexpr (kSplit > 1) cute::cluster_sync();

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
    int const per_image = ph.rows * ph.cols;
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
      int m0 = pixel_begin + tile * kTileM;
      // Not unrolled: the producer has 40 registers.
#pragma unroll 1
      for (int p = 0; p < kPhases; ++p) {
        int const p_cols = pick(cols, p), p_d_w = pick(d_w, p), p_taps_w = pick(taps_w, p);
        int const p_kblocks = pick(kblocks, p);
        bool const p_no_taps = pick(no_taps, p);
        // Per row: the input pixel that tap (0, 0) reads, and a pointer to it.
        int ih0[kPasses], iw0[kPasses];
        Element const* row_ptr[kPasses];
        CUTLASS_PRAGMA_UNROLL
        for (int ps = 0; ps < kPasses; ++ps) {
          int m = m0 + row0 + ps * kRowsPerPass;
          int n = m / per_image, rem = m - n * per_image;
          int i = rem / ph.cols, j = rem - i * ph.cols;
          bool row_ok = m < pixel_end && (kPhases == 1 || j < p_cols);
          ih0[ps] = row_ok ? i + ph.d_h : -(1 << 29);  // an invalid row fails every bounds check
          iw0[ps] = j + p_d_w;
          row_ptr[ps] = row_ok ? x + ((int64_t(n) * H + ih0[ps]) * W + iw0[ps]) * Cin_pad + chunk * kVec : x;
        }
        int th = 0, tw = 0, cb = 0;
        int64_t tap_offset = 0;  // -(th * W + tw) * Cin_pad + cb * kKBlock
        for (int kb = 0; kb < p_kblocks; ++kb) {
          bool cin_ok = !p_no_taps && cb * kKBlock + chunk * kVec < Cin_pad;
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
            if (++tw == p_taps_w) {
              tw = 0;
              ++th;
            }
          }
          tap_offset = -(int64_t(th) * W + tw) * Cin_pad + cb * kKBlock;
        }
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

    PhaseGrid grid{ph.rows, ph.cols, pixel_end, ph.r_h, ph.r_w};
    EpilogueContext ctx{cb2, bt, params.s, stage_buf + consumer * Traits::Epilogue::kStagingFloats, 1 + consumer};
    if constexpr (kSplit > 1) {
      ctx.exchange = reinterpret_cast<float2*>(smem + params.exchange_offset) + consumer * 2 * kPhases * kTileM;
      ctx.exchange_bar = stats_bar + 2 * consumer;
      ctx.rank = rank;
    }
    ctx.col_base = rank * kTileN;
    int lane = t % 32;

    for (int k = consumer; k < num_tiles; k += 2) {
      // Parity waits are exact only while a waiter is at most one phase ahead of
      // the barrier: a consumer waiting for slot s needs slot s - stages already
      // filled. With stages > tile k-blocks that follows from the consumer's own
      // previous waits, and the two warpgroups run their mainloops concurrently
      // (two independent wgmma chains). With a shallower ring they take turns:
      // a tile's mainloop starts once the other consumer has seen all of tile
      // k-1's stages filled.
      if (params.ordered && k > 0) cutlass::arch::ClusterBarrier::wait(&turn_bar[consumer ^ 1], ((k - 1) / 2) & 1);
      // Declared per tile (as CUTLASS's persistent kernels do): no value flows
      // from one tile's epilogue into the next tile's wgmma chain.
      Tensor accum0 = partition_fragment_C(tiled_mma, Shape<Int<kTileM>, Int<kTileN>>{});
      Tensor accum1 = partition_fragment_C(tiled_mma, Shape<Int<kPhases == 2 ? kTileM : 64>, Int<kPhases == 2 ? kTileN : 8>>{});
      int const slot0 = k * tile_kblocks;
      int stage = slot0 % stages, prev_stage = 0;
      uint32_t phase = (slot0 / stages) & 1;
      // One phase's k-blocks into `accum`; the stage of the k-block before is
      // handed back once its MMAs are done, across the phase boundary too.
      auto mainloop = [&](auto& accum, auto phase_index) {
        constexpr int p = decltype(phase_index)::value;
        // Phase 0's last k-block is still in flight: ptxas serialises every
        // wgmma (C7515) if accum1's registers are fenced while it is.
        if constexpr (p > 0) warpgroup_wait<0>();
        MmaElement* phase_b = b_base + p * params.phase_kblocks * kBElems;
        warpgroup_fence_operand(accum);
        // At least one k-block per phase (see kblocks): the loop is a do-while so
        // that the accumulators are defined by wgmma on every path.
        int kb = 0;
        do {
          cutlass::arch::ClusterBarrier::wait(&full_bar[stage], phase);
          Tensor sA = make_tensor(make_smem_ptr(a_base + stage * kAElems), typename Traits::SmemLayoutA{});
          Tensor sB = make_tensor(make_smem_ptr(phase_b + kb * kBElems), typename Traits::SmemLayoutB{});
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
          warpgroup_wait<1>();
          warpgroup_fence_operand(accum);
          if ((p > 0 || kb > 0) && lane == 0) cutlass::arch::ClusterBarrier::arrive(&empty_bar[prev_stage]);
          prev_stage = stage;
          if (++stage == stages) {
            stage = 0;
            phase ^= 1;
          }
        } while (++kb < kblocks[p]);
      };
      mainloop(accum0, Int<0>{});
      if constexpr (kPhases == 2) mainloop(accum1, Int<1>{});
      cutlass::arch::ClusterBarrier::arrive(&turn_bar[consumer]);
      warpgroup_wait<0>();
      warpgroup_fence_operand(accum0);
      if constexpr (kPhases == 2) warpgroup_fence_operand(accum1);
      if (lane == 0) cutlass::arch::ClusterBarrier::arrive(&empty_bar[prev_stage]);
      if (!(params.debug & 1)) {
        if constexpr (kPhases == 2)
          Traits::Epilogue::apply(accum0, accum1, ctx, params.out, grid, pixel_begin + k * kTileM, t, k / 2);
        else
          Traits::Epilogue::apply(accum0, ctx, params.out, grid, pixel_begin + k * kTileM, t);
      }
    }
  }
  // The partner reads nothing from this CTA, but signals its barriers and writes
  // its exchange buffers until its last tile: stay resident until it is done.
  if constexpr (kSplit > 1) cute::cluster_sync();
#endif
}

}  // namespace fct::sm90
