"""A pure-PyTorch stand-in for `fused_convt_full._C`, implementing the native API spec on GPU.

It reads and writes device memory through the raw pointers the package passes (wrapped with
`__cuda_array_interface__`), and checks the layout contract (NHWC input, packed weight, zero
channel padding, float32 biases) instead of trusting it.  Tests swap it in to check the Python
side of the boundary independently of the real kernels.
"""

from __future__ import annotations

import enum
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

CHANNEL_ALIGNMENT = 8


class DType(enum.Enum):
    float32 = 0
    float16 = 1
    bfloat16 = 2


class Layout(enum.Enum):
    nchw = 0
    nhwc = 1


class Math(enum.Enum):
    tf32 = 0
    fp32_strict = 1


class Problem:
    def __init__(self) -> None:
        self.N = self.H = self.W = self.Cin = self.Cout = self.kH = self.kW = 0
        self.stride_h = self.stride_w = 1
        self.pad_h = self.pad_w = 0
        self.out_pad_h = self.out_pad_w = 0
        self.dil_h = self.dil_w = 1
        self.dtype, self.out_layout, self.math = DType.float32, Layout.nchw, Math.tf32

    def H_out(self) -> int:
        return (self.H - 1) * self.stride_h - 2 * self.pad_h + self.dil_h * (self.kH - 1) + self.out_pad_h + 1

    def W_out(self) -> int:
        return (self.W - 1) * self.stride_w - 2 * self.pad_w + self.dil_w * (self.kW - 1) + self.out_pad_w + 1


_TORCH = {DType.float32: torch.float32, DType.float16: torch.float16, DType.bfloat16: torch.bfloat16}
# bfloat16 has no array-interface type string; move its bits as int16.
_TYPESTR = {torch.float32: "<f4", torch.float16: "<f2", torch.bfloat16: "<i2"}

calls: list = []  # (function name, problem-or-dtype) per call, for tests to inspect


class _Memory:
    def __init__(self, ptr: int, shape: Tuple[int, ...], dtype: torch.dtype) -> None:
        self.__cuda_array_interface__ = {
            "shape": shape,
            "typestr": _TYPESTR[dtype],
            "data": (ptr, False),
            "version": 3,
            "strides": None,
            "stream": None,  # no synchronisation: everything here runs on the caller's stream
        }


def _view(ptr: int, shape: Tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    if ptr == 0:
        raise RuntimeError("fused_convt_full: null pointer")
    if ptr % 16:
        raise RuntimeError(f"fused_convt_full: pointer {ptr:#x} is not 16-byte aligned")
    t = torch.as_tensor(_Memory(ptr, tuple(int(v) for v in shape), dtype), device="cuda")
    return t.view(torch.bfloat16) if dtype == torch.bfloat16 else t


def _pad(c: int) -> int:
    return -(-c // CHANNEL_ALIGNMENT) * CHANNEL_ALIGNMENT


def _check_stream(stream: int) -> None:
    # The package must launch on PyTorch's current stream; the stand-in then simply runs there.
    current = torch.cuda.current_stream().cuda_stream
    if stream != current:
        raise RuntimeError(f"fused_convt_full: launched on stream {stream:#x}, current stream is {current:#x}")


def _bias(ptr: int, C: int) -> Optional[torch.Tensor]:
    return None if ptr == 0 else _view(ptr, (C,), torch.float32)


def _epilogue(z: torch.Tensor, conv_b: Optional[torch.Tensor], b: torch.Tensor, s: float) -> torch.Tensor:
    z = z.float()
    if conv_b is not None:
        z = z + conv_b.view(1, -1, 1, 1)
    return torch.sigmoid(s * (torch.softmax(z, dim=1) + b.view(1, -1, 1, 1)))


def fused_support(p: Problem) -> Tuple[bool, str, str]:
    if p.dil_h != 1 or p.dil_w != 1:
        return False, "fake: dilation > 1 is not supported by the fused kernel", ""
    if p.Cout > 256:
        return False, f"fake: Cout = {p.Cout} exceeds 256", ""
    if p.dtype == DType.float32 and p.math == Math.fp32_strict:
        return False, "fake: no full-precision fp32 fused kernel", ""
    return True, "fake fused kernel", "fake_fused_kernel"


def fused_forward(p: Problem, x_ptr: int, w_ptr: int, conv_b_ptr: int, b_ptr: int, s: float, y_ptr: int,
                  stream: int) -> None:  # fmt: skip
    calls.append(("fused_forward", p))
    dtype = _TORCH[p.dtype]
    _check_stream(stream)
    x = _view(x_ptr, (p.N, p.H, p.W, _pad(p.Cin)), dtype)
    w = _view(w_ptr, (_pad(p.Cin), p.kH, p.kW, _pad(p.Cout)), dtype)
    if x[..., p.Cin :].count_nonzero() or w[p.Cin :].count_nonzero() or w[..., p.Cout :].count_nonzero():
        raise RuntimeError("fused_convt_full: channel padding of x or w is not zero")
    xin = x[..., : p.Cin].permute(0, 3, 1, 2).float()
    win = w[: p.Cin, :, :, : p.Cout].permute(0, 3, 1, 2).float()
    z = F.conv_transpose2d(xin, win, None, (p.stride_h, p.stride_w), (p.pad_h, p.pad_w),
                           (p.out_pad_h, p.out_pad_w), 1, (p.dil_h, p.dil_w))  # fmt: skip
    y = _epilogue(z, _bias(conv_b_ptr, p.Cout), _bias(b_ptr, p.Cout), s).to(dtype)
    Ho, Wo = p.H_out(), p.W_out()
    if p.out_layout == Layout.nchw:
        _view(y_ptr, (p.N, p.Cout, Ho, Wo), dtype).copy_(y)
    else:
        _view(y_ptr, (p.N, Ho, Wo, p.Cout), dtype).copy_(y.permute(0, 2, 3, 1))


def nchw_to_nhwc(dtype, N, C, HW, C_pad, x_ptr, y_ptr, stream) -> None:
    calls.append(("nchw_to_nhwc", dtype))
    _check_stream(stream)
    tdtype = _TORCH[dtype]
    y = _view(y_ptr, (N, HW, C_pad), tdtype)
    y.zero_()
    y[..., :C].copy_(_view(x_ptr, (N, C, HW), tdtype).transpose(1, 2))


def _softmax_epilogue(name, dtype, layout, N, C, HW, z_ptr, conv_b_ptr, b_ptr, s, y_ptr, stream) -> None:
    calls.append((name, dtype))
    tdtype = _TORCH[dtype]
    _check_stream(stream)
    shape = (N, C, HW) if layout == Layout.nchw else (N, HW, C)
    z = _view(z_ptr, shape, tdtype)
    if torch.isnan(z).any():
        raise RuntimeError("fused_convt_full (stand-in): z holds NaN: read before it was written?")
    z4 = z.unsqueeze(-1) if layout == Layout.nchw else z.permute(0, 2, 1).unsqueeze(-1)
    y = _epilogue(z4, _bias(conv_b_ptr, C), _bias(b_ptr, C), s).to(tdtype).squeeze(-1)
    out = _view(y_ptr, shape, tdtype)
    out.copy_(y if layout == Layout.nchw else y.permute(0, 2, 1))


def softmax_epilogue(*args) -> None:
    _softmax_epilogue("softmax_epilogue", *args)


def softmax_epilogue_naive(*args) -> None:
    _softmax_epilogue("softmax_epilogue_naive", *args)


def compiled_archs() -> list:
    return [80, 86, 89, 90]
