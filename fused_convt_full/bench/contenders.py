"""The contenders: how to build each one's callable for a case, and the accuracy check against float64."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import torch
import torch.nn.functional as F

from .cases import Case
from .floors import TORCH_DTYPE

CONTENDERS = ("eager", "torch_compile", "two_stage_naive", "two_stage", "fused")
FLOORS = ("floor_write", "floor_copy", "floor_gemm", "floor")
ALL_NAMES = CONTENDERS + FLOORS
TOLERANCE = {"fp32": 5e-3, "fp16": 5e-3, "bf16": 2e-2}  # relative-norm error; fp32 may use TF32
SCALE = 2.0


@dataclasses.dataclass
class Inputs:
    """Fresh random inputs; ``xs`` holds one or more copies of x to rotate among (L2 defeat)."""

    xs: list[torch.Tensor]
    w: torch.Tensor
    conv_b: torch.Tensor
    b: torch.Tensor
    s: float


@dataclasses.dataclass
class Prepared:
    """A ready contender: ``fn(i)`` computes y from ``xs[i]`` and returns it; ``info`` goes into the record."""

    fn: Callable[[int], torch.Tensor]
    info: dict


def make_inputs(case: Case, copies: int = 1) -> Inputs:
    """torch.randn inputs (never zeros) on the GPU; w is scaled so the softmax logits are O(1)."""
    dt = TORCH_DTYPE[case.dtype]
    fmt = torch.channels_last if case.layout == "channels_last" else torch.contiguous_format
    xs = [torch.randn(case.batch, case.cin, case.hw, case.hw, device="cuda", dtype=dt)
          .contiguous(memory_format=fmt) for _ in range(copies)]
    w = torch.randn(case.cin, case.cout, case.kernel, case.kernel, device="cuda", dtype=dt)
    w = w * (case.cin * case.kernel * case.kernel) ** -0.5
    conv_b = 0.1 * torch.randn(case.cout, device="cuda", dtype=dt)
    b = torch.randn(case.cout, 1, 1, device="cuda", dtype=dt)
    return Inputs(xs, w, conv_b, b, SCALE)


def conv_kwargs(case: Case) -> dict:
    """The keyword arguments shared by F.conv_transpose2d and fused_convt_full.forward."""
    return dict(stride=case.stride, padding=case.padding, output_padding=case.output_padding,
                dilation=case.dilation)


def model(x: torch.Tensor, w: torch.Tensor, conv_b: torch.Tensor, b: torch.Tensor, s: float,
          case: Case) -> torch.Tensor:
    """The 5-op PyTorch model: conv_transpose2d (+conv bias) -> softmax(dim=1) -> + b -> * s -> sigmoid."""
    z = F.conv_transpose2d(x, w, conv_b, **conv_kwargs(case))
    return torch.sigmoid((torch.softmax(z, dim=1) + b) * s)


def _chunk(case: Case, target_bytes: int = 1 << 30) -> int:
    """Batch chunk whose float64 output is about ``target_bytes`` (bounds the reference's memory)."""
    per_image = case.cout * case.h_out * case.h_out * 8
    return max(1, min(case.batch, target_bytes // per_image))


def reference(case: Case, inp: Inputs) -> torch.Tensor:
    """The composite in float64 on the GPU, from the upcast inputs (computed in batch chunks)."""
    x = inp.xs[0]
    w, cb, b = inp.w.double(), inp.conv_b.double(), inp.b.double()
    out = torch.empty(case.batch, case.cout, case.h_out, case.h_out, device="cuda", dtype=torch.float64)
    step = _chunk(case)
    for i in range(0, case.batch, step):
        out[i:i + step] = model(x[i:i + step].double(), w, cb, b, inp.s, case)
    return out


def check(y: torch.Tensor, ref: torch.Tensor, case: Case) -> tuple[bool, float, str | None]:
    """(ok, relative-norm error, reason) of ``y`` against the float64 reference (chunked, no NaN allowed)."""
    if tuple(y.shape) != tuple(ref.shape):
        return False, float("nan"), f"shape {tuple(y.shape)} != {tuple(ref.shape)}"
    err2 = torch.zeros((), dtype=torch.float64, device=ref.device)
    ref2 = torch.zeros((), dtype=torch.float64, device=ref.device)
    nan = torch.zeros((), dtype=torch.bool, device=ref.device)
    step = _chunk(case)
    for i in range(0, case.batch, step):
        yc, rc = y[i:i + step].double(), ref[i:i + step]
        nan |= torch.isnan(yc).any()
        err2 += (yc - rc).square().sum()
        ref2 += rc.square().sum()
    err = float((err2.sqrt() / ref2.sqrt()).item())
    if bool(nan.item()):
        return False, err, "output has NaN"
    tol = TOLERANCE[case.dtype]
    if not err <= tol:
        return False, err, f"relative error {err:.3g} > tolerance {tol:g}"
    return True, err, None


def build(name: str, case: Case, inp: Inputs) -> Prepared:
    """Build contender ``name`` for ``case``; may compile (torch_compile) or prepack (fused)."""
    if name == "eager":
        return Prepared(lambda i: model(inp.xs[i], inp.w, inp.conv_b, inp.b, inp.s, case), {})
    if name == "torch_compile":
        return _build_compile(case, inp)
    if name in ("two_stage", "two_stage_naive"):
        return _build_two_stage(case, inp, naive=(name == "two_stage_naive"))
    if name == "fused":
        return _build_fused(case, inp)
    raise ValueError(f"unknown contender {name!r}")


def _build_compile(case: Case, inp: Inputs) -> Prepared:
    """torch.compile (default mode) of the eager model; the first call's time is ``compile_s``."""
    def eager(x, w, conv_b, b):
        return model(x, w, conv_b, b, inp.s, case)

    compiled = torch.compile(eager)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    compiled(inp.xs[0], inp.w, inp.conv_b, inp.b)
    torch.cuda.synchronize()
    compile_s = time.perf_counter() - t0
    return Prepared(lambda i: compiled(inp.xs[i], inp.w, inp.conv_b, inp.b), {"compile_s": compile_s})


def _build_two_stage(case: Case, inp: Inputs, naive: bool) -> Prepared:
    """The library's two-stage path (cuDNN conv, then the softmax epilogue kernel) into one output buffer."""
    from fused_convt_full import _validation, paths

    args = _validation.validate(inp.xs[0], inp.w, inp.conv_b, inp.b, **conv_kwargs(case))
    out = paths.new_output(args)

    def fn(i: int) -> torch.Tensor:
        paths.run_two_stage(args, inp.xs[i], inp.w, inp.conv_b, inp.b, inp.s, out, naive=naive)
        return out
    return Prepared(fn, {"path": "two_stage_naive" if naive else "two_stage"})


def _build_fused(case: Case, inp: Inputs) -> Prepared:
    """fused_convt_full.forward with a prepacked weight; explain() tells which path it takes."""
    import fused_convt_full as fct

    plan = fct.explain(inp.xs[0], inp.w, inp.conv_b, inp.b, inp.s, **conv_kwargs(case))
    wp = fct.prepack(inp.w)
    kw = conv_kwargs(case)
    info = {"path": getattr(plan, "path", None), "kernel": getattr(plan, "kernel", None),
            "reason": getattr(plan, "reason", None)}
    return Prepared(lambda i: fct.forward(inp.xs[i], wp, inp.conv_b, inp.b, inp.s, **kw), info)
