// Host side of the sm90 fused kernel: feasibility on the current device, the
// shared-memory plan, the launch. Instantiated once per variant in
// fused/variants/sm90_*.cu.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <type_traits>

#include <cuda_runtime_api.h>

#include "common/cuda_check.h"
#include "common/device_facts.h"
#include "fused/sm90/fused_sm90_kernel.cuh"
#include "fused/variant.h"
#include "fused_convt_full/api.h"

namespace fct::sm90 {

// full[kMaxStages], empty[kMaxStages], turn[2], exchange[2][2] mbarriers.
constexpr int kBarrierBytes = (2 * kMaxStages + 2 + 4) * 8;

// Whether the kernel has a loadable image on device `dev`; asked once per device,
// since the dispatcher checks on every call.
template <class Traits>
bool kernel_image_loads(int dev) {
  static std::atomic<int> known[64];  // 0 unknown, 1 yes, -1 no
  if (dev < 0 || dev >= 64) return false;
  int k = known[dev].load(std::memory_order_relaxed);
  if (k == 0) {
    cudaFuncAttributes attr;
    k = cudaFuncGetAttributes(&attr, fused_sm90_kernel<Traits>) == cudaSuccess ? 1 : -1;
    if (k < 0) cudaGetLastError();
    known[dev].store(k, std::memory_order_relaxed);
  }
  return k > 0;
}

struct SmemPlan {
  int stages = 0, b_offset = 0, bias_offset = 0, staging_offset = 0, exchange_offset = 0, barrier_offset = 0,
      bytes = 0;
};

// Tuning knob: FCT_SM90_MAX_STAGES caps the A ring (default: plan_smem's choice).
inline int max_stages_setting() {
  static int const cap = [] {
    char const* v = std::getenv("FCT_SM90_MAX_STAGES");
    int n = v ? std::atoi(v) : 0;
    return n >= 2 && n <= kMaxStages ? n : kMaxStages;
  }();
  return cap;
}

// Tuning knob: FCT_SM90_DEBUG bits switch parts of the kernel off to find what
// limits it (1: no epilogue, 2: no A loads). Results are
// then wrong; never set outside profiling.
inline int debug_setting() {
  static int const bits = [] {
    char const* v = std::getenv("FCT_SM90_DEBUG");
    return v ? std::atoi(v) : 0;
  }();
  return bits;
}

// Layout: [A ring | resident filter | bias constants | NCHW staging x2 |
// sibling exchange 2 x 2 | barriers], the A ring and the filter blocks on
// 1024-byte boundaries (SW128 atoms).
template <class Traits>
SmemPlan plan_smem(int max_kblocks, int smem_optin) {
  SmemPlan plan;
  int const bias_bytes = 2 * Traits::kTileN * 4;
  int const staging_bytes = 2 * Traits::Epilogue::kStagingFloats * 4;
  int exchange_bytes = 0;
  if constexpr (Traits::kSiblingPair) exchange_bytes = 2 * 2 * Traits::Epilogue::kExchangeFloat4s * 16;
  int fixed = max_kblocks * Traits::kBBlockBytes + bias_bytes + staging_bytes + exchange_bytes + kBarrierBytes + 1024;
  // No deeper than one tile's k-blocks plus one (at least 4): the two consumers
  // still run their mainloops concurrently (stages > k-blocks), and a deeper
  // ring measured slower on the H100 (bf16 reference problem, 4 k-blocks: NCHW
  // 0.757 ms at 16 stages, 0.688-0.694 at 5, 0.686-0.689 at 4; NHWC 0.572 ->
  // 0.559-0.562 at 5; benchmarks/NOTES.md v8). Sibling pairs (NCHW) stop at
  // the k-blocks (at least 4), so their consumers take turns: with v9's
  // epilogue bf16 NCHW 0.647 -> 0.631 ms at 4 stages, while NHWC is slower there
  // (0.560 -> 0.569; NOTES v9).
  int const useful_stages = std::max(Traits::kSiblingPair ? max_kblocks : max_kblocks + 1, 4);
  plan.stages = std::min({max_stages_setting(), useful_stages, (smem_optin - fixed) / Traits::kStageBytes});
  plan.b_offset = plan.stages * Traits::kStageBytes;
  plan.bias_offset = plan.b_offset + max_kblocks * Traits::kBBlockBytes;
  plan.staging_offset = plan.bias_offset + bias_bytes;
  plan.exchange_offset = plan.staging_offset + staging_bytes;
  plan.barrier_offset = plan.exchange_offset + exchange_bytes;
  plan.bytes = plan.barrier_offset + kBarrierBytes + 1024;
  return plan;
}

// One launch shape for both the occupancy query and the launch: `groups` CTA
// groups of kThreads, `cluster` holding the cluster-size attribute it points to.
template <class Traits>
cudaLaunchConfig_t launch_config(int groups, int smem_bytes, cudaStream_t stream, cudaLaunchAttribute& cluster) {
  cluster.id = cudaLaunchAttributeClusterDimension;
  cluster.val.clusterDim.x = Traits::kGroupCtas;
  cluster.val.clusterDim.y = cluster.val.clusterDim.z = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(groups * Traits::kGroupCtas);
  config.blockDim = dim3(kThreads);
  config.dynamicSmemBytes = smem_bytes;
  config.stream = stream;
  config.attrs = &cluster;
  config.numAttrs = Traits::kSiblingPair ? 1 : 0;
  return config;
}

// The persistent grid in CTA groups: one CTA per SM, or for sibling pairs as
// many clusters of two as the GPU keeps resident at once (0: not even one, e.g.
// a partitioned GPU). Asked once per (device, shared-memory size).
template <class Traits>
int resident_groups(DeviceFacts const& dev, int smem_bytes) {
  if constexpr (!Traits::kSiblingPair) {
    return dev.sms;
  } else {
    static std::mutex mu;
    static std::map<std::pair<int, int>, int> known;
    std::lock_guard<std::mutex> lock(mu);
    auto key = std::make_pair(dev.index, smem_bytes);
    auto it = known.find(key);
    if (it != known.end()) return it->second;
    cudaLaunchAttribute cluster;
    cudaLaunchConfig_t config = launch_config<Traits>(std::max(1, dev.sms / 2), smem_bytes, nullptr, cluster);
    int clusters = 0;
    auto kernel = fused_sm90_kernel<Traits>;
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes) != cudaSuccess ||
        cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) != cudaSuccess) {
      cudaGetLastError();
      clusters = 0;
    }
    known[key] = clusters;
    return clusters;
  }
}

