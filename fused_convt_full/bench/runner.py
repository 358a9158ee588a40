"""Runs cases x contenders on the GPU and returns one record per (case, contender)."""

from __future__ import annotations

import dataclasses
import gc
import sys
from typing import Callable

import torch

from . import contenders as C
from .cases import Case
from .floors import FloorInputs, FloorMeter, copy_bw, floor_ms, gemm_ms_for, write_bw
from .timing import copies_to_beat_l2, l2_bytes, median_ms, rotating


@dataclasses.dataclass
class Settings:
    """Timing budgets (ms, triton's convention) and the selected contender names."""

    names: list[str]
    warmup_ms: float = 25.0
    rep_ms: float = 200.0


class Progress:
    """tqdm progress bar if importable and stderr is a terminal, else one counter line per step on stderr."""

    def __init__(self, total: int):
        self.total, self.done = total, 0
        self._bar = None
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm
                self._bar = tqdm(total=total, file=sys.stderr, leave=False)
            except Exception:
                pass

    def step(self, label: str) -> None:
        """Announce the step about to run, then count it."""
        self.done += 1
        if self._bar is not None:
            self._bar.set_description(label)
            self._bar.update(1)
        else:
            print(f"[{self.done}/{self.total}] {label}", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()


def free_memory() -> None:
    """Drop dead tensors and hand cached blocks back, so each contender starts from the same state."""
    gc.collect()
    torch.cuda.empty_cache()


def error_text(e: BaseException) -> str:
    """One short line for a record's ``error``; OOM is named as such."""
    first = (str(e).strip().splitlines() or [""])[0][:300]
    if isinstance(e, torch.cuda.OutOfMemoryError):
        return f"out of memory: {first}"
    return f"{type(e).__name__}: {first}"


def run_all(cases: list[Case], settings: Settings) -> list[dict]:
    """Every selected contender on every case; records carry ``case``, ``contender`` and the results."""
    timer: Callable[[Callable[[], object]], float] = (
        lambda fn: median_ms(fn, settings.warmup_ms, settings.rep_ms))
    meter = FloorMeter(timer)
    progress = Progress(len(cases) * len(settings.names))
    records: list[dict] = []
    try:
        for case in cases:
            records += run_case(case, settings, timer, meter, progress)
    finally:
        progress.close()
    return records


def run_case(case: Case, settings: Settings, timer: Callable, meter: FloorMeter,
             progress: Progress) -> list[dict]:
    """All selected contenders (checked, then timed) and floors for one case."""
    names = settings.names
    out: list[dict] = []
    if "torch_compile" in names:
        torch._dynamo.reset()  # every case compiles afresh, with static shapes
    free_memory()
    inp = ref = None
    try:
        copies = copies_to_beat_l2(case.input_bytes(), l2_bytes())
        inp = C.make_inputs(case, copies)
        ref = C.reference(case, inp)
        setup_error = None
    except Exception as e:  # OOM or an invalid case: every contender of the case fails with it
        setup_error = "inputs/reference: " + error_text(e)
    for name in (n for n in names if n in C.CONTENDERS):
        progress.step(f"{case.name} {name}")
        if setup_error:
            out.append(_record(case, name, error=setup_error))
            continue
        out.append(run_contender(name, case, inp, ref, copies, timer))
        free_memory()
    del inp, ref
    free_memory()
    if any(n in C.FLOORS for n in names):
        out += run_floors(case, names, meter, progress)
    return out


def run_contender(name: str, case: Case, inp: C.Inputs, ref: torch.Tensor, copies: int,
                  timer: Callable) -> dict:
    """Build, check against the reference, and (if correct) time one contender."""
    prepared = None
    try:
        prepared = C.build(name, case, inp)
        ok, err, why = C.check(prepared.fn(0), ref, case)
        if not ok:
            return _record(case, name, error=why, rel_error=err, **prepared.info)
        ms = timer(rotating(prepared.fn, copies))
        return _record(case, name, ok=True, median_ms=ms, rel_error=err, **prepared.info)
    except Exception as e:
        info = prepared.info if prepared is not None else {}
        return _record(case, name, error=error_text(e), **info)


def run_floors(case: Case, names: list[str], meter: FloorMeter, progress: Progress) -> list[dict]:
    """floor_write, floor_copy, floor_gemm and the model ``floor``, each only if selected."""
    selected = [n for n in C.FLOORS if n in names]
    for n in selected:
        progress.step(f"{case.name} {n}")
    try:
        w_ms, c_ms = meter.write_ms(case), meter.copy_ms(case)
        rate = meter.gemm_rate(case.dtype)
    except Exception as e:
        return [_record(case, n, error=error_text(e)) for n in selected]
    finally:
        free_memory()
    nbytes, flops = case.output_bytes(), case.flops()
    f = FloorInputs(nbytes, case.input_bytes(), flops, write_bw(nbytes, w_ms), copy_bw(nbytes, c_ms), rate)
    made = {
        "floor_write": _record(case, "floor_write", ok=True, median_ms=w_ms, bandwidth_tbs=f.write_bw / 1e12),
        "floor_copy": _record(case, "floor_copy", ok=True, median_ms=c_ms, bandwidth_tbs=f.read_bw / 1e12),
        "floor_gemm": _record(case, "floor_gemm", ok=True, median_ms=gemm_ms_for(flops, rate),
                              tflops=rate / 1e12),
        "floor": _record(case, "floor", ok=True, median_ms=floor_ms(f)),
    }
    return [made[n] for n in selected]


def _record(case: Case, contender: str, ok: bool = False, median_ms: float | None = None,
            error: str | None = None, **extra) -> dict:
    """A record before the run metadata and the derived columns are added (see report.finish)."""
    return {"case": case.as_dict(), "contender": contender, "ok": ok,
            "median_ms": median_ms if ok else None, "error": error, **extra}
