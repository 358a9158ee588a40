"""Every execution path on the GPU against a float64 reference, over a grid of problems.

Each executor writes into an output pre-filled with NaN, so an element it fails to write shows up.
"""

from __future__ import annotations

import pytest
import torch

from _gpu_support import (
    CONFIGS,
    LARGE_LOGIT_CONFIGS,
    MODES,
    check_output,
    expect_fused,
    math_mode,
    nan_filled,
    problem_and_reference,
)

from fused_convt_full import explain, forward
from fused_convt_full import paths
from fused_convt_full._validation import validate, validate_scale
from fused_convt_full.packing import pack_weights

pytestmark = pytest.mark.requires_cuda

PATHS = [
    pytest.param("fused", marks=pytest.mark.requires_native),
    pytest.param("two_stage", marks=pytest.mark.requires_native),
    pytest.param("two_stage_naive", marks=pytest.mark.requires_native),
    "reference",
]
LAYOUTS = [pytest.param(False, id="nchw"), pytest.param(True, id="channels_last")]
GRID = [pytest.param(c, False, id=c) for c in CONFIGS] + [
    pytest.param(c, True, id=f"{c}-large_logits") for c in LARGE_LOGIT_CONFIGS
]


def _run_path(path, prob, mode, channels_last, ref, config_id):
    args = validate(prob.x, prob.w, prob.conv_b, prob.b, **prob.conv)
    s = validate_scale(prob.s)
    out = nan_filled(paths.new_output(args))
    math = "fp32_strict" if mode == "fp32_strict" else ("tf32" if mode == "tf32" else None)
    if path == "fused":
        plan = explain(*prob.args(), **prob.conv)
        if expect_fused(config_id, mode):
            assert plan.path == "fused", f"expected the fused kernel, got {plan.path}: {plan.reason}"
        if plan.path != "fused":
            pytest.skip(f"fused kernel not applicable here: {plan.reason}")
        assert plan.kernel, "a fused plan must name its kernel"
        paths.run_fused(args, prob.x, pack_weights(prob.w), prob.conv_b, prob.b, s, out, math=plan.math)
    elif path in ("two_stage", "two_stage_naive"):
        paths.run_two_stage(args, *prob.args()[:4], s, out, naive=(path == "two_stage_naive"), math=math)
    else:
        paths.run_reference(args, *prob.args()[:4], s, out)
    torch.cuda.synchronize()
    check_output(out, ref, mode, channels_last, what=path)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("channels_last", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("config_id,large_logits", GRID)
def test_path_matches_float64_reference(config_id, large_logits, mode, channels_last, path):
    prob, ref = problem_and_reference(config_id, mode, channels_last, large_logits)
    with math_mode(mode):
        _run_path(path, prob, mode, channels_last, ref, config_id)


@pytest.mark.requires_native
@pytest.mark.parametrize("channels_last", LAYOUTS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("config_id", list(CONFIGS))
def test_forward_takes_the_planned_path_and_matches_reference(config_id, mode, channels_last, monkeypatch):
    prob, ref = problem_and_reference(config_id, mode, channels_last)
    taken = []
    for name in ("run_fused", "run_two_stage", "run_reference"):
        original = getattr(paths, name)

        def spy(*a, _name=name, _original=original, **k):
            taken.append(_name)
            return _original(*a, **k)

        monkeypatch.setattr(paths, name, spy)
    with math_mode(mode):
        plan = explain(*prob.args(), **prob.conv)
        out = forward(*prob.args(), **prob.conv)
    torch.cuda.synchronize()
    assert taken == [f"run_{plan.path}"], f"explain said {plan.path!r} ({plan.reason}) but forward ran {taken}"
    if expect_fused(config_id, mode):
        assert plan.path == "fused", plan.reason
    if CONFIGS[config_id][-1] != 1:
        assert plan.path == "two_stage" and plan.reason
    if mode == "fp32_strict":
        assert plan.math == "fp32_strict"
    check_output(out, ref, mode, channels_last, what=f"forward via {plan.path}")
