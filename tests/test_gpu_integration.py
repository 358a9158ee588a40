"""GPU behaviour beyond per-path accuracy: dispatch, torch.compile, CUDA graphs, weight caching,
NaN propagation, streams and fallbacks."""

from __future__ import annotations

import pytest
import torch

from _gpu_support import check_output, math_mode, problem_and_reference
from _support import TOLERANCES, composite64, make_problem

from fused_convt_full import FusedConvTransposeSoftmax, explain, forward, prepack
from fused_convt_full import _native, paths
from fused_convt_full._validation import validate
from fused_convt_full.packing import cache_info, clear_cache, pack_weights

pytestmark = pytest.mark.requires_cuda

# (config id, mode, channels_last): one problem per path the dispatcher can choose.
SCENARIOS = [
    pytest.param("reference_problem_small", "bf16", True, id="fused_bf16_channels_last"),
    pytest.param("reference_problem_small", "tf32", False, id="fused_tf32_nchw"),
    pytest.param("odd_sizes", "fp16", False, id="fused_fp16_odd_sizes"),
    pytest.param("cout_300", "bf16", True, id="two_stage_wide_cout"),
    pytest.param("dilation_2", "fp16", False, id="two_stage_dilation"),
    pytest.param("reference_problem_small", "fp32_strict", False, id="fp32_strict"),
]


@pytest.mark.requires_native
def test_explain_names_the_fused_kernel_for_the_reference_problem():
    prob, _ = problem_and_reference("reference_problem_small", "bf16", True)
    plan = explain(*prob.args(), **prob.conv)
    assert plan.path == "fused" and isinstance(plan.kernel, str) and plan.kernel


@pytest.mark.requires_native
@pytest.mark.parametrize("config_id", ["dilation_2", "cout_300", "cout_257"])
def test_explain_says_why_unsupported_problems_take_two_stage(config_id):
    prob, _ = problem_and_reference(config_id, "fp16", False)
    plan = explain(*prob.args(), **prob.conv)
    assert plan.path == "two_stage" and plan.kernel is None and len(plan.reason) > 20


@pytest.mark.requires_native
def test_fp32_with_tf32_disabled_is_planned_strict_and_is_accurate():
    prob, ref = problem_and_reference("reference_problem_small", "fp32_strict", False)
    with math_mode("fp32_strict"):
        plan = explain(*prob.args(), **prob.conv)
        out = forward(*prob.args(), **prob.conv)
    assert plan.math == "fp32_strict" and plan.path in ("fused", "two_stage")
    check_output(out, ref, "fp32_strict", False, what=f"strict forward via {plan.path}")


@pytest.mark.parametrize("config_id,mode,channels_last", SCENARIOS)
def test_forward_compiles_with_fullgraph_on_gpu(config_id, mode, channels_last):
    torch._dynamo.reset()
    prob, ref = problem_and_reference(config_id, mode, channels_last)

    def fn(x, w, conv_b, b):
        return forward(x, w, conv_b, b, prob.s, **prob.conv)

    compiled = torch.compile(fn, fullgraph=True)
    with math_mode(mode):
        out = compiled(prob.x, prob.w, prob.conv_b, prob.b)
        eager = fn(prob.x, prob.w, prob.conv_b, prob.b)
    torch.cuda.synchronize()
    check_output(out, ref, mode, channels_last, what="compiled forward")
    # Not bitwise: the composite fallback's cuDNN algorithm choice may differ between calls.
    torch.testing.assert_close(out, eager, rtol=0, atol=TOLERANCES[mode][1])