template <class Traits>
PhaseSchedule schedule_for(ConvTransposeProblem const& p, int groups) {
  return Traits::kSiblingPair ? make_paired_schedule(p, groups) : make_phase_schedule(p, groups);
}

template <class Traits>
int cin_blocks(ConvTransposeProblem const& p) {
  return (p.Cin_padded() + Traits::kKBlock - 1) / Traits::kKBlock;
}

template <class Traits>
Status can_implement(ConvTransposeProblem const& p) {
  DeviceFacts dev;
  Status st = current_device_facts(dev);
  if (!st.ok) return Status::error("sm90 kernel: no CUDA device (" + st.message + ")");
  if (dev.cc_major != 9 || dev.cc_minor != 0) return Status::error("sm90 kernel needs a Hopper (sm_90) GPU");
  if (!kernel_image_loads<Traits>(dev.index))
    return Status::error("sm90 kernel has no image for this GPU in this build (add 90a to CMAKE_CUDA_ARCHITECTURES)");
  if constexpr (Traits::kSiblingPair) {
    if (p.out_layout != Layout::kNCHW) return Status::error("sibling pairs are for NCHW output");
    if (p.stride_w != 2) return Status::error("sibling pairs need stride_w == 2");
  } else if (std::is_same_v<typename Traits::Element, float> && p.out_layout == Layout::kNCHW && Traits::kSoftmax) {
    // Measured on the H100 (benchmarks/NOTES.md): one phase per CTA stores half
    // sectors in NCHW, which DRAM reads back before writing (0.26 GB DRAM reads
    // instead of 0.035 GB at N = 32); for fp32 the sm80 kernel is faster then.
    return Status::error("fp32 NCHW output: the sm80 kernel is faster on Hopper (measured)");
  }
  if (p.stride_h * p.stride_w > kMaxPhases)
    return Status::error("stride_h * stride_w > " + std::to_string(kMaxPhases) + " phases");
  if (p.Cout_padded() > Traits::kTileN) return Status::error("Cout does not fit this variant's tile");
  PhaseSchedule sched = schedule_for<Traits>(p, dev.sms / Traits::kGroupCtas);
  for (int i = 0; i < sched.count; ++i)
    // 32-bit pixel indices, with room for one round of tiles past the end.
    if (int64_t(p.N) * sched.phase[i].rows * sched.phase[i].cols >= (int64_t(1) << 31) - (int64_t(1) << 20))
      return Status::error("a phase has >= 2^31 - 2^20 output pixels");
  SmemPlan plan = plan_smem<Traits>(std::max(1, sched.max_taps * cin_blocks<Traits>(p)), dev.smem_optin);
  if (plan.stages >= 2 && resident_groups<Traits>(dev, plan.bytes) < 1)
    return Status::error("a cluster of two CTAs of this size cannot be resident on this GPU");
  if (plan.stages < 2)
    return Status::error("the phase filter (" + std::to_string(sched.max_taps) + " taps x Cin " +
                         std::to_string(p.Cin) + ") does not fit in shared memory next to the A pipeline");
  return Status::success();
}

