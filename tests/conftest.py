"""Shared pytest configuration: the `requires_cuda` / `requires_native` markers and their skips.

Mark a test (or a module, via `pytestmark`) with `@pytest.mark.requires_cuda` or
`@pytest.mark.requires_native`; it is skipped with the reason below when the GPU or the compiled
extension is missing.
"""

from __future__ import annotations

import pytest
import torch

from fused_convt_full import _native

CUDA_AVAILABLE = torch.cuda.is_available()
NATIVE_AVAILABLE = _native.native() is not None
CUDA_SKIP_REASON = "CUDA GPU not available"


def _native_skip_reason() -> str:
    return f"native module fused_convt_full._C not importable: {_native.native_error()}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"requires_cuda: needs a CUDA GPU (else skipped: {CUDA_SKIP_REASON})")
    config.addinivalue_line("markers", "requires_native: needs the compiled extension fused_convt_full._C")


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    for item in items:
        if item.get_closest_marker("requires_cuda") is not None and not CUDA_AVAILABLE:
            item.add_marker(pytest.mark.skip(reason=CUDA_SKIP_REASON))
        if item.get_closest_marker("requires_native") is not None and not NATIVE_AVAILABLE:
            item.add_marker(pytest.mark.skip(reason=_native_skip_reason()))


@pytest.fixture(autouse=True)
def _seed() -> None:
    # Every test draws its own data; a fixed seed makes failures reproducible one test at a time.
    torch.manual_seed(0)
