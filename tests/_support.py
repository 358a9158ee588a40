"""Test helpers: independent float64 implementations, problem generators and tolerances."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

Pair = Tuple[int, int]


def pair(v: Any) -> Pair:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv_transpose2d_direct64(
    x: torch.Tensor,
    w: torch.Tensor,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
) -> torch.Tensor:
    """Transposed convolution from its definition, in float64, without F.conv_transpose2d.

    Input pixel (ih, iw) with tap (kh, kw) lands on output (ih*s - p + kh*d, iw*s - p + kw*d).
    """
    x, w = x.double(), w.double()
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = pair(stride), pair(padding), pair(output_padding), pair(dilation)
    N, _, H, W = x.shape
    _, Cout, kH, kW = w.shape
    H_out = (H - 1) * sh - 2 * ph + dh * (kH - 1) + oph + 1
    W_out = (W - 1) * sw - 2 * pw + dw * (kW - 1) + opw + 1
    # Accumulate on the un-cropped grid, then cut the padding away.
    Hb = max((H - 1) * sh + dh * (kH - 1) + 1, ph + H_out)
    Wb = max((W - 1) * sw + dw * (kW - 1) + 1, pw + W_out)
    buf = x.new_zeros((N, Cout, Hb, Wb))
    for kh in range(kH):
        for kw in range(kW):
            contrib = torch.einsum("nchw,cd->ndhw", x, w[:, :, kh, kw])
            buf[:, :, kh * dh : kh * dh + (H - 1) * sh + 1 : sh, kw * dw : kw * dw + (W - 1) * sw + 1 : sw] += contrib
    return buf[:, :, ph : ph + H_out, pw : pw + W_out]


def hand_composite64(
    x: torch.Tensor,
    w: torch.Tensor,
    conv_b: Optional[torch.Tensor],
    b: torch.Tensor,
    s: float,
    **conv: Any,
) -> torch.Tensor:
    """The operator written out by hand in float64 (direct conv, explicit softmax and sigmoid)."""
    z = conv_transpose2d_direct64(x, w, **conv)
    if conv_b is not None:
        z = z + conv_b.double().view(1, -1, 1, 1)
    e = torch.exp(z - z.amax(dim=1, keepdim=True))
    p = e / e.sum(dim=1, keepdim=True)
    t = float(s) * (p + b.double().reshape(1, -1, 1, 1))
    return 1.0 / (1.0 + torch.exp(-t))


def composite64(
    x: torch.Tensor, w: torch.Tensor, conv_b: Optional[torch.Tensor], b: torch.Tensor, s: float, **conv: Any
) -> torch.Tensor:
    """The PyTorch composite on float64 copies of the inputs, on their device (fast on a GPU)."""
    cb = conv_b.double() if conv_b is not None else None
    stride, padding = conv.get("stride", 1), conv.get("padding", 0)
    output_padding, dilation = conv.get("output_padding", 0), conv.get("dilation", 1)
    z = F.conv_transpose2d(x.double(), w.double(), cb, stride, padding, output_padding, 1, dilation)
    return torch.sigmoid((torch.softmax(z, dim=1) + b.double().reshape(1, -1, 1, 1)) * float(s))


@dataclass
class Problem:
    x: torch.Tensor
    w: torch.Tensor
    conv_b: Optional[torch.Tensor]
    b: torch.Tensor
    s: float
    conv: Dict[str, Any] = field(default_factory=dict)

    def args(self) -> Tuple[Any, ...]:
        return (self.x, self.w, self.conv_b, self.b, self.s)


def make_problem(
    N: int,
    Cin: int,
    Cout: int,
    H: int,
    W: int,
    k: Any,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
    *,
    dtype: torch.dtype = torch.float32,
    device: Any = "cpu",
    channels_last: bool = False,
    logit_std: float = 1.0,
    logit_absmax: Optional[float] = None,
    conv_bias: bool = True,
    s: float = 2.0,
) -> Problem:
    """Random inputs whose pre-softmax logits have standard deviation `logit_std`, or, when
    `logit_absmax` is given, largest magnitude `logit_absmax`.

    The weight is rescaled against a float64 convolution, so "large logits" (logit_absmax=30: a
    peaked softmax) means the same thing for every shape.  Inputs are rounded to
    `dtype` before anything is computed from them, so references see exactly what the kernel sees.
    """
    kH, kW = pair(k)
    conv = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation)
    x = torch.randn(N, Cin, H, W, dtype=torch.float64, device=device)
    w = torch.randn(Cin, Cout, kH, kW, dtype=torch.float64, device=device)
    z = F.conv_transpose2d(x, w, None, stride, padding, output_padding, 1, dilation)
    if logit_absmax is not None:
        w = w * (logit_absmax / max(float(z.abs().max()), 1e-12))
    else:
        std = float(z.std()) if z.numel() > 1 else 1.0
        w = w * (logit_std / max(std, 1e-12))
    conv_b = (torch.rand(Cout, dtype=torch.float64, device=device) - 0.5) if conv_bias else None
    b = 0.5 * torch.randn(Cout, 1, 1, dtype=torch.float64, device=device)
    x = x.to(dtype)
    if channels_last:
        # Not .contiguous(): it keeps NCHW strides for tensors that are contiguous in both formats
        # (C == 1, or H == W == 1), and the strides are what decide the layout.
        x = torch.empty_like(x, memory_format=torch.channels_last).copy_(x)
    return Problem(
        x=x,
        w=w.to(dtype),
        conv_b=conv_b.to(dtype) if conv_b is not None else None,
        b=b.to(dtype),
        s=s,
        conv=conv,
    )


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    """‖out − ref‖ / ‖ref‖ in float64."""
    out, ref = out.double(), ref.double()
    return float(torch.linalg.vector_norm(out - ref) / torch.linalg.vector_norm(ref).clamp_min(1e-30))


def max_abs_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.double() - ref.double()).abs().max()) if out.numel() else 0.0


# (relative-norm tolerance, max-abs tolerance) per math mode.
TOLERANCES: Dict[str, Tuple[float, float]] = {
    "fp32_strict": (1e-5, 1e-5),
    "tf32": (5e-3, 2e-3),
    "fp16": (5e-3, 4e-3),
    "bf16": (2e-2, 2e-2),
}
