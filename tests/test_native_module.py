"""The built extension `fused_convt_full._C` exposes the API the Python package programs against.

CI builds the extension, so there a failed import is a failure.  A local checkout that has not
been built sets FCT_ALLOW_NO_NATIVE=1 to skip these tests instead.
"""

from __future__ import annotations

import os

import pytest
import torch

from fused_convt_full import _native

C = _native.native()
ALLOW_NO_NATIVE = os.environ.get("FCT_ALLOW_NO_NATIVE") == "1"


@pytest.fixture(autouse=True)
def _needs_extension(request: pytest.FixtureRequest) -> None:
    if C is not None or request.node.name == "test_extension_imports":
        return
    if ALLOW_NO_NATIVE:
        pytest.skip(f"native module not importable (FCT_ALLOW_NO_NATIVE=1): {_native.native_error()}")
    pytest.skip("native module not importable; test_extension_imports reports the failure")


def test_extension_imports():
    if C is None and ALLOW_NO_NATIVE:
        pytest.skip(f"native module not importable (FCT_ALLOW_NO_NATIVE=1): {_native.native_error()}")
    assert C is not None, (
        f"fused_convt_full._C did not import ({_native.native_error()}); build it with `pip install .`, "
        "or set FCT_ALLOW_NO_NATIVE=1 to skip the native-module tests"
    )


def test_enums_have_the_spec_members():
    assert {C.DType.float32, C.DType.float16, C.DType.bfloat16}
    assert C.Layout.nchw != C.Layout.nhwc
    assert C.Math.tf32 != C.Math.fp32_strict


def test_problem_defaults():
    p = C.Problem()
    assert (p.stride_h, p.stride_w, p.pad_h, p.pad_w) == (1, 1, 0, 0)
    assert (p.out_pad_h, p.out_pad_w, p.dil_h, p.dil_w) == (0, 0, 1, 1)


@pytest.mark.parametrize(
    "H,W,kH,kW,s,p,op,d",
    [(64, 64, 4, 4, (2, 2), (1, 1), (1, 1), (1, 1)), (9, 11, 3, 2, (3, 1), (0, 1), (2, 0), (1, 2))],
)
def test_problem_output_size_uses_pytorchs_formula(H, W, kH, kW, s, p, op, d):
    prob = C.Problem()
    prob.N, prob.H, prob.W, prob.Cin, prob.Cout, prob.kH, prob.kW = 1, H, W, 2, 3, kH, kW
    prob.stride_h, prob.stride_w = s
    prob.pad_h, prob.pad_w = p
    prob.out_pad_h, prob.out_pad_w = op
    prob.dil_h, prob.dil_w = d
    expected = torch.nn.functional.conv_transpose2d(torch.zeros(1, 2, H, W), torch.zeros(2, 3, kH, kW), None, s, p,
                                                    op, 1, d).shape[2:]  # fmt: skip
    assert (prob.H_out(), prob.W_out()) == tuple(expected)


def test_problem_fields_round_trip():
    p = C.Problem()
    p.dtype, p.out_layout, p.math = C.DType.bfloat16, C.Layout.nhwc, C.Math.fp32_strict
    assert (p.dtype, p.out_layout, p.math) == (C.DType.bfloat16, C.Layout.nhwc, C.Math.fp32_strict)


def test_channel_alignment_is_8():
    assert C.CHANNEL_ALIGNMENT == 8


def test_functions_exist():
    for name in ("fused_support", "fused_forward", "softmax_epilogue", "softmax_epilogue_naive", "compiled_archs"):
        assert callable(getattr(C, name)), name


def test_compiled_archs_lists_sm_numbers():
    archs = C.compiled_archs()
    assert isinstance(archs, list) and archs and all(isinstance(a, int) and a >= 80 for a in archs)


@pytest.mark.requires_cuda
def test_fused_support_returns_ok_reason_kernel():
    from fused_convt_full.dispatch import plan_for
    from fused_convt_full._validation import validate

    x = torch.randn(2, 64, 16, 16, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(64, 128, 4, 4, device="cuda", dtype=torch.bfloat16)
    args = validate(x, w, None, torch.randn(128, device="cuda", dtype=torch.bfloat16), stride=2, padding=1,
                    output_padding=1)  # fmt: skip
    result = C.fused_support(_native.make_problem(args, "tf32"))
    assert isinstance(result, tuple) and len(result) == 3
    ok, reason, kernel = result
    assert isinstance(ok, bool) and isinstance(reason, str) and isinstance(kernel, str)
    assert plan_for(args).path in ("fused", "two_stage")

