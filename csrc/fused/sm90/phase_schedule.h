// The phase decomposition (DESIGN section 2) as the sm90 kernel consumes it, and
// the static split of a persistent grid over phases. Host-built, passed to the
// kernel by value.
//
// Output row oh = s*i + r belongs to phase r. Its taps are kh = q + s*t with
// q = (r + p) mod s, t = 0 .. T-1, T = ceil((kH - q) / s), and they read input
// row ih = i + d - t with d = floor((r + p) / s). Same for columns.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "fused_convt_full/api.h"

namespace fct::sm90 {

// More phases than this (stride product > 16) go to the sm80 kernel.
constexpr int kMaxPhases = 16;

struct PhaseInfo {
  int r_h, r_w;      // output phase
  int d_h, d_w;      // input offset of tap 0
  int q_h, q_w;      // filter index of tap 0
  int taps_h, taps_w;
  int rows, cols;    // the phase's output grid (H_r, W_r)
  int pixels;        // N * rows * cols: the phase GEMM's M
  int tiles;         // ceil(pixels / tile_m)
  int cta_begin;     // this phase's CTAs are [cta_begin, cta_begin + ctas)
  int ctas;
};

struct PhaseSchedule {
  int count = 0;
  int total_ctas = 0;
  int max_taps = 0;  // max over phases of taps_h * taps_w
  PhaseInfo phase[kMaxPhases];
};

inline int taps_for(int k, int q, int s) { return q >= k ? 0 : (k - q + s - 1) / s; }
inline int phase_extent(int out, int r, int s) { return r >= out ? 0 : (out - r + s - 1) / s; }

// Each CTA serves one phase only (its weights stay resident in shared memory),
// so the grid is split across phases in proportion to their tiles, at least one
// CTA per non-empty phase. Sibling phases then advance through the same image
// region at the same pace, which keeps their interleaved output writes close in
// time (NCHW rows are shared between phases) and their input rows shared in L2.
inline PhaseSchedule make_phase_schedule(ConvTransposeProblem const& p, int tile_m, int num_sms) {
  PhaseSchedule sched;
  int H_out = p.H_out(), W_out = p.W_out();
  int64_t total_tiles = 0;
  for (int r_h = 0; r_h < p.stride_h; ++r_h)
    for (int r_w = 0; r_w < p.stride_w; ++r_w) {
      PhaseInfo& ph = sched.phase[sched.count++];
      ph.r_h = r_h;
      ph.r_w = r_w;
      ph.q_h = (r_h + p.pad_h) % p.stride_h;
      ph.q_w = (r_w + p.pad_w) % p.stride_w;
      ph.d_h = (r_h + p.pad_h) / p.stride_h;
      ph.d_w = (r_w + p.pad_w) / p.stride_w;
      ph.taps_h = taps_for(p.kH, ph.q_h, p.stride_h);
      ph.taps_w = taps_for(p.kW, ph.q_w, p.stride_w);
      ph.rows = phase_extent(H_out, r_h, p.stride_h);
      ph.cols = phase_extent(W_out, r_w, p.stride_w);
      ph.pixels = p.N * ph.rows * ph.cols;
      ph.tiles = (ph.pixels + tile_m - 1) / tile_m;
      ph.cta_begin = ph.ctas = 0;
      total_tiles += ph.tiles;
      sched.max_taps = std::max(sched.max_taps, ph.taps_h * ph.taps_w);
    }
  if (total_tiles == 0) return sched;
  // Largest-remainder split of num_sms CTAs, each non-empty phase getting >= 1.
  int assigned = 0;
  double frac[kMaxPhases] = {};
  for (int i = 0; i < sched.count; ++i) {
    PhaseInfo& ph = sched.phase[i];
    if (ph.tiles == 0) continue;
    double share = double(num_sms) * ph.tiles / double(total_tiles);
    ph.ctas = std::max(1, int(share));
    frac[i] = share - int(share);
    assigned += ph.ctas;
  }
  while (assigned < num_sms) {
    int best = -1;
    for (int i = 0; i < sched.count; ++i)
      if (sched.phase[i].ctas < sched.phase[i].tiles && (best < 0 || frac[i] > frac[best])) best = i;
    if (best < 0) break;
    ++sched.phase[best].ctas;
    frac[best] = -1.0;
    ++assigned;
  }
  for (int i = 0; i < sched.count; ++i) {
    PhaseInfo& ph = sched.phase[i];
    ph.ctas = std::min(ph.ctas, ph.tiles);
    ph.cta_begin = sched.total_ctas;
    sched.total_ctas += ph.ctas;
  }
  return sched;
}

}  // namespace fct::sm90