def test_compiled_module_with_reduce_overhead_matches_eager():
    torch._dynamo.reset()
    module = FusedConvTransposeSoftmax(64, 128, 4, stride=2, padding=1, output_padding=1, scaling_factor=2.0,
                                       device="cuda", dtype=torch.bfloat16)  # fmt: skip
    x = torch.randn(2, 64, 16, 16, device="cuda", dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
    compiled = torch.compile(module, fullgraph=True, mode="reduce-overhead")
    with torch.no_grad():
        for _ in range(3):  # cudagraph trees record on a later call
            out = compiled(x)
        expected = module(x)
    torch.cuda.synchronize()
    torch.testing.assert_close(out, expected, rtol=0, atol=TOLERANCES["bf16"][1])


@pytest.mark.parametrize("config_id,mode,channels_last", SCENARIOS)
def test_forward_is_capturable_in_a_cuda_graph(config_id, mode, channels_last):
    prob, _ = problem_and_reference(config_id, mode, channels_last)
    x_static = prob.x.clone()
    with math_mode(mode):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm up: weight cache, cuDNN plans, lazy inits
            for _ in range(2):
                forward(x_static, prob.w, prob.conv_b, prob.b, prob.s, **prob.conv)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            y_static = forward(x_static, prob.w, prob.conv_b, prob.b, prob.s, **prob.conv)
        for trial in range(2):
            x_new = torch.randn_like(prob.x, dtype=torch.float32).to(prob.x.dtype)
            x_static.copy_(x_new)
            graph.replay()
            torch.cuda.synchronize()
            ref = composite64(x_new, prob.w, prob.conv_b, prob.b, prob.s, **prob.conv)
            check_output(y_static, ref, mode, channels_last, what=f"graph replay {trial}")


def test_prepacked_weight_is_refreshed_after_an_in_place_update_on_gpu():
    clear_cache()
    prob = make_problem(2, 16, 32, 8, 8, 4, 2, 1, 1, dtype=torch.bfloat16, device="cuda", channels_last=True)
    packed = prepack(prob.w)
    first = forward(prob.x, packed, prob.conv_b, prob.b, prob.s, **prob.conv)
    with torch.no_grad():
        prob.w.mul_(-1.5)
    second = forward(prob.x, packed, prob.conv_b, prob.b, prob.s, **prob.conv)
    torch.cuda.synchronize()
    ref = composite64(*prob.args(), **prob.conv)
    check_output(second, ref, "bf16", True, what="forward after in-place weight update")
    assert not torch.equal(first, second)
    assert torch.equal(packed.packed, pack_weights(prob.w))


def test_module_weight_cache_is_reused_and_refreshed_by_optimizer_steps():
    clear_cache()
    module = FusedConvTransposeSoftmax(16, 32, 4, stride=2, padding=1, output_padding=1, scaling_factor=2.0,
                                       device="cuda", dtype=torch.float16)  # fmt: skip
    x = torch.randn(2, 16, 8, 8, device="cuda", dtype=torch.float16)
    with torch.no_grad():
        module(x)
        module(x)
    plan = explain(x, module.weight, module.conv_bias, module.bias, module.scaling_factor, stride=2, padding=1,
                   output_padding=1)  # fmt: skip
    if plan.path == "fused":
        assert cache_info()["misses"] == 1 and cache_info()["hits"] >= 1
    opt = torch.optim.SGD(module.parameters(), lr=10.0)
    module(x).float().square().sum().backward()
    opt.step()
    with torch.no_grad():
        out = module(x)
    torch.cuda.synchronize()
    ref = composite64(x, module.weight, module.conv_bias, module.bias, module.scaling_factor, stride=2, padding=1,
                      output_padding=1)  # fmt: skip
    check_output(out, ref, "fp16", False, what="module after optimizer step")


@pytest.mark.parametrize("path", [pytest.param("fused", marks=pytest.mark.requires_native),
                                  pytest.param("two_stage", marks=pytest.mark.requires_native),
                                  "reference"])  # fmt: skip
@pytest.mark.parametrize("mode", ["tf32", "bf16"])
def test_nan_in_x_propagates_like_the_composite(path, mode):
    prob, _ = problem_and_reference("reference_problem_small", mode, False)
    x = prob.x.clone()
    x[0, 3, 5, 7] = float("nan")
    x[1, :, 0, 0] = float("nan")
    args = validate(x, prob.w, prob.conv_b, prob.b, **prob.conv)
    out = paths.new_output(args).zero_()
    with math_mode(mode):
        if path == "fused":
            plan = explain(x, prob.w, prob.conv_b, prob.b, prob.s, **prob.conv)
            if plan.path != "fused":
                pytest.skip(plan.reason)
            paths.run_fused(args, x, pack_weights(prob.w), prob.conv_b, prob.b, prob.s, out, math=plan.math)
        elif path == "two_stage":
            paths.run_two_stage(args, x, prob.w, prob.conv_b, prob.b, prob.s, out)
        else:
            paths.run_reference(args, x, prob.w, prob.conv_b, prob.b, prob.s, out)
    torch.cuda.synchronize()
    ref = composite64(x, prob.w, prob.conv_b, prob.b, prob.s, **prob.conv)
    assert torch.isnan(ref).any()
    assert torch.equal(torch.isnan(out), torch.isnan(ref))


def test_forward_runs_on_the_current_stream():
    prob, ref = problem_and_reference("reference_problem_small", "bf16", True)
    x_side = torch.empty_like(prob.x)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        # x_side is written late on this stream; a kernel launched on any other stream would read
        # it before it is ready.
        torch.cuda._sleep(50_000_000)
        x_side.copy_(prob.x)
        out = forward(x_side, prob.w, prob.conv_b, prob.b, prob.s, **prob.conv)
    stream.synchronize()
    check_output(out, ref, "bf16", True, what="forward on a side stream")


def test_non_contiguous_input_is_handled():
    prob = make_problem(2, 16, 32, 8, 16, 4, 2, 1, 1, dtype=torch.float16, device="cuda")
    x = prob.x[:, :, :, ::2]  # strided view
    out = forward(x, prob.w, prob.conv_b, prob.b, prob.s, **prob.conv)
    torch.cuda.synchronize()
    check_output(out, composite64(x, prob.w, prob.conv_b, prob.b, prob.s, **prob.conv), "fp16", False, what="strided x")


def test_zero_dim_cuda_scale_is_accepted():
    prob, ref = problem_and_reference("odd_sizes", "fp16", False)
    out = forward(prob.x, prob.w, prob.conv_b, prob.b, torch.tensor(prob.s, device="cuda"), **prob.conv)
    torch.cuda.synchronize()
    check_output(out, ref, "fp16", False, what="0-d CUDA scale")


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_empty_batch_on_gpu(channels_last):
    prob = make_problem(1, 16, 32, 8, 8, 4, 2, 1, 1, dtype=torch.bfloat16, device="cuda")
    x = prob.x[:0]
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    out = forward(x, prob.w, prob.conv_b, prob.b, prob.s, **prob.conv)
    assert out.shape == (0, 32, 17, 17) and out.device.type == "cuda" and out.dtype == torch.bfloat16


def test_missing_native_module_falls_back_to_the_composite_on_gpu(monkeypatch):
    monkeypatch.setattr(_native, "_loaded", True)
    monkeypatch.setattr(_native, "_module", None)
    monkeypatch.setattr(_native, "_error", "ImportError: simulated")
    prob, ref = problem_and_reference("odd_sizes", "bf16", True)
    plan = explain(*prob.args(), **prob.conv)
    assert plan.path == "reference" and "simulated" in plan.reason
    out = forward(*prob.args(), **prob.conv)
    torch.cuda.synchronize()
    check_output(out, ref, "bf16", True, what="reference fallback")
