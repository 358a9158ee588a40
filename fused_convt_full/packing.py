"""Layouts the fused kernel reads: packed weights (with a staleness-safe cache) and NHWC input.

Weights are constant in inference, so they are packed once into `[Cin_pad][kH][kW][Cout_pad]`
and reused.  The cache must never hand out a packed copy of an older weight: entries are keyed
by the tensor's identity, checked against its storage pointer, shape, strides and version
counter (every in-place update, including `optimizer.step()` and `load_state_dict`, bumps it),
and dropped when the tensor is garbage collected.
"""

from __future__ import annotations

import functools
import threading
import weakref
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch

from ._native import channel_alignment, current_stream_ptr, native, native_dtype
from ._validation import ConvTransposeArgs

__all__ = [
    "PackedWeight",
    "cache_info",
    "cached_pack",
    "clear_cache",
    "pack_input",
    "pack_weights",
    "prepack",
]

# Native kernels use 16-byte vector accesses; an input view that is not 16-byte aligned (a slice
# with an odd storage offset) is copied instead of passed through.
_INPUT_ALIGNMENT_BYTES = 16


def _round_up(value: int, multiple: int) -> int:
    return (value + multiple - 1) // multiple * multiple


def pack_weights(w: torch.Tensor) -> torch.Tensor:
    """Repack a `[Cin, Cout, kH, kW]` weight as contiguous `[Cin_pad, kH, kW, Cout_pad]`.

    Channel counts are padded with zeros up to the native module's `CHANNEL_ALIGNMENT` (8).
    Always returns a fresh tensor (never a view of `w`) that does not require grad.
    """
    if not isinstance(w, torch.Tensor) or w.dim() != 4:
        raise ValueError(f"w must be a 4-D tensor [Cin, Cout, kH, kW], got {getattr(w, 'shape', type(w))}")
    align = channel_alignment()
    Cin, Cout, kH, kW = (int(v) for v in w.shape)
    Cin_pad, Cout_pad = _round_up(Cin, align), _round_up(Cout, align)
    with torch.no_grad():
        if Cin_pad == Cin and Cout_pad == Cout:
            packed = torch.empty((Cin, kH, kW, Cout), dtype=w.dtype, device=w.device)
        else:
            packed = torch.zeros((Cin_pad, kH, kW, Cout_pad), dtype=w.dtype, device=w.device)
        packed[:Cin, :, :, :Cout].copy_(w.permute(0, 2, 3, 1))
    return packed


def pack_input(x: torch.Tensor, args: ConvTransposeArgs) -> torch.Tensor:
    """The input as the fused kernel reads it: contiguous `[N, H, W, Cin_pad]`, pad channels zero.

    A channels_last-contiguous, aligned `x` whose Cin is already a multiple of 8 is returned as a
    zero-copy view; anything else costs one copy into a fresh buffer (an NCHW-contiguous CUDA
    tensor through the native transposing kernel, which beats PyTorch's permute-copy).
    """
    align = channel_alignment()
    Cin_pad = _round_up(args.Cin, align)
    if (
        Cin_pad == args.Cin
        and x.is_contiguous(memory_format=torch.channels_last)
        and x.data_ptr() % _INPUT_ALIGNMENT_BYTES == 0
    ):
        return x.permute(0, 2, 3, 1)
    buf = torch.empty((args.N, args.H, args.W, Cin_pad), dtype=x.dtype, device=x.device)
    C = native()
    if x.is_cuda and x.is_contiguous() and C is not None:
        C.nchw_to_nhwc(native_dtype(x.dtype), args.N, args.Cin, args.H * args.W, Cin_pad, x.data_ptr(),
                       buf.data_ptr(), current_stream_ptr(x.device))  # fmt: skip
        return buf
    if Cin_pad != args.Cin:
        buf[..., args.Cin :].zero_()
    buf[..., : args.Cin].copy_(x.permute(0, 2, 3, 1))
    return buf


# ----------------------------------------------------------------------------------------------
# Cache of packed plain weights.


@dataclass
class _Entry:
    ref: "weakref.ReferenceType[torch.Tensor]"
    data_ptr: int
    version: int
    shape: Tuple[int, ...]
    stride: Tuple[int, ...]
    dtype: torch.dtype
    device: torch.device
    packed: torch.Tensor


# RLock: the weakref eviction callback can fire from garbage collection triggered while this
# thread already holds the lock.
_lock = threading.RLock()
_cache: Dict[int, _Entry] = {}
_hits = 0
_misses = 0


def _version_of(w: torch.Tensor) -> Optional[int]:
    # Inference tensors have no version counter, so in-place changes to them cannot be detected:
    # they are never cached.
    if w.is_inference():
        return None
    return int(w._version)


