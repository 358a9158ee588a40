"""PNG bar chart: time per contender per case, with the floor marked (matplotlib is optional)."""

from __future__ import annotations

import sys

from .contenders import CONTENDERS
from .report import group_by_case

# one fixed colour per contender, so charts of different runs read the same way
COLORS = {"eager": "tab:gray", "torch_compile": "tab:orange", "two_stage_naive": "tab:olive",
          "two_stage": "tab:blue", "fused": "tab:green"}


def _record(recs: list[dict], name: str) -> dict | None:
    return next((r for r in recs if r["contender"] == name and r.get("median_ms")), None)


def _time(recs: list[dict], name: str) -> float | None:
    r = _record(recs, name)
    return None if r is None else r["median_ms"]


def write_plot(path: str, records: list[dict]) -> bool:
    """Draw the chart to ``path``; warn on stderr and return False if matplotlib is missing.

    Only contenders with at least one timed (correct) run get bars; the floor is a dashed line per case;
    a hatched ``fused`` bar means forward() took a fallback path there (see the record's ``path``).
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FormatStrFormatter
    except Exception:
        print("warning: matplotlib is not installed; --plot skipped", file=sys.stderr)
        return False
    groups = group_by_case(records)
    names = [n for n in CONTENDERS if any(_time(rs, n) for _, rs in groups)]
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(groups) * max(1, len(names))), 4.8))
    for j, name in enumerate(names):
        pts = [(i - 0.4 + (j + 0.5) * width, _record(rs, name)) for i, (_, rs) in enumerate(groups)]
        pts = [(x, r) for x, r in pts if r is not None]
        bars = ax.bar([x for x, _ in pts], [r["median_ms"] for _, r in pts], width, label=name,
                      color=COLORS.get(name))
        for bar, (_, r) in zip(bars, pts):
            if name == "fused" and r.get("path") not in (None, "fused"):
                bar.set_hatch("//")
        ax.bar_label(bars, fmt="%.3g", fontsize=6, rotation=90, padding=2)
    labelled = False
    for i, (_, recs) in enumerate(groups):
        floor = _time(recs, "floor")
        if floor is not None:
            ax.hlines(floor, i - 0.45, i + 0.45, colors="black", linestyles="--",
                      label=None if labelled else "floor")
            labelled = True
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g for g, _ in groups], rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    top = max((r["median_ms"] for _, rs in groups for r in rs if r.get("median_ms")), default=1.0)
    ax.set_ylim(top=top * 2.5)
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.set_ylabel("median time, ms (log scale)")
    ax.set_title("fused_convt_full: time per contender (lower is better)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
