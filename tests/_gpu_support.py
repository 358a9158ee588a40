"""Shared pieces of the GPU tests: the configuration grid, math modes, and result checks."""

from __future__ import annotations

import contextlib
import functools
import zlib
from typing import Any, Dict, Iterator, Tuple

import pytest
import torch

from _support import TOLERANCES, Problem, composite64, make_problem, max_abs_err, rel_err

# id -> (N, Cin, Cout, H, W, k, stride, padding, output_padding, dilation)
CONFIGS: Dict[str, Tuple[Any, ...]] = {
    "reference_problem_small": (2, 64, 128, 16, 16, 4, 2, 1, 1, 1),
    "odd_sizes": (2, 5, 7, 9, 11, 3, 2, 1, 1, 1),
    "cout_1": (2, 8, 1, 6, 7, 4, 2, 1, 1, 1),
    "cout_3": (2, 8, 3, 6, 7, 4, 2, 1, 1, 1),
    "cout_7": (2, 16, 7, 6, 7, 4, 2, 1, 0, 1),
    "cout_32": (2, 16, 32, 8, 8, 4, 2, 1, 1, 1),
    "cout_96": (2, 16, 96, 8, 8, 4, 2, 1, 1, 1),
    "cout_100": (2, 16, 100, 8, 8, 4, 2, 1, 1, 1),
    "cout_200": (2, 16, 200, 8, 8, 4, 2, 1, 1, 1),
    "cout_256": (2, 32, 256, 8, 8, 4, 2, 1, 1, 1),
    "cout_257": (2, 16, 257, 8, 8, 4, 2, 1, 1, 1),
    "cout_300": (2, 16, 300, 6, 6, 3, 2, 1, 1, 1),
    "k1_s2": (2, 16, 32, 8, 8, 1, 2, 0, 1, 1),
    "k2_s3": (2, 16, 32, 7, 9, 2, 3, 0, 2, 1),
    "padding_ge_k": (2, 16, 32, 9, 9, 2, 3, 2, 0, 1),
    "padding_ge_k_s2": (1, 8, 16, 8, 8, 3, 2, 3, 1, 1),
    "stride_1": (2, 16, 48, 8, 8, 3, 1, 1, 0, 1),
    "stride_1_k1": (1, 16, 24, 5, 5, 1, 1, 0, 0, 1),
    "stride_4_k8": (1, 16, 32, 6, 6, 8, 4, 2, 0, 1),
    "rectangular_params": (2, 8, 16, 7, 6, (3, 4), (2, 3), (1, 1), (1, 2), 1),
    "output_padding_0": (2, 16, 64, 8, 8, 4, 2, 1, 0, 1),
    "dilation_2": (2, 16, 32, 8, 8, 3, 2, 1, 1, 2),
    "dilation_2_stride_1": (1, 8, 16, 8, 8, 3, 1, 2, 1, 2),
    "n1": (1, 32, 64, 12, 12, 4, 2, 1, 1, 1),
    "n3": (3, 32, 64, 12, 12, 4, 2, 1, 1, 1),
    "cin_1": (2, 1, 16, 8, 8, 4, 2, 1, 0, 1),
    "cin_256": (1, 256, 64, 8, 8, 4, 2, 1, 1, 1),
    "wide_rows": (2, 8, 24, 3, 17, 3, 2, 0, 1, 1),
    "input_1x1": (2, 16, 32, 1, 1, 4, 2, 0, 0, 1),
    "cin_24_cout_40": (2, 24, 40, 10, 10, 4, 2, 1, 1, 1),
    # Several tiles per persistent CTA (buffers and barriers reused across tiles).
    "many_tiles_cout96": (8, 16, 96, 32, 31, 4, 2, 1, 1, 1),
}

# Configurations re-run with peaked softmax inputs (logits ~ +-30).
LARGE_LOGIT_CONFIGS = ["reference_problem_small", "odd_sizes", "cout_257", "dilation_2", "k1_s2", "cout_256"]

MODES = ["tf32", "fp32_strict", "fp16", "bf16"]
MODE_DTYPE = {"tf32": torch.float32, "fp32_strict": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def expect_fused(config_id: str, mode: str) -> bool:
    """Problems the fused kernel must take: Cout <= 256, dilation 1, 16-bit or TF32."""
    _, _, cout, *_, dilation = CONFIGS[config_id]
    return cout <= 256 and dilation == 1 and mode in ("fp16", "bf16", "tf32")


@contextlib.contextmanager
def math_mode(mode: str) -> Iterator[None]:
    """TF32 on for every mode except fp32_strict (the setting is irrelevant for 16-bit)."""
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=(mode != "fp32_strict")):
        yield


@functools.lru_cache(maxsize=None)
def problem_and_reference(config_id: str, mode: str, channels_last: bool, large_logits: bool = False
                          ) -> Tuple[Problem, torch.Tensor]:  # fmt: skip
    """A problem of the grid and its float64 reference; `large_logits` scales them to +-30."""
    N, Cin, Cout, H, W, k, st, p, op, d = CONFIGS[config_id]
    torch.manual_seed(zlib.crc32(repr((config_id, mode, channels_last, large_logits)).encode()))
    prob = make_problem(N, Cin, Cout, H, W, k, st, p, op, d, dtype=MODE_DTYPE[mode], device="cuda",
                        channels_last=channels_last,
                        logit_absmax=30.0 if large_logits else None)  # fmt: skip
    ref = composite64(*prob.args(), **prob.conv)
    return prob, ref


def check_output(out: torch.Tensor, ref: torch.Tensor, mode: str, channels_last: bool, what: str = "") -> None:
    """No element left unwritten (NaN poison), error within the mode's tolerances, right layout."""
    assert out.shape == ref.shape and out.dtype == MODE_DTYPE[mode]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert out.is_contiguous(memory_format=fmt), f"{what}: output is not in the input's memory format"
    n_nan = int(torch.isnan(out).sum())
    assert n_nan == 0, f"{what}: {n_nan} output elements are NaN (left unwritten or computed as NaN)"
    rel_tol, abs_tol = TOLERANCES[mode]
    rel, mx = rel_err(out, ref), max_abs_err(out, ref)
    assert rel <= rel_tol and mx <= abs_tol, (
        f"{what}: relative error {rel:.3e} (tolerance {rel_tol:.0e}), max abs error {mx:.3e} (tolerance {abs_tol:.0e})"
    )


def nan_filled(t: torch.Tensor) -> torch.Tensor:
    return t.fill_(float("nan"))


requires_native = pytest.mark.requires_native
