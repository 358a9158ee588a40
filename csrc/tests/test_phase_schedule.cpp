// Host-only check of the sm90 kernel's phase decomposition and grid split
// (fused/sm90/phase_schedule.h) against the definition of a transposed
// convolution; needs no GPU, so it runs in CI too.
//
// For every output pixel row oh and filter row kh, PyTorch's conv_transpose2d adds
// x[ih] * w[kh] exactly when oh = ih * s - p + kh with 0 <= ih < H. The schedule
// must assign oh to one phase r = oh mod s, at phase row i = oh / s, and its tap
// list (kh = q + s*t, ih = i + d - t) must be exactly those (kh, ih) pairs.
#include <cstdio>
#include <set>
#include <utility>

#include "fused/sm90/phase_schedule.h"

namespace {

int failures = 0;

void expect(bool ok, char const* what, int a, int b, int c) {
  if (ok) return;
  ++failures;
  if (failures <= 20) std::printf("FAIL %s (%d, %d, %d)\n", what, a, b, c);
}

// One spatial dimension: phases r of output size `out`, taps of a size-k filter.
void check_dimension(int in, int k, int s, int p, int out) {
  int covered = 0;
  for (int r = 0; r < s; ++r) {
    int q = (r + p) % s, d = (r + p) / s;
    int taps = fct::sm90::taps_for(k, q, s);
    int rows = fct::sm90::phase_extent(out, r, s);
    covered += rows;
    for (int i = 0; i < rows; ++i) {
      int oh = i * s + r;
      std::set<std::pair<int, int>> want, got;  // (kh, ih), ih possibly out of range
      for (int kh = 0; kh < k; ++kh)
        if ((oh + p - kh) % s == 0) want.insert({kh, (oh + p - kh) / s});
      for (int t = 0; t < taps; ++t) got.insert({q + s * t, i + d - t});
      expect(want == got, "taps of output row (oh, k, s)", oh, k, s);
    }
  }
  expect(covered == out, "phases cover every output row (out, k, s)", out, k, s);
  (void)in;
}

void check_problem(int N, int H, int W, int k, int s, int p, int op, int sms) {
  fct::ConvTransposeProblem pr;
  pr.N = N;
  pr.H = H;
  pr.W = W;
  pr.Cin = 8;
  pr.Cout = 8;
  pr.kH = pr.kW = k;
  pr.stride_h = pr.stride_w = s;
  pr.pad_h = pr.pad_w = p;
  pr.out_pad_h = pr.out_pad_w = op;
  if (pr.H_out() < 1) return;
  check_dimension(H, k, s, p, pr.H_out());

  fct::sm90::PhaseSchedule sched = fct::sm90::make_phase_schedule(pr, sms);
  expect(sched.count == s * s, "one phase per (r_h, r_w)", sched.count, s, 0);
  int nonempty = 0, next_cta = 0, max_taps = 0;
  for (int i = 0; i < sched.count; ++i) {
    fct::sm90::PhaseInfo const& ph = sched.phase[i];
    bool empty = ph.rows == 0 || ph.cols == 0;
    nonempty += !empty;
    max_taps = std::max(max_taps, ph.taps_h * ph.taps_w);
    expect(ph.cta_begin == next_cta, "CTA ranges are contiguous (phase, begin, expected)", i, ph.cta_begin,
           next_cta);
    next_cta += ph.ctas;
    expect(empty ? ph.ctas == 0 : ph.ctas >= 1, "a non-empty phase gets a CTA (phase, ctas, empty)", i, ph.ctas,
           empty);
    expect(int64_t(ph.ctas) <= int64_t(N) * ph.rows, "no CTA without rows (phase, ctas, rows)", i, ph.ctas,
           N * ph.rows);
    // Siblings along w (same r_h) share output rows: same CTA count keeps them in step.
    if (ph.r_w > 0 && !empty && sched.phase[i - 1].cols > 0)
      expect(ph.ctas == sched.phase[i - 1].ctas, "sibling phases get equal CTAs (phase, ctas, sibling)", i, ph.ctas,
             sched.phase[i - 1].ctas);
  }
  expect(sched.total_ctas == next_cta, "total_ctas is the sum", sched.total_ctas, next_cta, 0);
  expect(sched.total_ctas <= std::max(sms, nonempty), "grid fits one wave (ctas, sms, phases)", sched.total_ctas,
         sms, nonempty);
  expect(sched.max_taps == max_taps, "max_taps", sched.max_taps, max_taps, 0);

  // Sibling pairs (stride_w == 2): both column phases of a row phase share one
  // range of CTA groups, pixels are indexed over the wider column phase, and
  // the groups tile the row phases contiguously.
  if (s != 2) return;
  int groups = std::max(1, sms / 2);
  fct::sm90::PhaseSchedule pairs = fct::sm90::make_paired_schedule(pr, groups);
  int next_group = 0, row_phases = 0;
  for (int i = 0; i < pairs.count; i += 2) {
    fct::sm90::PhaseInfo const& p0 = pairs.phase[i];
    fct::sm90::PhaseInfo const& p1 = pairs.phase[i + 1];
    expect(p0.r_h == p1.r_h && p0.r_w == 0 && p1.r_w == 1, "pair entries are (r_h, 0), (r_h, 1)", i, p0.r_w, p1.r_w);
    expect(p0.cols == p1.cols || p0.cols == p1.cols + 1, "r_w = 0 has the wider grid (cols0, cols1)", i, p0.cols,
           p1.cols);
    expect(p0.cta_begin == p1.cta_begin && p0.ctas == p1.ctas, "siblings share their groups", i, p0.ctas, p1.ctas);
    expect(p0.cta_begin == next_group, "group ranges are contiguous", i, p0.cta_begin, next_group);
    next_group += p0.ctas;
    bool empty = p0.rows == 0 || p0.cols == 0;
    row_phases += !empty;
    expect(empty ? p0.ctas == 0 : (p0.ctas >= 1 && int64_t(p0.ctas) <= int64_t(N) * p0.rows),
           "a non-empty row phase gets 1 .. N * rows groups", i, p0.ctas, N * p0.rows);
  }
  expect(pairs.total_ctas == next_group, "total groups is the sum", pairs.total_ctas, next_group, 0);
  expect(pairs.total_ctas <= std::max(groups, row_phases), "groups fit one wave", pairs.total_ctas, groups,
         row_phases);
}

}  // namespace

int main() {
  int problems = 0;
  for (int k = 1; k <= 7; ++k)
    for (int s = 1; s <= 4; ++s)
      for (int p = 0; p <= k + 1; ++p)
        for (int op = 0; op < s; ++op)
          for (int H : {1, 2, 5, 9, 64}) {
            check_problem(3, H, H + 2, k, s, p, op, 132);
            check_problem(1, H, H, k, s, p, op, 7);
            ++problems;
          }
  std::printf("%d problem shapes, %d failures\n", problems, failures);
  return failures ? 1 : 0;
}
