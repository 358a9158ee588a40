"""Benchmark cases: the problem description, its derived sizes (FLOPs, bytes) and the sweeps."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Iterable

DTYPES = ("fp32", "fp16", "bf16")
LAYOUTS = ("nchw", "channels_last")
ELEMENT_SIZE = {"fp32": 4, "fp16": 2, "bf16": 2}

SWEEPS = {
    "batch": [1, 8, 32, 128, 512],
    "cout": [32, 64, 128, 256],
    "dtype": list(DTYPES),
    "layout": list(LAYOUTS),
    # (kernel, stride, padding, output_padding)
    "kstride": [(4, 2, 1, 1), (3, 2, 1, 1), (3, 1, 1, 0)],
}


@dataclasses.dataclass(frozen=True)
class Case:
    """One problem: x is [batch, cin, hw, hw], w is [cin, cout, kernel, kernel] (square everything)."""

    batch: int = 128
    cin: int = 64
    cout: int = 128
    hw: int = 64
    kernel: int = 4
    stride: int = 2
    padding: int = 1
    output_padding: int = 1
    dilation: int = 1
    dtype: str = "fp32"
    layout: str = "nchw"

    @property
    def h_out(self) -> int:
        """Output height/width, PyTorch's conv_transpose2d formula."""
        return ((self.hw - 1) * self.stride - 2 * self.padding
                + self.dilation * (self.kernel - 1) + self.output_padding + 1)

    @property
    def element_size(self) -> int:
        """Bytes per element of x, w and y."""
        return ELEMENT_SIZE[self.dtype]

    @property
    def name(self) -> str:
        """Short human-readable label, e.g. ``N128 64->128 64x64 k4s2p1op1 fp32 nchw``."""
        d = f"d{self.dilation}" if self.dilation != 1 else ""
        return (f"N{self.batch} {self.cin}->{self.cout} {self.hw}x{self.hw} "
                f"k{self.kernel}s{self.stride}p{self.padding}op{self.output_padding}{d} "
                f"{self.dtype} {self.layout}")

    def as_dict(self) -> dict:
        """All parameters plus the derived output size (for JSON records)."""
        return {**dataclasses.asdict(self), "h_out": self.h_out, "w_out": self.h_out}

    def output_bytes(self) -> int:
        """Bytes of y = [batch, cout, h_out, h_out]."""
        return self.batch * self.cout * self.h_out * self.h_out * self.element_size

    def input_bytes(self) -> int:
        """Bytes that must be read at least once: x, w (same dtype) and the fp32 biases."""
        x = self.batch * self.cin * self.hw * self.hw
        w = self.cin * self.cout * self.kernel * self.kernel
        return (x + w) * self.element_size + 2 * self.cout * 4

    def flops(self) -> int:
        """Exact multiply-add FLOPs: 2 * N * Cout * Cin * (valid (input, tap) pairs landing in the output).

        The count is separable: the pairs (ih, kh) with oh = ih*stride - padding + kh*dilation inside
        [0, h_out), times the same along W. Taps that fall into the cropped border are not counted.
        """
        taps = valid_taps_1d(self.hw, self.kernel, self.stride, self.padding, self.dilation, self.h_out)
        return 2 * self.batch * self.cout * self.cin * taps * taps


def valid_taps_1d(size: int, kernel: int, stride: int, padding: int, dilation: int, size_out: int) -> int:
    """Number of (input index, tap) pairs of a 1-D transposed conv whose output index is in range."""
    return sum(1 for i in range(size) for k in range(kernel)
               if 0 <= i * stride - padding + k * dilation < size_out)


def split_list(values: Iterable[str] | None) -> list[str]:
    """Flatten repeatable, comma-separated option values: ['a,b', 'c'] -> ['a', 'b', 'c']."""
    out: list[str] = []
    for v in values or []:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def build_cases(base: Case, sweeps: list[str], dtypes: list[str], layouts: list[str]) -> list[Case]:
    """Cartesian product of the base case with every requested sweep.

    ``dtypes`` / ``layouts`` (from --dtype / --layout) are themselves sweeps when they hold several
    values; an explicit ``--sweep dtype`` or ``--sweep layout`` overrides them with the full list.
    """
    axes: dict[str, list] = {"dtype": dtypes or [base.dtype], "layout": layouts or [base.layout]}
    for s in sweeps:
        if s not in SWEEPS:
            raise ValueError(f"unknown sweep {s!r}; choose from {', '.join(SWEEPS)}")
        axes[s] = list(SWEEPS[s])
    for d in axes["dtype"]:
        if d not in DTYPES:
            raise ValueError(f"unknown dtype {d!r}; choose from {', '.join(DTYPES)}")
    for lay in axes["layout"]:
        if lay not in LAYOUTS:
            raise ValueError(f"unknown layout {lay!r}; choose from {', '.join(LAYOUTS)}")
    names = list(axes)
    cases = []
    for combo in itertools.product(*(axes[n] for n in names)):
        change: dict = {}
        for n, v in zip(names, combo):
            if n == "kstride":
                change.update(kernel=v[0], stride=v[1], padding=v[2], output_padding=v[3])
            elif n == "batch":
                change["batch"] = v
            else:
                change[n] = v
        cases.append(dataclasses.replace(base, **change))
    return list(dict.fromkeys(cases))  # drop duplicates, keep order
