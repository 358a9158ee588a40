"""The `fused_convt_full::forward` custom op: registration checks, fake tensors, torch.compile."""

from __future__ import annotations

import functools

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from _support import make_problem

import fused_convt_full
from fused_convt_full import FusedConvTransposeSoftmax, forward, reference

OP = torch.ops.fused_convt_full.forward.default


def op_args(prob, *, flat_bias=False):
    conv = prob.conv
    pairs = [list(v) if isinstance(v, tuple) else [v, v]
             for v in (conv["stride"], conv["padding"], conv["output_padding"], conv["dilation"])]  # fmt: skip
    b = prob.b.view(-1) if flat_bias else prob.b
    return (prob.x, prob.w, prob.conv_b, b, prob.s, *pairs)


OPCHECK_CASES = {
    "nchw": dict(channels_last=False),
    "channels_last": dict(channels_last=True),
    "no_conv_bias": dict(conv_bias=False),
    "bfloat16": dict(dtype=torch.bfloat16),
}


@pytest.mark.parametrize("case", list(OPCHECK_CASES.values()), ids=list(OPCHECK_CASES))
def test_opcheck_passes_on_cpu(case):
    prob = make_problem(2, 3, 5, 4, 5, 3, 2, 1, 1, **case)
    torch.library.opcheck(OP, op_args(prob))


def test_opcheck_passes_with_inputs_requiring_grad():
    prob = make_problem(2, 3, 5, 4, 5, 3, 2, 1, 1)
    for t in (prob.x, prob.w, prob.conv_b, prob.b):
        t.requires_grad_()
    torch.library.opcheck(OP, op_args(prob, flat_bias=True))


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_fake_implementation_gives_shape_dtype_and_memory_format(channels_last):
    prob = make_problem(2, 3, 5, 4, 6, (3, 2), (2, 1), (1, 0), (1, 0), 1, dtype=torch.float16,
                        channels_last=channels_last)  # fmt: skip
    real = OP(*op_args(prob))
    with FakeTensorMode() as mode:
        fake_args = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in op_args(prob)]
        fake = OP(*fake_args)
    assert fake.shape == real.shape and fake.dtype == real.dtype
    assert fake.stride() == real.stride()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert fake.is_contiguous(memory_format=fmt)


def test_meta_tensors_give_the_output_shape():
    x = torch.empty(2, 3, 4, 5, device="meta")
    w = torch.empty(3, 7, 4, 4, device="meta")
    out = forward(x, w, None, torch.empty(7, device="meta"), 1.0, stride=2, padding=1, output_padding=1)
    assert out.device.type == "meta" and out.shape == (2, 7, 9, 11)


@functools.lru_cache(maxsize=None)
def _inductor_cpu_available() -> bool:
    try:
        torch.compile(lambda t: t.sin() + 1, backend="inductor", fullgraph=True)(torch.randn(4))
        return True
    except Exception:  # no C++ compiler, or inductor otherwise unusable here
        return False


def _backend(name):
    if name == "inductor" and not _inductor_cpu_available():
        pytest.skip("inductor's CPU compiler is unavailable on this machine")
    return name


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_forward_compiles_with_fullgraph_on_cpu(backend):
    torch._dynamo.reset()
    prob = make_problem(2, 3, 5, 4, 5, 4, 2, 1, 1, channels_last=True)

    def fn(x, w, conv_b, b):
        return forward(x, w, conv_b, b, prob.s, stride=2, padding=1, output_padding=1) * 1.0

    compiled = torch.compile(fn, fullgraph=True, backend=_backend(backend))
    out = compiled(prob.x, prob.w, prob.conv_b, prob.b)
    expected = reference(*prob.args(), **prob.conv)
    torch.testing.assert_close(out, expected)


def test_compiled_forward_uses_each_calls_scale():
    torch._dynamo.reset()
    prob = make_problem(1, 3, 5, 4, 5, 3, 2, 1, 1)

    def fn(x, w, conv_b, b, s):
        return forward(x, w, conv_b, b, s, stride=2, padding=1, output_padding=1)

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    for s in (1.5, 2.5, -3.0):  # the second call makes dynamo trace s symbolically
        torch.testing.assert_close(compiled(prob.x, prob.w, prob.conv_b, prob.b, s),
                                   reference(prob.x, prob.w, prob.conv_b, prob.b, s, **prob.conv))  # fmt: skip


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_module_compiles_with_fullgraph_on_cpu(backend):
    torch._dynamo.reset()
    module = FusedConvTransposeSoftmax(3, 5, 4, stride=2, padding=1, output_padding=1, scaling_factor=2.0)
    with torch.no_grad():
        module.bias.normal_()
    x = torch.randn(2, 3, 4, 5)
    compiled = torch.compile(module, fullgraph=True, backend=_backend(backend))
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), module(x))


def test_op_is_registered_under_the_package_namespace():
    assert hasattr(torch.ops.fused_convt_full, "forward")
    assert fused_convt_full.forward.__doc__ and "sigmoid" in fused_convt_full.forward.__doc__


def test_forward_with_a_packed_weight_compiles_with_fullgraph():
    torch._dynamo.reset()
    prob = make_problem(1, 3, 5, 4, 5, 3, 2, 1, 1)
    packed = fused_convt_full.prepack(prob.w)

    def fn(x):
        return forward(x, packed, prob.conv_b, prob.b, prob.s, stride=2, padding=1, output_padding=1)

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(prob.x), reference(*prob.args(), **prob.conv))
    with torch.no_grad():
        prob.w.mul_(2.0)  # the compiled graph must read the updated weight, not a traced copy
    torch.testing.assert_close(compiled(prob.x), reference(*prob.args(), **prob.conv))
