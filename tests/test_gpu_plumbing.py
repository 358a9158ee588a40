"""The Python side of the native boundary, checked against a pure-PyTorch stand-in of `_C`.

If these pass while the same problems fail with the real extension, the bug is in the kernels;
if these fail, it is in how the package lays out memory or passes pointers.
"""

from __future__ import annotations

import pytest
import torch

import _fake_native
from _gpu_support import check_output, math_mode, nan_filled, problem_and_reference

from fused_convt_full import _native, dispatch, explain, forward, paths
from fused_convt_full._validation import validate
from fused_convt_full.packing import pack_weights

pytestmark = pytest.mark.requires_cuda

CASES = ["reference_problem_small", "odd_sizes", "cout_1", "k1_s2", "rectangular_params", "cin_24_cout_40",
         "input_1x1", "cout_300", "dilation_2"]  # fmt: skip


@pytest.fixture(autouse=True)
def fake_native(monkeypatch):
    monkeypatch.setattr(_native, "_loaded", True)
    monkeypatch.setattr(_native, "_module", _fake_native)
    monkeypatch.setattr(_native, "_error", None)
    monkeypatch.setattr(dispatch, "_arch_cache", {})
    _fake_native.calls.clear()
    yield _fake_native


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("mode", ["tf32", "fp32_strict", "fp16", "bf16"])
@pytest.mark.parametrize("config_id", CASES)
def test_executors_pass_the_layouts_the_spec_defines(config_id, mode, channels_last):
    prob, ref = problem_and_reference(config_id, mode, channels_last)
    args = validate(prob.x, prob.w, prob.conv_b, prob.b, **prob.conv)
    with math_mode(mode):
        plan = explain(*prob.args(), **prob.conv)
        if plan.path == "fused":
            out = nan_filled(paths.new_output(args))
            paths.run_fused(args, prob.x, pack_weights(prob.w), prob.conv_b, prob.b, prob.s, out, math=plan.math)
            check_output(out, ref, mode, channels_last, what="fused (fake native)")
        for naive in (False, True):
            out = nan_filled(paths.new_output(args))
            paths.run_two_stage(args, prob.x, prob.w, prob.conv_b, prob.b, prob.s, out, naive=naive, math=plan.math)
            check_output(out, ref, mode, channels_last, what=f"two_stage naive={naive} (fake native)")
        out = forward(*prob.args(), **prob.conv)
    torch.cuda.synchronize()
    check_output(out, ref, mode, channels_last, what=f"forward via {plan.path} (fake native)")


def test_dispatch_reports_the_native_refusal_reason():
    prob, _ = problem_and_reference("dilation_2", "bf16", False)
    plan = explain(*prob.args(), **prob.conv)
    assert plan.path == "two_stage" and "dilation" in plan.reason


def test_unsupported_gpu_architecture_falls_back_to_reference(monkeypatch):
    monkeypatch.setattr(_fake_native, "compiled_archs", lambda: [200])  # newer than any GPU here
    prob, ref = problem_and_reference("odd_sizes", "bf16", False)
    plan = explain(*prob.args(), **prob.conv)
    assert plan.path == "reference" and "compiled for [200]" in plan.reason
    check_output(forward(*prob.args(), **prob.conv), ref, "bf16", False, what="arch fallback")


def test_strict_fp32_conv_in_two_stage_does_not_use_tf32():
    # Large-magnitude inputs make TF32 rounding visible well above the strict tolerance.
    prob, ref = problem_and_reference("cin_256", "fp32_strict", False, True)
    args = validate(prob.x, prob.w, prob.conv_b, prob.b, **prob.conv)
    out = nan_filled(paths.new_output(args))
    with math_mode("tf32"):  # global flags say TF32; the executor must override for strict
        paths.run_two_stage(args, prob.x, prob.w, prob.conv_b, prob.b, prob.s, out, math="fp32_strict")
    check_output(out, ref, "fp32_strict", False, what="two_stage forced strict")
    assert torch.backends.cudnn.allow_tf32  # the override did not leak


def test_fused_executor_rejects_a_wrongly_packed_weight():
    prob, _ = problem_and_reference("odd_sizes", "bf16", False)
    args = validate(prob.x, prob.w, prob.conv_b, prob.b, **prob.conv)
    with pytest.raises(ValueError, match="packed_w must be"):
        paths.run_fused(args, prob.x, prob.w.contiguous(), prob.conv_b, prob.b, prob.s, paths.new_output(args))
