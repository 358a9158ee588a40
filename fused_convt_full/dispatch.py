"""Which implementation a call takes, and why.

Three paths, most preferred first:

* ``"fused"``: the single native kernel (conv + softmax + bias + scale + sigmoid in one pass);
* ``"two_stage"``: cuDNN's transposed convolution, then the native softmax epilogue kernel;
  taken when the fused kernel refuses the problem (its reason is reported) and for float32
  with TF32 disabled when the fused kernel has no full-precision variant;
* ``"reference"``: the PyTorch composite; CPU tensors, or no usable native module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import torch

from . import _native
from ._native import MATH_FP32_STRICT, MATH_TF32
from ._validation import ConvTransposeArgs, IntOrPair, ScaleLike, validate, validate_scale
from .packing import PackedWeight

__all__ = ["PATHS", "Plan", "explain", "fp32_math", "plan_for"]

PATHS = ("fused", "two_stage", "reference")


@dataclass(frozen=True)
class Plan:
    """The outcome of dispatch for one problem.

    Attributes:
        path: ``"fused"``, ``"two_stage"`` or ``"reference"``.
        reason: a sentence saying why this path was chosen (for a fallback: what was refused).
        kernel: the native kernel's name for the fused path, else None.
        math: ``"tf32"`` or ``"fp32_strict"`` for float32 CUDA problems, else None.
    """

    path: str
    reason: str
    kernel: Optional[str] = None
    math: Optional[str] = None


def _conv_fp32_precision() -> str:
    # Only reached when PyTorch refuses to answer `cudnn.allow_tf32` because the legacy and the
    # new precision APIs were mixed; then the conv-specific setting is the one convolutions obey.
    levels = (
        getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", "none"),
        getattr(torch.backends.cudnn, "fp32_precision", "none"),
        getattr(torch.backends, "fp32_precision", "none"),
    )
    for level in levels:
        if level != "none":
            return str(level)
    return "ieee"


def fp32_math() -> str:
    """Math mode float32 convolutions get now: TF32 unless cuDNN's TF32 is turned off."""
    try:
        allowed = bool(torch.backends.cudnn.allow_tf32)
    except RuntimeError:
        allowed = _conv_fp32_precision() == "tf32"
    return MATH_TF32 if allowed else MATH_FP32_STRICT


_arch_cache: Dict[int, Tuple[bool, int, Any]] = {}


def _arch_check(device: torch.device) -> Tuple[bool, int, Any]:
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _arch_cache:
        _arch_cache[index] = _native.arch_supported(torch.device("cuda", index))
    return _arch_cache[index]


def plan_for(args: ConvTransposeArgs, math: Optional[str] = None) -> Plan:
    """Choose the path for a validated problem.

    Args:
        args: the problem, from `_validation.validate`.
        math: ``"tf32"`` or ``"fp32_strict"`` to override the float32 math mode; None reads it
            from ``torch.backends.cudnn.allow_tf32`` (ignored for 16-bit dtypes).

    Host-only (no device synchronisation), so it is safe while a CUDA graph is being captured.
    """
    if args.device.type != "cuda":
        return Plan("reference", f"x is on {args.device.type}: the native kernels are CUDA-only, so the PyTorch composite runs")
    if args.dtype == torch.float32:
        math = math if math is not None else fp32_math()
        if math not in (MATH_TF32, MATH_FP32_STRICT):
            raise ValueError(f"math must be {MATH_TF32!r} or {MATH_FP32_STRICT!r}, got {math!r}")
    else:
        math = None
    if args.N == 0:
        return Plan("reference", "empty batch (N == 0): nothing to compute, an empty output is returned", None, math)

    C = _native.native()
    if C is None:
        return Plan(
            "reference",
            f"the native module fused_convt_full._C is not available ({_native.native_error()}); "
            "the PyTorch composite runs instead",
            None,
            math,
        )
    ok_arch, arch, archs = _arch_check(args.device)
    if not ok_arch:
        return Plan(
            "reference",
            f"this GPU is sm_{arch} but the native module was compiled for {sorted(archs)}; the PyTorch "
            "composite runs instead (rebuild with -C cmake.define.CMAKE_CUDA_ARCHITECTURES=...)",
            None,
            math,
        )

    problem = _native.make_problem(args, math or MATH_TF32)
    with torch.cuda.device(args.device):  # fused_support answers for the current device
        ok, reason, kernel = C.fused_support(problem)
    if ok:
        return Plan("fused", reason or "the fused kernel supports this problem", kernel or None, math)
    return Plan("two_stage", f"fused kernel not applicable: {reason}", None, math)


def explain(
    x: torch.Tensor,
    w: "torch.Tensor | PackedWeight",
    conv_b: Optional[torch.Tensor],
    b: torch.Tensor,
    s: ScaleLike,
    *,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> Plan:
    """Say which path `forward` would take for these arguments, and why, without running it.

    Takes exactly `forward`'s arguments and raises the same errors for invalid ones.
    """
    if isinstance(w, PackedWeight):
        w = w.source
    args = validate(x, w, conv_b, b, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation)
    validate_scale(s)
    return plan_for(args)
