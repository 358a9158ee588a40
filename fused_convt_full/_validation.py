"""Argument checking for every public entry point.

All checks live here so that `forward`, `explain`, the module and the custom op raise the same
errors, early, with messages that name the argument and say what was expected.  The result is a
normalised, immutable `ConvTransposeArgs` that the rest of the package consumes without
re-checking.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Sequence, Tuple, Union

import torch

__all__ = [
    "ConvTransposeArgs",
    "SUPPORTED_DTYPES",
    "IntOrPair",
    "ScaleLike",
    "is_channels_last",
    "normalize_pair",
    "output_hw",
    "validate",
    "validate_scale",
]

IntOrPair = Union[int, Sequence[int]]
ScaleLike = Union[float, int, torch.Tensor]
Pair = Tuple[int, int]

SUPPORTED_DTYPES: Tuple[torch.dtype, ...] = (torch.float32, torch.float16, torch.bfloat16)
_DTYPE_NAMES = "float32, float16 or bfloat16"


@dataclass(frozen=True)
class ConvTransposeArgs:
    """A validated problem: shapes, hyper-parameters as pairs, and the output's geometry."""

    N: int
    Cin: int
    Cout: int
    H: int
    W: int
    kH: int
    kW: int
    H_out: int
    W_out: int
    stride: Pair
    padding: Pair
    output_padding: Pair
    dilation: Pair
    dtype: torch.dtype
    device: torch.device
    channels_last: bool  # output (and preferred input) memory format is channels_last
    has_conv_bias: bool

    @property
    def out_shape(self) -> Tuple[int, int, int, int]:
        return (self.N, self.Cout, self.H_out, self.W_out)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format


def is_channels_last(x: torch.Tensor) -> bool:
    """True when `x`'s strides say channels_last rather than NCHW.

    PyTorch's own stride rule (`is_channels_last_strides_2d` in c10), so tensors that are
    contiguous in both formats (C == 1, or H == W == 1) are told apart the way PyTorch's
    `suggest_memory_format` does, and non-dense views are classified by their stride order.  It
    reads only sizes and strides, so the fake (meta) implementation agrees with the real one.
    """
    if x.dim() != 4:
        return False
    sizes, strides = x.shape, x.stride()
    if strides[1] == 0:
        return False
    smallest = 0
    for d in (1, 3, 2, 0):
        if sizes[d] == 0 or strides[d] < smallest:
            return False
        # [N,1,1,1]-like tensors with identical strides: PyTorch falls back to NCHW.
        if d == 0 and smallest == strides[1]:
            return False
        smallest = strides[d] * sizes[d] if sizes[d] > 1 else strides[d]
    return True


def output_hw(
    H: Any, W: Any, kH: Any, kW: Any, stride: Pair, padding: Pair, output_padding: Pair, dilation: Pair
) -> Tuple[Any, Any]:
    """`F.conv_transpose2d`'s output size; works on ints and on symbolic sizes alike."""
    H_out = (H - 1) * stride[0] - 2 * padding[0] + dilation[0] * (kH - 1) + output_padding[0] + 1
    W_out = (W - 1) * stride[1] - 2 * padding[1] + dilation[1] * (kW - 1) + output_padding[1] + 1
    return H_out, W_out


def _is_int(v: Any) -> bool:
    # bool is an int subclass, but `stride=True` is a bug, not a stride of 1.
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def normalize_pair(name: str, value: Any) -> Pair:
    """Turn an int or a sequence of two ints into a `(h, w)` tuple, rejecting anything else."""
    if _is_int(value):
        return (int(value), int(value))
    if isinstance(value, (list, tuple, torch.Size)) and len(value) == 2 and all(_is_int(v) for v in value):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{name} must be an int or a pair of ints (h, w), got {value!r}")


def validate_scale(s: Any) -> float:
    """Check the scale `s` (a real number or a 0-d real tensor, finite) and return it as a float.

    A tensor `s` is read with `.item()`, which synchronises with its device when it lives on a GPU.
    """
    if isinstance(s, torch.Tensor):
        if s.dim() != 0:
            raise ValueError(f"s must be a number or a 0-d tensor, got a tensor of shape {tuple(s.shape)}")
        if s.is_complex() or s.dtype == torch.bool:
            raise TypeError(f"s must be a real number, got a tensor of dtype {s.dtype}")
        value = float(s.item())
    elif isinstance(s, numbers.Real) and not isinstance(s, bool):
        value = float(s)
    else:
        raise TypeError(f"s must be a real number or a 0-d tensor, got {type(s).__name__}")
    # Under torch.compile a float argument may be traced symbolically, and math.isfinite cannot
    # be traced; the check then happens for the concrete values only (eager calls).
    if not torch.compiler.is_compiling() and not math.isfinite(value):
        raise ValueError(f"s must be finite, got {value}")
    return value


def _check_tensor(name: str, t: Any) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.layout != torch.strided:
        raise TypeError(f"{name} must be a dense (strided) tensor, got layout {t.layout}")
    return t


