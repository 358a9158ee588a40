"""`forward` on CPU tensors: semantics, empty batch, layouts, scale kinds, packed weights, autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from _support import hand_composite64, make_problem, max_abs_err

from fused_convt_full import forward, prepack, reference


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_forward_on_cpu_equals_reference(dtype, channels_last):
    prob = make_problem(2, 5, 7, 9, 11, 4, 2, 1, 1, dtype=dtype, channels_last=channels_last)
    out = forward(*prob.args(), **prob.conv)
    assert torch.equal(out, reference(*prob.args(), **prob.conv))
    assert out.dtype == dtype
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_forward_matches_float64_hand_composite():
    prob = make_problem(2, 8, 16, 6, 6, 4, 2, 1, 1, logit_std=10.0)
    out = forward(*prob.args(), **prob.conv)
    assert max_abs_err(out, hand_composite64(*prob.args(), **prob.conv)) < 1e-6


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_empty_batch_returns_empty_output_of_the_right_shape(channels_last):
    prob = make_problem(1, 4, 6, 5, 7, 3, 2, 1, 1, channels_last=channels_last)
    x = prob.x[:0]
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = forward(x, prob.w, prob.conv_b, prob.b, prob.s, **prob.conv)
    assert out.shape == (0, 6, 10, 14)
    assert out.dtype == prob.x.dtype
    assert out.shape == F.conv_transpose2d(x, prob.w, None, 2, 1, 1).shape


def test_forward_accepts_zero_dim_tensor_scale_and_int_scale():
    prob = make_problem(1, 4, 6, 5, 5, 3, 2, 1, 1, s=2.0)
    expected = forward(*prob.args(), **prob.conv)
    assert torch.equal(forward(prob.x, prob.w, prob.conv_b, prob.b, torch.tensor(2.0), **prob.conv), expected)
    assert torch.equal(forward(prob.x, prob.w, prob.conv_b, prob.b, 2, **prob.conv), expected)


def test_forward_accepts_pair_hyperparameters_as_lists_and_tuples():
    prob = make_problem(1, 4, 6, 5, 6, (3, 2), (2, 1), (1, 0), (1, 0), 1)
    a = forward(*prob.args(), stride=(2, 1), padding=(1, 0), output_padding=(1, 0))
    c = forward(*prob.args(), stride=[2, 1], padding=[1, 0], output_padding=[1, 0])
    assert torch.equal(a, c)


def test_forward_with_packed_weight_equals_forward_with_plain_weight():
    prob = make_problem(2, 5, 7, 6, 6, 4, 2, 1, 1)
    packed = prepack(prob.w)
    out = forward(prob.x, packed, prob.conv_b, prob.b, prob.s, **prob.conv)
    assert torch.equal(out, forward(*prob.args(), **prob.conv))


def test_forward_with_packed_weight_sees_in_place_weight_updates():
    prob = make_problem(1, 4, 6, 5, 5, 3, 2, 1, 1)
    packed = prepack(prob.w)
    before = forward(prob.x, packed, prob.conv_b, prob.b, prob.s, **prob.conv)
    with torch.no_grad():
        prob.w.mul_(3.0)
    after = forward(prob.x, packed, prob.conv_b, prob.b, prob.s, **prob.conv)
    assert not torch.equal(before, after)
    assert torch.equal(after, reference(*prob.args(), **prob.conv))


def test_forward_does_not_modify_its_inputs():
    prob = make_problem(1, 4, 6, 5, 5, 3, 2, 1, 1)
    copies = [t.clone() for t in (prob.x, prob.w, prob.conv_b, prob.b)]
    forward(*prob.args(), **prob.conv)
    for t, c in zip((prob.x, prob.w, prob.conv_b, prob.b), copies):
        assert torch.equal(t, c)


@pytest.mark.parametrize("conv_bias", [True, False], ids=["conv_bias", "no_conv_bias"])
def test_gradients_match_the_eager_composite(conv_bias):
    prob = make_problem(2, 4, 6, 5, 5, 3, 2, 1, 1, conv_bias=conv_bias)
    leaves = [t.detach().clone().requires_grad_() if t is not None else None
              for t in (prob.x, prob.w, prob.conv_b, prob.b)]  # fmt: skip
    ref_leaves = [t.detach().clone().requires_grad_() if t is not None else None
                  for t in (prob.x, prob.w, prob.conv_b, prob.b)]  # fmt: skip
    grad_out = torch.randn(2, 6, 10, 10)

    out = forward(*leaves, prob.s, **prob.conv)
    out.backward(grad_out)
    x, w, cb, b = ref_leaves
    z = F.conv_transpose2d(x, w, cb, 2, 1, 1)
    expected = torch.sigmoid((torch.softmax(z, dim=1) + b) * prob.s)
    expected.backward(grad_out)

    assert torch.allclose(out, expected, atol=1e-6)
    for got, want in zip(leaves, ref_leaves):
        if got is None:
            continue
        assert got.grad is not None and got.grad.shape == want.shape
        assert torch.allclose(got.grad, want.grad, rtol=1e-4, atol=1e-6)
