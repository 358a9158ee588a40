"""GPU timing: triton's do_bench (median) when triton imports, else CUDA events (median)."""

from __future__ import annotations

import os
import statistics
from typing import Callable

import torch

_FLUSH_BYTES = 256 * 1024 * 1024  # larger than any L2 we run on (H100: 50 MB, H200: 60 MB)


def _force_events() -> bool:
    """FCT_BENCH_TIMER=events selects the CUDA-event timer even where triton imports."""
    return os.environ.get("FCT_BENCH_TIMER", "").lower() == "events"


def timer_name() -> str:
    """Which timer :func:`median_ms` uses ('triton.do_bench' or 'cuda_events')."""
    if _force_events():
        return "cuda_events"
    try:
        import triton.testing  # noqa: F401
        return "triton.do_bench"
    except Exception:
        return "cuda_events"


def median_ms(fn: Callable[[], object], warmup_ms: float, rep_ms: float) -> float:
    """Median wall time of ``fn`` on the current stream, in ms.

    ``warmup_ms`` / ``rep_ms`` are time budgets (triton's convention): the number of runs is chosen
    from a first estimate of one call's time. Both timers flush L2 before every timed call.
    """
    try:
        if _force_events():
            raise ImportError("FCT_BENCH_TIMER=events")
        from triton.testing import do_bench
    except Exception:
        return _events_median_ms(fn, warmup_ms, rep_ms)
    return float(do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median"))


def _events_median_ms(fn: Callable[[], object], warmup_ms: float, rep_ms: float) -> float:
    """CUDA-event fallback with do_bench's method: estimate, warm up, then time each call alone."""
    flush = torch.empty(_FLUSH_BYTES, dtype=torch.int8, device="cuda")
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(5):
        flush.zero_()
        fn()
    end.record()
    torch.cuda.synchronize()
    estimate = max(start.elapsed_time(end) / 5, 1e-3)
    n_warmup, n_rep = max(1, int(warmup_ms / estimate)), max(3, int(rep_ms / estimate))
    for _ in range(n_warmup):
        fn()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n_rep)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n_rep)]
    for s, e in zip(starts, ends):
        flush.zero_()
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends))


def rotating(fn: Callable[[int], object], copies: int) -> Callable[[], object]:
    """A no-argument callable that calls ``fn(i)`` with i cycling over ``range(copies)``."""
    state = [0]

    def call() -> object:
        i = state[0]
        state[0] = (i + 1) % copies
        return fn(i)
    return call


def copies_to_beat_l2(input_bytes: int, l2_bytes: int, limit: int = 16) -> int:
    """How many input copies to rotate among so that together they are at least 2x the L2 size."""
    if input_bytes <= 0:
        return 1
    return max(1, min(limit, -(-2 * l2_bytes // input_bytes)))


def l2_bytes() -> int:
    """L2 size of the current CUDA device (50 MB if PyTorch does not report it)."""
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return int(getattr(props, "L2_cache_size", 0) or 50 * 1024 * 1024)
