"""Access to the compiled module `fused_convt_full._C` and the mappings into its types.

The import is lazy and failure-tolerant: the package must import, validate, run the reference
composite and answer `explain()` on machines where the extension was not built (CPU-only CI,
source checkouts).  Nothing here touches CUDA at import time.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any, List, Optional, Tuple

import torch

from ._validation import ConvTransposeArgs

__all__ = [
    "CHANNEL_ALIGNMENT_FALLBACK",
    "arch_of",
    "arch_supported",
    "MATH_FP32_STRICT",
    "MATH_TF32",
    "channel_alignment",
    "current_stream_ptr",
    "make_problem",
    "native",
    "native_dtype",
    "native_error",
    "native_layout",
    "native_math",
    "native_origin",
    "require",
]

# The spec fixes the alignment at 8; used when the extension is absent (packing on CPU, tests).
CHANNEL_ALIGNMENT_FALLBACK = 8

MATH_TF32 = "tf32"
MATH_FP32_STRICT = "fp32_strict"

_MODULE_NAME = "fused_convt_full._C"

_lock = threading.Lock()
_loaded = False
_module: Optional[ModuleType] = None
_error: Optional[str] = None


def _load() -> None:
    global _loaded, _module, _error
    with _lock:
        if _loaded:
            return
        try:
            _module = importlib.import_module(_MODULE_NAME)
        except ImportError as exc:  # also a source checkout without a build, or a missing library
            _error = (
                f"{type(exc).__name__}: {exc} (build it with `pip install .`; running from a source "
                "checkout shadows the installed package, so run pytest as `pytest`, not `python -m pytest`)"
            )
        _loaded = True


def native() -> Optional[ModuleType]:
    """The compiled module, or None when it cannot be imported (see `native_error()`)."""
    if not _loaded:
        _load()
    return _module


def native_error() -> Optional[str]:
    """Why `native()` is None, as text; None when the module imported."""
    if not _loaded:
        _load()
    return _error


def native_origin() -> Optional[str]:
    """File the compiled module was loaded from (for diagnostics), or None."""
    module = native()
    return getattr(module, "__file__", None) if module is not None else None


def require() -> ModuleType:
    """The compiled module, or a RuntimeError that carries the import failure."""
    module = native()
    if module is None:
        raise RuntimeError(f"fused_convt_full: the native module is not available ({native_error()})")
    return module


def channel_alignment() -> int:
    """Channel padding multiple of the fused kernel's packed layouts."""
    module = native()
    if module is None:
        return CHANNEL_ALIGNMENT_FALLBACK
    return int(getattr(module, "CHANNEL_ALIGNMENT", CHANNEL_ALIGNMENT_FALLBACK))


def native_dtype(dtype: torch.dtype) -> Any:
    """torch dtype -> `_C.DType`."""
    C = require()
    table = {torch.float32: C.DType.float32, torch.float16: C.DType.float16, torch.bfloat16: C.DType.bfloat16}
    try:
        return table[dtype]
    except KeyError:
        raise TypeError(f"fused_convt_full: no native dtype for {dtype}") from None


def native_layout(channels_last: bool) -> Any:
    """Output memory format -> `_C.Layout` (channels_last is NHWC memory)."""
    C = require()
    return C.Layout.nhwc if channels_last else C.Layout.nchw


def native_math(math: str) -> Any:
    """Math mode name (`"tf32"` / `"fp32_strict"`) -> `_C.Math`."""
    C = require()
    if math == MATH_TF32:
        return C.Math.tf32
    if math == MATH_FP32_STRICT:
        return C.Math.fp32_strict
    raise ValueError(f"fused_convt_full: unknown math mode {math!r}")


def make_problem(args: ConvTransposeArgs, math: str) -> Any:
    """Describe a validated problem as a `_C.Problem`."""
    C = require()
    p = C.Problem()
    p.N, p.H, p.W, p.Cin, p.Cout, p.kH, p.kW = args.N, args.H, args.W, args.Cin, args.Cout, args.kH, args.kW
    p.stride_h, p.stride_w = args.stride
    p.pad_h, p.pad_w = args.padding
    p.out_pad_h, p.out_pad_w = args.output_padding
    p.dil_h, p.dil_w = args.dilation
    p.dtype = native_dtype(args.dtype)
    p.out_layout = native_layout(args.channels_last)
    p.math = native_math(math)
    return p


def current_stream_ptr(device: torch.device) -> int:
    """The raw `cudaStream_t` of PyTorch's current stream on `device`, as the native API wants it."""
    return int(torch.cuda.current_stream(device).cuda_stream)


def arch_of(device: torch.device) -> int:
    """SM architecture of a CUDA device as an int, e.g. 90 for sm_90."""
    major, minor = torch.cuda.get_device_capability(device)
    return major * 10 + minor


def arch_supported(device: torch.device) -> Tuple[bool, int, List[int]]:
    """Whether the module can run on `device`: `(ok, device_arch, compiled_archs)`.

    Machine code for sm_XY runs on sm_XZ with Z >= Y.  A device newer than every same-major
    build can still JIT the PTX that the default build embeds for its lowest architecture, so it
    counts as supported (a build without that PTX fails at launch with a clear error).  Only a
    device older than everything compiled is refused up front.  sm_90a is reported as 90.
    """
    archs = [int(a) for a in require().compiled_archs()]
    arch = arch_of(device)
    same_major = any(a // 10 == arch // 10 and a % 10 <= arch % 10 for a in archs)
    via_ptx = any(a < arch for a in archs)
    return same_major or via_ptx, arch, archs
