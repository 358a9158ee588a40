"""The three executors.  Each writes into a caller-allocated `out` and returns it.

Taking `out` from the caller keeps allocation in one place (`new_output`) and lets tests poison
the buffer first, proving that every element is written.  The CUDA executors launch on PyTorch's
current stream of x's device and never synchronise with the host, so they can be captured in a
CUDA graph.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
import torch.nn.functional as F

from . import _native
from ._native import MATH_FP32_STRICT
from ._validation import ConvTransposeArgs
from .dispatch import fp32_math
from .packing import pack_input
from .reference import composite

__all__ = ["new_output", "run_fused", "run_reference", "run_two_stage"]


def new_output(args: ConvTransposeArgs) -> torch.Tensor:
    """An uninitialised output `[N, Cout, H_out, W_out]` in the problem's dtype and memory format."""
    return torch.empty(args.out_shape, dtype=args.dtype, device=args.device, memory_format=args.memory_format)


def _check_out(args: ConvTransposeArgs, out: torch.Tensor) -> None:
    if (
        tuple(out.shape) != args.out_shape
        or out.dtype != args.dtype
        or out.device != args.device
        or not out.is_contiguous(memory_format=args.memory_format)
    ):
        raise ValueError(
            f"out must be a {'channels_last' if args.channels_last else 'contiguous'} tensor of shape "
            f"{list(args.out_shape)}, dtype {args.dtype} on {args.device}; got shape {list(out.shape)}, "
            f"dtype {out.dtype} on {out.device}"
        )


def _check_packed(args: ConvTransposeArgs, packed_w: torch.Tensor) -> None:
    # The native kernel trusts the pointer; a wrong buffer here would be an out-of-bounds read.
    align = _native.channel_alignment()
    expected = (-(-args.Cin // align) * align, args.kH, args.kW, -(-args.Cout // align) * align)
    if (
        tuple(packed_w.shape) != expected
        or packed_w.dtype != args.dtype
        or packed_w.device != args.device
        or not packed_w.is_contiguous()
    ):
        raise ValueError(
            f"packed_w must be a contiguous {args.dtype} tensor of shape {list(expected)} on {args.device} "
            f"(from packing.pack_weights); got shape {list(packed_w.shape)}, dtype {packed_w.dtype} "
            f"on {packed_w.device}"
        )


def _f32_vector(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    # The native API takes both biases as contiguous float32 [C]; b may arrive as [C, 1, 1].
    if t is None:
        return None
    return t.reshape(-1).to(torch.float32).contiguous()


def _ptr(t: Optional[torch.Tensor]) -> int:
    return 0 if t is None else t.data_ptr()


@contextlib.contextmanager
def _conv_math(args: ConvTransposeArgs, math: Optional[str]) -> Iterator[None]:
    # Only intervene when a strict result is asked for while TF32 is on; leaving the user's
    # precision flags untouched otherwise avoids mixing PyTorch's legacy and new TF32 APIs.
    if args.dtype == torch.float32 and math == MATH_FP32_STRICT and fp32_math() != MATH_FP32_STRICT:
        with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False):
            yield
    else:
        yield


def run_reference(
    args: ConvTransposeArgs,
    x: torch.Tensor,
    w: torch.Tensor,
    conv_b: Optional[torch.Tensor],
    b: torch.Tensor,
    s: float,
    out: torch.Tensor,
) -> torch.Tensor:
    """The PyTorch composite (16-bit inputs computed in float32), copied into `out`."""
    _check_out(args, out)
    if args.N == 0:
        return out
    out.copy_(composite(args, x, w, conv_b, b, s, float32_math=True))
    return out


def run_two_stage(
    args: ConvTransposeArgs,
    x: torch.Tensor,
    w: torch.Tensor,
    conv_b: Optional[torch.Tensor],
    b: torch.Tensor,
    s: float,
    out: torch.Tensor,
    naive: bool = False,
    *,
    math: Optional[str] = None,
) -> torch.Tensor:
    """cuDNN transposed convolution into a temporary `z`, then the native softmax epilogue `z -> out`.

    `conv_b` is applied by the epilogue, not by cuDNN, so it is added in float32.  `naive=True`
    uses the one-block-per-pixel epilogue (a benchmark contender).  `math="fp32_strict"` forces
    full-precision float32 convolution; None follows `torch.backends.cudnn.allow_tf32`.
    """
    _check_out(args, out)
    if args.N == 0:
        return out
    C = _native.require()
    with torch.cuda.device(x.device):
        with _conv_math(args, math):
            z = F.conv_transpose2d(x, w, None, args.stride, args.padding, args.output_padding, 1, args.dilation)
        # The epilogue reads z in the output's layout; cuDNN usually already produced it.
        z = z.contiguous(memory_format=args.memory_format)
        conv_b32, b32 = _f32_vector(conv_b), _f32_vector(b)
        epilogue = C.softmax_epilogue_naive if naive else C.softmax_epilogue
        epilogue(
            _native.native_dtype(args.dtype),
            _native.native_layout(args.channels_last),
            args.N,
            args.Cout,
            args.H_out * args.W_out,
            z.data_ptr(),
            _ptr(conv_b32),
            _ptr(b32),
            float(s),
            out.data_ptr(),
            _native.current_stream_ptr(x.device),
        )
    return out


def run_fused(
    args: ConvTransposeArgs,
    x: torch.Tensor,
    packed_w: torch.Tensor,
    conv_b: Optional[torch.Tensor],
    b: torch.Tensor,
    s: float,
    out: torch.Tensor,
    *,
    math: Optional[str] = None,
) -> torch.Tensor:
    """The single fused kernel.  `packed_w` comes from `packing.pack_weights` / `cached_pack`."""
    _check_out(args, out)
    _check_packed(args, packed_w)
    if args.N == 0:
        return out
    C = _native.require()
    if args.dtype == torch.float32 and math is None:
        math = fp32_math()
    with torch.cuda.device(x.device):
        x_nhwc = pack_input(x, args)
        conv_b32, b32 = _f32_vector(conv_b), _f32_vector(b)
        problem = _native.make_problem(args, math or _native.MATH_TF32)
        C.fused_forward(
            problem,
            x_nhwc.data_ptr(),
            packed_w.data_ptr(),
            _ptr(conv_b32),
            _ptr(b32),
            float(s),
            out.data_ptr(),
            _native.current_stream_ptr(x.device),
        )
    return out
