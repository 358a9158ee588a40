"""Every class of bad argument is rejected early with a message that names the argument."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fused_convt_full import explain, forward, reference
from fused_convt_full._validation import ConvTransposeArgs, normalize_pair, validate, validate_scale

ENTRY_POINTS = {"forward": forward, "explain": explain, "reference": reference}


def good_inputs(dtype=torch.float32):
    x = torch.randn(2, 4, 5, 5, dtype=dtype)
    w = torch.randn(4, 6, 3, 3, dtype=dtype)
    conv_b = torch.randn(6, dtype=dtype)
    b = torch.randn(6, 1, 1, dtype=dtype)
    return dict(x=x, w=w, conv_b=conv_b, b=b, s=2.0)


def call(fn, inputs, **conv):
    return fn(inputs["x"], inputs["w"], inputs["conv_b"], inputs["b"], inputs["s"], **conv)


def replaced(**changes):
    inputs = good_inputs()
    inputs.update(changes)
    return inputs


# (id, inputs, conv kwargs, exception type, match)
BAD_CASES = [
    ("x_not_tensor", replaced(x=[[1.0]]), {}, TypeError, r"^x must be a torch\.Tensor"),
    ("w_not_tensor", replaced(w=3), {}, TypeError, r"^w must be a torch\.Tensor"),
    ("conv_b_not_tensor", replaced(conv_b=1.0), {}, TypeError, r"^conv_b must be a torch\.Tensor"),
    ("b_not_tensor", replaced(b=None), {}, TypeError, r"^b must be a torch\.Tensor"),
    ("x_sparse", replaced(x=torch.randn(2, 4, 5, 5).to_sparse()), {}, TypeError, r"^x must be a dense"),
    ("x_3d", replaced(x=torch.randn(4, 5, 5)), {}, ValueError, r"^x must be 4-D"),
    ("w_2d", replaced(w=torch.randn(4, 6)), {}, ValueError, r"^w must be 4-D"),
    ("x_float64", replaced(x=torch.randn(2, 4, 5, 5, dtype=torch.float64)), {}, TypeError, r"^x has dtype torch\.float64"),
    ("x_int", replaced(x=torch.ones(2, 4, 5, 5, dtype=torch.int32)), {}, TypeError, r"^x has dtype"),
    ("w_other_dtype", replaced(w=torch.randn(4, 6, 3, 3, dtype=torch.float16)), {}, TypeError, r"^w has dtype .*same dtype"),
    ("conv_b_other_dtype", replaced(conv_b=torch.randn(6, dtype=torch.bfloat16)), {}, TypeError, r"^conv_b has dtype .*same dtype"),
    ("b_other_dtype", replaced(b=torch.randn(6, dtype=torch.float16)), {}, TypeError, r"^b has dtype .*same dtype"),
    ("w_other_device", replaced(w=torch.randn(4, 6, 3, 3, device="meta")), {}, ValueError, r"^w is on device meta"),
    ("b_other_device", replaced(b=torch.randn(6, device="meta")), {}, ValueError, r"^b is on device meta"),
    ("cin_mismatch", replaced(w=torch.randn(3, 6, 3, 3)), {}, ValueError, r"^x\.shape\[1\] \(Cin=4\) does not match w\.shape\[0\]"),
    ("cin_zero", replaced(x=torch.randn(2, 0, 5, 5), w=torch.randn(0, 6, 3, 3)), {}, ValueError, r"^x\.shape\[1\] \(Cin\) must be >= 1"),
    ("height_zero", replaced(x=torch.randn(2, 4, 0, 5)), {}, ValueError, r"^x must have a non-empty spatial size"),
    ("width_zero", replaced(x=torch.randn(2, 4, 5, 0)), {}, ValueError, r"^x must have a non-empty spatial size"),
    ("cout_zero", replaced(w=torch.randn(4, 0, 3, 3), conv_b=torch.randn(0), b=torch.randn(0)), {}, ValueError, r"^w\.shape\[1\] \(Cout\)"),
    ("kernel_zero", replaced(w=torch.randn(4, 6, 0, 3)), {}, ValueError, r"^w must have a non-empty kernel"),
    ("conv_b_shape", replaced(conv_b=torch.randn(5)), {}, ValueError, r"^conv_b must have shape \[Cout\]"),
    ("conv_b_2d", replaced(conv_b=torch.randn(6, 1)), {}, ValueError, r"^conv_b must have shape \[Cout\]"),
    ("b_shape", replaced(b=torch.randn(6, 2, 1)), {}, ValueError, r"^b must have shape \[Cout\] or \[Cout, 1, 1\]"),
    ("b_wrong_cout", replaced(b=torch.randn(7)), {}, ValueError, r"^b must have shape"),
    ("s_string", replaced(s="2"), {}, TypeError, r"^s must be a real number"),
    ("s_bool", replaced(s=True), {}, TypeError, r"^s must be a real number"),
    ("s_complex", replaced(s=1j), {}, TypeError, r"^s must be a real number"),
    ("s_1d_tensor", replaced(s=torch.tensor([2.0])), {}, ValueError, r"^s must be a number or a 0-d tensor"),
    ("s_complex_tensor", replaced(s=torch.tensor(1j)), {}, TypeError, r"^s must be a real number"),
    ("s_nan", replaced(s=float("nan")), {}, ValueError, r"^s must be finite"),
    ("s_inf", replaced(s=float("inf")), {}, ValueError, r"^s must be finite"),
    ("s_inf_tensor", replaced(s=torch.tensor(float("-inf"))), {}, ValueError, r"^s must be finite"),
    ("stride_float", good_inputs(), dict(stride=1.5), TypeError, r"^stride must be an int or a pair"),
    ("stride_bool", good_inputs(), dict(stride=True), TypeError, r"^stride must be an int or a pair"),
    ("stride_triple", good_inputs(), dict(stride=(1, 2, 3)), TypeError, r"^stride must be an int or a pair"),
    ("padding_pair_with_bool", good_inputs(), dict(padding=(1, False)), TypeError, r"^padding must be an int or a pair"),
    ("output_padding_str", good_inputs(), dict(output_padding="1"), TypeError, r"^output_padding must be an int or a pair"),
    ("dilation_none", good_inputs(), dict(dilation=None), TypeError, r"^dilation must be an int or a pair"),
    ("stride_zero", good_inputs(), dict(stride=0), ValueError, r"^stride must be >= 1"),
    ("padding_negative", good_inputs(), dict(padding=(0, -1)), ValueError, r"^padding must be >= 0"),
    ("dilation_zero", good_inputs(), dict(dilation=(1, 0)), ValueError, r"^dilation must be >= 1"),
    ("output_padding_negative", good_inputs(), dict(output_padding=-1), ValueError, r"^output_padding must be >= 0"),
    ("output_padding_too_large", good_inputs(), dict(stride=2, output_padding=2), ValueError,
     r"^output_padding must be smaller than either stride or dilation"),
    ("output_padding_stride_1", good_inputs(), dict(output_padding=1), ValueError,
     r"^output_padding must be smaller than either stride or dilation"),
    ("output_size_not_positive", good_inputs(), dict(padding=4), ValueError, r"^the output size would be H_out="),
]


@pytest.mark.parametrize("entry", list(ENTRY_POINTS), ids=list(ENTRY_POINTS))
@pytest.mark.parametrize("inputs,conv,exc,match", [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_bad_argument_is_rejected_naming_it(entry, inputs, conv, exc, match):
    with pytest.raises(exc, match=match):
        call(ENTRY_POINTS[entry], inputs, **conv)


def test_dtype_mismatch_message_says_all_must_match():
    with pytest.raises(TypeError, match="x, w, conv_b and b must all have the same dtype"):
        call(forward, replaced(b=torch.randn(6, dtype=torch.float16)))


def test_output_padding_allowed_when_smaller_than_dilation():
    # PyTorch accepts output_padding >= stride as long as it is smaller than the dilation.
    inputs = good_inputs()
    out = call(forward, inputs, stride=1, output_padding=1, dilation=2)
    expected = F.conv_transpose2d(inputs["x"], inputs["w"], None, 1, 0, 1, 1, 2)
    assert out.shape == expected.shape


@pytest.mark.parametrize(
    "value,expected",
    [(3, (3, 3)), ((1, 2), (1, 2)), ([4, 5], (4, 5)), (torch.Size([2, 3]), (2, 3))],
)
def test_normalize_pair_accepts_int_and_pairs(value, expected):
    assert normalize_pair("stride", value) == expected


@pytest.mark.parametrize("value", [1.0, True, (1,), (1, 2, 3), (1.0, 2), "2", None, (True, 1)])
def test_normalize_pair_rejects_non_int_pairs(value):
    with pytest.raises(TypeError, match="^stride must be an int or a pair"):
        normalize_pair("stride", value)


@pytest.mark.parametrize("s", [2, 2.5, -1.0, 0, torch.tensor(3.0), torch.tensor(4, dtype=torch.int64)])
def test_validate_scale_returns_a_float(s):
    value = validate_scale(s)
    assert isinstance(value, float) and value == float(s)


def test_validate_returns_normalised_frozen_args():
    inputs = good_inputs()
    x = inputs["x"].contiguous(memory_format=torch.channels_last)
    args = validate(x, inputs["w"], None, inputs["b"], stride=2, padding=(1, 0), output_padding=1, dilation=1)
    expected = F.conv_transpose2d(inputs["x"], inputs["w"], None, 2, (1, 0), 1, 1, 1)
    assert isinstance(args, ConvTransposeArgs)
    assert (args.N, args.Cin, args.Cout, args.H, args.W, args.kH, args.kW) == (2, 4, 6, 5, 5, 3, 3)
    assert (args.H_out, args.W_out) == tuple(expected.shape[2:])
    assert args.stride == (2, 2) and args.padding == (1, 0) and args.output_padding == (1, 1)
    assert args.dilation == (1, 1)
    assert args.dtype == torch.float32 and args.device == torch.device("cpu")
    assert args.channels_last and not args.has_conv_bias
    with pytest.raises(AttributeError):
        args.N = 3  # frozen


@pytest.mark.parametrize("trial", range(20))
def test_output_size_formula_matches_conv_transpose2d(trial):
    g = torch.Generator().manual_seed(trial)

    def r(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    H, W, kH, kW = r(1, 7), r(1, 7), r(1, 5), r(1, 5)
    stride, dilation, padding = (r(1, 3), r(1, 3)), (r(1, 2), r(1, 2)), (r(0, 2), r(0, 2))
    output_padding = tuple(r(0, max(stride[i], dilation[i]) - 1) for i in range(2))
    x, w = torch.randn(1, 2, H, W), torch.randn(2, 3, kH, kW)
    try:
        expected = F.conv_transpose2d(x, w, None, stride, padding, output_padding, 1, dilation).shape[2:]
    except RuntimeError:
        with pytest.raises(ValueError, match="output size"):
            validate(x, w, None, torch.randn(3), stride=stride, padding=padding,
                     output_padding=output_padding, dilation=dilation)  # fmt: skip
        return
    args = validate(x, w, None, torch.randn(3), stride=stride, padding=padding,
                    output_padding=output_padding, dilation=dilation)  # fmt: skip
    assert (args.H_out, args.W_out) == tuple(expected)


def _layout_cases():
    cl = torch.channels_last
    return {
        "nchw": torch.empty(2, 3, 4, 5),
        "channels_last": torch.empty(2, 3, 4, 5, memory_format=cl),
        "c1_nchw": torch.empty(2, 1, 4, 5),
        "c1_channels_last": torch.empty(2, 1, 4, 5, memory_format=cl),
        "hw1_nchw": torch.empty(2, 3, 1, 1),
        "hw1_channels_last": torch.empty(2, 3, 1, 1, memory_format=cl),
        "n1c1h1_channels_last": torch.empty(1, 1, 1, 5, memory_format=cl),
        "sliced_channels_last": torch.empty(2, 6, 4, 5, memory_format=cl)[:, ::2],
        "sliced_nchw": torch.empty(2, 3, 4, 10)[..., ::2],
        "transposed": torch.empty(2, 3, 4, 5).transpose(2, 3),
    }


@pytest.mark.parametrize("name", list(_layout_cases()))
def test_layout_detection_follows_pytorchs_stride_rule(name):
    from fused_convt_full._validation import is_channels_last

    suggest = getattr(getattr(torch, "_prims_common", None), "suggest_memory_format", None)
    if suggest is None:
        pytest.skip("torch._prims_common.suggest_memory_format is not available in this PyTorch")
    x = _layout_cases()[name]
    assert is_channels_last(x) == (suggest(x) == torch.channels_last)