def _evict(key: int, ref: "weakref.ReferenceType[torch.Tensor]") -> None:
    with _lock:
        entry = _cache.get(key)
        if entry is not None and entry.ref is ref:
            del _cache[key]


def _is_fresh(entry: _Entry, w: torch.Tensor, version: int) -> bool:
    return (
        entry.ref() is w
        and entry.version == version
        and entry.data_ptr == w.data_ptr()
        and entry.shape == tuple(w.shape)
        and entry.stride == tuple(w.stride())
        and entry.dtype == w.dtype
        and entry.device == w.device
    )


def cached_pack(w: torch.Tensor) -> torch.Tensor:
    """`pack_weights(w)`, reusing an earlier result while `w` is unchanged.

    The cache holds `w` only through a weak reference, so it never keeps a weight alive.  Writes
    through `w.data` (which has its own version counter) are not detected; update weights with
    in-place ops under `torch.no_grad()`, as optimizers do.
    """
    global _hits, _misses
    version = _version_of(w)
    if w.is_cuda and torch.cuda.is_current_stream_capturing():
        # A copy made during capture lives in the graph's private pool; caching it would
        # outlive the graph's bookkeeping (cudagraph trees reject such allocations).
        version = None
    key = id(w)
    if version is not None:
        with _lock:
            entry = _cache.get(key)
            if entry is not None and _is_fresh(entry, w, version):
                _hits += 1
                return entry.packed
    packed = pack_weights(w)
    with _lock:
        _misses += 1
        if version is not None:
            _cache[key] = _Entry(
                ref=weakref.ref(w, functools.partial(_evict, key)),
                data_ptr=w.data_ptr(),
                version=version,
                shape=tuple(w.shape),
                stride=tuple(w.stride()),
                dtype=w.dtype,
                device=w.device,
                packed=packed,
            )
    return packed


def clear_cache() -> None:
    """Drop every cached packed weight (and reset the statistics)."""
    global _hits, _misses
    with _lock:
        _cache.clear()
        _hits = 0
        _misses = 0


def cache_info() -> Dict[str, int]:
    """`{"size": entries, "hits": ..., "misses": ...}` since the last `clear_cache()`."""
    with _lock:
        return {"size": len(_cache), "hits": _hits, "misses": _misses}


class PackedWeight:
    """A weight packed ahead of time for the fused kernel, usable wherever `w` is accepted.

    It keeps the original weight alive (`source`): the two-stage and reference paths need it,
    and the packed copy is refreshed automatically when the source is updated in place.
    """

    def __init__(self, w: torch.Tensor) -> None:
        if not isinstance(w, torch.Tensor):
            raise TypeError(f"w must be a torch.Tensor, got {type(w).__name__}")
        if w.dim() != 4:
            raise ValueError(f"w must be 4-D [Cin, Cout, kH, kW], got shape {tuple(w.shape)}")
        self.source: torch.Tensor = w
        self.shape: Tuple[int, ...] = tuple(w.shape)
        self.dtype: torch.dtype = w.dtype
        self.device: torch.device = w.device
        self._packed: torch.Tensor = cached_pack(w)
        self._version: Optional[int] = _version_of(w)
        self._data_ptr: int = w.data_ptr()

    @property
    def version(self) -> Optional[int]:
        """The source's `_version` when the packed copy was made (None for inference tensors)."""
        return self._version

    def is_stale(self) -> bool:
        """True when the source changed (in place, or was re-pointed) since packing."""
        w = self.source
        version = _version_of(w)
        return (
            version is None
            or version != self._version
            or w.data_ptr() != self._data_ptr
            or tuple(w.shape) != self.shape
            or w.dtype != self.dtype
            or w.device != self.device
        )

    def refresh(self) -> "PackedWeight":
        """Repack if the source changed; returns self."""
        if self.is_stale():
            self._packed = cached_pack(self.source)
            self._version = _version_of(self.source)
            self._data_ptr = self.source.data_ptr()
            self.shape, self.dtype, self.device = tuple(self.source.shape), self.source.dtype, self.source.device
        return self

    @property
    def packed(self) -> torch.Tensor:
        """The packed `[Cin_pad, kH, kW, Cout_pad]` tensor, current with the source."""
        return self.refresh()._packed

    def __repr__(self) -> str:
        return (
            f"PackedWeight(shape={list(self.shape)}, dtype={self.dtype}, device={self.device}, "
            f"packed_shape={list(self._packed.shape)})"
        )


def prepack(w: torch.Tensor) -> PackedWeight:
    """Pack `w` now so the first call does not pay for it; pass the result as `w` to `forward`."""
    return PackedWeight(w)
