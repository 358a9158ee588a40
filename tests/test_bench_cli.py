"""CPU tests of the benchmark CLI (python -m fused_convt_full.bench): no GPU needed."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from fused_convt_full.bench import cli, report
from fused_convt_full.bench.cases import Case, valid_taps_1d
from fused_convt_full.bench.floors import FloorInputs, copy_bw, floor_ms, gemm_ms_for, write_bw
from fused_convt_full.bench.timing import copies_to_beat_l2

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_no_gpu_exits_2_with_message():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", FCT_ALLOW_NO_NATIVE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    res = subprocess.run([sys.executable, "-m", "fused_convt_full.bench", "--no-compile"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert "no CUDA GPU: the benchmark needs one" in res.stderr


def test_default_is_the_reference_problem():
    ns = cli.parse_args([])
    assert ns.cases == [Case(128, 64, 128, 64, 4, 2, 1, 1, 1, "fp32", "nchw")]
    assert ns.cases[0].h_out == 129
    assert ns.names == ["eager", "torch_compile", "two_stage_naive", "two_stage", "fused",
                        "floor_write", "floor_copy", "floor_gemm", "floor"]


@pytest.mark.parametrize("argv, field, values", [
    (["--sweep", "batch"], "batch", [1, 8, 32, 128, 512]),
    (["--sweep", "cout"], "cout", [32, 64, 128, 256]),
    (["--sweep", "dtype"], "dtype", ["fp32", "fp16", "bf16"]),
    (["--sweep", "layout"], "layout", ["nchw", "channels_last"]),
    (["--dtype", "fp16,bf16", "--dtype", "fp32"], "dtype", ["fp16", "bf16", "fp32"]),
])
def test_single_sweeps(argv, field, values):
    cases = cli.parse_args(argv).cases
    assert [getattr(c, field) for c in cases] == values
    ref = Case()
    for c in cases:  # everything else stays at the reference problem
        assert {k: v for k, v in c.as_dict().items() if k not in (field, "h_out", "w_out")} == \
               {k: v for k, v in ref.as_dict().items() if k not in (field, "h_out", "w_out")}


def test_kstride_sweep_and_products():
    cases = cli.parse_args(["--sweep", "kstride"]).cases
    assert [(c.kernel, c.stride, c.padding, c.output_padding) for c in cases] == \
           [(4, 2, 1, 1), (3, 2, 1, 1), (3, 1, 1, 0)]
    assert [c.h_out for c in cases] == [129, 128, 64]
    both = cli.parse_args(["--sweep", "dtype,layout", "--batch", "8"]).cases
    assert len(both) == 6 and {c.batch for c in both} == {8}
    assert len({(c.dtype, c.layout) for c in both}) == 6


def test_contender_selection_and_errors(capsys):
    assert cli.parse_args(["--contenders", "fused,eager,floor"]).names == ["eager", "fused", "floor"]
    assert "torch_compile" not in cli.parse_args(["--no-compile"]).names
    for bad in (["--contenders", "nope"], ["--sweep", "nope"], ["--dtype", "fp64"], ["--layout", "nhwc"]):
        with pytest.raises(SystemExit) as e:
            cli.parse_args(bad)
        assert e.value.code == 2


def test_flops_of_the_reference_problem():
    c = Case()
    # along each axis 64 inputs x 4 taps = 256 pairs, one (ih=0, kh=0 -> oh=-1) is cropped
    assert valid_taps_1d(64, 4, 2, 1, 1, 129) == 255
    assert c.flops() == 2 * 128 * 128 * 64 * 255 * 255 == 136_367_308_800
    approx = 2 * 128 * 64 * 128 * 64 * 64 * 16  # every tap of every input pixel: 137.4 GFLOP
    assert approx == 137_438_953_472 and 0.99 < c.flops() / approx < 1.0
    # stride 1, k3 p1: 3 taps everywhere except the two borders
    assert valid_taps_1d(64, 3, 1, 1, 1, 64) == 64 * 3 - 2


def test_bytes_of_the_reference_problem():
    c = Case()
    assert c.output_bytes() == 128 * 128 * 129 * 129 * 4  # 1.09 GB
    assert c.input_bytes() == (128 * 64 * 64 * 64 + 64 * 128 * 16) * 4 + 2 * 128 * 4
    assert Case(dtype="bf16").output_bytes() * 2 == c.output_bytes()


def test_floor_model_with_design_numbers():
    c = Case()
    f = FloorInputs(c.output_bytes(), c.input_bytes(), c.flops(), 3.27e12, 3.02e12, 398e12)
    mem_ms = 1e3 * (c.output_bytes() / 3.27e12 + c.input_bytes() / 3.02e12)
    assert floor_ms(f) == pytest.approx(mem_ms) and floor_ms(f) == pytest.approx(0.378, abs=0.002)
    # bf16: compute-bound at 687 TFLOP/s
    cb = Case(dtype="bf16")
    fb = FloorInputs(cb.output_bytes(), cb.input_bytes(), cb.flops(), 3.27e12, 3.02e12, 687e12)
    assert floor_ms(fb) == pytest.approx(gemm_ms_for(cb.flops(), 687e12)) == pytest.approx(0.1985, abs=0.001)
    # hand numbers
    assert floor_ms(FloorInputs(2_000, 1_000, 10, 1e6, 1e6, 1e3)) == pytest.approx(10.0)   # compute
    assert floor_ms(FloorInputs(2_000, 1_000, 1, 1e6, 1e6, 1e3)) == pytest.approx(3.0)     # memory
    assert write_bw(1_000_000, 1.0) == pytest.approx(1e9)
    assert copy_bw(1_000_000, 1.0) == pytest.approx(2e9)


def test_l2_rotation_copies():
    assert copies_to_beat_l2(134_000_000, 50_000_000) == 1
    assert copies_to_beat_l2(10_000_000, 50_000_000) == 10
    assert copies_to_beat_l2(1_000, 50_000_000) == 16


META = {"card": "NVIDIA H100 80GB HBM3", "commit": "abc123", "torch": "2.x", "date": "2026-01-01T00:00:00+00:00",
        "timer": "triton.do_bench", "command": "python -m fused_convt_full.bench --json out.json"}


def fake_records() -> list[dict]:
    case = Case().as_dict()
    raw = [("eager", True, 9.0, {}), ("torch_compile", True, 1.8, {"compile_s": 20.0}),
           ("two_stage", False, None, {"error": "relative error 0.1 > tolerance 0.005"}),
           ("fused", True, 0.45, {"path": "fused", "kernel": "sm90_x"}), ("floor", True, 0.36, {})]
    return report.finish([{"case": case, "contender": n, "ok": ok, "median_ms": t, **x}
                          for n, ok, t, x in raw], META)


def test_json_record_schema(tmp_path):
    path = tmp_path / "r.json"
    report.write_json(str(path), fake_records())
    recs = json.loads(path.read_text())
    assert len(recs) == 5
    for r in recs:
        assert set(report.REQUIRED_KEYS) <= set(r)
        assert {"batch", "cin", "cout", "hw", "kernel", "stride", "padding", "output_padding", "dilation",
                "dtype", "layout"} <= set(r["case"])
        assert isinstance(r["ok"], bool)
    by = {r["contender"]: r for r in recs}
    assert by["fused"]["speedup_vs_eager"] == pytest.approx(20.0)
    assert by["fused"]["speedup_vs_compile"] == pytest.approx(4.0)
    assert by["fused"]["floor_fraction"] == pytest.approx(0.8)
    assert by["fused"]["path"] == "fused" and by["fused"]["kernel"] == "sm90_x"
    assert by["torch_compile"]["compile_s"] == 20.0
    assert by["two_stage"]["median_ms"] is None and by["two_stage"]["speedup_vs_eager"] is None
    assert by["two_stage"]["error"].startswith("relative error")
    assert by["eager"]["card"] == META["card"] and by["eager"]["commit"] == "abc123"


def test_markdown_and_text_rendering():
    recs = fake_records()
    md = report.format_markdown(recs, META)
    assert md.startswith("# fused_convt_full benchmark")
    for s in (META["card"], META["date"], META["commit"], META["command"],
              "## N128 64->128 64x64 k4s2p1op1 fp32 nchw",
              "| contender | median ms | vs eager | vs compile | floor/time | ok | notes |",
              "| fused | 0.450 | 20.00x | 4.00x | 80% | yes | path=fused kernel=sm90_x |",
              "| two_stage | - | - | - | - | NO | relative error 0.1 > tolerance 0.005 |"):
        assert s in md, s
    text = report.format_text(recs)
    assert "N128 64->128 64x64 k4s2p1op1 fp32 nchw" in text and "20.00x" in text


def test_commit_falls_back_to_env(monkeypatch):
    monkeypatch.setattr(report.subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(OSError()))
    monkeypatch.setenv("FCT_COMMIT", "deadbeef")
    assert report.git_commit() == "deadbeef"
    monkeypatch.delenv("FCT_COMMIT")
    assert report.git_commit() == "unknown"


def test_bandwidth_measurement_cap():
    from fused_convt_full.bench.floors import BW_CAP_BYTES, FloorMeter
    assert FloorMeter._elements(Case()) == (128 * 128 * 129 * 129, 1.0)
    big = Case(batch=16384)
    m, scale = FloorMeter._elements(big)
    assert m * 4 == BW_CAP_BYTES and m * scale == pytest.approx(big.output_bytes() / 4)


def test_plot_writes_png_or_warns(tmp_path, capsys):
    from fused_convt_full.bench.plot import write_plot
    path = tmp_path / "p.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert write_plot(str(path), fake_records()) is False
        assert "matplotlib is not installed" in capsys.readouterr().err
        return
    assert write_plot(str(path), fake_records()) is True
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_refuses_to_run_without_the_native_module(monkeypatch, capsys):
    # On a GPU machine, a missing _C must stop the run rather than time the fallback as "fused".
    import torch

    from fused_convt_full import _native
    from fused_convt_full.bench import cli

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(_native, "native", lambda: None)
    monkeypatch.setattr(_native, "native_error", lambda: "ImportError: no _C here")
    assert cli.main([]) == 2
    assert "native module is not importable" in capsys.readouterr().err