template <class Traits>
Status launch(ConvTransposeProblem const& p, FusedLaunchArgs const& a) {
  DeviceFacts dev;
  Status st = current_device_facts(dev);
  if (!st.ok) return st;
  Sm90Params params{};
  params.cin_blocks = cin_blocks<Traits>(p);
  int const max_kblocks = std::max(1, phase_geometry(p).max_taps * params.cin_blocks);
  SmemPlan plan = plan_smem<Traits>(max_kblocks, dev.smem_optin);
  int const groups = resident_groups<Traits>(dev, plan.bytes);
  if (groups < 1) return Status::error("sm90 fused kernel: no CTA group can be resident");
  params.sched = schedule_for<Traits>(p, groups);
  if (params.sched.total_ctas == 0) return Status::success();
  params.x = a.x;
  params.w_packed = a.w_packed;
  params.conv_b = a.conv_b;
  params.b = a.b;
  params.s = a.s;
  params.N = p.N;
  params.H = p.H;
  params.W = p.W;
  params.Cin_pad = p.Cin_padded();
  params.kH = p.kH;
  params.kW = p.kW;
  params.Cout_pad = p.Cout_padded();
  params.stride_h = p.stride_h;
  params.stride_w = p.stride_w;
  OutputGeometry& out = params.out;
  out.y = a.y;
  out.Cout = p.Cout;
  out.H_out = p.H_out();
  out.W_out = p.W_out();
  out.stride_h = p.stride_h;
  out.stride_w = p.stride_w;
  out.nchw = p.out_layout == Layout::kNCHW;
  out.pair_store = !out.nchw && p.Cout % 2 == 0 &&
                   reinterpret_cast<uintptr_t>(a.y) % (2 * sizeof(typename Traits::Element)) == 0;

  params.stages = plan.stages;
  params.b_offset = plan.b_offset;
  params.bias_offset = plan.bias_offset;
  params.staging_offset = plan.staging_offset;
  params.debug = debug_setting();
  // Concurrent mainloops need stages > kblocks (see the kernel); FCT_SM90_ORDERED=1 forces turns.
  params.ordered = plan.stages <= max_kblocks || (std::getenv("FCT_SM90_ORDERED") && std::atoi(std::getenv("FCT_SM90_ORDERED")) == 1);
  params.barrier_offset = plan.barrier_offset;
  params.exchange_offset = plan.exchange_offset;

  auto kernel = fused_sm90_kernel<Traits>;
  st = cuda_status(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, plan.bytes),
                   "sm90 fused kernel: cudaFuncSetAttribute");
  if (!st.ok) return st;
  cudaLaunchAttribute cluster;
  cudaLaunchConfig_t config = launch_config<Traits>(params.sched.total_ctas, plan.bytes, a.stream, cluster);
  st = cuda_status(cudaLaunchKernelEx(&config, kernel, params), "sm90 fused kernel launch");
  if (!st.ok) return st;
  return last_launch_status("sm90 fused kernel launch");
}

template <class Traits>
std::string name() {
  using E = typename Traits::Element;
  char const* math = std::is_same_v<E, float> ? "tf32" : std::is_same_v<E, __half> ? "f16" : "bf16";
  return std::string("sm90_persistent_pingpong_") + math + "_" + std::to_string(Traits::kTileM) + "x" +
         std::to_string(Traits::kTileN) + "x" + std::to_string(Traits::kKBlock) +
         (Traits::kSiblingPair ? "_sibling_pair_nchw" : "") + "_resident_filter_softmax";
}

template <typename Element, int kTileN, bool kSiblingPair = false>
FusedVariant make_variant(DType dtype) {
  using Traits = Sm90Traits<Element, kTileN, true, kSiblingPair>;
  return FusedVariant{dtype, kTileN, &name<Traits>, &can_implement<Traits>, &launch<Traits>};
}

}  // namespace fct::sm90
