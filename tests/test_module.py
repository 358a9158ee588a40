"""`FusedConvTransposeSoftmax`: a drop-in for the eager composite of modules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fused_convt_full import FusedConvTransposeSoftmax


def eager_composite(conv: nn.ConvTranspose2d, bias: torch.Tensor, scale: float, x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid((torch.softmax(conv(x), dim=1) + bias) * scale)


CONV_CONFIGS = {
    "reference_problem_small": dict(in_channels=8, out_channels=16, kernel_size=4, stride=2, padding=1, output_padding=1),
    "rectangular": dict(in_channels=3, out_channels=5, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0),
                        output_padding=(1, 0)),
    "dilation": dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, output_padding=1, dilation=2),
    "no_conv_bias": dict(in_channels=4, out_channels=6, kernel_size=3, stride=1, bias=False),
}  # fmt: skip


@pytest.mark.parametrize("cfg", list(CONV_CONFIGS.values()), ids=list(CONV_CONFIGS))
def test_from_modules_equals_the_eager_composite(cfg):
    conv = nn.ConvTranspose2d(**cfg)
    bias = nn.Parameter(torch.randn(cfg["out_channels"], 1, 1))
    fused = FusedConvTransposeSoftmax.from_modules(conv, bias, 2.0)
    x = torch.randn(2, cfg["in_channels"], 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), eager_composite(conv, bias, 2.0, x), rtol=0, atol=1e-6)


def test_from_modules_shares_parameters_with_the_source_modules():
    conv = nn.ConvTranspose2d(3, 4, 3, stride=2)
    bias = nn.Parameter(torch.randn(4, 1, 1))
    fused = FusedConvTransposeSoftmax.from_modules(conv, bias, 1.5)
    assert fused.weight is conv.weight and fused.conv_bias is conv.bias and fused.bias is bias
    x = torch.randn(1, 3, 4, 4)
    with torch.no_grad():
        conv.weight.mul_(2.0)  # training the source updates the fused module
        torch.testing.assert_close(fused(x), eager_composite(conv, bias, 1.5, x), rtol=0, atol=1e-6)


def test_from_modules_accepts_a_flat_bias_tensor():
    conv = nn.ConvTranspose2d(3, 4, 3)
    bias = torch.randn(4)
    fused = FusedConvTransposeSoftmax.from_modules(conv, bias, 1.0)
    assert fused.bias.shape == (4, 1, 1)
    x = torch.randn(1, 3, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), eager_composite(conv, bias.view(4, 1, 1), 1.0, x), rtol=0, atol=1e-6)


def test_from_modules_rejects_groups():
    conv = nn.ConvTranspose2d(4, 4, 3, groups=2)
    with pytest.raises(ValueError, match="groups must be 1"):
        FusedConvTransposeSoftmax.from_modules(conv, torch.zeros(4, 1, 1), 1.0)


def test_from_modules_rejects_non_zero_padding_mode():
    conv = nn.ConvTranspose2d(4, 4, 3)
    conv.padding_mode = "reflect"  # ConvTranspose2d's constructor refuses it; a subclass might not
    with pytest.raises(ValueError, match="padding_mode must be 'zeros'"):
        FusedConvTransposeSoftmax.from_modules(conv, torch.zeros(4, 1, 1), 1.0)


def test_from_modules_rejects_a_bias_of_the_wrong_shape():
    conv = nn.ConvTranspose2d(4, 5, 3)
    with pytest.raises(ValueError, match="bias must have shape"):
        FusedConvTransposeSoftmax.from_modules(conv, torch.zeros(4, 1, 1), 1.0)


def test_from_modules_rejects_other_modules():
    with pytest.raises(TypeError, match="conv_transpose must be an nn.ConvTranspose2d"):
        FusedConvTransposeSoftmax.from_modules(nn.Conv2d(3, 3, 3), torch.zeros(3, 1, 1), 1.0)


def test_parameters_are_initialised_like_conv_transpose2d():
    torch.manual_seed(1)
    conv = nn.ConvTranspose2d(6, 10, 3, stride=2)
    torch.manual_seed(1)
    fused = FusedConvTransposeSoftmax(6, 10, 3, stride=2)
    assert torch.equal(fused.weight, conv.weight)
    assert torch.equal(fused.conv_bias, conv.bias)
    assert torch.equal(fused.bias, torch.zeros(10, 1, 1))


def test_parameter_names_and_shapes():
    fused = FusedConvTransposeSoftmax(6, 10, (3, 2))
    assert {n: tuple(p.shape) for n, p in fused.named_parameters()} == {
        "weight": (6, 10, 3, 2),
        "conv_bias": (10,),
        "bias": (10, 1, 1),
    }
    no_bias = FusedConvTransposeSoftmax(6, 10, 3, bias=False)
    assert no_bias.conv_bias is None and "conv_bias" not in dict(no_bias.named_parameters())


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_drop_in_output_shape_and_memory_format(channels_last):
    cfg = CONV_CONFIGS["reference_problem_small"]
    conv = nn.ConvTranspose2d(**cfg)
    fused = FusedConvTransposeSoftmax(**cfg, scaling_factor=2.0)
    x = torch.randn(3, 8, 7, 9)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = fused(x)
        assert out.shape == conv(x).shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert out.is_contiguous(memory_format=fmt)


def test_factory_kwargs_set_dtype_and_device():
    fused = FusedConvTransposeSoftmax(3, 4, 3, dtype=torch.bfloat16, device="cpu")
    assert all(p.dtype == torch.bfloat16 and p.device.type == "cpu" for p in fused.parameters())
    out = fused(torch.randn(1, 3, 4, 4, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16


def test_module_trains_through_autograd():
    fused = FusedConvTransposeSoftmax(3, 4, 3, stride=2, scaling_factor=2.0)
    out = fused(torch.randn(2, 3, 4, 4))
    out.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in fused.parameters())


def test_extra_repr_shows_the_configuration():
    text = repr(FusedConvTransposeSoftmax(8, 16, 4, stride=2, padding=1, output_padding=1, scaling_factor=2.0))
    for part in ("8, 16", "kernel_size=(4, 4)", "stride=(2, 2)", "padding=(1, 1)", "output_padding=(1, 1)",
                 "scaling_factor=2.0"):  # fmt: skip
        assert part in text


def test_state_dict_round_trip():
    a = FusedConvTransposeSoftmax(3, 4, 3)
    b = FusedConvTransposeSoftmax(3, 4, 3)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 4, 4)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
