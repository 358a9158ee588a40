"""The PyTorch composite that defines the operator's semantics.

It is the CPU implementation, the last-resort CUDA fallback, and the yardstick the tests and
benchmarks compare against.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ._validation import ConvTransposeArgs, IntOrPair, ScaleLike, validate, validate_scale

__all__ = ["composite", "reference"]

_HALF_DTYPES = (torch.float16, torch.bfloat16)


def composite(
    args: ConvTransposeArgs,
    x: torch.Tensor,
    w: torch.Tensor,
    conv_b: Optional[torch.Tensor],
    b: torch.Tensor,
    s: float,
    *,
    float32_math: bool = False,
) -> torch.Tensor:
    """The composite on already-validated arguments; the result is laid out like `args` says.

    16-bit inputs are computed in float32 (and the result rounded once) on CPU, where 16-bit
    convolution kernels are missing or slow in many PyTorch builds, and everywhere when
    `float32_math` is set: the fallback executor uses that to keep the package's accuracy promise
    (accumulation, softmax and sigmoid in float32), which the 16-bit composite does not meet.
    """
    upcast = args.dtype in _HALF_DTYPES and (float32_math or x.device.type == "cpu")
    if upcast:
        x, w, b = x.float(), w.float(), b.float()
        conv_b = conv_b.float() if conv_b is not None else None
    z = F.conv_transpose2d(x, w, conv_b, args.stride, args.padding, args.output_padding, 1, args.dilation)
    y = torch.sigmoid((torch.softmax(z, dim=1) + b.reshape(1, -1, 1, 1)) * s)
    return y.to(args.dtype).contiguous(memory_format=args.memory_format)


def reference(
    x: torch.Tensor,
    w: torch.Tensor,
    conv_b: Optional[torch.Tensor],
    b: torch.Tensor,
    s: ScaleLike,
    *,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> torch.Tensor:
    """`sigmoid(s * (softmax(conv_transpose2d(x, w, conv_b, ...), dim=1) + b))` with PyTorch ops.

    Args:
        x: input `[N, Cin, H, W]` (float32, float16 or bfloat16; NCHW or channels_last).
        w: weight `[Cin, Cout, kH, kW]` (the `nn.ConvTranspose2d.weight` layout), same dtype.
        conv_b: the convolution's bias `[Cout]`, or None.
        b: the post-softmax bias, `[Cout]` or `[Cout, 1, 1]`.
        s: the scale applied after adding `b` (number or 0-d tensor).
        stride, padding, output_padding, dilation: as in `F.conv_transpose2d` (groups = 1).

    Returns:
        `[N, Cout, H_out, W_out]` in x's dtype and memory format.
    """
    args = validate(
        x, w, conv_b, b, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation
    )
    return composite(args, x, w, conv_b, b, validate_scale(s))
