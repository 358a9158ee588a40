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

// The phases' geometry (taps, output grid); no CTAs assigned yet.
inline PhaseSchedule phase_geometry(ConvTransposeProblem const& p) {
  PhaseSchedule sched;
  int H_out = p.H_out(), W_out = p.W_out();
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
      ph.cta_begin = ph.ctas = 0;
      sched.max_taps = std::max(sched.max_taps, ph.taps_h * ph.taps_w);
    }
  return sched;
}

// Each CTA serves one phase only (its filter stays resident in shared memory).
// Every phase gets the same number of CTAs; the kernel deals a phase's tiles to
// its CTAs round-robin, so the sibling phases that share output rows (same r_h,
// hence the same row count) cover the same rows at the same pace.
inline PhaseSchedule make_phase_schedule(ConvTransposeProblem const& p, int num_sms) {
  PhaseSchedule sched = phase_geometry(p);
  int nonempty = 0;
  for (int i = 0; i < sched.count; ++i) nonempty += sched.phase[i].rows > 0 && sched.phase[i].cols > 0;
  if (nonempty == 0) return sched;
  int per_phase = std::max(1, num_sms / nonempty);
  for (int i = 0; i < sched.count; ++i) {
    PhaseInfo& ph = sched.phase[i];
    if (ph.rows > 0 && ph.cols > 0) ph.ctas = int(std::min<int64_t>(per_phase, int64_t(p.N) * ph.rows));
    ph.cta_begin = sched.total_ctas;
    sched.total_ctas += ph.ctas;
  }
  return sched;
}

// For NCHW output with stride_w == 2 (sibling pairs, SiblingPairNchwEpilogue):
// the two CTAs of a group (cluster) compute column phases r_w = 0 and 1 of the
// same tiles, so that together they hold runs of consecutive output columns.
// Pixels are indexed over the wider column phase (r_w = 0; r_w = 1 has the same
// columns or one fewer, masked). Each row phase gets an equal share of the
// `groups` CTA groups; both entries of a row phase carry that range, with
// cta_begin and ctas counted in groups.
inline PhaseSchedule make_paired_schedule(ConvTransposeProblem const& p, int groups) {
  PhaseSchedule sched = phase_geometry(p);
  if (p.stride_w != 2) return sched;
  int nonempty = 0;
  for (int i = 0; i < sched.count; i += 2) nonempty += sched.phase[i].rows > 0 && sched.phase[i].cols > 0;
  if (nonempty == 0) return sched;
  int per_row_phase = std::max(1, groups / nonempty);
  for (int i = 0; i < sched.count; i += 2) {
    PhaseInfo& ph = sched.phase[i];
    if (ph.rows > 0 && ph.cols > 0) ph.ctas = int(std::min<int64_t>(per_row_phase, int64_t(p.N) * ph.rows));
    ph.cta_begin = sched.total_ctas;
    sched.phase[i + 1].cta_begin = ph.cta_begin;
    sched.phase[i + 1].ctas = ph.ctas;
    sched.total_ctas += ph.ctas;
  }
  return sched;
}

}  // namespace fct::sm90
