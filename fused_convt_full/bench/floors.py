"""The physical floor (DESIGN.md section 5): measured write/copy bandwidth and GEMM rate, and the model."""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from .cases import Case

GEMM_SIZE = 8192
BW_CAP_BYTES = 8 << 30  # bandwidth is measured on at most this much and scaled up (saturated long before)
TORCH_DTYPE = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclasses.dataclass
class FloorInputs:
    """What the floor model needs; bandwidths in bytes/s, GEMM rate in FLOP/s."""

    output_bytes: int
    input_bytes: int
    flops: int
    write_bw: float
    read_bw: float
    gemm_rate: float


def floor_ms(f: FloorInputs) -> float:
    """``max(output_bytes / write_BW + input_bytes / read_BW, FLOPs / GEMM_rate)`` in ms."""
    memory_s = f.output_bytes / f.write_bw + f.input_bytes / f.read_bw
    compute_s = f.flops / f.gemm_rate
    return 1e3 * max(memory_s, compute_s)


def write_bw(nbytes: int, ms: float) -> float:
    """Write bandwidth (bytes/s) of a fill of ``nbytes`` that took ``ms``."""
    return nbytes / (ms * 1e-3)


def copy_bw(nbytes: int, ms: float) -> float:
    """Read+write bandwidth (bytes/s) of a copy of ``nbytes`` that took ``ms`` (counts 2 * nbytes)."""
    return 2 * nbytes / (ms * 1e-3)


def gemm_ms_for(flops: int, rate: float) -> float:
    """Time (ms) ``flops`` would take at ``rate`` FLOP/s."""
    return 1e3 * flops / rate


class FloorMeter:
    """Measures the floor components on the current GPU; the GEMM rate is cached per dtype."""

    def __init__(self, timer: Callable[[Callable[[], object]], float]):
        self.timer = timer
        self._gemm_rate: dict[str, float] = {}

    @staticmethod
    def _elements(case: Case) -> tuple[int, float]:
        """(elements to measure on, factor to scale the time by): the output's size, capped at BW_CAP_BYTES."""
        n = case.output_bytes() // case.element_size
        m = min(n, BW_CAP_BYTES // case.element_size)
        return m, n / m

    def write_ms(self, case: Case) -> float:
        """Median time of ``y.fill_(0.5)`` on a tensor of the output's size and dtype."""
        m, scale = self._elements(case)
        y = torch.empty(m, dtype=TORCH_DTYPE[case.dtype], device="cuda")
        try:
            return scale * self.timer(lambda: y.fill_(0.5))
        finally:
            del y

    def copy_ms(self, case: Case) -> float:
        """Median time of a device-to-device copy of a tensor of the output's size."""
        m, scale = self._elements(case)
        src = torch.randn(m, dtype=TORCH_DTYPE[case.dtype], device="cuda")
        dst = torch.empty_like(src)
        try:
            return scale * self.timer(lambda: dst.copy_(src))
        finally:
            del src, dst

    def gemm_rate(self, dtype: str) -> float:
        """FLOP/s of an 8192^3 cuBLAS GEMM in ``dtype`` (TF32 allowed for fp32), measured once per run."""
        if dtype not in self._gemm_rate:
            n = GEMM_SIZE
            a = torch.randn(n, n, dtype=TORCH_DTYPE[dtype], device="cuda")
            bm = torch.randn(n, n, dtype=TORCH_DTYPE[dtype], device="cuda")
            old = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = True
            try:
                ms = self.timer(lambda: torch.mm(a, bm))
            finally:
                torch.backends.cuda.matmul.allow_tf32 = old
                del a, bm
            self._gemm_rate[dtype] = 2 * n ** 3 / (ms * 1e-3)
        return self._gemm_rate[dtype]
