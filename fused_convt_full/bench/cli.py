"""Command line: ``python -m fused_convt_full.bench [options]`` (see benchmarks/README.md)."""

from __future__ import annotations

import argparse
import sys

from .cases import SWEEPS, Case, build_cases, split_list
from .contenders import ALL_NAMES

NO_GPU = ("no CUDA GPU: the benchmark needs one (torch.cuda.is_available() is False); "
          "run it on a machine with an NVIDIA GPU and a CUDA build of PyTorch")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; defaults are the reference problem (KernelBench level 2 #91)."""
    ref = Case()
    p = argparse.ArgumentParser(prog="python -m fused_convt_full.bench",
                                description="Time fused_convt_full against eager, torch.compile, the two-stage "
                                            "path and the physical floor.")
    g = p.add_argument_group("problem (default: the reference problem)")
    g.add_argument("--dtype", action="append", metavar="D", help="fp32, fp16, bf16; repeatable or comma list")
    g.add_argument("--layout", action="append", metavar="L", help="nchw or channels_last; repeatable or comma list")
    for flag, val in (("batch", ref.batch), ("cin", ref.cin), ("cout", ref.cout), ("hw", ref.hw),
                      ("kernel", ref.kernel), ("stride", ref.stride), ("padding", ref.padding),
                      ("output-padding", ref.output_padding), ("dilation", ref.dilation)):
        g.add_argument(f"--{flag}", type=int, default=val, help=f"default {val}")
    p.add_argument("--sweep", action="append", metavar="S",
                   help=f"{', '.join(SWEEPS)}; repeatable or comma list (sweeps combine as a product)")
    p.add_argument("--contenders", metavar="LIST", help=f"comma list from: {', '.join(ALL_NAMES)} (default all)")
    p.add_argument("--no-compile", action="store_true", help="drop torch_compile (saves the compile time)")
    p.add_argument("--warmup", type=float, default=25.0, help="warm-up budget per measurement, ms (default 25)")
    p.add_argument("--rep", type=float, default=200.0, help="timing budget per measurement, ms (default 200)")
    p.add_argument("--json", metavar="PATH", help="write one record per contender x case")
    p.add_argument("--markdown", metavar="PATH", help="write the tables as markdown")
    p.add_argument("--plot", metavar="PATH", help="write a PNG bar chart (needs matplotlib)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and validate; bad sweep/dtype/layout/contender names exit with status 2 (argparse)."""
    p = build_parser()
    ns = p.parse_args(argv)
    try:
        ns.cases = cases_from_args(ns)
        ns.names = contenders_from_args(ns)
    except ValueError as e:
        p.error(str(e))
    return ns


def cases_from_args(ns: argparse.Namespace) -> list[Case]:
    """The cases the options ask for (base case from the shape flags, times the sweeps)."""
    base = Case(batch=ns.batch, cin=ns.cin, cout=ns.cout, hw=ns.hw, kernel=ns.kernel, stride=ns.stride,
                padding=ns.padding, output_padding=ns.output_padding, dilation=ns.dilation)
    return build_cases(base, split_list(ns.sweep), split_list(ns.dtype), split_list(ns.layout))


def contenders_from_args(ns: argparse.Namespace) -> list[str]:
    """Selected contender names in canonical order (--contenders, minus torch_compile if --no-compile)."""
    wanted = split_list([ns.contenders]) if ns.contenders else list(ALL_NAMES)
    unknown = [n for n in wanted if n not in ALL_NAMES]
    if unknown:
        raise ValueError(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(ALL_NAMES)}")
    if ns.no_compile:
        wanted = [n for n in wanted if n != "torch_compile"]
    return [n for n in ALL_NAMES if n in wanted]


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (2: no GPU or bad arguments)."""
    argv = sys.argv[1:] if argv is None else argv
    ns = parse_args(argv)
    import torch
    if not torch.cuda.is_available():
        print(NO_GPU, file=sys.stderr)
        return 2
    from .. import _native
    if _native.native() is None:
        # Timing the reference fallback under the name "fused" would be a wrong table.
        print(f"fused_convt_full.bench: the native module is not importable: {_native.native_error()}",
              file=sys.stderr)
        return 2
    from . import report
    from .runner import Settings, run_all
    from .timing import timer_name

    meta = report.run_metadata(["python", "-m", "fused_convt_full.bench", *argv],
                               torch.cuda.get_device_name(), timer_name())
    print(f"{meta['card']} | torch {meta['torch']} | commit {meta['commit'][:12]} | {meta['timer']} | "
          f"{len(ns.cases)} case(s) x {len(ns.names)} contender(s)", flush=True)
    records = report.finish(run_all(ns.cases, Settings(ns.names, ns.warmup, ns.rep)), meta)
    print(report.format_text(records))
    if ns.json:
        report.write_json(ns.json, records)
    if ns.markdown:
        with open(ns.markdown, "w") as f:
            f.write(report.format_markdown(records, meta))
    if ns.plot:
        from .plot import write_plot
        write_plot(ns.plot, records)
    return 0
