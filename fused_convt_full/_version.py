"""The installed distribution's version, exported as `fused_convt_full.__version__`."""

from __future__ import annotations

import importlib.metadata

__all__ = ["__version__"]

_FALLBACK = "0.1.0"  # a source checkout that was never installed


def _lookup() -> str:
    try:
        return importlib.metadata.version("fused_convt_full")
    except importlib.metadata.PackageNotFoundError:
        return _FALLBACK


__version__: str = _lookup()