def validate(
    x: Any,
    w: Any,
    conv_b: Any,
    b: Any,
    *,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> ConvTransposeArgs:
    """Check every tensor argument and hyper-parameter; return the normalised problem.

    The scale `s` is checked separately by `validate_scale` because converting a tensor scale to a
    float may synchronise with the GPU, which callers must be able to keep out of traced code.
    Raises `TypeError` for wrong kinds/dtypes and `ValueError` for wrong shapes/values.
    """
    x = _check_tensor("x", x)
    w = _check_tensor("w", w)
    if conv_b is not None:
        conv_b = _check_tensor("conv_b", conv_b)
    b = _check_tensor("b", b)

    if x.dim() != 4:
        raise ValueError(f"x must be 4-D [N, Cin, H, W], got shape {tuple(x.shape)}")
    if w.dim() != 4:
        raise ValueError(
            f"w must be 4-D [Cin, Cout, kH, kW] (the ConvTranspose2d weight layout), got shape {tuple(w.shape)}"
        )

    if x.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"x has dtype {x.dtype}; supported dtypes are {_DTYPE_NAMES}")
    for name, t in (("w", w), ("conv_b", conv_b), ("b", b)):
        if t is not None and t.dtype != x.dtype:
            raise TypeError(
                f"{name} has dtype {t.dtype} but x has dtype {x.dtype}: "
                "x, w, conv_b and b must all have the same dtype"
            )
    for name, t in (("w", w), ("conv_b", conv_b), ("b", b)):
        if t is not None and t.device != x.device:
            raise ValueError(
                f"{name} is on device {t.device} but x is on device {x.device}: "
                "x, w, conv_b and b must all be on the same device"
            )

    N, Cin, H, W = (int(v) for v in x.shape)
    w_cin, Cout, kH, kW = (int(v) for v in w.shape)
    if Cin == 0:
        raise ValueError("x.shape[1] (Cin) must be >= 1, got 0")
    if H == 0 or W == 0:
        raise ValueError(f"x must have a non-empty spatial size, got H={H}, W={W}")
    if w_cin != Cin:
        raise ValueError(
            f"x.shape[1] (Cin={Cin}) does not match w.shape[0] (Cin={w_cin}); "
            "w must be laid out [Cin, Cout, kH, kW] like ConvTranspose2d.weight"
        )
    if Cout == 0:
        raise ValueError("w.shape[1] (Cout) must be >= 1, got 0")
    if kH == 0 or kW == 0:
        raise ValueError(f"w must have a non-empty kernel, got kH={kH}, kW={kW}")
    if conv_b is not None and tuple(conv_b.shape) != (Cout,):
        raise ValueError(f"conv_b must have shape [Cout] = [{Cout}] or be None, got shape {tuple(conv_b.shape)}")
    if tuple(b.shape) not in ((Cout,), (Cout, 1, 1)):
        raise ValueError(f"b must have shape [Cout] or [Cout, 1, 1] with Cout={Cout}, got shape {tuple(b.shape)}")

    stride_p = normalize_pair("stride", stride)
    padding_p = normalize_pair("padding", padding)
    out_pad_p = normalize_pair("output_padding", output_padding)
    dilation_p = normalize_pair("dilation", dilation)
    if min(stride_p) < 1:
        raise ValueError(f"stride must be >= 1, got {stride_p}")
    if min(padding_p) < 0:
        raise ValueError(f"padding must be >= 0, got {padding_p}")
    if min(dilation_p) < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation_p}")
    if min(out_pad_p) < 0:
        raise ValueError(f"output_padding must be >= 0, got {out_pad_p}")
    for i in range(2):
        # PyTorch's rule (aten/src/ATen/native/ConvUtils.h): each output_padding must be smaller
        # than the stride or the dilation of its dimension.
        if out_pad_p[i] >= stride_p[i] and out_pad_p[i] >= dilation_p[i]:
            raise ValueError(
                "output_padding must be smaller than either stride or dilation, but got "
                f"output_padding={out_pad_p}, stride={stride_p}, dilation={dilation_p}"
            )

    H_out, W_out = output_hw(H, W, kH, kW, stride_p, padding_p, out_pad_p, dilation_p)
    if H_out <= 0 or W_out <= 0:
        raise ValueError(
            f"the output size would be H_out={H_out}, W_out={W_out}, which is not positive "
            "(H_out = (H-1)*stride - 2*padding + dilation*(kH-1) + output_padding + 1); "
            "reduce padding or use a larger input"
        )

    return ConvTransposeArgs(
        N=N,
        Cin=Cin,
        Cout=Cout,
        H=H,
        W=W,
        kH=kH,
        kW=kW,
        H_out=int(H_out),
        W_out=int(W_out),
        stride=stride_p,
        padding=padding_p,
        output_padding=out_pad_p,
        dilation=dilation_p,
        dtype=x.dtype,
        device=x.device,
        channels_last=is_channels_last(x),
        has_conv_bias=conv_b is not None,
    )

