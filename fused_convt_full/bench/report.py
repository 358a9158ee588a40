"""Run metadata, derived columns (speedups, floor fraction), and the text / markdown / JSON outputs."""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import shlex
import subprocess
from typing import Iterable

REQUIRED_KEYS = ("card", "commit", "torch", "date", "case", "contender", "median_ms", "ok",
                 "speedup_vs_eager", "speedup_vs_compile", "floor_fraction", "error")
FLOOR_PARTS = ("floor_write", "floor_copy", "floor_gemm")  # no floor/time for the floor's own components
COLUMNS = ("contender", "median ms", "vs eager", "vs compile", "floor/time", "ok", "notes")


def git_commit() -> str:
    """``git rev-parse HEAD`` of the checkout holding this package, else $FCT_COMMIT, else 'unknown'."""
    root = pathlib.Path(__file__).resolve().parents[2]
    try:
        res = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if res.returncode == 0 and res.stdout.strip():
            return res.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return os.environ.get("FCT_COMMIT") or "unknown"


def run_metadata(argv: list[str], card: str, timer: str) -> dict:
    """What every record carries about the run: card, commit, torch version, date, timer, command."""
    import torch
    return {"card": card, "commit": git_commit(), "torch": torch.__version__,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "timer": timer, "command": " ".join(shlex.quote(a) for a in argv)}


def _case_key(record: dict) -> str:
    return json.dumps(record["case"], sort_keys=True)


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def finish(records: Iterable[dict], meta: dict) -> list[dict]:
    """Add the run metadata and ``speedup_vs_eager``, ``speedup_vs_compile``, ``floor_fraction``.

    Speedups are (baseline time / this time); ``floor_fraction`` is floor time / this time (1.0 would be
    at the physical limit; not given for the floor's components). Missing baselines or failed runs give None.
    """
    records = [dict(meta, **r) for r in records]
    times: dict[tuple[str, str], float | None] = {
        (_case_key(r), r["contender"]): r.get("median_ms") for r in records}
    for r in records:
        k, t = _case_key(r), r.get("median_ms")
        r["speedup_vs_eager"] = _ratio(times.get((k, "eager")), t)
        r["speedup_vs_compile"] = _ratio(times.get((k, "torch_compile")), t)
        r["floor_fraction"] = (None if r["contender"] in FLOOR_PARTS
                               else _ratio(times.get((k, "floor")), t))
        r.setdefault("error", None)
    return records


def case_name(case: dict) -> str:
    """The label of a record's case dict (same as cases.Case.name)."""
    d = f"d{case['dilation']}" if case.get("dilation", 1) != 1 else ""
    return (f"N{case['batch']} {case['cin']}->{case['cout']} {case['hw']}x{case['hw']} "
            f"k{case['kernel']}s{case['stride']}p{case['padding']}op{case['output_padding']}{d} "
            f"{case['dtype']} {case['layout']}")


def _fmt(v: float | None, spec: str, suffix: str = "") -> str:
    return "-" if v is None else format(v, spec) + suffix


def _notes(r: dict) -> str:
    parts = []
    if r.get("path") and r["contender"] == "fused":
        parts.append(f"path={r['path']}" + (f" kernel={r['kernel']}" if r.get("kernel") else ""))
    if r.get("compile_s") is not None:
        parts.append(f"compile {r['compile_s']:.1f} s")
    if r.get("bandwidth_tbs") is not None:
        parts.append(f"{r['bandwidth_tbs']:.2f} TB/s")
    if r.get("tflops") is not None:
        parts.append(f"{r['tflops']:.0f} TFLOP/s")
    if r.get("error"):
        parts.append(r["error"])
    return "; ".join(parts)


def row(r: dict) -> list[str]:
    """One table row for a record, in COLUMNS order."""
    return [r["contender"], _fmt(r.get("median_ms"), ".3f"), _fmt(r.get("speedup_vs_eager"), ".2f", "x"),
            _fmt(r.get("speedup_vs_compile"), ".2f", "x"), _fmt(r.get("floor_fraction"), ".0%"),
            "yes" if r["ok"] else "NO", _notes(r)]


def group_by_case(records: list[dict]) -> list[tuple[str, list[dict]]]:
    """Records grouped by case, in first-seen order."""
    groups: dict[str, list[dict]] = {}
    names: dict[str, str] = {}
    for r in records:
        k = _case_key(r)
        groups.setdefault(k, []).append(r)
        names[k] = case_name(r["case"])
    return [(names[k], v) for k, v in groups.items()]


def format_text(records: list[dict]) -> str:
    """Plain aligned table, one block per case."""
    blocks = []
    for name, recs in group_by_case(records):
        rows = [list(COLUMNS)] + [row(r) for r in recs]
        widths = [max(len(x[i]) for x in rows) for i in range(len(COLUMNS) - 1)]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(x, widths)))
                 + "  " + x[-1] for x in rows]
        blocks.append("\n".join([name] + [ln.rstrip() for ln in lines]))
    return "\n\n".join(blocks) + "\n"


def format_markdown(records: list[dict], meta: dict) -> str:
    """Markdown report headed with card, date, commit, torch, timer and the exact command line."""
    out = ["# fused_convt_full benchmark", "",
           f"- card: {meta.get('card')}", f"- date: {meta.get('date')}", f"- commit: `{meta.get('commit')}`",
           f"- torch: {meta.get('torch')}", f"- timer: {meta.get('timer')} (median)", "",
           "```", meta.get("command", ""), "```", ""]
    for name, recs in group_by_case(records):
        out += [f"## {name}", "", "| " + " | ".join(COLUMNS) + " |",
                "|" + "|".join("---" if i in (0, len(COLUMNS) - 1) else "---:" for i in range(len(COLUMNS))) + "|"]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row(r)) + " |" for r in recs]
        out.append("")
    return "\n".join(out)


def write_json(path: str, records: list[dict]) -> None:
    """Write the records as a JSON list (NaN/inf become null)."""
    def clean(v):
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v
    pathlib.Path(path).write_text(json.dumps([clean(r) for r in records], indent=1) + "\n")
