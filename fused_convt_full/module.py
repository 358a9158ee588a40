"""`FusedConvTransposeSoftmax`: the operator as an `nn.Module`."""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import nn

from ._validation import IntOrPair, normalize_pair
from .ops import forward
from .packing import cached_pack

__all__ = ["FusedConvTransposeSoftmax"]


class FusedConvTransposeSoftmax(nn.Module):
    """Drop-in for `ConvTranspose2d -> softmax(dim=1) -> + bias -> * scaling_factor -> sigmoid`.

    Parameters:
        weight: `[in_channels, out_channels, kH, kW]`, as `nn.ConvTranspose2d.weight`.
        conv_bias: `[out_channels]` (the ConvTranspose2d bias), or None when `bias=False`.
        bias: `[out_channels, 1, 1]`, the bias added after the softmax (zero-initialised).

    The packed copy of `weight` the fused kernel reads is made on first use and cached; in-place
    updates of `weight` (optimizer steps, `load_state_dict`) are detected and trigger a repack.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: IntOrPair = 0,
        output_padding: IntOrPair = 0,
        dilation: IntOrPair = 1,
        bias: bool = True,
        scaling_factor: float = 1.0,
        device: Optional[torch.device] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size: Tuple[int, int] = normalize_pair("kernel_size", kernel_size)
        self.stride: Tuple[int, int] = normalize_pair("stride", stride)
        self.padding: Tuple[int, int] = normalize_pair("padding", padding)
        self.output_padding: Tuple[int, int] = normalize_pair("output_padding", output_padding)
        self.dilation: Tuple[int, int] = normalize_pair("dilation", dilation)
        self.scaling_factor = float(scaling_factor)
        self.weight = nn.Parameter(torch.empty((self.in_channels, self.out_channels, *self.kernel_size), **factory))
        if bias:
            self.conv_bias: Optional[nn.Parameter] = nn.Parameter(torch.empty(self.out_channels, **factory))
        else:
            self.register_parameter("conv_bias", None)
        self.bias = nn.Parameter(torch.empty((self.out_channels, 1, 1), **factory))
        self.reset_parameters()
        self.prepack()

    def reset_parameters(self) -> None:
        """Initialise like `nn.ConvTranspose2d` (and the post-softmax bias to zero)."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.conv_bias is not None:
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1.0 / math.sqrt(fan_in)
                nn.init.uniform_(self.conv_bias, -bound, bound)
        nn.init.zeros_(self.bias)

    @classmethod
    def from_modules(
        cls, conv_transpose: nn.ConvTranspose2d, bias: torch.Tensor, scaling_factor: float
    ) -> "FusedConvTransposeSoftmax":
        """Build from an existing `nn.ConvTranspose2d`, the post-softmax bias and the scale.

        The new module shares (does not copy) the convolution's parameters, and `bias` when it is
        already an `nn.Parameter` of shape `[Cout, 1, 1]`.
        """
        if not isinstance(conv_transpose, nn.ConvTranspose2d):
            raise TypeError(f"conv_transpose must be an nn.ConvTranspose2d, got {type(conv_transpose).__name__}")
        if conv_transpose.groups != 1:
            raise ValueError(f"conv_transpose.groups must be 1, got {conv_transpose.groups}")
        if conv_transpose.padding_mode != "zeros":
            raise ValueError(f"conv_transpose.padding_mode must be 'zeros', got {conv_transpose.padding_mode!r}")
        if not isinstance(bias, torch.Tensor):
            raise TypeError(f"bias must be a torch.Tensor, got {type(bias).__name__}")
        cout = conv_transpose.out_channels
        if bias.numel() != cout or tuple(bias.shape) not in ((cout,), (cout, 1, 1)):
            raise ValueError(f"bias must have shape [Cout] or [Cout, 1, 1] with Cout={cout}, got {tuple(bias.shape)}")

        weight = conv_transpose.weight
        module = cls(
            conv_transpose.in_channels,
            cout,
            tuple(conv_transpose.kernel_size),
            stride=tuple(conv_transpose.stride),
            padding=tuple(conv_transpose.padding),
            output_padding=tuple(conv_transpose.output_padding),
            dilation=tuple(conv_transpose.dilation),
            bias=conv_transpose.bias is not None,
            scaling_factor=float(scaling_factor),
            device=torch.device("meta"),  # no throw-away initialisation; parameters are replaced below
            dtype=weight.dtype,
        )
        module.weight = weight
        module.conv_bias = conv_transpose.bias
        if isinstance(bias, nn.Parameter) and tuple(bias.shape) == (cout, 1, 1):
            module.bias = bias
        else:
            module.bias = nn.Parameter(bias.detach().reshape(cout, 1, 1), requires_grad=bias.requires_grad)
        module.prepack()
        return module

    def prepack(self) -> None:
        """Pack `weight` for the fused kernel now (done automatically after init and `.to()`).

        Packing before the first compiled or graph-captured call keeps the packed copy out of
        any CUDA-graph memory pool: `torch.compile(mode="reduce-overhead")` then only reads it.
        """
        if self.weight.is_cuda:
            with torch.no_grad():
                cached_pack(self.weight)

    def _apply(self, fn, *args, **kwargs):  # type: ignore[override]
        module = super()._apply(fn, *args, **kwargs)
        module.prepack()
        return module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward(
            x,
            self.weight,
            self.conv_bias,
            self.bias,
            self.scaling_factor,
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            dilation=self.dilation,
        )

    def extra_repr(self) -> str:
        parts = [f"{self.in_channels}, {self.out_channels}", f"kernel_size={self.kernel_size}", f"stride={self.stride}"]
        if self.padding != (0, 0):
            parts.append(f"padding={self.padding}")
        if self.output_padding != (0, 0):
            parts.append(f"output_padding={self.output_padding}")
        if self.dilation != (1, 1):
            parts.append(f"dilation={self.dilation}")
        if self.conv_bias is None:
            parts.append("bias=False")
        parts.append(f"scaling_factor={self.scaling_factor}")
        return ", ".join(parts)
