"""`explain()` and the dispatcher's choices that can be checked without a GPU."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from _support import make_problem

from fused_convt_full import Plan, explain, prepack
from fused_convt_full import _native
from fused_convt_full._validation import validate
from fused_convt_full.dispatch import fp32_math, plan_for


def test_explain_on_cpu_reports_the_reference_path():
    prob = make_problem(1, 4, 6, 5, 5, 3, 2, 1, 1)
    plan = explain(*prob.args(), **prob.conv)
    assert isinstance(plan, Plan)
    assert plan.path == "reference" and "cpu" in plan.reason and plan.kernel is None


def test_explain_accepts_a_packed_weight():
    prob = make_problem(1, 4, 6, 5, 5, 3, 2, 1, 1)
    plan = explain(prob.x, prepack(prob.w), prob.conv_b, prob.b, prob.s, **prob.conv)
    assert plan.path == "reference"


def test_explain_validates_its_arguments():
    prob = make_problem(1, 4, 6, 5, 5, 3, 2, 1, 1)
    with pytest.raises(ValueError, match="output_padding must be smaller"):
        explain(*prob.args(), stride=1, output_padding=1)
    with pytest.raises(ValueError, match="s must be finite"):
        explain(prob.x, prob.w, prob.conv_b, prob.b, float("nan"))


def test_plan_is_frozen():
    plan = Plan("reference", "why")
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.path = "fused"


def _cuda_args(dtype=torch.float32, N=2):
    # A CUDA problem description can be built without a GPU: dispatch reads only metadata.
    args = validate(torch.randn(N, 4, 5, 5, dtype=dtype), torch.randn(4, 6, 3, 3, dtype=dtype), None,
                    torch.randn(6, dtype=dtype))  # fmt: skip
    return dataclasses.replace(args, device=torch.device("cuda", 0))


def test_missing_native_module_on_cuda_falls_back_to_reference_with_the_import_error(monkeypatch):
    monkeypatch.setattr(_native, "_loaded", True)
    monkeypatch.setattr(_native, "_module", None)
    monkeypatch.setattr(_native, "_error", "ImportError: no module named fused_convt_full._C")
    plan = plan_for(_cuda_args())
    assert plan.path == "reference"
    assert "native module" in plan.reason and "no module named fused_convt_full._C" in plan.reason


def test_empty_batch_on_cuda_is_planned_without_touching_the_native_module():
    plan = plan_for(_cuda_args(N=0))
    assert plan.path == "reference" and "N == 0" in plan.reason


def test_fp32_math_follows_cudnn_allow_tf32():
    with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=True):
        assert fp32_math() == "tf32"
    with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False):
        assert fp32_math() == "fp32_strict"


def test_plan_records_the_math_mode_only_for_float32(monkeypatch):
    monkeypatch.setattr(_native, "_loaded", True)
    monkeypatch.setattr(_native, "_module", None)
    monkeypatch.setattr(_native, "_error", "not built")
    with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False):
        assert plan_for(_cuda_args(torch.float32)).math == "fp32_strict"
        assert plan_for(_cuda_args(torch.bfloat16)).math is None
    assert plan_for(_cuda_args(torch.float32), math="tf32").math == "tf32"
    with pytest.raises(ValueError, match="math must be"):
        plan_for(_cuda_args(torch.float32), math="fp64")


class _ArchsOnly:
    def __init__(self, archs):
        self._archs = archs

    def compiled_archs(self):
        return self._archs


@pytest.mark.parametrize(
    "device_arch,compiled,ok",
    [
        (80, [80, 86, 89, 90], True),
        (86, [80], True),  # sm_80 machine code runs on sm_86
        (90, [80, 86, 89, 90], True),
        (100, [80, 90], True),  # newer GPU: JIT from the embedded PTX
        (75, [80, 86, 89, 90], False),  # older than everything compiled
        (80, [90], False),
    ],
)
def test_arch_support_rule(monkeypatch, device_arch, compiled, ok):
    monkeypatch.setattr(_native, "require", lambda: _ArchsOnly(compiled))
    monkeypatch.setattr(_native, "arch_of", lambda device: device_arch)
    assert _native.arch_supported(torch.device("cuda", 0)) == (ok, device_arch, compiled)
