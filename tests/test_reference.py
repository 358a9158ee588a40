"""The reference composite: semantics against an independent float64 implementation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from _support import conv_transpose2d_direct64, hand_composite64, make_problem, max_abs_err

from fused_convt_full import reference

# (N, Cin, Cout, H, W, k, stride, padding, output_padding, dilation)
CONFIGS = {
    "reference_problem_small": (2, 8, 16, 6, 6, 4, 2, 1, 1, 1),
    "odd_sizes": (1, 5, 7, 9, 11, 3, 2, 1, 0, 1),
    "kernel_smaller_than_stride": (2, 3, 4, 5, 4, 1, 2, 0, 1, 1),
    "k2_s3": (1, 3, 5, 4, 5, 2, 3, 0, 2, 1),
    "padding_ge_kernel": (1, 4, 6, 7, 7, 2, 3, 2, 0, 1),
    "stride_1": (2, 4, 3, 5, 6, 3, 1, 1, 0, 1),
    "dilation_2": (1, 4, 5, 5, 5, 3, 2, 1, 1, 2),
    "rectangular_params": (1, 3, 4, 5, 6, (2, 3), (2, 1), (1, 0), (1, 0), (1, 2)),
    "single_channel_out": (2, 3, 1, 4, 4, 3, 2, 1, 1, 1),
}


@pytest.mark.parametrize("cfg", list(CONFIGS.values()), ids=list(CONFIGS))
def test_direct_conv_transpose_definition_matches_pytorch(cfg):
    N, Cin, Cout, H, W, k, st, p, op, d = cfg
    prob = make_problem(N, Cin, Cout, H, W, k, st, p, op, d, dtype=torch.float64)
    ours = conv_transpose2d_direct64(prob.x, prob.w, **prob.conv)
    theirs = F.conv_transpose2d(prob.x, prob.w, None, st, p, op, 1, d)
    assert ours.shape == theirs.shape
    assert max_abs_err(ours, theirs) < 1e-10


@pytest.mark.parametrize("cfg", list(CONFIGS.values()), ids=list(CONFIGS))
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_reference_matches_float64_hand_composite(cfg, channels_last):
    N, Cin, Cout, H, W, k, st, p, op, d = cfg
    prob = make_problem(N, Cin, Cout, H, W, k, st, p, op, d, channels_last=channels_last)
    out = reference(*prob.args(), **prob.conv)
    expected = hand_composite64(*prob.args(), **prob.conv)
    assert out.shape == expected.shape and out.dtype == torch.float32
    assert max_abs_err(out, expected) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reference_computes_16bit_cpu_inputs_in_float32(dtype):
    prob = make_problem(2, 8, 16, 6, 6, 4, 2, 1, 1, dtype=dtype)
    out = reference(*prob.args(), **prob.conv)
    expected = hand_composite64(*prob.args(), **prob.conv)
    assert out.dtype == dtype
    # Only the final rounding to 16 bits differs from float64: half an ulp of values in (0, 1).
    ulp = 2.0**-8 if dtype == torch.bfloat16 else 2.0**-11
    assert max_abs_err(out, expected) <= ulp / 2 + 1e-6


def test_reference_without_conv_bias_and_with_flat_bias():
    prob = make_problem(1, 4, 6, 5, 5, 3, 2, 1, 1, conv_bias=False)
    out = reference(prob.x, prob.w, None, prob.b.view(-1), prob.s, **prob.conv)
    expected = hand_composite64(prob.x, prob.w, None, prob.b, prob.s, **prob.conv)
    assert max_abs_err(out, expected) < 1e-6


def test_reference_accepts_zero_dim_tensor_scale():
    prob = make_problem(1, 4, 6, 5, 5, 3, 2, 1, 1)
    out_tensor_s = reference(prob.x, prob.w, prob.conv_b, prob.b, torch.tensor(prob.s), **prob.conv)
    out_float_s = reference(*prob.args(), **prob.conv)
    assert torch.equal(out_tensor_s, out_float_s)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_reference_output_follows_input_memory_format(channels_last):
    prob = make_problem(2, 4, 6, 5, 5, 3, 2, 1, 1, channels_last=channels_last)
    out = reference(*prob.args(), **prob.conv)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert out.is_contiguous(memory_format=fmt)


def test_reference_propagates_nan_like_the_composite():
    prob = make_problem(1, 4, 6, 5, 5, 3, 2, 1, 1)
    prob.x[0, 1, 2, 3] = float("nan")
    out = reference(*prob.args(), **prob.conv)
    expected = hand_composite64(*prob.args(), **prob.conv)
    assert torch.equal(torch.isnan(out), torch.isnan(expected))
    assert torch.isnan(out).any()
