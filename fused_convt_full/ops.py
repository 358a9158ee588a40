"""The `torch.library` custom op `fused_convt_full::forward` and the public `forward`.

Going through a registered op (rather than calling the executors directly) is what makes the
operator opaque-but-traceable: `torch.compile(fullgraph=True)` sees one node whose output
shape, dtype and memory format come from the fake implementation below, and CUDA graph capture
records the native launches made by the CUDA implementation.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from ._validation import (
    ConvTransposeArgs,
    IntOrPair,
    ScaleLike,
    is_channels_last,
    output_hw,
    validate,
    validate_scale,
)
from .dispatch import plan_for
from .packing import PackedWeight, cached_pack
from . import paths

__all__ = ["forward"]

_OP_NAME = "fused_convt_full::forward"


def _args(
    x: torch.Tensor,
    w: torch.Tensor,
    conv_b: Optional[torch.Tensor],
    b: torch.Tensor,
    stride: Sequence[int],
    padding: Sequence[int],
    output_padding: Sequence[int],
    dilation: Sequence[int],
) -> ConvTransposeArgs:
    # The op is reachable directly as torch.ops.fused_convt_full.forward, so its kernels
    # validate too; it is host-side shape arithmetic only.
    return validate(x, w, conv_b, b, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation)


@torch.library.custom_op(_OP_NAME, mutates_args=())
def _forward_op(
    x: torch.Tensor,
    w: torch.Tensor,
    conv_b: Optional[torch.Tensor],
    b: torch.Tensor,
    s: float,
    stride: List[int],
    padding: List[int],
    output_padding: List[int],
    dilation: List[int],
) -> torch.Tensor:
    # Default kernel for every device without a dedicated one (CPU included): the composite.
    args = _args(x, w, conv_b, b, stride, padding, output_padding, dilation)
    return paths.run_reference(args, x, w, conv_b, b, s, paths.new_output(args))


@_forward_op.register_kernel("cuda")
def _forward_cuda(
    x: torch.Tensor,
    w: torch.Tensor,
    conv_b: Optional[torch.Tensor],
    b: torch.Tensor,
    s: float,
    stride: List[int],
    padding: List[int],
    output_padding: List[int],
    dilation: List[int],
) -> torch.Tensor:
    args = _args(x, w, conv_b, b, stride, padding, output_padding, dilation)
    out = paths.new_output(args)
    if args.N == 0:
        return out
    plan = plan_for(args)
    if plan.path == "fused":
        return paths.run_fused(args, x, cached_pack(w), conv_b, b, s, out, math=plan.math)
    if plan.path == "two_stage":
        return paths.run_two_stage(args, x, w, conv_b, b, s, out, math=plan.math)
    return paths.run_reference(args, x, w, conv_b, b, s, out)


@_forward_op.register_fake
def _forward_fake(
    x: torch.Tensor,
    w: torch.Tensor,
    conv_b: Optional[torch.Tensor],
    b: torch.Tensor,
    s: float,
    stride: List[int],
    padding: List[int],
    output_padding: List[int],
    dilation: List[int],
) -> torch.Tensor:
    H_out, W_out = output_hw(
        x.shape[2], x.shape[3], w.shape[2], w.shape[3],
        tuple(stride), tuple(padding), tuple(output_padding), tuple(dilation),
    )  # fmt: skip
    memory_format = torch.channels_last if is_channels_last(x) else torch.contiguous_format
    return torch.empty(
        (x.shape[0], w.shape[1], H_out, W_out), dtype=x.dtype, device=x.device, memory_format=memory_format
    )


# ----------------------------------------------------------------------------------------------
# Autograd: the kernels are inference kernels, but a drop-in module must not break training.
# The backward recomputes the softmax in float32 with PyTorch ops (correct, not fused).


def _setup_context(ctx: Any, inputs: Tuple[Any, ...], output: torch.Tensor) -> None:
    x, w, conv_b, b, s, stride, padding, output_padding, dilation = inputs
    ctx.save_for_backward(x, w, conv_b, b)
    ctx.s = s
    ctx.conv = (list(stride), list(padding), list(output_padding), list(dilation))


def _backward(ctx: Any, grad: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
    x, w, conv_b, b = ctx.saved_tensors
    stride, padding, output_padding, dilation = ctx.conv
    s = ctx.s
    need_x, need_w, need_cb, need_b = ctx.needs_input_grad[:4]
    f32 = torch.float32
    xf, wf = x.to(f32), w.to(f32)
    cbf = conv_b.to(f32) if conv_b is not None else None
    z = F.conv_transpose2d(xf, wf, cbf, stride, padding, output_padding, 1, dilation)
    p = torch.softmax(z, dim=1)
    y = torch.sigmoid((p + b.to(f32).reshape(1, -1, 1, 1)) * s)
    g_u = grad.to(f32) * y * (1.0 - y) * s  # d/d(softmax + b)
    g_b = g_u.sum(dim=(0, 2, 3)).reshape(b.shape).to(b.dtype) if need_b else None
    g_z = p * (g_u - (g_u * p).sum(dim=1, keepdim=True))  # softmax Jacobian-vector product
    g_cb = g_z.sum(dim=(0, 2, 3)).to(conv_b.dtype) if (conv_b is not None and need_cb) else None
    g_x = g_w = None
    if need_x or need_w:
        g_x, g_w, _ = torch.ops.aten.convolution_backward(
            g_z, xf, wf, None, stride, padding, dilation, True, output_padding, 1, [need_x, need_w, False]
        )
        g_x = g_x.to(x.dtype) if g_x is not None else None
        g_w = g_w.to(w.dtype) if g_w is not None else None
    return g_x, g_w, g_cb, g_b, None, None, None, None, None


_forward_op.register_autograd(_backward, setup_context=_setup_context)


# ----------------------------------------------------------------------------------------------


def forward(
    x: torch.Tensor,
    w: Union[torch.Tensor, PackedWeight],
    conv_b: Optional[torch.Tensor],
    b: torch.Tensor,
    s: ScaleLike,
    *,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> torch.Tensor:
    """`y = sigmoid(s * (softmax(conv_transpose2d(x, w, conv_b, ...), dim=1) + b))` in one kernel.

    Args:
        x: input `[N, Cin, H, W]`; float32, float16 or bfloat16; NCHW or channels_last.
        w: weight `[Cin, Cout, kH, kW]` (the `nn.ConvTranspose2d.weight` layout) of x's dtype, or a
            `PackedWeight` from `prepack(w)`.
        conv_b: the convolution's bias `[Cout]` (added before the softmax), or None.
        b: the post-softmax bias, `[Cout]` or `[Cout, 1, 1]`.
        s: the scale applied after `+ b`; a Python number, or a 0-d tensor.  A tensor is read with
            `.item()` here, before the op runs, which synchronises with its device: pass a Python
            float when capturing a CUDA graph or compiling with `fullgraph=True`.
        stride, padding, output_padding, dilation: an int or an `(h, w)` pair, with PyTorch's
            defaults and validity rules (groups is always 1).

    Returns:
        `[N, Cout, H_out, W_out]` in x's dtype and memory format, where
        `H_out = (H-1)*stride - 2*padding + dilation*(kH-1) + output_padding + 1` (same for W).

    CUDA tensors take the fused kernel where it applies and otherwise a two-stage fallback
    (cuDNN + a softmax-epilogue kernel); CPU tensors run the PyTorch composite.  `explain()`
    reports the choice.  Float32 uses TF32 unless `torch.backends.cudnn.allow_tf32` is False.

    Raises:
        TypeError / ValueError: for invalid arguments, naming the argument.
    """
    if isinstance(w, PackedWeight):
        # The CUDA kernel finds the packed copy through the weight cache, which prepack filled
        # and which revalidates it against the source's version on every call.
        w = w.source
    args = validate(x, w, conv_b, b, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation)
    s_value = validate_scale(s)
    if args.N == 0:
        return paths.new_output(args)
    return _forward_op(
        x,
        w,
        conv_b,
        b,
        s_value,
        list(args.stride),
        list(args.padding),
        list(args.output_padding),
        list(args.dilation),
    )
